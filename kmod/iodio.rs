// SPDX-License-Identifier: GPL-2.0

//! Talking to the iods for one nfsd request.
//!
//! Each request gets its own UDP socket. Its messages go out a few at a
//! time (a window: the stripes travel in parallel without flooding a slow
//! link, which would drop whole datagrams), answers are matched by request
//! id and open the window further, and whatever is unanswered after the
//! table's timeout is sent again with the wait doubled (a busy link is not
//! made busier). An iod that stays silent for a bounded number of rounds
//! makes the request fail with `EAGAIN`, which nfsd turns into
//! NFS3ERR_JUKEBOX: the client retries later, no nfsd thread hangs.

use core::net::SocketAddr;

use kernel::{
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
    time::{Instant, Monotonic},
};

use crate::ffi::{DirectReply, UdpSocket};
use crate::proto::{
    filekey::FileKey,
    stripe::StripeLayout,
    wire::{self, Body, Chain, Hop, List, Message, MsgType, ReplySpec, Status},
};
use crate::viod::{Iod, Table, Viod};

/// Rounds without any answer before a request fails.
const TRIES: u32 = 3;

/// Messages of one request in flight at once (60 KiB each at most).
const WINDOW: usize = 4;

/// The longest wait for an answer, as a multiple of the table's timeout.
const MAX_BACKOFF: u32 = 8;

/// Receive buffer of a request's socket: room for the answers to a 1 MiB
/// READ (17 datagrams of 60 KiB) with the kernel's per-packet overhead.
const RECEIVE_BUFFER: i32 = 4 << 20;

static NEXT_REQUEST_ID: Atomic<u64> = Atomic::new(1);

fn next_request_id() -> u64 {
    NEXT_REQUEST_ID.fetch_add(1u64, Relaxed)
}

/// An error status from an iod, as an errno.
fn status_error(s: Status) -> Error {
    match s {
        Status::Ok => EIO,
        Status::NoSpace => ENOSPC,
        Status::TooBig => EFBIG,
        Status::Busy => EAGAIN,
        _ => EIO,
    }
}

/// One message of a request, kept for retransmission.
struct Outgoing {
    id: u64,
    iod: Arc<Iod>,
    datagram: KVVec<u8>,
    done: bool,
    /// Where a READ's data goes in the caller's buffer.
    dest: usize,
    /// Data bytes the message moves (for the iod's counters).
    bytes: usize,
    sent: bool,
    sent_at: Instant<Monotonic>,
}

/// The messages of one nfsd request and the socket they travel on.
struct Exchange {
    socket: UdpSocket,
    port: u16,
    out: KVec<Outgoing>,
    timeout_ms: u32,
}

impl Exchange {
    fn new(table: &Table, like: &SocketAddr) -> Result<Self> {
        let anchor = table.anchor.as_ref().ok_or(EAGAIN)?;
        let socket = UdpSocket::new(&anchor.net, like)?;
        socket.set_recv_buffer(RECEIVE_BUFFER);
        let port = socket.local_port(like)?;
        Ok(Exchange {
            socket,
            port,
            out: KVec::new(),
            timeout_ms: table.timeout_ms,
        })
    }

    /// Where `iod` must send its answer.
    fn origin(&self, iod: &Iod) -> SocketAddr {
        SocketAddr::new(iod.origin_ip, self.port)
    }

    /// Queues a message built by `build` (given its request id) for `iod`;
    /// it moves `bytes` of data, `carried` of them in the message itself.
    fn add(
        &mut self,
        iod: &Arc<Iod>,
        dest: usize,
        bytes: usize,
        carried: usize,
        build: impl FnOnce(u64, &mut [u8]) -> Result<usize>,
    ) -> Result {
        let id = next_request_id();
        // Room for the data and the largest header (routes, reply header).
        let room = (carried + 4096).min(wire::MAX_DATAGRAM);
        let mut datagram = KVVec::from_elem(0u8, room, GFP_KERNEL)?;
        let len = build(id, &mut datagram)?;
        datagram.truncate(len);
        self.out.push(
            Outgoing {
                id,
                iod: iod.clone(),
                datagram,
                done: false,
                dest,
                bytes,
                sent: false,
                sent_at: Instant::now(),
            },
            GFP_KERNEL,
        )?;
        Ok(())
    }

    fn send(&mut self, i: usize) {
        if let Some(o) = self.out.get_mut(i) {
            o.sent = true;
            o.sent_at = Instant::now();
            if self.socket.send_to(&o.datagram, &o.iod.addr).is_err() {
                o.iod.errors.add(1u64, Relaxed);
            }
        }
    }

    /// Sends everything, a window at a time, and waits for every answer;
    /// `on_answer` checks one (given the message's destination offset).
    fn run(&mut self, mut on_answer: impl FnMut(usize, &Body<'_>) -> Result) -> Result {
        let total = self.out.len();
        let mut next = 0;
        let mut in_flight = 0;
        let mut answered = 0;
        let mut silent_rounds = 0;
        let mut wait_ms = self.timeout_ms;
        let mut buf = KVVec::from_elem(0u8, wire::MAX_DATAGRAM, GFP_KERNEL)?;
        while answered < total {
            while next < total && in_flight < WINDOW {
                self.send(next);
                next += 1;
                in_flight += 1;
            }
            self.socket.set_recv_timeout_ms(wait_ms);
            let n = match self.socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e == EAGAIN => {
                    silent_rounds += 1;
                    if silent_rounds >= TRIES {
                        for o in self.out.iter().filter(|o| o.sent && !o.done) {
                            o.iod.timeouts.add(1u64, Relaxed);
                        }
                        return Err(EAGAIN);
                    }
                    wait_ms = wait_ms.saturating_mul(2).min(self.timeout_ms.saturating_mul(MAX_BACKOFF));
                    for i in 0..next {
                        if self.out.get(i).is_some_and(|o| !o.done) {
                            self.send(i);
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(datagram) = buf.get(..n) else {
                continue;
            };
            // Anything undecodable or unexpected (a late answer to an
            // earlier try, garbage) is ignored: the message stays pending.
            let Ok(msg) = Message::decode(datagram) else {
                continue;
            };
            let Some(o) = self
                .out
                .iter_mut()
                .find(|o| o.id == msg.request_id && o.sent && !o.done)
            else {
                continue;
            };
            o.done = true;
            answered += 1;
            in_flight -= 1;
            // Progress: the link is moving, start the waits afresh.
            silent_rounds = 0;
            wait_ms = self.timeout_ms;
            match on_answer(o.dest, &msg.body) {
                Ok(()) => {
                    let us = o.sent_at.elapsed().as_micros_ceil();
                    o.iod.record(o.bytes, Some(u64::try_from(us).unwrap_or(0)));
                }
                Err(e) => {
                    o.iod.errors.add(1u64, Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Checks an ACK for operation `op`.
fn ack(op: MsgType, body: &Body<'_>) -> Result {
    match body {
        Body::Ack(a) if a.op == op && a.status == Status::Ok => Ok(()),
        Body::Ack(a) if a.op == op => Err(status_error(a.status)),
        _ => Err(EIO),
    }
}

/// The members of `viod` a write goes to: the first one, which gets the
/// message, and the rest of the chain, in order.
fn replica_chain(viod: &Viod) -> Result<(&Arc<Iod>, KVec<SocketAddr>)> {
    let mut writers = viod.writers();
    // No member takes writes: the client retries until one does.
    let head = writers.next().ok_or(EAGAIN)?;
    let mut chain = KVec::new();
    for m in writers {
        chain.push(m.addr, GFP_KERNEL)?;
    }
    Ok((head, chain))
}

/// A file's data on the iods.
pub(crate) struct FileIo<'a> {
    pub(crate) table: &'a Table,
    pub(crate) key: FileKey,
    pub(crate) layout: StripeLayout,
}

impl FileIo<'_> {
    fn viod(&self, id: u32) -> Result<&Viod> {
        // A file striped over a viod that is gone cannot be served now;
        // the client retries (the admin may add it back).
        self.table.viod(id).ok_or(EAGAIN)
    }

    fn any_iod(&self) -> Result<SocketAddr> {
        self.table
            .viods
            .first()
            .and_then(|v| v.members.first())
            .map(|m| m.addr)
            .ok_or(EAGAIN)
    }

    /// Reads `buf.len()` bytes at `pos` through the module (relay).
    pub(crate) fn read(&self, pos: u64, buf: &mut [u8]) -> Result {
        let mut ex = Exchange::new(self.table, &self.any_iod()?)?;
        let mut dest = 0usize;
        for piece in self.layout.pieces(pos, buf.len() as u64).map_err(|_| EINVAL)? {
            let viod = self.viod(piece.viod)?;
            let mut done = 0u64;
            while done < piece.len {
                let len = (piece.len - done).min(wire::MAX_DATA_PER_MSG as u64);
                let iod = viod.reader().ok_or(EAGAIN)?;
                let origin = ex.origin(iod);
                let body = Body::Read(wire::Read {
                    key: self.key,
                    local_offset: piece.local_offset + done,
                    len: len as u32,
                    routes: List::Items(&[]),
                    reply: ReplySpec::Relay { origin },
                    gathered: &[],
                });
                ex.add(iod, dest, len as usize, 0, |id, b| {
                    Message::new(id, body).encode(b).map_err(|_| EINVAL)
                })?;
                dest += len as usize;
                done += len;
            }
        }
        ex.run(|at, body| match body {
            Body::ReadReply(r) if r.status == Status::Ok => {
                let dst = buf.get_mut(at..at + r.data.len()).ok_or(EIO)?;
                dst.copy_from_slice(r.data);
                Ok(())
            }
            Body::ReadReply(r) => Err(status_error(r.status)),
            _ => Err(EIO),
        })
    }

    /// Has the iods answer a UDP READ of `count` bytes at `pos` themselves:
    /// the first iod reads its part and forwards along the routing list,
    /// the last one sends nfsd's reply header and the data to the client.
    pub(crate) fn read_direct(&self, pos: u64, count: usize, reply: &DirectReply<'_>) -> Result {
        if count > wire::MAX_DATA_PER_MSG {
            return Err(EINVAL);
        }
        let mut first: Option<(Arc<Iod>, u64, u32)> = None;
        let mut hops: KVec<Hop> = KVec::new();
        for piece in self.layout.pieces(pos, count as u64).map_err(|_| EINVAL)? {
            let iod = self.viod(piece.viod)?.reader().ok_or(EAGAIN)?;
            if first.is_none() {
                first = Some((iod.clone(), piece.local_offset, piece.len as u32));
            } else {
                hops.push(
                    Hop {
                        addr: iod.addr,
                        local_offset: piece.local_offset,
                        len: piece.len as u32,
                    },
                    GFP_KERNEL,
                )?;
            }
        }
        // A read at or past the end: no data, only the header.
        let (iod, local_offset, len) = match first {
            Some(f) => f,
            None => {
                let viod = self.viod(self.layout.first_viod)?;
                (viod.reader().ok_or(EAGAIN)?.clone(), 0, 0)
            }
        };
        let ex = Exchange::new(self.table, &iod.addr)?;
        let body = Body::Read(wire::Read {
            key: self.key,
            local_offset,
            len,
            routes: List::Items(&hops),
            reply: ReplySpec::Direct {
                client: reply.client,
                source: reply.server,
                header: reply.header,
                pad: true,
            },
            gathered: &[],
        });
        let mut datagram = KVVec::from_elem(0u8, wire::MAX_DATAGRAM, GFP_KERNEL)?;
        let n = Message::new(next_request_id(), body)
            .encode(&mut datagram)
            .map_err(|_| EINVAL)?;
        let datagram = datagram.get(..n).ok_or(EINVAL)?;
        // Fire and forget: a lost reply is retransmitted by the client.
        ex.socket.send_to(datagram, &iod.addr)?;
        iod.record(count, None);
        Ok(())
    }

    /// Writes `data` at `pos` on every member of the viods concerned (a
    /// replica chain per viod), returning once all have acknowledged.
    pub(crate) fn write(&self, pos: u64, data: &[u8]) -> Result {
        let mut ex = Exchange::new(self.table, &self.any_iod()?)?;
        let mut at = 0usize;
        for piece in self.layout.pieces(pos, data.len() as u64).map_err(|_| EINVAL)? {
            let (head, chain) = replica_chain(self.viod(piece.viod)?)?;
            let origin = ex.origin(head);
            let mut done = 0u64;
            while done < piece.len {
                let len = (piece.len - done).min(wire::MAX_DATA_PER_MSG as u64) as usize;
                let chunk = data.get(at..at + len).ok_or(EINVAL)?;
                let body = Body::Write(wire::Write {
                    key: self.key,
                    local_offset: piece.local_offset + done,
                    chain: Chain {
                        origin,
                        members: List::Items(&chain),
                    },
                    data: chunk,
                });
                ex.add(head, at, len, len, |id, b| {
                    Message::new(id, body).encode(b).map_err(|_| EINVAL)
                })?;
                at += len;
                done += len as u64;
            }
        }
        ex.run(|_, body| ack(MsgType::Write, body))
    }

    /// Sends `build`'s message (given a replica chain) to every viod of the
    /// file and waits for every chain's acknowledgement.
    fn broadcast(
        &self,
        op: MsgType,
        build: impl Fn(u32, Chain<'_>) -> Result<Body<'_>>,
    ) -> Result {
        let mut ex = Exchange::new(self.table, &self.any_iod()?)?;
        for v in 0..self.layout.width {
            let (head, chain) = replica_chain(self.viod(v)?)?;
            let origin = ex.origin(head);
            let body = build(
                v,
                Chain {
                    origin,
                    members: List::Items(&chain),
                },
            )?;
            ex.add(head, 0, 0, 0, |id, b| {
                Message::new(id, body).encode(b).map_err(|_| EINVAL)
            })?;
        }
        ex.run(|_, body| ack(op, body))
    }

    /// Makes the file's data durable on every iod holding it.
    pub(crate) fn commit(&self) -> Result {
        self.broadcast(MsgType::Commit, |_, chain| {
            Ok(Body::Commit(wire::Commit {
                key: self.key,
                chain,
            }))
        })
    }

    /// Cuts (or extends with zeros) the file's data to the real size `size`.
    pub(crate) fn truncate(&self, size: u64) -> Result {
        self.broadcast(MsgType::Truncate, |v, chain| {
            let new_len = self.layout.local_len(v, size).map_err(|_| EINVAL)?;
            Ok(Body::Truncate(wire::Truncate {
                key: self.key,
                new_len,
                chain,
            }))
        })
    }
}
