// SPDX-License-Identifier: GPL-2.0
//! The striping map: cyclic distribution of fixed-size blocks over the viods
//! of a file.
//!
//! Block `n` (bytes `[n*B, (n+1)*B)`) lives on stripe slot `n % W`, i.e. on
//! viod `(first_viod + n % W) % W`, at local offset
//! `(n / W) * B + offset_in_block` in that viod's local file.

use super::error::{ProtoError, Result};

/// Block size, stripe width and placement of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StripeLayout {
    /// Block size B in bytes (> 0).
    pub block_size: u32,
    /// Stripe width W (number of viods, >= 1).
    pub width: u32,
    /// Viod holding block 0 (< W).
    pub first_viod: u32,
}

/// One contiguous part of a byte range, held by one viod, within one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Piece {
    /// Viod id (0..W).
    pub viod: u32,
    /// Offset in the NFSP file.
    pub file_offset: u64,
    /// Offset in the viod's local file.
    pub local_offset: u64,
    /// Length in bytes (> 0, never crosses a block boundary).
    pub len: u64,
}

impl Piece {
    /// End offset in the NFSP file (exclusive).
    #[cfg(not(nfsp_kernel))]
    pub fn file_end(&self) -> u64 {
        self.file_offset.saturating_add(self.len)
    }
}

impl StripeLayout {
    /// Validated constructor (block size > 0, width >= 1, first_viod < width).
    pub fn new(block_size: u32, width: u32, first_viod: u32) -> Result<Self> {
        let l = StripeLayout {
            block_size,
            width,
            first_viod,
        };
        l.validate()?;
        Ok(l)
    }

    /// Check the invariants (the fields are public).
    pub fn validate(&self) -> Result<()> {
        if self.block_size == 0 {
            return Err(ProtoError::InvalidField("block_size"));
        }
        if self.width == 0 {
            return Err(ProtoError::InvalidField("width"));
        }
        if self.first_viod >= self.width {
            return Err(ProtoError::InvalidField("first_viod"));
        }
        Ok(())
    }

    /// Viod id holding block `n`.
    #[cfg(not(nfsp_kernel))]
    pub fn viod_of_block(&self, n: u64) -> Result<u32> {
        self.validate()?;
        let w = self.width as u64;
        let slot = n % w;
        let v = (self.first_viod as u64 + slot) % w;
        u32::try_from(v).map_err(|_| ProtoError::Overflow)
    }

    /// Stripe slot (0..W) of a viod id: blocks `n` with `n % W == slot` live there.
    pub fn slot_of_viod(&self, viod: u32) -> Result<u32> {
        self.validate()?;
        if viod >= self.width {
            return Err(ProtoError::InvalidField("viod"));
        }
        // (viod - first) mod W, without underflow.
        Ok((viod + (self.width - self.first_viod)) % self.width)
    }

    /// Split `[offset, offset+len)` into per-block pieces (no allocation).
    /// An empty range yields no piece. `offset + len > u64::MAX` is an error.
    pub fn pieces(&self, offset: u64, len: u64) -> Result<Pieces> {
        self.validate()?;
        let end = offset.checked_add(len).ok_or(ProtoError::Overflow)?;
        Ok(Pieces {
            layout: *self,
            pos: offset,
            end,
        })
    }

    /// The piece starting at `pos` (clipped to `end`), or None if empty.
    fn piece_at(&self, pos: u64, end: u64) -> Option<Piece> {
        if pos >= end {
            return None;
        }
        let b = self.block_size as u64;
        let w = self.width as u64;
        // Checked division: no panic path, even for a layout that was not
        // validated (the kernel build flags any).
        let n = pos.checked_div(b)?;
        let in_block = pos.checked_rem(b)?;
        let room = b.checked_sub(in_block)?;
        let len = room.min(end.checked_sub(pos)?);
        let slot = n.checked_rem(w)?;
        let viod =
            u32::try_from((self.first_viod as u64).checked_add(slot)?.checked_rem(w)?).ok()?;
        let local_offset = n.checked_div(w)?.checked_mul(b)?.checked_add(in_block)?;
        Some(Piece {
            viod,
            file_offset: pos,
            local_offset,
            len,
        })
    }

    /// Local extent length a viod must keep for a file of real size `size`:
    /// the end of that viod's last (possibly partial) block. Used by TRUNCATE
    /// (every viod is told its own local length) and by fsck.
    pub fn local_len(&self, viod: u32, size: u64) -> Result<u64> {
        let slot = self.slot_of_viod(viod)? as u64;
        let b = self.block_size as u64;
        let w = self.width as u64;
        if size == 0 {
            return Ok(0);
        }
        let nblocks = size.div_ceil(b);
        if slot >= nblocks {
            return Ok(0);
        }
        // Blocks slot, slot+W, ... < nblocks: k of them.
        let k = (nblocks - 1 - slot) / w + 1;
        let last = slot + (k - 1) * w;
        let last_len = if last == nblocks - 1 && !size.is_multiple_of(b) {
            size % b
        } else {
            b
        };
        (k - 1)
            .checked_mul(b)
            .and_then(|x| x.checked_add(last_len))
            .ok_or(ProtoError::Overflow)
    }

    /// The file size a viod's local length `local_len` implies: the end of
    /// the file byte its last local byte holds (0 for an empty local file).
    /// The inverse of [`StripeLayout::local_len`]: the largest over the
    /// viods is the size, also after clients wrote past it through pNFS
    /// layouts without telling the meta-server (a LAYOUTCOMMIT lost).
    pub fn size_from_local_len(&self, viod: u32, local_len: u64) -> Result<u64> {
        let slot = self.slot_of_viod(viod)? as u64;
        let b = self.block_size as u64;
        let w = self.width as u64;
        if local_len == 0 {
            return Ok(0);
        }
        // The local block holding the last byte, and the bytes used in it.
        let k = (local_len - 1) / b;
        let used = local_len - k * b;
        k.checked_mul(w)
            .and_then(|x| x.checked_add(slot))
            .and_then(|n| n.checked_mul(b))
            .and_then(|x| x.checked_add(used))
            .ok_or(ProtoError::Overflow)
    }
}

/// Iterator over the pieces of a range (see [`StripeLayout::pieces`]).
#[derive(Debug, Clone)]
pub struct Pieces {
    layout: StripeLayout,
    pos: u64,
    end: u64,
}

impl Iterator for Pieces {
    type Item = Piece;
    fn next(&mut self) -> Option<Piece> {
        let p = self.layout.piece_at(self.pos, self.end)?;
        self.pos = p.file_offset.checked_add(p.len)?;
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const K: u64 = 1024;

    #[test]
    fn thesis_example() {
        let l = StripeLayout::new(65536, 2, 0).unwrap();
        let mut it = l.pieces(42 * K, 93 * K).unwrap();
        assert_eq!(
            it.next(),
            Some(Piece {
                viod: 0,
                file_offset: 42 * K,
                local_offset: 42 * K,
                len: 22 * K
            })
        );
        assert_eq!(
            it.next(),
            Some(Piece {
                viod: 1,
                file_offset: 64 * K,
                local_offset: 0,
                len: 64 * K
            })
        );
        assert_eq!(
            it.next(),
            Some(Piece {
                viod: 0,
                file_offset: 128 * K,
                local_offset: 64 * K,
                len: 7 * K
            })
        );
        assert_eq!(it.next(), None);
        assert_eq!(43008, 42 * K);
        assert_eq!(95232, 93 * K);
    }

    #[test]
    fn rotation() {
        let l = StripeLayout::new(4096, 3, 2).unwrap();
        let v: [u32; 4] = core::array::from_fn(|n| l.viod_of_block(n as u64).unwrap());
        assert_eq!(v, [2, 0, 1, 2]);
        assert_eq!(l.slot_of_viod(2), Ok(0));
        assert_eq!(l.slot_of_viod(0), Ok(1));
        assert_eq!(l.slot_of_viod(3), Err(ProtoError::InvalidField("viod")));
    }

    #[test]
    fn errors() {
        assert!(StripeLayout::new(0, 1, 0).is_err());
        assert!(StripeLayout::new(4096, 0, 0).is_err());
        assert!(StripeLayout::new(4096, 2, 2).is_err());
        let l = StripeLayout::new(4096, 2, 0).unwrap();
        assert_eq!(l.pieces(u64::MAX, 1).err(), Some(ProtoError::Overflow));
        assert_eq!(l.pieces(u64::MAX, 0).unwrap().count(), 0);
        let bad = StripeLayout {
            block_size: 0,
            width: 1,
            first_viod: 0,
        };
        assert!(bad.pieces(0, 1).is_err());
        // Near the top of the range: no overflow panic.
        let n = l.pieces(u64::MAX - 5000, 5000).unwrap().count();
        assert_eq!(n, 2);
    }

    /// The largest size the viods' local lengths imply is the size.
    #[test]
    fn size_from_local_lens() {
        for (b, w, first) in [(4096u32, 1u32, 0u32), (4096, 3, 2), (65536, 4, 1)] {
            let l = StripeLayout::new(b, w, first).unwrap();
            let bs = b as u64;
            for size in [0, 1, bs - 1, bs, bs + 1, 3 * bs, 7 * bs + 5, 13 * bs - 1] {
                let implied = (0..w)
                    .map(|v| {
                        l.size_from_local_len(v, l.local_len(v, size).unwrap())
                            .unwrap()
                    })
                    .max()
                    .unwrap();
                assert_eq!(implied, size, "B {b} W {w} first {first} size {size}");
            }
        }
        // A write past the end on one viod: its end.
        let l = StripeLayout::new(4096, 3, 0).unwrap();
        assert_eq!(
            l.size_from_local_len(2, 4096 + 10).unwrap(),
            (3 + 2) * 4096 + 10
        );
        assert!(l.size_from_local_len(3, 1).is_err());
    }

    #[test]
    fn local_len_examples() {
        let l = StripeLayout::new(100, 2, 0).unwrap();
        // size 250: blocks 0 (v0), 1 (v1), 2 (v0, 50 bytes).
        assert_eq!(l.local_len(0, 250), Ok(150));
        assert_eq!(l.local_len(1, 250), Ok(100));
        assert_eq!(l.local_len(1, 50), Ok(0));
        assert_eq!(l.local_len(0, 0), Ok(0));
        assert_eq!(l.local_len(1, 200), Ok(100));
        assert_eq!(l.local_len(0, 200), Ok(100));
        let r = StripeLayout::new(100, 3, 1).unwrap();
        // size 150: block0 on v1 (100), block1 on v2 (50).
        assert_eq!(r.local_len(1, 150), Ok(100));
        assert_eq!(r.local_len(2, 150), Ok(50));
        assert_eq!(r.local_len(0, 150), Ok(0));
        assert!(r.local_len(3, 150).is_err());
        assert!(l.local_len(0, u64::MAX).is_ok());
    }
}
