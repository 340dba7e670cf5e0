// SPDX-License-Identifier: GPL-2.0
//! A test "meta-server" written only with `nfsp_proto` and std (plus
//! `nfsp_keys` for a random epoch, nix for the receive buffer): striping
//! map + wire messages, signed
//! with a test key, several requests in flight, retransmission, and the
//! iods' instances learnt from their answers (a PONG, a `Stale` ACK).
//!
//! Retransmission follows the protocol: a mutation is sent again as the
//! same bytes (the iod answers a duplicate from its reply cache), a READ,
//! LIST or PING with a new request id; a request answered `Stale` is
//! re-issued with a new id and the instances just learnt.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nfsp_proto::auth::{Key, Keys};
use nfsp_proto::wire::{
    self, Ack, Body, Chain, ChainMember, Hop, IodStats, List, Message, MsgType, ReplySpec,
    RequestId, Status, MAX_DATA_PER_MSG,
};
use nfsp_proto::{FileKey, StripeLayout};

/// Id of the test cluster key.
pub const TEST_KEY_ID: u32 = 0x7e57_0001;

/// A key with a fixed id and every byte `byte`.
pub fn test_key(id: u32, byte: u8) -> Key {
    Key::new(id, [byte; 32]).expect("test key")
}

/// The test cluster's keys (sign only).
pub fn test_keys() -> Keys {
    Keys::new(test_key(TEST_KEY_ID, 0x5a), None).expect("test keys")
}

/// Deterministic xorshift64* generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// Room for every answer of a window of 60 KiB READs (the default 208 KiB
/// drops them and costs a retransmission timeout each).
fn enlarge_receive_buffer(sock: &UdpSocket) {
    use nix::sys::socket::{setsockopt, sockopt};
    let n: usize = 8 << 20;
    if setsockopt(sock, sockopt::RcvBufForce, &n).is_err() {
        let _ = setsockopt(sock, sockopt::RcvBuf, &n);
    }
}

/// One request to send: id, destination and sealed datagram.
#[derive(Clone, Debug)]
pub struct Req {
    pub id: RequestId,
    pub dest: SocketAddr,
    pub bytes: Vec<u8>,
    /// WRITE, TRUNCATE, COMMIT, UNLINK: retransmitted as the same bytes.
    pub mutation: bool,
}

pub struct Meta {
    pub sock: UdpSocket,
    pub addr: SocketAddr,
    /// viod id -> members (first = head of the replica chain).
    pub viods: Vec<Vec<SocketAddr>>,
    pub layout: StripeLayout,
    pub key: FileKey,
    pub keys: Keys,
    pub epoch: u64,
    next_seq: AtomicU64,
    instances: Mutex<HashMap<SocketAddr, u64>>,
    /// Requests in flight at once.
    pub window: usize,
    pub retransmits: AtomicU64,
    /// `Stale` answers received (each cost a re-issue).
    pub stales: AtomicU64,
}

impl Meta {
    pub fn new(
        bind: SocketAddr,
        viods: Vec<Vec<SocketAddr>>,
        layout: StripeLayout,
        key: FileKey,
    ) -> Meta {
        let sock = UdpSocket::bind(bind).expect("bind meta socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        enlarge_receive_buffer(&sock);
        let addr = sock.local_addr().expect("addr");
        Meta {
            sock,
            addr,
            viods,
            layout,
            key,
            keys: test_keys(),
            epoch: nfsp_keys::random_nonzero_u64().expect("random epoch"),
            next_seq: AtomicU64::new(1),
            instances: Mutex::new(HashMap::new()),
            window: 8,
            retransmits: AtomicU64::new(0),
            stales: AtomicU64::new(0),
        }
    }

    /// A meta-server with no file layout, to send single requests.
    pub fn simple() -> Meta {
        Meta::new(
            "127.0.0.1:0".parse().unwrap(),
            Vec::new(),
            StripeLayout::new(65536, 1, 0).unwrap(),
            FileKey::new(1, 2, 3),
        )
    }

    pub fn next_id(&self) -> RequestId {
        RequestId {
            epoch: self.epoch,
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Leave `n` sequence numbers unused (to push old ones out of a window).
    pub fn skip_seqs(&self, n: u64) {
        self.next_seq.fetch_add(n, Ordering::Relaxed);
    }

    /// The instance we know for an iod (0 = unknown).
    pub fn instance_of(&self, a: &SocketAddr) -> u64 {
        *self.instances.lock().unwrap().get(a).unwrap_or(&0)
    }

    pub fn learn(&self, a: SocketAddr, instance: u64) {
        if instance != 0 {
            self.instances.lock().unwrap().insert(a, instance);
        }
    }

    pub fn forget_instances(&self) {
        self.instances.lock().unwrap().clear();
    }

    /// Seal a message to `dest` with a fresh id, our current knowledge of
    /// every iod's instance (header, hops, chain members) and `keys`.
    pub fn encode_with(&self, keys: &Keys, dest: SocketAddr, body: Body<'_>) -> Req {
        let mutation = matches!(
            body.msg_type(),
            MsgType::Write | MsgType::Commit | MsgType::Truncate | MsgType::Unlink
        );
        let id = self.next_id();
        let mut tmp = vec![0u8; wire::MAX_DATAGRAM];
        let n = Message::new(id, 0, body).encode(&mut tmp).expect("encode");
        let mut b = vec![0u8; wire::MAX_DATAGRAM];
        let inst = |a: &SocketAddr| self.instance_of(a);
        let n = wire::restamp(keys, &tmp[..n], id, &dest, &inst, &mut b).expect("restamp");
        b.truncate(n);
        Req {
            id,
            dest,
            bytes: b,
            mutation,
        }
    }

    pub fn encode(&self, dest: SocketAddr, body: Body<'_>) -> Req {
        self.encode_with(&self.keys, dest, body)
    }

    /// The same request with a new id and the instances known now.
    pub fn reissue(&self, r: &Req) -> Req {
        let id = self.next_id();
        let mut b = vec![0u8; wire::MAX_DATAGRAM];
        let inst = |a: &SocketAddr| self.instance_of(a);
        let n = wire::restamp(&self.keys, &r.bytes, id, &r.dest, &inst, &mut b).expect("restamp");
        b.truncate(n);
        Req {
            id,
            dest: r.dest,
            bytes: b,
            mutation: r.mutation,
        }
    }

    /// Verify and decode an answer.
    pub fn open<'a>(&self, b: &'a [u8]) -> Option<Message<'a>> {
        wire::open(&self.keys, b).ok()
    }

    /// Wait up to `t` for one datagram.
    pub fn recv_within(&self, t: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let deadline = Instant::now() + t;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).expect("timeout");
            let r = self.sock.recv_from(&mut buf);
            self.sock
                .set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
            if let Ok((n, from)) = r {
                return Some((buf[..n].to_vec(), from));
            }
        }
    }

    /// Send raw bytes.
    pub fn send_raw(&self, bytes: &[u8], to: SocketAddr) {
        self.sock.send_to(bytes, to).expect("send");
    }

    /// Send all requests with at most `window` in flight; returns the
    /// replies in request order. Retransmits after 300 ms; panics after 30 s.
    pub fn transact(&self, reqs: &[Req]) -> Vec<Vec<u8>> {
        let mut cur: Vec<Req> = reqs.to_vec();
        let mut replies: Vec<Option<Vec<u8>>> = vec![None; reqs.len()];
        let mut index: HashMap<RequestId, usize> =
            reqs.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        // index -> (last send, same-bytes retransmissions)
        let mut sent_at: HashMap<usize, (Instant, u32)> = HashMap::new();
        let mut next = 0usize;
        let mut done = 0usize;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = vec![0u8; 65536];
        while done < reqs.len() {
            assert!(
                Instant::now() < deadline,
                "transact timed out ({done}/{} done)",
                reqs.len()
            );
            while sent_at.len() < self.window && next < reqs.len() {
                self.send_raw(&cur[next].bytes, cur[next].dest);
                sent_at.insert(next, (Instant::now(), 0));
                next += 1;
            }
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let Some(m) = self.open(&buf[..n]) else {
                        continue;
                    };
                    self.learn(from, m.instance);
                    let Some(&i) = index.get(&m.id) else { continue };
                    if replies[i].is_some() || !sent_at.contains_key(&i) {
                        continue;
                    }
                    if let Body::Ack(Ack {
                        status: Status::Stale,
                        ..
                    }) = m.body
                    {
                        self.stales.fetch_add(1, Ordering::Relaxed);
                        if m.id == cur[i].id {
                            cur[i] = self.reissue(&cur[i]);
                            index.insert(cur[i].id, i);
                            self.send_raw(&cur[i].bytes, cur[i].dest);
                            sent_at.insert(i, (Instant::now(), 0));
                        }
                        continue;
                    }
                    replies[i] = Some(buf[..n].to_vec());
                    sent_at.remove(&i);
                    done += 1;
                }
                Err(_) => {
                    let now = Instant::now();
                    let late: Vec<usize> = sent_at
                        .iter()
                        .filter(|(_, (t, _))| now.duration_since(*t) > Duration::from_millis(300))
                        .map(|(i, _)| *i)
                        .collect();
                    for i in late {
                        self.retransmits.fetch_add(1, Ordering::Relaxed);
                        let tries = sent_at[&i].1;
                        // Same bytes for a mutation (applied at most once);
                        // a new id otherwise, or once the old one may have
                        // left the iods' window.
                        if cur[i].mutation && tries < 3 {
                            sent_at.insert(i, (now, tries + 1));
                        } else {
                            cur[i] = self.reissue(&cur[i]);
                            index.insert(cur[i].id, i);
                            sent_at.insert(i, (now, 0));
                        }
                        self.send_raw(&cur[i].bytes, cur[i].dest);
                    }
                }
            }
        }
        replies.into_iter().map(|r| r.expect("reply")).collect()
    }

    /// One request, its answer.
    pub fn call(&self, dest: SocketAddr, body: Body<'_>) -> Vec<u8> {
        self.transact(&[self.encode(dest, body)]).remove(0)
    }

    fn chain_of(&self, viod: u32) -> (SocketAddr, Vec<ChainMember>) {
        let m = &self.viods[viod as usize];
        let rest = m[1..]
            .iter()
            .map(|a| ChainMember {
                addr: *a,
                instance: 0,
            })
            .collect();
        (m[0], rest)
    }

    pub fn expect_acks(&self, replies: &[Vec<u8>], op: MsgType) -> Vec<Ack> {
        replies
            .iter()
            .map(|r| match self.open(r).expect("open").body {
                Body::Ack(a) => {
                    assert_eq!(a.op, op);
                    a
                }
                other => panic!("expected ack, got {other:?}"),
            })
            .collect()
    }

    /// The WRITE requests of `data` at file `offset` (per block and message).
    pub fn write_requests(&self, offset: u64, data: &[u8]) -> Vec<Req> {
        let mut reqs = Vec::new();
        for p in self
            .layout
            .pieces(offset, data.len() as u64)
            .expect("pieces")
        {
            let (head, rest) = self.chain_of(p.viod);
            let mut done = 0u64;
            while done < p.len {
                let n = (p.len - done).min(MAX_DATA_PER_MSG as u64);
                let s = (p.file_offset - offset + done) as usize;
                let chain = Chain {
                    origin: self.addr,
                    members: List::Items(&rest),
                };
                let body = Body::Write(wire::Write {
                    key: self.key,
                    local_offset: p.local_offset + done,
                    chain,
                    data: &data[s..s + n as usize],
                });
                reqs.push(self.encode(head, body));
                done += n;
            }
        }
        reqs
    }

    /// Write `data` at file `offset` (split per block and per message).
    pub fn write(&self, offset: u64, data: &[u8]) {
        let reqs = self.write_requests(offset, data);
        for (a, r) in self
            .expect_acks(&self.transact(&reqs), MsgType::Write)
            .iter()
            .zip(&reqs)
        {
            assert_eq!(a.status, Status::Ok, "write ack for {:?}", r.id);
        }
    }

    /// Hops (addr, local offset, len) of a range, members chosen round-robin.
    fn hops(&self, offset: u64, len: u64, rr: &mut usize) -> Vec<Hop> {
        let mut v = Vec::new();
        for p in self.layout.pieces(offset, len).expect("pieces") {
            let m = &self.viods[p.viod as usize];
            let addr = m[*rr % m.len()];
            *rr += 1;
            let mut done = 0u64;
            while done < p.len {
                let n = (p.len - done).min(MAX_DATA_PER_MSG as u64);
                v.push(Hop {
                    addr,
                    local_offset: p.local_offset + done,
                    len: n as u32,
                    instance: 0,
                });
                done += n;
            }
        }
        v
    }

    /// Group hops into READ requests of <= MAX_DATA_PER_MSG bytes and <= 17 hops.
    pub fn read_groups(&self, offset: u64, len: u64) -> Vec<Vec<Hop>> {
        let mut rr = (offset / 4096) as usize;
        let mut groups: Vec<Vec<Hop>> = Vec::new();
        let mut cur: Vec<Hop> = Vec::new();
        let mut total = 0usize;
        for h in self.hops(offset, len, &mut rr) {
            if !cur.is_empty()
                && (total + h.len as usize > MAX_DATA_PER_MSG || cur.len() > wire::MAX_HOPS)
            {
                groups.push(std::mem::take(&mut cur));
                total = 0;
            }
            total += h.len as usize;
            cur.push(h);
        }
        if !cur.is_empty() {
            groups.push(cur);
        }
        groups
    }

    pub fn read_request(&self, group: &[Hop], reply: ReplySpec<'_>) -> Req {
        let body = Body::Read(wire::Read {
            key: self.key,
            local_offset: group[0].local_offset,
            len: group[0].len,
            routes: List::Items(&group[1..]),
            reply,
            gathered: &[],
        });
        self.encode(group[0].addr, body)
    }

    /// Relay-mode read of `[offset, offset+len)`.
    pub fn read(&self, offset: u64, len: u64) -> Vec<u8> {
        let groups = self.read_groups(offset, len);
        let reqs: Vec<Req> = groups
            .iter()
            .map(|g| self.read_request(g, ReplySpec::Relay { origin: self.addr }))
            .collect();
        let mut out = Vec::with_capacity(len as usize);
        for (r, g) in self.transact(&reqs).iter().zip(&groups) {
            match self.open(r).expect("open").body {
                Body::ReadReply(rr) => {
                    assert_eq!(rr.status, Status::Ok);
                    let want: usize = g.iter().map(|h| h.len as usize).sum();
                    assert_eq!(rr.data.len(), want);
                    out.extend_from_slice(rr.data);
                }
                other => panic!("expected read reply, got {other:?}"),
            }
        }
        out
    }

    /// COMMIT on every viod.
    pub fn commit(&self) -> Vec<Ack> {
        let reqs: Vec<Req> = (0..self.viods.len() as u32)
            .map(|v| {
                let (head, rest) = self.chain_of(v);
                let chain = Chain {
                    origin: self.addr,
                    members: List::Items(&rest),
                };
                self.encode(
                    head,
                    Body::Commit(wire::Commit {
                        key: self.key,
                        chain,
                    }),
                )
            })
            .collect();
        self.expect_acks(&self.transact(&reqs), MsgType::Commit)
    }

    /// TRUNCATE every viod to its local length for real size `size`,
    /// fencing data-server filehandles older than `layout_epoch`.
    pub fn truncate(&self, size: u64, layout_epoch: u32) -> Vec<Ack> {
        let reqs: Vec<Req> = (0..self.viods.len() as u32)
            .map(|v| {
                let (head, rest) = self.chain_of(v);
                let chain = Chain {
                    origin: self.addr,
                    members: List::Items(&rest),
                };
                let new_len = self.layout.local_len(v, size).expect("local len");
                self.encode(
                    head,
                    Body::Truncate(wire::Truncate {
                        key: self.key,
                        new_len,
                        extend_only: false,
                        layout_epoch,
                        chain,
                    }),
                )
            })
            .collect();
        self.expect_acks(&self.transact(&reqs), MsgType::Truncate)
    }

    /// UNLINK the key on every member of every viod; acks in member order.
    pub fn unlink(&self) -> Vec<Ack> {
        let keys = [self.key];
        let reqs: Vec<Req> = self
            .viods
            .iter()
            .flatten()
            .map(|a| {
                self.encode(
                    *a,
                    Body::Unlink(wire::Unlink {
                        keys: List::Items(&keys),
                    }),
                )
            })
            .collect();
        self.expect_acks(&self.transact(&reqs), MsgType::Unlink)
    }

    /// PING one iod: its counters and the instance its PONG carries.
    pub fn ping_instance(&self, iod: SocketAddr) -> (IodStats, u64) {
        let r = self.call(iod, Body::Ping);
        let m = self.open(&r).expect("open");
        match m.body {
            Body::Pong(s) => (s, m.instance),
            other => panic!("expected pong, got {other:?}"),
        }
    }

    /// PING one iod.
    pub fn ping(&self, iod: SocketAddr) -> IodStats {
        self.ping_instance(iod).0
    }
}
