// SPDX-License-Identifier: GPL-2.0

//! Orders a file's writes through the meta-server against the cuts of its
//! size.
//!
//! A WRITE sends its data to the iods without the inode lock (writes to
//! one file run in parallel), then takes the lock to extend the size. A
//! truncate that cut the file in between (it holds the lock across its
//! I/O) may have removed the data on the iods: extending the size then
//! would cover zeros, an outcome no serial order gives. Every cut bumps a
//! generation; a write whose generation changed before it took the lock
//! sends its data again and so comes after the cut. Generations are
//! hashed by file key: a collision costs a spurious resend, never a
//! missed cut.

use kernel::sync::atomic::{Acquire, Atomic, Relaxed, Release};

use crate::proto::filekey::FileKey;

/// Generation buckets (a power of two).
const BUCKETS: usize = 4096;

static GENERATIONS: [Atomic<u32>; BUCKETS] = [const { Atomic::new(0) }; BUCKETS];

/// Writes sent again because a cut came in between (`stats`:
/// writes_after_cuts).
static RESENT: Atomic<u64> = Atomic::new(0);

fn bucket(key: &FileKey) -> &'static Atomic<u32> {
    // In bounds: the index is taken modulo the length.
    &GENERATIONS[key.hash() as usize % BUCKETS]
}

/// The cut generation of `key` now: read it before sending a write (the
/// sends come after it).
pub(crate) fn generation(key: &FileKey) -> u32 {
    bucket(key).load(Acquire)
}

/// `key` was cut (or a cut was tried: it may have removed data even if
/// it failed). Called with the inode locked, after the cut's I/O.
pub(crate) fn cut(key: &FileKey) {
    bucket(key).fetch_add(1u32, Release);
}

/// Whether no cut of `key` came since `seen`; counts a resend otherwise.
pub(crate) fn unchanged(key: &FileKey, seen: u32) -> bool {
    if generation(key) == seen {
        return true;
    }
    RESENT.add(1u64, Relaxed);
    false
}

pub(crate) fn resent() -> u64 {
    RESENT.load(Relaxed)
}
