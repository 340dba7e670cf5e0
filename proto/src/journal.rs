// SPDX-License-Identifier: GPL-2.0
//! The journal of `unlinkd`: deletions made durable before the kernel's
//! records are acknowledged, read back by `unlinkd status` and
//! `iodctl fsck --journal`.
//!
//! A journal is a file of fixed [`ENTRY_LEN`] = 64-byte entries, appended
//! and `fsync`ed, never rewritten in place:
//!
//! * **pending**: an [`UnlinkRecord`] exactly as read from
//!   `/dev/nfsp_unlink` (magic `NFUL`, its own CRC32C);
//! * **done** (magic `NFUD`): version u16 (= 1), flags u16 (0), the
//!   record's sequence u64, export u64, inode u64, seed u64, 20 zero
//!   bytes, CRC32C u32 of bytes 0..60 — every member of every viod of the
//!   file acknowledged the UNLINK.
//!
//! Replay: a key is pending when the journal holds a pending entry for it
//! and no done entry after that. Keys, not sequence numbers, identify
//! deletions (the kernel's sequence restarts with the module, and a record
//! redelivered after a crash between `fsync` and the acknowledgement is the
//! same key). A crash can leave a partial last entry: [`Entries`] stops
//! before it ([`Entries::tail`] tells how long it is) and the writer
//! truncates it away before appending. Compaction rewrites the pending
//! entries only, into a new file renamed over the old one.

use super::codec::{Reader, Writer};
use super::crc32c::crc32c;
use super::error::{ProtoError, Result};
use super::filekey::FileKey;
use super::unlink::{UnlinkRecord, RECORD_LEN};

/// Length of every journal entry.
pub const ENTRY_LEN: usize = RECORD_LEN;
/// Magic of a done entry.
pub const DONE_MAGIC: u32 = u32::from_le_bytes(*b"NFUD");
/// Version of done entries.
pub const VERSION: u16 = 1;

/// One journal entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entry {
    /// A deletion to carry out.
    Pending(UnlinkRecord),
    /// A deletion carried out on every member.
    Done {
        /// Sequence number of the record (informational).
        seq: u64,
        /// The deleted file's key.
        key: FileKey,
    },
}

impl Entry {
    /// The file key of the entry.
    pub fn key(&self) -> FileKey {
        match self {
            Entry::Pending(r) => r.key,
            Entry::Done { key, .. } => *key,
        }
    }

    /// Encode into `buf` (>= 64 bytes).
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        match self {
            Entry::Pending(r) => r.encode(buf),
            Entry::Done { seq, key } => {
                let out = buf.get_mut(..ENTRY_LEN).ok_or(ProtoError::BufferTooSmall)?;
                let mut w = Writer::new(out);
                w.u32_le(DONE_MAGIC)?;
                w.u16_le(VERSION)?;
                w.u16_le(0)?;
                w.u64_le(*seq)?;
                w.put(&key.to_bytes())?;
                w.zeros(20)?;
                let crc = crc32c(w.written());
                w.u32_le(crc)?;
                Ok(ENTRY_LEN)
            }
        }
    }

    /// Decode exactly one entry (`buf.len() == ENTRY_LEN`).
    pub fn decode(buf: &[u8]) -> Result<Self> {
        if buf.len() < ENTRY_LEN {
            return Err(ProtoError::Truncated);
        }
        if buf.len() > ENTRY_LEN {
            return Err(ProtoError::TrailingBytes);
        }
        let mut r = Reader::new(buf);
        let magic = r.u32_le()?;
        if magic == super::unlink::RECORD_MAGIC {
            return UnlinkRecord::decode(buf).map(Entry::Pending);
        }
        if magic != DONE_MAGIC {
            return Err(ProtoError::BadMagic);
        }
        if r.u16_le()? != VERSION {
            return Err(ProtoError::BadVersion);
        }
        let body = buf.get(..ENTRY_LEN - 4).ok_or(ProtoError::Truncated)?;
        let mut tail = Reader::new(buf.get(ENTRY_LEN - 4..).ok_or(ProtoError::Truncated)?);
        if crc32c(body) != tail.u32_le()? {
            return Err(ProtoError::BadChecksum);
        }
        if r.u16_le()? != 0 {
            return Err(ProtoError::InvalidField("flags"));
        }
        let seq = r.u64_le()?;
        let key = FileKey::from_bytes(r.bytes(24)?)?;
        if r.array::<20>()? != [0; 20] {
            return Err(ProtoError::InvalidField("reserved"));
        }
        Ok(Entry::Done { seq, key })
    }
}

/// The entries of a journal image, in order: `(offset, entry or error)`.
/// Stops before a partial last entry.
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Entries<'a> {
    /// Iterate the entries of `buf` (a whole journal file).
    pub fn new(buf: &'a [u8]) -> Self {
        Entries { buf, pos: 0 }
    }

    /// Length of the complete entries (where the next append goes).
    pub fn complete_len(&self) -> usize {
        self.buf.len() - self.tail()
    }

    /// Length of the partial entry at the end (0..ENTRY_LEN).
    pub fn tail(&self) -> usize {
        self.buf.len() % ENTRY_LEN
    }
}

impl Iterator for Entries<'_> {
    type Item = (usize, Result<Entry>);
    fn next(&mut self) -> Option<Self::Item> {
        let end = self.pos.checked_add(ENTRY_LEN)?;
        let chunk = self.buf.get(self.pos..end)?;
        let at = self.pos;
        self.pos = end;
        Some((at, Entry::decode(chunk)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::StripeLayout;

    fn rec(seq: u64) -> UnlinkRecord {
        UnlinkRecord {
            seq,
            key: FileKey::new(9, seq + 100, seq * 3),
            real_size: seq * 1000,
            layout: StripeLayout {
                block_size: 65536,
                width: 4,
                first_viod: 1,
            },
        }
    }

    #[test]
    fn round_trip() {
        let mut b = [0u8; ENTRY_LEN];
        for e in [
            Entry::Pending(rec(5)),
            Entry::Done {
                seq: 5,
                key: rec(5).key,
            },
        ] {
            assert_eq!(e.encode(&mut b), Ok(ENTRY_LEN));
            assert_eq!(Entry::decode(&b), Ok(e));
            assert_eq!(e.key(), rec(5).key);
            for k in 0..ENTRY_LEN {
                assert_eq!(Entry::decode(&b[..k]), Err(ProtoError::Truncated));
            }
            for i in 0..ENTRY_LEN {
                let mut x = b;
                x[i] ^= 0x40;
                assert!(Entry::decode(&x).is_err(), "flip at {i}");
            }
        }
        assert_eq!(
            Entry::Done {
                seq: 1,
                key: FileKey::default()
            }
            .encode(&mut [0u8; 63]),
            Err(ProtoError::BufferTooSmall)
        );
        let mut big = [0u8; ENTRY_LEN + 1];
        assert_eq!(Entry::decode(&big), Err(ProtoError::TrailingBytes));
        big[..4].copy_from_slice(b"XXXX");
        assert_eq!(Entry::decode(&big[..ENTRY_LEN]), Err(ProtoError::BadMagic));
    }

    #[test]
    fn entries_stop_at_a_partial_tail() {
        let mut img = [0u8; 3 * ENTRY_LEN];
        Entry::Pending(rec(1)).encode(&mut img[..]).unwrap();
        Entry::Pending(rec(2))
            .encode(&mut img[ENTRY_LEN..])
            .unwrap();
        Entry::Done {
            seq: 1,
            key: rec(1).key,
        }
        .encode(&mut img[2 * ENTRY_LEN..])
        .unwrap();
        for cut in 0..=img.len() {
            let it = Entries::new(&img[..cut]);
            assert_eq!(it.tail(), cut % ENTRY_LEN);
            assert_eq!(it.complete_len(), cut / ENTRY_LEN * ENTRY_LEN);
            let got: std::vec::Vec<_> = it.collect();
            assert_eq!(got.len(), cut / ENTRY_LEN);
            assert!(got.iter().all(|(_, e)| e.is_ok()));
        }
        let all: std::vec::Vec<_> = Entries::new(&img).map(|(o, e)| (o, e.unwrap())).collect();
        assert_eq!(all[1], (ENTRY_LEN, Entry::Pending(rec(2))));
    }
}
