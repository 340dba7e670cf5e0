// SPDX-License-Identifier: GPL-2.0
//! A small synchronous iod client: one UDP socket, request ids, a timeout
//! per try that doubles on every retry (capped at 8 × the first). Besides
//! UNLINK and LIST it speaks PING (to many iods at once), relayed READ,
//! single-member WRITE and TRUNCATE (iodmgr's heartbeats and re-sync).

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use nfsp_proto::wire::{
    Body, Chain, IodStats, List, ListEntry, ListRequest, Message, MsgType, Read, ReplySpec, Status,
    Truncate, Unlink, Write, MAX_DATAGRAM, MAX_DATA_PER_MSG, MAX_LIST_ENTRIES, MAX_UNLINK_KEYS,
};
use nfsp_proto::{FileKey, ProtoError};

/// Errors of iod requests.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket error.
    #[error("{addr}: {source}")]
    Io {
        /// The iod.
        addr: SocketAddr,
        /// Cause.
        source: io::Error,
    },
    /// No answer after every try.
    #[error("{addr}: no answer after {tries} tries")]
    Timeout {
        /// The iod.
        addr: SocketAddr,
        /// Tries made.
        tries: u32,
    },
    /// The iod answered an error.
    #[error("{addr}: {op:?} failed with status {status:?}")]
    Status {
        /// The iod.
        addr: SocketAddr,
        /// The request.
        op: MsgType,
        /// Its status.
        status: Status,
    },
    /// The request could not be encoded (too many keys...).
    #[error("cannot encode the request: {0}")]
    Encode(ProtoError),
    /// The answer was not the expected type.
    #[error("{addr}: unexpected answer {got:?}")]
    Unexpected {
        /// The iod.
        addr: SocketAddr,
        /// What came.
        got: MsgType,
    },
}

/// The value of an ACK of `op` from `addr`, or the error it reports.
fn ack(addr: SocketAddr, op: MsgType, b: &Body<'_>) -> Result<u64, ClientError> {
    match b {
        Body::Ack(a) if a.op == op && a.status == Status::Ok => Ok(a.value),
        Body::Ack(a) => Err(ClientError::Status {
            addr,
            op,
            status: a.status,
        }),
        other => Err(ClientError::Unexpected {
            addr,
            got: other.msg_type(),
        }),
    }
}

/// The client.
#[derive(Debug)]
pub struct Client {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    next_id: u64,
    /// Timeout of the first try.
    pub timeout: Duration,
    /// Tries per request (>= 1).
    pub tries: u32,
    rbuf: Vec<u8>,
    sbuf: Vec<u8>,
    origins: HashMap<SocketAddr, SocketAddr>,
}

impl Client {
    /// A client with this first timeout and number of tries.
    pub fn new(timeout: Duration, tries: u32) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Client {
            v4: None,
            v6: None,
            next_id: seed ^ (u64::from(std::process::id()) << 40),
            timeout,
            tries: tries.max(1),
            rbuf: vec![0u8; MAX_DATAGRAM],
            sbuf: vec![0u8; MAX_DATAGRAM],
            origins: HashMap::new(),
        }
    }

    fn socket(&mut self, to: SocketAddr) -> io::Result<&UdpSocket> {
        let (slot, any) = if to.is_ipv4() {
            (&mut self.v4, "0.0.0.0:0")
        } else {
            (&mut self.v6, "[::]:0")
        };
        if slot.is_none() {
            *slot = Some(UdpSocket::bind(any)?);
        }
        slot.as_ref().ok_or_else(|| io::Error::other("no socket"))
    }

    /// Send `body` to `to` and return the answer with the same request id
    /// (as bytes in the client's buffer, decoded by `check`).
    fn call<T>(
        &mut self,
        to: SocketAddr,
        body: Body<'_>,
        mut check: impl FnMut(&Body<'_>) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let n = Message::new(id, body)
            .encode(&mut self.sbuf)
            .map_err(ClientError::Encode)?;
        let io = |source| ClientError::Io { addr: to, source };
        let mut timeout = self.timeout;
        for _ in 0..self.tries {
            let sock = self.socket(to).map_err(io)?.try_clone().map_err(io)?;
            sock.send_to(&self.sbuf[..n], to).map_err(io)?;
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                sock.set_read_timeout(Some(left)).map_err(io)?;
                let m = match sock.recv_from(&mut self.rbuf) {
                    Ok((m, _)) => m,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    // ICMP port unreachable of an earlier send: try again
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(io(e)),
                };
                match Message::decode(&self.rbuf[..m]) {
                    Ok(msg) if msg.request_id == id => return check(&msg.body),
                    _ => continue, // late answer of an earlier request, or garbage
                }
            }
            timeout = (timeout * 2).min(self.timeout * 8);
        }
        Err(ClientError::Timeout {
            addr: to,
            tries: self.tries,
        })
    }

    /// UNLINK `keys` (<= 256) on `to`; the number of files removed.
    pub fn unlink(&mut self, to: SocketAddr, keys: &[FileKey]) -> Result<u64, ClientError> {
        if keys.len() > MAX_UNLINK_KEYS {
            return Err(ClientError::Encode(ProtoError::TooMany("unlink keys")));
        }
        let body = Body::Unlink(Unlink {
            keys: List::Items(keys),
        });
        self.call(to, body, |b| ack(to, MsgType::Unlink, b))
    }

    /// Where `to` must send answers that go to an origin (relayed READ,
    /// chain ACK): our address as `to` sees it, with our socket's port.
    pub fn origin(&mut self, to: SocketAddr) -> io::Result<SocketAddr> {
        if let Some(o) = self.origins.get(&to) {
            return Ok(*o);
        }
        let port = self.socket(to)?.local_addr()?.port();
        let probe = UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
        probe.connect(to)?;
        let o = SocketAddr::new(probe.local_addr()?.ip(), port);
        self.origins.insert(to, o);
        Ok(o)
    }

    fn origin_of(&mut self, to: SocketAddr) -> Result<SocketAddr, ClientError> {
        self.origin(to)
            .map_err(|source| ClientError::Io { addr: to, source })
    }

    /// A replica chain of `to` alone, acknowledged to us.
    fn solo_chain(&mut self, to: SocketAddr) -> Result<Chain<'static>, ClientError> {
        Ok(Chain {
            origin: self.origin_of(to)?,
            members: List::Items(&[]),
        })
    }

    /// PING every iod of `to` at once and wait up to `timeout` for the
    /// PONGs: per iod, the round-trip time and its statistics, or `None`.
    pub fn ping_many(
        &mut self,
        to: &[SocketAddr],
        timeout: Duration,
    ) -> Vec<Option<(Duration, IodStats)>> {
        let mut out: Vec<Option<(Duration, IodStats)>> = vec![None; to.len()];
        let mut sent: Vec<(u64, usize, Instant)> = Vec::new();
        for (i, a) in to.iter().enumerate() {
            self.next_id = self.next_id.wrapping_add(1);
            let id = self.next_id;
            let Ok(n) = Message::new(id, Body::Ping).encode(&mut self.sbuf) else {
                continue;
            };
            let ok = match self.socket(*a).and_then(UdpSocket::try_clone) {
                Ok(s) => s.send_to(&self.sbuf[..n], a).is_ok(),
                Err(_) => false,
            };
            if ok {
                sent.push((id, i, Instant::now()));
            }
        }
        let deadline = Instant::now() + timeout;
        for sock in [self.v4.as_ref(), self.v6.as_ref()].into_iter().flatten() {
            // Both families share the deadline (one family in practice).
            while out.iter().filter(|o| o.is_some()).count() < sent.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
                    break;
                }
                let m = match sock.recv_from(&mut self.rbuf) {
                    Ok((m, _)) => m,
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::Interrupted | ErrorKind::ConnectionRefused
                        ) =>
                    {
                        continue
                    }
                    Err(_) => break,
                };
                let Ok(msg) = Message::decode(&self.rbuf[..m]) else {
                    continue;
                };
                let Body::Pong(stats) = msg.body else {
                    continue;
                };
                if let Some((_, i, at)) = sent.iter().find(|(id, _, _)| *id == msg.request_id) {
                    out[*i] = Some((at.elapsed(), stats));
                }
            }
        }
        out
    }

    /// Relayed READ of `len` (<= 60 KiB) bytes at `offset` of `key` on
    /// `to`, into `buf` (zeros past the end of the local file).
    pub fn read(
        &mut self,
        to: SocketAddr,
        key: FileKey,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), ClientError> {
        if buf.len() > MAX_DATA_PER_MSG {
            return Err(ClientError::Encode(ProtoError::TooMany("data bytes")));
        }
        let origin = self.origin_of(to)?;
        let body = Body::Read(Read {
            key,
            local_offset: offset,
            len: buf.len() as u32,
            routes: List::Items(&[]),
            reply: ReplySpec::Relay { origin },
            gathered: &[],
        });
        let want = buf.len();
        self.call(to, body, |b| match b {
            Body::ReadReply(r) if r.status == Status::Ok && r.data.len() == want => {
                buf.copy_from_slice(r.data);
                Ok(())
            }
            Body::ReadReply(r) => Err(ClientError::Status {
                addr: to,
                op: MsgType::Read,
                status: r.status,
            }),
            other => Err(ClientError::Unexpected {
                addr: to,
                got: other.msg_type(),
            }),
        })
    }

    /// WRITE `data` (<= 60 KiB) at `offset` of `key` on `to` alone (a
    /// chain of one member).
    pub fn write(
        &mut self,
        to: SocketAddr,
        key: FileKey,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let chain = self.solo_chain(to)?;
        let body = Body::Write(Write {
            key,
            local_offset: offset,
            chain,
            data,
        });
        self.call(to, body, |b| ack(to, MsgType::Write, b).map(|_| ()))
    }

    /// TRUNCATE `key` on `to` alone to `len` bytes (created if missing).
    pub fn truncate(&mut self, to: SocketAddr, key: FileKey, len: u64) -> Result<(), ClientError> {
        let chain = self.solo_chain(to)?;
        let body = Body::Truncate(Truncate {
            key,
            new_len: len,
            chain,
        });
        self.call(to, body, |b| ack(to, MsgType::Truncate, b).map(|_| ()))
    }

    /// One LIST page of `to` after `after`: entries and whether more follow.
    pub fn list_page(
        &mut self,
        to: SocketAddr,
        after: Option<FileKey>,
        max: u16,
    ) -> Result<(Vec<ListEntry>, bool), ClientError> {
        let body = Body::List(ListRequest { after, max });
        self.call(to, body, |b| match b {
            Body::ListReply(r) if r.status == Status::Ok => {
                Ok((r.entries.iter().collect(), r.more))
            }
            Body::ListReply(r) => Err(ClientError::Status {
                addr: to,
                op: MsgType::List,
                status: r.status,
            }),
            other => Err(ClientError::Unexpected {
                addr: to,
                got: other.msg_type(),
            }),
        })
    }

    /// Every local file of `to`, page by page, in listing order.
    pub fn list_all(
        &mut self,
        to: SocketAddr,
        mut page: impl FnMut(&[ListEntry]),
    ) -> Result<(), ClientError> {
        let mut after = None;
        loop {
            let (entries, more) = self.list_page(to, after, MAX_LIST_ENTRIES as u16)?;
            page(&entries);
            match entries.last() {
                Some(e) if more => after = Some(e.key),
                _ => return Ok(()),
            }
        }
    }
}
