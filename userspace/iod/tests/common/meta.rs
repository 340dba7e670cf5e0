// SPDX-License-Identifier: GPL-2.0
//! A test "meta-server" written only with `nfsp_proto` and std: striping
//! map + wire messages, several requests in flight, retransmission.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nfsp_proto::wire::{
    self, Ack, Body, Chain, Hop, IodStats, List, Message, MsgType, ReplySpec, Status,
    MAX_DATA_PER_MSG,
};
use nfsp_proto::{FileKey, StripeLayout};

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

/// One request to send: destination and encoded message.
pub struct Req {
    pub id: u64,
    pub dest: SocketAddr,
    pub bytes: Vec<u8>,
}

pub struct Meta {
    pub sock: UdpSocket,
    pub addr: SocketAddr,
    /// viod id -> members (first = head of the replica chain).
    pub viods: Vec<Vec<SocketAddr>>,
    pub layout: StripeLayout,
    pub key: FileKey,
    next_id: AtomicU64,
    /// Requests in flight at once.
    pub window: usize,
    pub retransmits: AtomicU64,
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
        let addr = sock.local_addr().expect("addr");
        Meta {
            sock,
            addr,
            viods,
            layout,
            key,
            next_id: AtomicU64::new(1),
            window: 8,
            retransmits: AtomicU64::new(0),
        }
    }

    pub fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn encode(&self, id: u64, dest: SocketAddr, body: Body<'_>) -> Req {
        let mut b = vec![0u8; wire::MAX_DATAGRAM];
        let n = Message::new(id, body).encode(&mut b).expect("encode");
        b.truncate(n);
        Req { id, dest, bytes: b }
    }

    /// Send all requests with at most `window` in flight; returns the
    /// replies in request order. Retransmits after 300 ms; panics after 30 s.
    pub fn transact(&self, reqs: &[Req]) -> Vec<Vec<u8>> {
        let mut replies: Vec<Option<Vec<u8>>> = vec![None; reqs.len()];
        let index: HashMap<u64, usize> = reqs.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        let mut sent_at: HashMap<usize, Instant> = HashMap::new();
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
                self.sock
                    .send_to(&reqs[next].bytes, reqs[next].dest)
                    .expect("send");
                sent_at.insert(next, Instant::now());
                next += 1;
            }
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    let Ok(m) = Message::decode(&buf[..n]) else {
                        continue;
                    };
                    if let Some(&i) = index.get(&m.request_id) {
                        if replies[i].is_none() && sent_at.remove(&i).is_some() {
                            replies[i] = Some(buf[..n].to_vec());
                            done += 1;
                        }
                    }
                }
                Err(_) => {
                    let now = Instant::now();
                    for (i, t) in sent_at.iter_mut() {
                        if now.duration_since(*t) > Duration::from_millis(300) {
                            self.retransmits.fetch_add(1, Ordering::Relaxed);
                            self.sock
                                .send_to(&reqs[*i].bytes, reqs[*i].dest)
                                .expect("resend");
                            *t = now;
                        }
                    }
                }
            }
        }
        replies.into_iter().map(|r| r.expect("reply")).collect()
    }

    fn chain_of(&self, viod: u32) -> (SocketAddr, &[SocketAddr]) {
        let m = &self.viods[viod as usize];
        (m[0], &m[1..])
    }

    fn expect_acks(&self, replies: &[Vec<u8>], op: MsgType) -> Vec<Ack> {
        replies
            .iter()
            .map(|r| match Message::decode(r).expect("decode").body {
                Body::Ack(a) => {
                    assert_eq!(a.op, op);
                    a
                }
                other => panic!("expected ack, got {other:?}"),
            })
            .collect()
    }

    /// Write `data` at file `offset` (split per block and per message).
    pub fn write(&self, offset: u64, data: &[u8]) {
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
                    members: List::Items(rest),
                };
                let body = Body::Write(wire::Write {
                    key: self.key,
                    local_offset: p.local_offset + done,
                    chain,
                    data: &data[s..s + n as usize],
                });
                reqs.push(self.encode(self.id(), head, body));
                done += n;
            }
        }
        for (a, r) in self
            .expect_acks(&self.transact(&reqs), MsgType::Write)
            .iter()
            .zip(&reqs)
        {
            assert_eq!(a.status, Status::Ok, "write ack for {}", r.id);
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

    pub fn read_request(&self, id: u64, group: &[Hop], reply: ReplySpec<'_>) -> Req {
        let body = Body::Read(wire::Read {
            key: self.key,
            local_offset: group[0].local_offset,
            len: group[0].len,
            routes: List::Items(&group[1..]),
            reply,
            gathered: &[],
        });
        self.encode(id, group[0].addr, body)
    }

    /// Relay-mode read of `[offset, offset+len)`.
    pub fn read(&self, offset: u64, len: u64) -> Vec<u8> {
        let groups = self.read_groups(offset, len);
        let reqs: Vec<Req> = groups
            .iter()
            .map(|g| self.read_request(self.id(), g, ReplySpec::Relay { origin: self.addr }))
            .collect();
        let mut out = Vec::with_capacity(len as usize);
        for (r, g) in self.transact(&reqs).iter().zip(&groups) {
            match Message::decode(r).expect("decode").body {
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
                    members: List::Items(rest),
                };
                self.encode(
                    self.id(),
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

    /// TRUNCATE every viod to its local length for real size `size`.
    pub fn truncate(&self, size: u64) -> Vec<Ack> {
        let reqs: Vec<Req> = (0..self.viods.len() as u32)
            .map(|v| {
                let (head, rest) = self.chain_of(v);
                let chain = Chain {
                    origin: self.addr,
                    members: List::Items(rest),
                };
                let new_len = self.layout.local_len(v, size).expect("local len");
                self.encode(
                    self.id(),
                    head,
                    Body::Truncate(wire::Truncate {
                        key: self.key,
                        new_len,
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
                    self.id(),
                    *a,
                    Body::Unlink(wire::Unlink {
                        keys: List::Items(&keys),
                    }),
                )
            })
            .collect();
        self.expect_acks(&self.transact(&reqs), MsgType::Unlink)
    }

    /// PING one iod.
    pub fn ping(&self, iod: SocketAddr) -> IodStats {
        let r = self.transact(&[self.encode(self.id(), iod, Body::Ping)]);
        match Message::decode(&r[0]).expect("decode").body {
            Body::Pong(s) => s,
            other => panic!("expected pong, got {other:?}"),
        }
    }
}
