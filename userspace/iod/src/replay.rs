// SPDX-License-Identifier: GPL-2.0
//! Replay and duplicate suppression, per sender epoch.
//!
//! Every authenticated request carries `{epoch, seq}`. Per epoch the iod
//! keeps the highest seq seen and a [`WINDOW`]-bit bitmap below it: a seq
//! seen before is a duplicate, one older than the window is refused. For
//! mutations (WRITE, TRUNCATE, COMMIT, UNLINK) a reply cache remembers,
//! for every seq of the window ([`REPLY_CACHE`] = [`WINDOW`] compact
//! slots, allocated with an epoch's first mutation), what the iod did:
//! still in progress, the ACK it sent (and a keyed fingerprint of where),
//! or that it forwarded the request along its chain. A retransmission by
//! the origin is answered again, or re-forwarded (at most
//! [`MAX_REFORWARDS`] times in the entry's life: replays of a 60 KiB
//! WRITE must not make the iods send more than the replayer), without
//! applying the request twice.
//!
//! Only requests naming the current instance reach the table: one naming
//! another is judged [`Verdict::Stale`] before anything is looked up or
//! inserted, so captured messages of an old instance, or copies meant for
//! another iod, can neither fill the table nor mark an id seen. PING never
//! comes here (the server answers every authenticated PING: a PONG is no
//! larger than the PING and goes to its datagram source).
//!
//! The table holds at most [`MAX_EPOCHS`] epochs. It never evicts one:
//! forgetting an epoch would let a captured message of that epoch be
//! accepted again. When a new epoch finds the table full, the iod instead
//! takes a new random instance and clears the table. Every request but
//! PING must name the current instance, so a message captured before the
//! rotation, of any epoch, is answered `Stale` and never applied.
//!
//! Forwarded copies keep the origin's request id, so the window of a chain
//! member or a READ hop is keyed by the origin's epoch. A READ's route may
//! visit an iod twice (A, B, A: small blocks, narrow stripes): the second
//! visit has the same id. Each copy names its destination's instance and
//! each forward removes a hop, so a visit is identified by the id and the
//! number of hops still to go; an iod that finds itself later in a route
//! remembers that number, and accepts the same id again only with fewer
//! hops to go. Replays of either copy are refused.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::SocketAddr;

use nfsp_proto::wire::{Ack, MsgType, RequestId, Status};

/// Most sender epochs remembered before the instance rotates.
pub const MAX_EPOCHS: usize = 1024;
/// Sequence numbers remembered below the highest one of an epoch.
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;
/// Mutation outcomes remembered per epoch: one per seq of the window, so
/// any duplicate the window accepts finds its outcome.
pub const REPLY_CACHE: usize = WINDOW as usize;
/// READs expected back (routes that revisit this iod) remembered per epoch.
pub const READ_REVISITS: usize = 64;
/// Times a cached forwarded mutation is forwarded again, in its life.
pub const MAX_REFORWARDS: u8 = 2;

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

/// What to do with a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Nothing: not a mutation, nothing was sent, the ACK went to neither
    /// the duplicate's source nor its origin, or the outcome is unknown.
    Nothing,
    /// A mutation being applied by a worker now: drop.
    InProgress,
    /// Send this ACK again to `to`, where it first went (the duplicate's
    /// source or origin).
    Ack {
        /// The acknowledgement.
        ack: Ack,
        /// Where it went and goes again.
        to: SocketAddr,
    },
    /// Forward it again along its chain (the next member answers from its
    /// own cache): a lost forward or ACK.
    Forward,
    /// Forwarded again [`MAX_REFORWARDS`] times already: drop.
    ForwardSpent,
}

/// What kind of request an id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// WRITE, TRUNCATE, COMMIT, UNLINK: applied at most once, outcome
    /// cached. A cached ACK is repeated only to where it went: this
    /// datagram's `src` or the request's `origin`.
    Mutation {
        /// The datagram's source.
        src: SocketAddr,
        /// The request's origin (chain requests).
        origin: Option<SocketAddr>,
    },
    /// READ with `remaining` hops after this one; `revisit` = the route
    /// comes back to this iod later (through another iod).
    Read {
        /// Hops still to go in this copy.
        remaining: u8,
        /// This iod appears again further down the route.
        revisit: bool,
    },
    /// LIST: duplicates are dropped.
    Other,
}

/// The window's judgement of a request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Never seen: go ahead (now marked as seen).
    New,
    /// Names another instance than the table's (checked after a rotation
    /// the request caused): refuse `Stale`; nothing was looked up or
    /// remembered.
    Stale,
    /// Older than the window: refuse.
    TooOld,
    /// Seen before; what to repeat.
    Duplicate(Repeat),
}

/// What a reply-cache slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Empty,
    InProgress,
    Acked,
    Forwarded,
    Silent,
}

/// One mutation's outcome: 32 bytes (`to` is a keyed 64-bit fingerprint
/// of the address the ACK went to, compared with the candidates of a
/// duplicate, never sent to).
#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u64,
    value: u64,
    to: u64,
    tag: Tag,
    op: MsgType,
    status: Status,
    reforwards: u8,
}

const EMPTY: Slot = Slot {
    seq: 0,
    value: 0,
    to: 0,
    tag: Tag::Empty,
    op: MsgType::Ack,
    status: Status::Ok,
    reforwards: 0,
};

struct EpochWindow {
    top: u64,
    /// Bit `d` (word d / 64, bit d % 64) = seq `top - d` seen.
    bits: [u64; WORDS],
    /// Empty, or [`REPLY_CACHE`] slots: seq `s` in slot `s % WINDOW`
    /// (the seqs of the window have distinct slots).
    cache: Vec<Slot>,
    /// READs expected back: seq and the fewest hops to go seen so far.
    reads: VecDeque<(u64, u8)>,
}

impl EpochWindow {
    /// A window at `seq` with nothing marked yet.
    fn new_empty(seq: u64) -> Self {
        EpochWindow {
            top: seq,
            bits: [0; WORDS],
            cache: Vec::new(),
            reads: VecDeque::new(),
        }
    }

    /// Marks `seq`; returns its verdict (without what to repeat).
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
            return Verdict::Duplicate(Repeat::Nothing);
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

    /// The slot of `seq`, if it holds `seq`'s outcome.
    fn slot(&mut self, seq: u64) -> Option<&mut Slot> {
        self.cache
            .get_mut((seq % WINDOW) as usize)
            .filter(|s| s.seq == seq && s.tag != Tag::Empty)
    }

    /// A new mutation at `seq` (in the window), in progress. The slot's
    /// previous seq, `WINDOW` × k away, has left the window.
    fn start(&mut self, seq: u64) {
        if self.cache.is_empty() {
            self.cache = vec![EMPTY; REPLY_CACHE];
        }
        if let Some(s) = self.cache.get_mut((seq % WINDOW) as usize) {
            *s = Slot {
                seq,
                tag: Tag::InProgress,
                ..EMPTY
            };
        }
    }
}

/// A keyed fingerprint of `a` in canonical form (IPv4-mapped = IPv4).
fn fingerprint(keys: &RandomState, a: SocketAddr) -> u64 {
    keys.hash_one(SocketAddr::new(a.ip().to_canonical(), a.port()))
}

/// The replay table, and the iod instance it is valid for.
pub struct ReplayTable {
    epochs: HashMap<u64, EpochWindow>,
    max_epochs: usize,
    instance: u64,
    rotations: u64,
    /// Keys the address fingerprints (random per process).
    prints: RandomState,
}

impl ReplayTable {
    /// An empty table for `instance`, remembering at most `max_epochs`.
    pub fn new(instance: u64, max_epochs: usize) -> Self {
        ReplayTable {
            epochs: HashMap::new(),
            max_epochs: max_epochs.max(1),
            instance,
            rotations: 0,
            prints: RandomState::new(),
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

    /// Judges and marks `id` of a request naming instance `named`. A
    /// request naming another instance is [`Verdict::Stale`] and leaves no
    /// trace. A new mutation enters the cache as in progress; a READ that
    /// will come back is remembered (see the module docs). A new epoch that
    /// finds the table full rotates the instance (to `new_instance(old)`)
    /// and clears the table first: that request, naming the old instance,
    /// is then Stale too. Returns the verdict and the instance, read under
    /// the same lock.
    pub fn check(
        &mut self,
        id: RequestId,
        named: u64,
        kind: Kind,
        new_instance: impl FnOnce(u64) -> u64,
    ) -> (Verdict, u64) {
        if named != self.instance {
            return (Verdict::Stale, self.instance);
        }
        if !self.epochs.contains_key(&id.epoch) && self.epochs.len() >= self.max_epochs {
            self.rotate(new_instance(self.instance));
            return (Verdict::Stale, self.instance);
        }
        let prints = &self.prints;
        let print = |a: SocketAddr| fingerprint(prints, a);
        let w = self
            .epochs
            .entry(id.epoch)
            .or_insert_with(|| EpochWindow::new_empty(id.seq));
        let v = match (w.mark(id.seq), kind) {
            (Verdict::Duplicate(_), Kind::Mutation { src, origin }) => {
                Verdict::Duplicate(match w.slot(id.seq) {
                    None => Repeat::Nothing,
                    Some(s) => match s.tag {
                        Tag::Empty | Tag::Silent => Repeat::Nothing,
                        Tag::InProgress => Repeat::InProgress,
                        Tag::Acked => {
                            let ack = Ack {
                                op: s.op,
                                status: s.status,
                                value: s.value,
                            };
                            let to = std::iter::once(src)
                                .chain(origin)
                                .find(|a| print(*a) == s.to);
                            to.map_or(Repeat::Nothing, |to| Repeat::Ack { ack, to })
                        }
                        Tag::Forwarded if s.reforwards < MAX_REFORWARDS => {
                            s.reforwards += 1;
                            Repeat::Forward
                        }
                        Tag::Forwarded => Repeat::ForwardSpent,
                    },
                })
            }
            (Verdict::Duplicate(_), Kind::Read { remaining, .. }) => {
                match w.reads.iter_mut().find(|(s, _)| *s == id.seq) {
                    // A later visit of the same route.
                    Some(r) if remaining < r.1 => {
                        r.1 = remaining;
                        Verdict::New
                    }
                    _ => Verdict::Duplicate(Repeat::Nothing),
                }
            }
            (v, _) => v,
        };
        if v == Verdict::New {
            match kind {
                Kind::Mutation { .. } => w.start(id.seq),
                Kind::Read {
                    remaining,
                    revisit: true,
                } if !w.reads.iter().any(|(s, _)| *s == id.seq) => {
                    if w.reads.len() >= READ_REVISITS {
                        w.reads.pop_front();
                    }
                    w.reads.push_back((id.seq, remaining));
                }
                _ => {}
            }
        }
        (v, self.instance)
    }

    /// Records how a mutation finished (no-op if its slot was reused or
    /// the table was cleared meanwhile).
    pub fn finish(&mut self, id: RequestId, done: Done) {
        let to = match done {
            Done::Acked { to, .. } => fingerprint(&self.prints, to),
            _ => 0,
        };
        let Some(s) = self.epochs.get_mut(&id.epoch).and_then(|w| w.slot(id.seq)) else {
            return;
        };
        match done {
            Done::Acked { ack, .. } => {
                s.tag = Tag::Acked;
                s.op = ack.op;
                s.status = ack.status;
                s.value = ack.value;
                s.to = to;
            }
            Done::Forwarded => s.tag = Tag::Forwarded,
            Done::Silent => s.tag = Tag::Silent,
        }
    }

    /// Takes `instance` and forgets every epoch.
    pub fn rotate(&mut self, instance: u64) {
        self.epochs.clear();
        self.epochs.shrink_to_fit();
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

    /// The most memory the table can hold, in bytes: [`MAX_EPOCHS`]
    /// windows with full reply caches and READ lists, plus the map's
    /// buckets (at most twice the entries, one control byte each).
    pub fn worst_case_bytes(max_epochs: usize) -> usize {
        let entry = std::mem::size_of::<(u64, EpochWindow)>() + 1;
        let per = REPLY_CACHE * std::mem::size_of::<Slot>()
            + READ_REVISITS * std::mem::size_of::<(u64, u8)>();
        max_epochs * (per + 2 * entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INST: u64 = 7;

    fn id(epoch: u64, seq: u64) -> RequestId {
        RequestId { epoch, seq }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn mutation() -> Kind {
        Kind::Mutation {
            src: addr("127.0.0.1:9"),
            origin: None,
        }
    }

    fn chk(t: &mut ReplayTable, i: RequestId, m: bool) -> Verdict {
        let kind = if m { mutation() } else { Kind::Other };
        t.check(i, t.instance(), kind, |old| old + 1).0
    }

    const DUP: Verdict = Verdict::Duplicate(Repeat::Nothing);

    #[test]
    fn window_slides() {
        let mut t = ReplayTable::new(INST, 16);
        assert_eq!(chk(&mut t, id(1, 100), false), Verdict::New);
        assert_eq!(chk(&mut t, id(1, 100), false), DUP);
        // out of order inside the window
        assert_eq!(chk(&mut t, id(1, 50), false), Verdict::New);
        assert_eq!(chk(&mut t, id(1, 50), false), DUP);
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
                    DUP
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
    fn mutations_are_cached_for_the_whole_window() {
        let mut t = ReplayTable::new(INST, 16);
        let a = id(1, 1);
        assert_eq!(chk(&mut t, a, true), Verdict::New);
        assert_eq!(chk(&mut t, a, true), Verdict::Duplicate(Repeat::InProgress));
        let ack = Ack {
            op: MsgType::Write,
            status: Status::Ok,
            value: 4,
        };
        let to = addr("127.0.0.1:9");
        t.finish(a, Done::Acked { ack, to });
        assert_eq!(
            chk(&mut t, a, true),
            Verdict::Duplicate(Repeat::Ack { ack, to })
        );
        // never seen: ignored
        t.finish(id(1, 2), Done::Forwarded);
        // every seq of the window keeps its outcome
        for s in 2..WINDOW + 1 {
            assert_eq!(chk(&mut t, id(1, s), true), Verdict::New);
            let ack = Ack { value: s, ..ack };
            t.finish(id(1, s), Done::Acked { ack, to });
        }
        for s in 1..WINDOW + 1 {
            let ack = Ack {
                value: if s == 1 { 4 } else { s },
                ..ack
            };
            assert_eq!(
                chk(&mut t, id(1, s), true),
                Verdict::Duplicate(Repeat::Ack { ack, to }),
                "seq {s}"
            );
        }
        // one more: seq 1 leaves the window (and its slot is reused)
        assert_eq!(chk(&mut t, id(1, WINDOW + 1), true), Verdict::New);
        assert_eq!(chk(&mut t, a, true), Verdict::TooOld);
        assert_eq!(
            chk(&mut t, id(1, WINDOW + 1), true),
            Verdict::Duplicate(Repeat::InProgress)
        );
        assert_eq!(
            chk(&mut t, id(1, 2), true),
            Verdict::Duplicate(Repeat::Ack {
                ack: Ack { value: 2, ..ack },
                to
            })
        );
    }

    #[test]
    fn cached_ack_goes_only_where_it_went() {
        let mut t = ReplayTable::new(INST, 16);
        let (origin, head, other) = (
            addr("10.0.0.1:900"),
            addr("10.0.0.2:7000"),
            addr("10.0.0.3:900"),
        );
        let ack = Ack {
            op: MsgType::Truncate,
            status: Status::Ok,
            value: 0,
        };
        let k = |src, origin| Kind::Mutation { src, origin };
        let a = id(1, 1);
        assert_eq!(
            t.check(a, INST, k(head, Some(origin)), |o| o).0,
            Verdict::New
        );
        t.finish(a, Done::Acked { ack, to: origin });
        // from the previous member (a re-forward): to the origin
        assert_eq!(
            t.check(a, INST, k(head, Some(origin)), |o| o).0,
            Verdict::Duplicate(Repeat::Ack { ack, to: origin })
        );
        // from the origin itself (IPv4-mapped too)
        let mapped = addr("[::ffff:10.0.0.1]:900");
        assert_eq!(
            t.check(a, INST, k(mapped, None), |o| o).0,
            Verdict::Duplicate(Repeat::Ack { ack, to: mapped })
        );
        // from elsewhere, naming elsewhere: nothing
        assert_eq!(
            t.check(a, INST, k(other, Some(other)), |o| o).0,
            Verdict::Duplicate(Repeat::Nothing)
        );
    }

    #[test]
    fn reforwards_are_bounded() {
        let mut t = ReplayTable::new(INST, 16);
        let a = id(1, 1);
        assert_eq!(chk(&mut t, a, true), Verdict::New);
        t.finish(a, Done::Forwarded);
        for _ in 0..MAX_REFORWARDS {
            assert_eq!(chk(&mut t, a, true), Verdict::Duplicate(Repeat::Forward));
        }
        for _ in 0..50 {
            assert_eq!(
                chk(&mut t, a, true),
                Verdict::Duplicate(Repeat::ForwardSpent)
            );
        }
        // nothing sent: nothing to repeat
        let b = id(1, 2);
        assert_eq!(chk(&mut t, b, true), Verdict::New);
        t.finish(b, Done::Silent);
        assert_eq!(chk(&mut t, b, true), DUP);
    }

    #[test]
    fn other_instances_leave_no_trace() {
        let mut t = ReplayTable::new(INST, 2);
        // more epochs than the table holds, of other instances
        for e in 1..=5000 {
            let v = t.check(id(e, 1), INST + e, mutation(), |_| 99);
            assert_eq!(v, (Verdict::Stale, INST));
        }
        assert_eq!((t.len(), t.rotations()), (0, 0));
        // and the same ids are then new for the current instance
        assert_eq!(t.check(id(1, 1), INST, mutation(), |_| 99).0, Verdict::New);
        // after a restart: an old seq far below a newer one is still Stale,
        // not TooOld
        assert_eq!(
            t.check(id(9, 5000), 1, mutation(), |_| 99).0,
            Verdict::Stale
        );
        assert_eq!(t.check(id(9, 1), 1, mutation(), |_| 99).0, Verdict::Stale);
    }

    #[test]
    fn memory() {
        assert_eq!(std::mem::size_of::<Slot>(), 32);
        let worst = ReplayTable::worst_case_bytes(MAX_EPOCHS);
        eprintln!(
            "replay table: {} bytes per epoch window, {} B reply cache, at most {} KiB \
             ({MAX_EPOCHS} epochs)",
            std::mem::size_of::<EpochWindow>(),
            REPLY_CACHE * std::mem::size_of::<Slot>(),
            worst / 1024
        );
        assert!(worst <= 36 << 20, "{worst} bytes");
        // an epoch that never mutates costs no reply cache
        let mut t = ReplayTable::new(INST, 4);
        chk(&mut t, id(1, 1), false);
        assert!(t.epochs[&1].cache.is_empty());
        chk(&mut t, id(1, 2), true);
        assert_eq!(t.epochs[&1].cache.len(), REPLY_CACHE);
    }

    #[test]
    fn read_revisits() {
        let mut t = ReplayTable::new(INST, 16);
        let rd = |remaining, revisit| Kind::Read { remaining, revisit };
        let a = id(1, 5);
        // route A, B, A at A: 2 hops to go, A comes back
        assert_eq!(t.check(a, INST, rd(2, true), |o| o).0, Verdict::New);
        assert_eq!(t.check(a, INST, rd(2, true), |o| o).0, DUP);
        // the visit back, with no hop left
        assert_eq!(t.check(a, INST, rd(0, false), |o| o).0, Verdict::New);
        // replays of either copy
        assert_eq!(t.check(a, INST, rd(0, false), |o| o).0, DUP);
        assert_eq!(t.check(a, INST, rd(2, true), |o| o).0, DUP);
        // a READ not expected back gets no second visit
        let b = id(1, 6);
        assert_eq!(t.check(b, INST, rd(3, false), |o| o).0, Verdict::New);
        assert_eq!(t.check(b, INST, rd(1, false), |o| o).0, DUP);
    }

    #[test]
    fn full_table_rotates_instance() {
        let mut t = ReplayTable::new(INST, 4);
        for e in 1..=4 {
            assert_eq!(
                t.check(id(e, 1), INST, mutation(), |_| 99),
                (Verdict::New, INST)
            );
        }
        // a known epoch does not rotate
        assert_eq!(
            t.check(id(4, 2), INST, mutation(), |_| 99),
            (Verdict::New, INST)
        );
        // a fifth epoch does: new instance, everything forgotten, and the
        // request (naming the old instance) is Stale
        assert_eq!(
            t.check(id(5, 1), INST, Kind::Other, |_| 99),
            (Verdict::Stale, 99)
        );
        assert_eq!((t.len(), t.rotations()), (0, 1));
        // epoch 1's seq 1 is "new" again, but only naming instance 99
        assert_eq!(
            t.check(id(1, 1), INST, mutation(), |_| 100),
            (Verdict::Stale, 99)
        );
        assert_eq!(
            t.check(id(1, 1), 99, mutation(), |_| 100),
            (Verdict::New, 99)
        );
    }
}
