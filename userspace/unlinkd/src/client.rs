// SPDX-License-Identifier: GPL-2.0
//! A small synchronous iod client: one UDP socket, request ids, a timeout
//! per try that doubles on every retry (capped at 8 × the first).

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use nfsp_proto::wire::{
    Body, List, ListEntry, ListRequest, Message, MsgType, Status, Unlink, MAX_DATAGRAM,
    MAX_LIST_ENTRIES, MAX_UNLINK_KEYS,
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
        self.call(to, body, |b| match b {
            Body::Ack(a) if a.op == MsgType::Unlink && a.status == Status::Ok => Ok(a.value),
            Body::Ack(a) => Err(ClientError::Status {
                addr: to,
                op: MsgType::Unlink,
                status: a.status,
            }),
            other => Err(ClientError::Unexpected {
                addr: to,
                got: other.msg_type(),
            }),
        })
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
