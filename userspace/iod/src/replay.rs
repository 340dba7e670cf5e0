// SPDX-License-Identifier: GPL-2.0
//! Replay and duplicate suppression, per sender epoch.
//!
//! Every authenticated request carries `{epoch, seq}`. Per epoch the iod
//! keeps the highest seq seen and a [`WINDOW`]-bit bitmap below it: a seq
//! seen before is a duplicate, one older than the window is refused. For
//! mutations (WRITE, TRUNCATE, COMMIT, UNLINK) a small per-epoch cache
//! remembers what the iod did (still in progress, the ACK it sent, or that
//! it forwarded the request along its chain), so that a retransmission by
//! the origin is answered again, or re-forwarded, without applying the
//! request twice.
//!
//! The table holds at most [`MAX_EPOCHS`] epochs. It never evicts one:
//! forgetting an epoch would let a captured message of that epoch be
//! accepted again. When a new epoch finds the table full, the iod instead
//! takes a new random instance and clears the table. Every request but
//! PING must name the current instance, so a message captured before the
//! rotation, of any epoch, is answered `Stale` and never applied. (A PING
//! names no instance: a replayed PING of a forgotten epoch gets a PONG,
//! which is no larger than the PING and goes to its datagram source.)
//!
//! Forwarded copies keep the origin's request id, so the window of a chain
//! member or a READ hop is keyed by the origin's epoch. A READ's route may
//! visit an iod twice (A, B, A: small blocks, narrow stripes): the second
//! visit has the same id. Each copy names its destination's instance and
//! each forward removes a hop, so a visit is identified by the id and the
//! number of hops still to go; an iod that finds itself later in a route
//! remembers that number, and accepts the same id again only with fewer
//! hops to go. Replays of either copy are refused.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use nfsp_proto::wire::{Ack, RequestId};

/// Most sender epochs remembered before the instance rotates.
pub const MAX_EPOCHS: usize = 4096;
/// Sequence numbers remembered below the highest one of an epoch.
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;
/// Mutations remembered per epoch (their outcome, for retransmissions).
pub const REPLY_CACHE: usize = 64;

/// What the iod did with a mutation it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// It sent this ACK to `to`.
    Acked {
        /// The acknowledgement.
        ack: Ack,
        /// Where it went.
        to: SocketAddr,
    },
    /// It applied the request and forwarded it to the next chain member.
    Forwarded,
    /// It sent nothing (nothing to repeat).
    Silent,
}

/// A mutation's state in the reply cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Being applied by a worker now.
    InProgress,
    /// Finished.
    Done(Done),
}

/// What kind of request an id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// WRITE, TRUNCATE, COMMIT, UNLINK: applied at most once, outcome cached.
    Mutation,
    /// READ with `remaining` hops after this one; `revisit` = the route
    /// comes back to this iod later (through another iod).
    Read {
        /// Hops still to go in this copy.
        remaining: u8,
        /// This iod appears again further down the route.
        revisit: bool,
    },
    /// PING, LIST: duplicates are dropped.
    Other,
}

/// The window's judgement of a request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Never seen: go ahead (now marked as seen).
    New,
    /// Older than the window: refuse.
    TooOld,
    /// Seen before; for a mutation, its cached state if still cached.
    Duplicate(Option<State>),
}

struct EpochWindow {
    top: u64,
    /// Bit `d` (word d / 64, bit d % 64) = seq `top - d` seen.
    bits: [u64; WORDS],
    cache: VecDeque<(u64, State)>,
    /// READs expected back: seq and the fewest hops to go seen so far.
    reads: VecDeque<(u64, u8)>,
}

impl EpochWindow {
    /// A window at `seq` with nothing marked yet.
    fn new_empty(seq: u64) -> Self {
        EpochWindow {
            top: seq,
            bits: [0; WORDS],
            cache: VecDeque::new(),
            reads: VecDeque::new(),
        }
    }

    /// Marks `seq`; returns its verdict (without the cache state).
    fn mark(&mut self, seq: u64) -> Verdict {
        if seq > self.top {
            self.shift(seq - self.top);
            self.top = seq;
            self.bits[0] |= 1;
            return Verdict::New;
        }
        let d = self.top - seq;
        if d >= WINDOW {
            return Verdict::TooOld;
        }
        let (w, b) = ((d / 64) as usize, d % 64);
        if self.bits[w] & (1 << b) != 0 {
            return Verdict::Duplicate(None);
        }
        self.bits[w] |= 1 << b;
        Verdict::New
    }

    /// Moves the window up by `n` (older seqs fall out of the bitmap).
    fn shift(&mut self, n: u64) {
        if n >= WINDOW {
            self.bits = [0; WORDS];
            return;
        }
        let (words, bits) = ((n / 64) as usize, (n % 64) as u32);
        for i in (0..WORDS).rev() {
            let src = i.checked_sub(words);
            let hi = src.map_or(0, |s| self.bits[s]);
            let lo = src
                .and_then(|s| s.checked_sub(1))
                .map_or(0, |s| self.bits[s]);
            self.bits[i] = if bits == 0 {
                hi
            } else {
                (hi << bits) | (lo >> (64 - bits))
            };
        }
    }

    fn cached(&self, seq: u64) -> Option<State> {
        self.cache
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, st)| *st)
    }
}

/// The replay table, and the iod instance it is valid for.
pub struct ReplayTable {
    epochs: HashMap<u64, EpochWindow>,
    max_epochs: usize,
    instance: u64,
    rotations: u64,
}

impl ReplayTable {
    /// An empty table for `instance`, remembering at most `max_epochs`.
    pub fn new(instance: u64, max_epochs: usize) -> Self {
        ReplayTable {
            epochs: HashMap::new(),
            max_epochs: max_epochs.max(1),
            instance,
            rotations: 0,
        }
    }

    /// The instance requests must name.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// How many times the instance rotated.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    /// Judges and marks `id`. A new mutation enters the cache as in
    /// progress; a READ that will come back is remembered (see the module
    /// docs). A new epoch that finds the table full rotates the instance
    /// (to `new_instance(old)`) and clears the table first. Returns the
    /// verdict and the instance the request must name, read under the same
    /// lock: a request judged after a rotation is checked against the new
    /// instance.
    pub fn check(
        &mut self,
        id: RequestId,
        kind: Kind,
        new_instance: impl FnOnce(u64) -> u64,
    ) -> (Verdict, u64) {
        if !self.epochs.contains_key(&id.epoch) && self.epochs.len() >= self.max_epochs {
            self.rotate(new_instance(self.instance));
        }
        let w = self
            .epochs
            .entry(id.epoch)
            .or_insert_with(|| EpochWindow::new_empty(id.seq));
        let v = match (w.mark(id.seq), kind) {
            (Verdict::Duplicate(_), Kind::Mutation) => Verdict::Duplicate(w.cached(id.seq)),
            (Verdict::Duplicate(_), Kind::Read { remaining, .. }) => {
                match w.reads.iter_mut().find(|(s, _)| *s == id.seq) {
                    // A later visit of the same route.
                    Some(r) if remaining < r.1 => {
                        r.1 = remaining;
                        Verdict::New
                    }
                    _ => Verdict::Duplicate(None),
                }
            }
            (v, _) => v,
        };
        if v == Verdict::New {
            match kind {
                Kind::Mutation => {
                    if w.cache.len() >= REPLY_CACHE {
                        w.cache.pop_front();
                    }
                    w.cache.push_back((id.seq, State::InProgress));
                }
                Kind::Read {
                    remaining,
                    revisit: true,
                } if !w.reads.iter().any(|(s, _)| *s == id.seq) => {
                    if w.reads.len() >= REPLY_CACHE {
                        w.reads.pop_front();
                    }
                    w.reads.push_back((id.seq, remaining));
                }
                _ => {}
            }
        }
        (v, self.instance)
    }

    /// Records how a mutation finished (no-op if it left the cache or the
    /// table was cleared meanwhile).
    pub fn finish(&mut self, id: RequestId, done: Done) {
        if let Some(w) = self.epochs.get_mut(&id.epoch) {
            if let Some(e) = w.cache.iter_mut().find(|(s, _)| *s == id.seq) {
                e.1 = State::Done(done);
            }
        }
    }

    /// Takes `instance` and forgets every epoch.
    pub fn rotate(&mut self, instance: u64) {
        self.epochs.clear();
        self.instance = instance;
        self.rotations += 1;
    }

    /// Epochs remembered.
    pub fn len(&self) -> usize {
        self.epochs.len()
    }

    /// True when no epoch is remembered.
    pub fn is_empty(&self) -> bool {
        self.epochs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfsp_proto::wire::{MsgType, Status};

    fn id(epoch: u64, seq: u64) -> RequestId {
        RequestId { epoch, seq }
    }

    fn chk(t: &mut ReplayTable, i: RequestId, m: bool) -> Verdict {
        let kind = if m { Kind::Mutation } else { Kind::Other };
        t.check(i, kind, |old| old + 1).0
    }

    #[test]
    fn window_slides() {
        let mut t = ReplayTable::new(7, 16);
        assert_eq!(chk(&mut t, id(1, 100), false), Verdict::New);
        assert_eq!(chk(&mut t, id(1, 100), false), Verdict::Duplicate(None));
        // out of order inside the window
        assert_eq!(chk(&mut t, id(1, 50), false), Verdict::New);
        assert_eq!(chk(&mut t, id(1, 50), false), Verdict::Duplicate(None));
        assert_eq!(chk(&mut t, id(1, 101), false), Verdict::New);
        // every shift amount keeps the marks in place
        let mut seen = vec![100u64, 50, 101];
        let mut top = 101;
        for step in [1u64, 5, 63, 64, 65, 127, 200, 333, 900, 1023, 1024, 5000] {
            top += step;
            assert_eq!(chk(&mut t, id(1, top), false), Verdict::New);
            seen.push(top);
            for &s in &seen {
                let want = if top - s >= WINDOW {
                    Verdict::TooOld
                } else {
                    Verdict::Duplicate(None)
                };
                assert_eq!(chk(&mut t, id(1, s), false), want, "seq {s} top {top}");
            }
            // a never-seen seq just inside the window is new, once
            let s = top.saturating_sub(WINDOW - 1);
            if !seen.contains(&s) {
                assert_eq!(chk(&mut t, id(1, s), false), Verdict::New);
                seen.push(s);
            }
        }
        assert_eq!(chk(&mut t, id(1, top - WINDOW), false), Verdict::TooOld);
        // a jump past the window forgets everything below
        assert_eq!(chk(&mut t, id(1, top + 10 * WINDOW), false), Verdict::New);
        assert_eq!(chk(&mut t, id(1, top), false), Verdict::TooOld);
        // epochs are independent
        assert_eq!(chk(&mut t, id(2, 100), false), Verdict::New);
    }

    #[test]
    fn mutations_are_cached() {
        let mut t = ReplayTable::new(7, 16);
        let a = id(1, 1);
        assert_eq!(chk(&mut t, a, true), Verdict::New);
        assert_eq!(
            chk(&mut t, a, true),
            Verdict::Duplicate(Some(State::InProgress))
        );
        let ack = Ack {
            op: MsgType::Write,
            status: Status::Ok,
            value: 4,
        };
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        t.finish(a, Done::Acked { ack, to });
        assert_eq!(
            chk(&mut t, a, true),
            Verdict::Duplicate(Some(State::Done(Done::Acked { ack, to })))
        );
        t.finish(id(1, 2), Done::Forwarded); // never seen: ignored
                                             // the cache is bounded: the oldest entries leave
        for s in 2..2 + REPLY_CACHE as u64 {
            assert_eq!(chk(&mut t, id(1, s), true), Verdict::New);
        }
        assert_eq!(chk(&mut t, a, true), Verdict::Duplicate(None));
        assert_eq!(
            chk(&mut t, id(1, 2), true),
            Verdict::Duplicate(Some(State::InProgress))
        );
    }

    #[test]
    fn memory_per_epoch() {
        // The bound the README states: bitmap + two full caches.
        let per = std::mem::size_of::<EpochWindow>()
            + REPLY_CACHE * std::mem::size_of::<(u64, State)>()
            + REPLY_CACHE * std::mem::size_of::<(u64, u8)>();
        assert!(per <= 6 * 1024, "{per} bytes per epoch");
        eprintln!(
            "replay table: {per} bytes per epoch, {} KiB at most",
            per * MAX_EPOCHS / 1024
        );
    }

    #[test]
    fn read_revisits() {
        let mut t = ReplayTable::new(7, 16);
        let rd = |remaining, revisit| Kind::Read { remaining, revisit };
        let a = id(1, 5);
        // route A, B, A at A: 2 hops to go, A comes back
        assert_eq!(t.check(a, rd(2, true), |o| o).0, Verdict::New);
        assert_eq!(t.check(a, rd(2, true), |o| o).0, Verdict::Duplicate(None));
        // the visit back, with no hop left
        assert_eq!(t.check(a, rd(0, false), |o| o).0, Verdict::New);
        // replays of either copy
        assert_eq!(t.check(a, rd(0, false), |o| o).0, Verdict::Duplicate(None));
        assert_eq!(t.check(a, rd(2, true), |o| o).0, Verdict::Duplicate(None));
        // a READ not expected back gets no second visit
        let b = id(1, 6);
        assert_eq!(t.check(b, rd(3, false), |o| o).0, Verdict::New);
        assert_eq!(t.check(b, rd(1, false), |o| o).0, Verdict::Duplicate(None));
    }

    #[test]
    fn full_table_rotates_instance() {
        let mut t = ReplayTable::new(7, 4);
        for e in 1..=4 {
            assert_eq!(t.check(id(e, 1), Kind::Mutation, |_| 99), (Verdict::New, 7));
        }
        // a known epoch does not rotate
        assert_eq!(t.check(id(4, 2), Kind::Mutation, |_| 99), (Verdict::New, 7));
        // a fifth epoch does: new instance, everything forgotten
        assert_eq!(t.check(id(5, 1), Kind::Other, |_| 99), (Verdict::New, 99));
        assert_eq!((t.len(), t.rotations()), (1, 1));
        // epoch 1's seq 1 is "new" again, but requests name instance 7
        assert_eq!(
            t.check(id(1, 1), Kind::Mutation, |_| 100),
            (Verdict::New, 99)
        );
    }
}
