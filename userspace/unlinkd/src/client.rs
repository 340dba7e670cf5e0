// SPDX-License-Identifier: GPL-2.0
//! The user-space iod client shared by `unlinkd`, `iodmgr` and
//! `iodctl fsck`: one UDP socket per address family, authenticated
//! requests (wire v2), a timeout per try that doubles on every retry
//! (capped at 8 × the first). It speaks UNLINK and LIST, PING (to many
//! iods at once), relayed READ, single-member WRITE and TRUNCATE.
//!
//! * **Ids.** Every client draws a random epoch; each datagram it sends
//!   gets the next sequence number. An answer counts only if it opens with
//!   our keys ([`wire::open`]), comes from the very address the request
//!   went to, is an answer ([`MsgType::is_answer`]: our own request
//!   reflected back is not) and carries the id of one of the datagrams
//!   sent for this request.
//! * **Instances.** The instance of every iod is learned from the header
//!   of its authenticated answers (PONGs included) and put in the next
//!   requests. An iod that restarted answers `Stale` (nothing applied):
//!   the request is re-issued with the new instance and a new sequence
//!   number ([`wire::restamp`]), at most [`MAX_STALE_ROUNDS`] times.
//! * **Retries.** READ, LIST and PING are sent again with a new sequence
//!   number (iods drop duplicates of those); WRITE, TRUNCATE and UNLINK
//!   are sent again byte for byte (iods answer a duplicate from their
//!   reply cache and apply it once).

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use nfsp_proto::auth::Keys;
use nfsp_proto::wire::{
    self, Body, Chain, IodStats, List, ListEntry, ListRequest, Message, MsgType, Read, ReplySpec,
    RequestId, Status, Truncate, Unlink, Write, MAX_DATAGRAM, MAX_DATA_PER_MSG, MAX_LIST_ENTRIES,
    MAX_UNLINK_KEYS,
};
use nfsp_proto::{FileKey, ProtoError};

/// `Stale` answers in a row before a request fails (an iod restarting in a
/// loop, or one that never takes its own instance).
pub const MAX_STALE_ROUNDS: u32 = 3;

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
    /// The iod kept answering `Stale` with the instance we had just sent.
    #[error(
        "{addr}: still 'stale instance' after {rounds} re-issues (is it restarting in a loop?)"
    )]
    Stale {
        /// The iod.
        addr: SocketAddr,
        /// Re-issues made.
        rounds: u32,
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
    /// A LIST page that does not move the listing forward.
    #[error("{addr}: bad LIST answer: {why}")]
    BadListing {
        /// The iod.
        addr: SocketAddr,
        /// What is wrong.
        why: &'static str,
    },
}

/// The keys of a client, shared with whoever reloads them (SIGHUP): every
/// request reads the current ones.
#[derive(Debug, Clone, Default)]
pub struct SharedKeys(Arc<RwLock<Keys>>);

impl SharedKeys {
    /// Shared `keys`.
    pub fn new(keys: Keys) -> Self {
        SharedKeys(Arc::new(RwLock::new(keys)))
    }

    /// The current keys.
    pub fn get(&self) -> Keys {
        // `Keys` is `Copy`: a poisoned lock still holds valid keys.
        *self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Replace the keys (for every client sharing them).
    pub fn set(&self, keys: Keys) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }
}

impl From<Keys> for SharedKeys {
    fn from(k: Keys) -> Self {
        SharedKeys::new(k)
    }
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

/// The status an answer carries, if it is a kind that has one.
fn status_of(b: &Body<'_>) -> Option<Status> {
    match b {
        Body::Ack(a) => Some(a.status),
        Body::ReadReply(r) => Some(r.status),
        Body::ListReply(r) => Some(r.status),
        _ => None,
    }
}

/// Requests an iod applies once and answers again from its reply cache:
/// their retries must be the same datagram.
fn mutating(b: &Body<'_>) -> bool {
    matches!(
        b,
        Body::Write(_) | Body::Truncate(_) | Body::Unlink(_) | Body::Commit(_)
    )
}

/// An iod's answer to a PING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// Round-trip time.
    pub rtt: Duration,
    /// Its statistics.
    pub stats: IodStats,
    /// Its instance (changes when it restarts).
    pub instance: u64,
}

/// An instance and the sequence number of the answer that told it (a late
/// answer to an older request must not undo a newer one).
#[derive(Debug, Clone, Copy)]
struct Learned {
    instance: u64,
    seq: u64,
}

/// The client.
#[derive(Debug)]
pub struct Client {
    keys: SharedKeys,
    epoch: u64,
    seq: u64,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    /// Timeout of the first try.
    pub timeout: Duration,
    /// Tries per request (>= 1).
    pub tries: u32,
    rbuf: Vec<u8>,
    sbuf: Vec<u8>,
    tbuf: Vec<u8>,
    origins: HashMap<SocketAddr, SocketAddr>,
    instances: HashMap<SocketAddr, Learned>,
    rejected: u64,
}

/// What one receive brought.
enum Heard<T> {
    /// The expected answer (or the error it reports).
    Done(Result<T, ClientError>),
    /// `Stale` for the datagram in flight: re-issue it.
    Stale,
    /// The try's time is up.
    Timeout,
}

impl Client {
    /// A client with these keys, first timeout and number of tries; its
    /// epoch is drawn from the kernel's random source.
    pub fn new(keys: impl Into<SharedKeys>, timeout: Duration, tries: u32) -> io::Result<Self> {
        Ok(Client {
            keys: keys.into(),
            epoch: nfsp_keys::random_nonzero_u64()?,
            seq: 0,
            v4: None,
            v6: None,
            timeout,
            tries: tries.max(1),
            rbuf: vec![0u8; MAX_DATAGRAM],
            sbuf: vec![0u8; MAX_DATAGRAM],
            tbuf: vec![0u8; MAX_DATAGRAM],
            origins: HashMap::new(),
            instances: HashMap::new(),
            rejected: 0,
        })
    }

    /// The keys this client signs and checks with (shared).
    pub fn keys(&self) -> &SharedKeys {
        &self.keys
    }

    /// The instance of the iod at `addr` last heard, if any.
    pub fn instance(&self, addr: SocketAddr) -> Option<u64> {
        self.instances.get(&addr).map(|l| l.instance)
    }

    /// Every iod instance heard so far.
    pub fn instances(&self) -> impl Iterator<Item = (SocketAddr, u64)> + '_ {
        self.instances.iter().map(|(a, l)| (*a, l.instance))
    }

    /// Datagrams dropped so far: from another address than the request's,
    /// failing authentication, malformed, or not an answer.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    fn next_id(&mut self) -> RequestId {
        self.seq = self.seq.wrapping_add(1);
        RequestId {
            epoch: self.epoch,
            seq: self.seq,
        }
    }

    fn instance_of(&self, addr: &SocketAddr) -> u64 {
        self.instances.get(addr).map_or(0, |l| l.instance)
    }

    /// Remember `instance` for `addr` as told by the answer to `seq`.
    fn learn(&mut self, addr: SocketAddr, instance: u64, seq: u64) {
        if instance == 0 {
            return;
        }
        match self.instances.get(&addr) {
            Some(l) if l.seq > seq => {}
            Some(l) if l.instance == instance => {
                self.instances.insert(addr, Learned { instance, seq });
            }
            old => {
                if let Some(l) = old {
                    log::debug!(
                        "{addr}: instance {:016x} -> {instance:016x} (restarted)",
                        l.instance
                    );
                }
                self.instances.insert(addr, Learned { instance, seq });
            }
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

    /// Re-issue the datagram in `sbuf` (`len` bytes) with a new id and the
    /// instances known now; its new length.
    fn restamp(
        &mut self,
        keys: &Keys,
        to: SocketAddr,
        len: usize,
    ) -> Result<(RequestId, usize), ClientError> {
        let id = self.next_id();
        let instances = &self.instances;
        let instance_of = |a: &SocketAddr| instances.get(a).map_or(0, |l| l.instance);
        let n = wire::restamp(
            keys,
            &self.sbuf[..len],
            id,
            &to,
            &instance_of,
            &mut self.tbuf,
        )
        .map_err(ClientError::Encode)?;
        std::mem::swap(&mut self.sbuf, &mut self.tbuf);
        Ok((id, n))
    }

    /// Wait until `deadline` for an answer to one of `ids` from `to`.
    fn hear<T>(
        &mut self,
        sock: &UdpSocket,
        keys: &Keys,
        to: SocketAddr,
        ids: &[RequestId],
        deadline: Instant,
        check: &mut impl FnMut(&Body<'_>) -> Result<T, ClientError>,
    ) -> Result<Heard<T>, ClientError> {
        let io = |source| ClientError::Io { addr: to, source };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Heard::Timeout);
            }
            sock.set_read_timeout(Some(left)).map_err(io)?;
            let (m, src) = match sock.recv_from(&mut self.rbuf) {
                Ok(x) => x,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(Heard::Timeout)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // ICMP port unreachable of an earlier send: wait on
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(io(e)),
            };
            if src != to {
                self.rejected += 1;
                log::debug!("{to}: datagram from {src} ignored");
                continue;
            }
            let msg = match wire::open(keys, &self.rbuf[..m]) {
                Ok(msg) => msg,
                Err(e) => {
                    self.rejected += 1;
                    log::debug!("{to}: answer dropped: {e}");
                    continue;
                }
            };
            // Before the ids and the check: our own sealed request,
            // reflected back with the iod's address as forged source, has
            // the right id and source but is no answer.
            if !msg.body.msg_type().is_answer() {
                self.rejected += 1;
                log::debug!("{to}: {:?} is not an answer, ignored", msg.body.msg_type());
                continue;
            }
            if !ids.contains(&msg.id) {
                continue; // a late answer to an earlier request
            }
            let (id, instance, stale) = (
                msg.id,
                msg.instance,
                status_of(&msg.body) == Some(Status::Stale),
            );
            if !stale {
                let r = check(&msg.body);
                self.learn(to, instance, id.seq);
                return Ok(Heard::Done(r));
            }
            self.learn(to, instance, id.seq);
            // A `Stale` for an older try is outdated: the datagram in
            // flight already carries a newer instance.
            if ids.last() == Some(&id) {
                return Ok(Heard::Stale);
            }
        }
    }

    /// Send `body` to `to` and return what `check` makes of the answer.
    fn call<T>(
        &mut self,
        to: SocketAddr,
        body: Body<'_>,
        mut check: impl FnMut(&Body<'_>) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let keys = self.keys.get();
        let same_on_retry = mutating(&body);
        let id = self.next_id();
        let mut len = Message::new(id, self.instance_of(&to), body)
            .seal(&keys, &mut self.sbuf)
            .map_err(ClientError::Encode)?;
        // Every id sent for this request: any of their answers will do.
        let mut ids = vec![id];
        let io = |source| ClientError::Io { addr: to, source };
        let sock = self.socket(to).map_err(io)?.try_clone().map_err(io)?;
        let mut timeout = self.timeout;
        let (mut tries, mut stale) = (0u32, 0u32);
        while tries < self.tries {
            sock.send_to(&self.sbuf[..len], to).map_err(io)?;
            let deadline = Instant::now() + timeout;
            match self.hear(&sock, &keys, to, &ids, deadline, &mut check)? {
                Heard::Done(r) => return r,
                Heard::Stale => {
                    stale += 1;
                    if stale > MAX_STALE_ROUNDS {
                        return Err(ClientError::Stale {
                            addr: to,
                            rounds: MAX_STALE_ROUNDS,
                        });
                    }
                    let (id, n) = self.restamp(&keys, to, len)?;
                    ids.push(id);
                    len = n;
                }
                Heard::Timeout => {
                    tries += 1;
                    timeout = (timeout * 2).min(self.timeout * 8);
                    if !same_on_retry && tries < self.tries {
                        let (id, n) = self.restamp(&keys, to, len)?;
                        ids.push(id);
                        len = n;
                    }
                }
            }
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
    /// PONGs: per iod, its answer or `None`.
    ///
    /// PINGs carry instance 0 (allowed for PING only), so that a restarted
    /// iod answers a PONG with its new instance rather than `Stale`.
    pub fn ping_many(&mut self, to: &[SocketAddr], timeout: Duration) -> Vec<Option<Pong>> {
        let keys = self.keys.get();
        let mut out: Vec<Option<Pong>> = vec![None; to.len()];
        // seq -> (index in `to`, sent at)
        let mut sent: HashMap<u64, (usize, Instant)> = HashMap::new();
        for (i, a) in to.iter().enumerate() {
            let id = self.next_id();
            let Ok(n) = Message::new(id, 0, Body::Ping).seal(&keys, &mut self.sbuf) else {
                continue;
            };
            let ok = match self.socket(*a).and_then(UdpSocket::try_clone) {
                Ok(s) => s.send_to(&self.sbuf[..n], a).is_ok(),
                Err(_) => false,
            };
            if ok {
                sent.insert(id.seq, (i, Instant::now()));
            }
        }
        let deadline = Instant::now() + timeout;
        let socks: Vec<UdpSocket> = [self.v4.as_ref(), self.v6.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|s| s.try_clone().ok())
            .collect();
        let mut answered = 0;
        for sock in &socks {
            // Both families share the deadline (one family in practice).
            while answered < sent.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
                    break;
                }
                let (m, src) = match sock.recv_from(&mut self.rbuf) {
                    Ok(x) => x,
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
                let Ok(msg) = wire::open(&keys, &self.rbuf[..m]) else {
                    self.rejected += 1;
                    continue;
                };
                if !msg.body.msg_type().is_answer() {
                    self.rejected += 1; // e.g. our PING reflected back
                    continue;
                }
                let Body::Pong(stats) = msg.body else {
                    continue;
                };
                if msg.id.epoch != self.epoch {
                    continue;
                }
                let Some(&(i, at)) = sent.get(&msg.id.seq) else {
                    continue;
                };
                if to[i] != src {
                    self.rejected += 1;
                    continue;
                }
                let (instance, seq) = (msg.instance, msg.id.seq);
                if out[i].is_none() {
                    answered += 1;
                }
                out[i] = Some(Pong {
                    rtt: at.elapsed(),
                    stats,
                    instance,
                });
                self.learn(src, instance, seq);
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
            extend_only: false,
            layout_epoch: 0,
            chain,
        });
        self.call(to, body, |b| ack(to, MsgType::Truncate, b).map(|_| ()))
    }

    /// One LIST page of `to` after `after`: entries and whether more
    /// follow. A page must move forward: its entries strictly after the
    /// cursor (proto checks their order within the page), and `more` only
    /// with entries.
    pub fn list_page(
        &mut self,
        to: SocketAddr,
        after: Option<FileKey>,
        max: u16,
    ) -> Result<(Vec<ListEntry>, bool), ClientError> {
        let body = Body::List(ListRequest { after, max });
        self.call(to, body, |b| match b {
            Body::ListReply(r) if r.status == Status::Ok => {
                let bad = |why| Err(ClientError::BadListing { addr: to, why });
                if r.entries.len() > usize::from(max) {
                    return bad("more entries than asked for");
                }
                if r.more && r.entries.is_empty() {
                    return bad("'more' with an empty page");
                }
                if let (Some(c), Some(first)) = (after, r.entries.first()) {
                    if c.list_cmp(&first.key) != std::cmp::Ordering::Less {
                        return bad("entries not after the cursor");
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use nfsp_proto::auth::Key;
    use nfsp_proto::wire::Ack;
    use std::sync::mpsc;

    fn keys(b: u8) -> Keys {
        Keys::new(Key::new(u32::from(b), [b; 32]).unwrap(), None).unwrap()
    }

    fn client(k: Keys) -> Client {
        Client::new(k, Duration::from_millis(200), 3).unwrap()
    }

    /// A fake iod on loopback: `answer` gets every request opened with
    /// `k` and the address it came from, and sends what it returns (raw
    /// datagrams, to the given addresses, from the given sockets).
    struct Fake {
        addr: SocketAddr,
        seen: mpsc::Receiver<(RequestId, u64, MsgType)>,
    }

    type Reply = Vec<(Option<UdpSocket>, Vec<u8>)>;

    fn fake(
        k: Keys,
        mut answer: impl FnMut(&Message<'_>, &UdpSocket) -> Reply + Send + 'static,
    ) -> Fake {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let Ok(m) = wire::open(&k, &buf[..n]) else {
                    continue;
                };
                if tx.send((m.id, m.instance, m.body.msg_type())).is_err() {
                    return;
                }
                for (s, d) in answer(&m, &sock) {
                    s.as_ref().unwrap_or(&sock).send_to(&d, from).unwrap();
                }
            }
        });
        Fake { addr, seen }
    }

    fn sealed(k: &Keys, m: Message<'_>) -> Vec<u8> {
        let mut b = vec![0u8; MAX_DATAGRAM];
        let n = m.seal(k, &mut b).unwrap();
        b.truncate(n);
        b
    }

    fn ack_msg(
        id: RequestId,
        instance: u64,
        op: MsgType,
        status: Status,
        value: u64,
    ) -> Message<'static> {
        Message::new(id, instance, Body::Ack(Ack { op, status, value }))
    }

    const KEY: FileKey = FileKey {
        export: 1,
        inode: 2,
        seed: 3,
    };

    #[test]
    fn answers_from_another_address_or_unsigned_are_ignored() {
        let k = keys(1);
        let f = fake(k, move |m, _| {
            let other = UdpSocket::bind("127.0.0.1:0").unwrap();
            let forged = sealed(&k, ack_msg(m.id, 5, MsgType::Unlink, Status::Ok, 666));
            let unsigned = {
                let mut b = vec![0u8; 256];
                let n = ack_msg(m.id, 5, MsgType::Unlink, Status::Ok, 777)
                    .encode(&mut b)
                    .unwrap();
                b.truncate(n);
                b
            };
            let wrong_key = sealed(&keys(2), ack_msg(m.id, 5, MsgType::Unlink, Status::Ok, 888));
            let good = sealed(&k, ack_msg(m.id, 5, MsgType::Unlink, Status::Ok, 1));
            vec![
                (Some(other), forged),
                (None, unsigned),
                (None, wrong_key),
                (None, good),
            ]
        });
        let mut c = client(k);
        assert_eq!(c.unlink(f.addr, &[KEY]).unwrap(), 1);
        assert_eq!(c.rejected(), 3);
        assert_eq!(c.instance(f.addr), Some(5));
    }

    /// An on-path attacker reflects the client's own sealed request back
    /// to it, forging the iod's address as source (the fake iod's socket
    /// is that address): authentic, right id, right source, but not an
    /// answer. It must be ignored, for every request kind, and the real
    /// answer that follows still counts.
    #[test]
    fn reflected_requests_are_ignored() {
        let k = keys(1);
        let f = fake(k, move |m, _| {
            let reflected = sealed(&k, Message::new(m.id, m.instance, m.body));
            let answer = match m.body {
                Body::Ping => Message::new(m.id, 6, Body::Pong(IodStats::default())),
                Body::List(_) => Message::new(
                    m.id,
                    6,
                    Body::ListReply(wire::ListReply {
                        status: Status::Ok,
                        more: false,
                        entries: List::Items(&[]),
                    }),
                ),
                Body::Read(r) => {
                    let data = vec![7u8; r.len as usize];
                    let reply = Message::new(
                        m.id,
                        6,
                        Body::ReadReply(wire::ReadReply {
                            status: Status::Ok,
                            data: &data,
                        }),
                    );
                    return vec![(None, reflected), (None, sealed(&k, reply))];
                }
                ref b => ack_msg(m.id, 6, b.msg_type(), Status::Ok, 3),
            };
            vec![(None, reflected), (None, sealed(&k, answer))]
        });
        let mut c = client(k);
        assert_eq!(c.unlink(f.addr, &[KEY]).unwrap(), 3);
        c.truncate(f.addr, KEY, 3).unwrap();
        c.write(f.addr, KEY, 0, b"abc").unwrap();
        let mut buf = [0u8; 5];
        c.read(f.addr, KEY, 0, &mut buf).unwrap();
        assert_eq!(buf, [7; 5]);
        assert_eq!(c.list_page(f.addr, None, 10).unwrap(), (Vec::new(), false));
        let p = c.ping_many(&[f.addr], Duration::from_millis(500));
        assert_eq!(p[0].map(|p| p.instance), Some(6));
        // one try each: the reflection did not count as the answer
        assert_eq!(f.seen.try_iter().count(), 6);
        assert_eq!(c.rejected(), 6, "every reflection dropped");
    }

    /// Reflections alone: a timeout, never `Unexpected`, nothing learned.
    #[test]
    fn reflections_alone_time_out() {
        let k = keys(1);
        let f = fake(k, move |m, _| {
            vec![(None, sealed(&k, Message::new(m.id, 9, m.body)))]
        });
        let mut c = Client::new(k, Duration::from_millis(30), 2).unwrap();
        let e = c.unlink(f.addr, &[KEY]).unwrap_err();
        assert!(matches!(e, ClientError::Timeout { tries: 2, .. }), "{e}");
        assert_eq!(
            c.instance(f.addr),
            None,
            "nothing learned from a reflection"
        );
    }

    #[test]
    fn only_forged_answers_time_out() {
        let k = keys(1);
        let f = fake(k, move |m, _| {
            let other = UdpSocket::bind("127.0.0.1:0").unwrap();
            vec![(
                Some(other),
                sealed(&k, ack_msg(m.id, 5, MsgType::Unlink, Status::Ok, 1)),
            )]
        });
        let mut c = Client::new(k, Duration::from_millis(30), 2).unwrap();
        let e = c.unlink(f.addr, &[KEY]).unwrap_err();
        assert!(matches!(e, ClientError::Timeout { tries: 2, .. }), "{e}");
        assert_eq!(c.instance(f.addr), None, "nothing learned from forgeries");
    }

    #[test]
    fn stale_is_resent_with_the_new_instance_and_a_new_id() {
        let k = keys(1);
        let f = fake(k, move |m, _| {
            let status = if m.instance == 42 {
                Status::Ok
            } else {
                Status::Stale
            };
            vec![(
                None,
                sealed(&k, ack_msg(m.id, 42, MsgType::Truncate, status, 9)),
            )]
        });
        let mut c = client(k);
        c.truncate(f.addr, KEY, 9).unwrap();
        let a: Vec<_> = f.seen.try_iter().collect();
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!((a[0].1, a[1].1), (0, 42));
        assert_eq!(a[0].0.epoch, a[1].0.epoch);
        assert!(a[1].0.seq > a[0].0.seq, "a new sequence number");
        assert_eq!(c.instance(f.addr), Some(42));
        // Known from now on: the next request goes with it at once.
        c.truncate(f.addr, KEY, 9).unwrap();
        assert_eq!(f.seen.try_iter().map(|x| x.1).collect::<Vec<_>>(), [42]);
    }

    #[test]
    fn endless_stale_fails() {
        let k = keys(1);
        let mut n = 0u64;
        let f = fake(k, move |m, _| {
            n += 1; // a new instance every time
            vec![(
                None,
                sealed(
                    &k,
                    ack_msg(m.id, 100 + n, MsgType::Unlink, Status::Stale, 0),
                ),
            )]
        });
        let mut c = client(k);
        let e = c.unlink(f.addr, &[KEY]).unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Stale {
                    rounds: MAX_STALE_ROUNDS,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(f.seen.try_iter().count(), 1 + MAX_STALE_ROUNDS as usize);
    }

    #[test]
    fn retries_same_datagram_for_writes_new_id_for_reads() {
        let k = keys(1);
        // Never answers.
        let f = fake(k, |_, _| Vec::new());
        let mut c = Client::new(k, Duration::from_millis(20), 3).unwrap();
        assert!(c.unlink(f.addr, &[KEY]).is_err());
        let ids: Vec<_> = f.seen.try_iter().map(|x| x.0).collect();
        assert_eq!(ids.len(), 3);
        assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
        assert!(c.list_page(f.addr, None, 10).is_err());
        let ids: Vec<_> = f.seen.try_iter().map(|x| x.0.seq).collect();
        assert_eq!(ids.len(), 3);
        assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
    }

    #[test]
    fn pong_tells_the_instance_and_unsigned_pongs_do_not_count() {
        let k = keys(1);
        let f = fake(k, move |m, _| {
            let pong = |inst| Message::new(m.id, inst, Body::Pong(IodStats::default()));
            let mut b = vec![0u8; 512];
            let n = pong(1).encode(&mut b).unwrap();
            b.truncate(n);
            vec![(None, b), (None, sealed(&k, pong(77)))]
        });
        let mut c = client(k);
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = c.ping_many(
            &[f.addr, silent.local_addr().unwrap()],
            Duration::from_millis(200),
        );
        assert_eq!(r[0].map(|p| p.instance), Some(77));
        assert!(r[1].is_none());
        assert_eq!(c.instance(f.addr), Some(77));
        // The PING went with instance 0.
        assert_eq!(f.seen.try_iter().map(|x| x.1).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn insecure_client_talks_to_insecure_iods_only() {
        let k = Keys::insecure();
        let f = fake(k, move |m, _| {
            vec![(
                None,
                sealed(&k, ack_msg(m.id, 3, MsgType::Unlink, Status::Ok, 2)),
            )]
        });
        let mut c = client(k);
        assert_eq!(c.unlink(f.addr, &[KEY]).unwrap(), 2);
        // A keyed client ignores the unsigned answers.
        let mut c = Client::new(keys(1), Duration::from_millis(20), 1).unwrap();
        assert!(c.unlink(f.addr, &[KEY]).is_err());
    }

    #[test]
    fn listing_must_move_forward() {
        let k = keys(1);
        let e = |i| wire::ListEntry {
            key: FileKey::new(1, i, 0),
            len: 1,
            mtime_s: 0,
        };
        let mut page: Vec<wire::ListEntry> = (1..4).map(e).collect();
        page.sort_by(|a, b| a.key.list_cmp(&b.key));
        let f = fake(k, move |m, _| {
            // Always the same page, always "more".
            let Body::List(l) = m.body else {
                return Vec::new();
            };
            let entries: &[wire::ListEntry] = if l.after.is_some() && l.max == 7 {
                &[]
            } else {
                &page
            };
            let r = wire::ListReply {
                status: Status::Ok,
                more: true,
                entries: List::Items(entries),
            };
            vec![(None, sealed(&k, Message::new(m.id, 1, Body::ListReply(r))))]
        });
        let mut c = client(k);
        let mut pages = 0;
        let err = c.list_all(f.addr, |_| pages += 1).unwrap_err();
        assert_eq!(pages, 1);
        assert!(
            matches!(
                err,
                ClientError::BadListing {
                    why: "entries not after the cursor",
                    ..
                }
            ),
            "{err}"
        );
        let err = c
            .list_page(f.addr, Some(FileKey::new(9, 9, 9)), 7)
            .unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::BadListing {
                    why: "'more' with an empty page",
                    ..
                }
            ),
            "{err}"
        );
        let err = c.list_page(f.addr, None, 2).unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::BadListing {
                    why: "more entries than asked for",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn shared_keys_follow_reloads() {
        let s = SharedKeys::new(keys(1));
        let c = Client::new(s.clone(), Duration::from_millis(1), 1).unwrap();
        s.set(keys(2));
        assert_eq!(c.keys().get(), keys(2));
    }
}
