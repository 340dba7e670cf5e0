// SPDX-License-Identifier: GPL-2.0

//! Serializes a file's overlapping writes through the meta-server (byte
//! ranges that share a byte): the second is sent only once every member
//! applied the first, so the members of a replicated viod apply them in
//! one order and stay equal. Without it each member's worker pool, and
//! the network, may reorder two writes in flight together, and reads
//! would alternate between the outcomes. Writes that do not overlap run
//! in parallel; their ranges are kept per shard of file keys.

use kernel::{
    new_condvar, new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        CondVar, Mutex,
    },
};

use crate::proto::filekey::FileKey;

/// Shards of file keys (each with its own lock).
const SHARDS: usize = 16;

/// Writes that waited for an overlapping one (`stats`:
/// overlapping_writes_waited).
static WAITED: Atomic<u64> = Atomic::new(0);

pub(crate) fn waited() -> u64 {
    WAITED.load(Relaxed)
}

/// The bytes `[start, end)` of `key` being written.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Span {
    key: FileKey,
    start: u64,
    end: u64,
}

impl Span {
    fn overlaps(&self, other: &Span) -> bool {
        self.key == other.key && self.start < other.end && other.start < self.end
    }
}

#[pin_data]
struct Shard {
    #[pin]
    busy: Mutex<KVec<Span>>,
    #[pin]
    freed: CondVar,
}

/// The writes in flight.
#[pin_data]
pub(crate) struct Overlaps {
    #[pin]
    shards: [Shard; SHARDS],
}

impl Overlaps {
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            shards <- pin_init::pin_init_array_from_fn(|_| {
                try_pin_init!(Shard {
                    busy <- new_mutex!(KVec::new()),
                    freed <- new_condvar!(),
                }? Error)
            }),
        }? Error)
    }

    /// Waits until no write in flight overlaps `[start, end)` of `key`,
    /// then holds that range until the result is dropped.
    pub(crate) fn hold(&self, key: FileKey, start: u64, end: u64) -> Result<Held<'_>> {
        let span = Span { key, start, end };
        // In bounds: the index is taken modulo the length.
        let shard = &self.shards[key.hash() as usize % SHARDS];
        let mut busy = shard.busy.lock();
        if busy.iter().any(|s| s.overlaps(&span)) {
            WAITED.add(1u64, Relaxed);
            while busy.iter().any(|s| s.overlaps(&span)) {
                shard.freed.wait(&mut busy);
            }
        }
        busy.push(span, GFP_KERNEL)?;
        Ok(Held { shard, span })
    }
}

/// A range held by [`Overlaps::hold`].
pub(crate) struct Held<'a> {
    shard: &'a Shard,
    span: Span,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut busy = self.shard.busy.lock();
        if let Some(at) = busy.iter().position(|s| *s == self.span) {
            // Found just above: cannot fail.
            let _ = busy.remove(at);
        }
        drop(busy);
        self.shard.freed.notify_all();
    }
}
