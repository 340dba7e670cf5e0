// SPDX-License-Identifier: GPL-2.0
//! The meta-file header: what the meta-server keeps for each file besides
//! its namespace entry. `nfsp_knfsd` stores it in the meta-file's
//! extended attribute `trusted.nfsp` and keeps the meta-file sparse with
//! the real size as its own size, so the local file system keeps the live
//! size (crash-consistent, and right in every attribute nfsd returns);
//! `real_size` below is the size when the header was written (0 at
//! creation), a recovery aid, not the live size. `layout_epoch` fences
//! pNFS data-server filehandles: the module raises it when the file
//! shrinks or a client holding a layout is fenced, and the iods refuse
//! handles minted before (0 in files older than pNFS).
//! Fixed [`HEADER_LEN`] bytes, little-endian:
//!
//! | off | len | field |
//! |-----|-----|-------|
//! | 0   | 8   | magic `b"NFSPMETA"` |
//! | 8   | 2   | format version (= 1) |
//! | 10  | 2   | flags (none defined: must be 0) |
//! | 12  | 4   | block size (multiple of 4096, 4096..=1 MiB) |
//! | 16  | 4   | stripe width W (>= 1) |
//! | 20  | 4   | first viod (< W) |
//! | 24  | 8   | seed |
//! | 32  | 8   | real size |
//! | 40  | 4   | layout epoch |
//! | 44  | 4   | CRC32C of bytes 0..44 |

use super::codec::{Reader, Writer};
use super::crc32c::crc32c;
use super::error::{ProtoError, Result};
use super::stripe::StripeLayout;

/// Magic bytes at the start of every meta-file.
pub const MAGIC: [u8; 8] = *b"NFSPMETA";
/// Current (and highest understood) format version.
pub const VERSION: u16 = 1;
/// Encoded length of the header.
pub const HEADER_LEN: usize = 48;
/// Default block size (64 KiB, as in the thesis).
pub const DEFAULT_BLOCK_SIZE: u32 = 65536;
/// Largest accepted block size.
pub const MAX_BLOCK_SIZE: u32 = 1 << 20;
/// Block sizes are multiples of this.
pub const BLOCK_ALIGN: u32 = 4096;

/// Check a block size / width / first viod triple as stored on disk or in
/// a deletion record.
pub fn validate_layout(block_size: u32, width: u32, first_viod: u32) -> Result<StripeLayout> {
    if block_size == 0 || !block_size.is_multiple_of(BLOCK_ALIGN) || block_size > MAX_BLOCK_SIZE {
        return Err(ProtoError::InvalidField("block_size"));
    }
    StripeLayout::new(block_size, width, first_viod)
}

/// Decoded meta-file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetaHeader {
    /// Flags (must be 0 in version 1).
    pub flags: u16,
    /// Block size in bytes.
    pub block_size: u32,
    /// Stripe width.
    pub width: u32,
    /// Viod holding block 0.
    pub first_viod: u32,
    /// Random cookie distinguishing reuses of an inode number.
    pub seed: u64,
    /// Size when the header was written (the live size is the meta-file's).
    pub real_size: u64,
    /// Epoch of the data-server filehandles minted for this file.
    pub layout_epoch: u32,
}

impl MetaHeader {
    /// A fresh header of size 0.
    pub fn new(seed: u64, width: u32, first_viod: u32) -> Self {
        MetaHeader {
            flags: 0,
            block_size: DEFAULT_BLOCK_SIZE,
            width,
            first_viod,
            seed,
            real_size: 0,
            layout_epoch: 0,
        }
    }

    /// The striping map of this file.
    pub fn layout(&self) -> Result<StripeLayout> {
        validate_layout(self.block_size, self.width, self.first_viod)
    }

    /// Encode into `buf` (at least [`HEADER_LEN`] bytes); returns HEADER_LEN.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        if self.flags != 0 {
            return Err(ProtoError::InvalidField("flags"));
        }
        self.layout()?;
        let out = buf
            .get_mut(..HEADER_LEN)
            .ok_or(ProtoError::BufferTooSmall)?;
        let mut w = Writer::new(out);
        w.put(&MAGIC)?;
        w.u16_le(VERSION)?;
        w.u16_le(self.flags)?;
        w.u32_le(self.block_size)?;
        w.u32_le(self.width)?;
        w.u32_le(self.first_viod)?;
        w.u64_le(self.seed)?;
        w.u64_le(self.real_size)?;
        w.u32_le(self.layout_epoch)?;
        let crc = crc32c(w.written());
        w.u32_le(crc)?;
        Ok(HEADER_LEN)
    }

    /// Decode the first [`HEADER_LEN`] bytes of `buf` (bytes after them are
    /// ignored, so a caller may pass a whole page).
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        if r.array::<8>()? != MAGIC {
            return Err(ProtoError::BadMagic);
        }
        let version = r.u16_le()?;
        if version != VERSION {
            return Err(ProtoError::BadVersion);
        }
        let body = buf.get(..HEADER_LEN - 4).ok_or(ProtoError::Truncated)?;
        let crc_bytes = buf
            .get(HEADER_LEN - 4..HEADER_LEN)
            .ok_or(ProtoError::Truncated)?;
        let mut c = [0u8; 4];
        c.copy_from_slice(crc_bytes);
        if crc32c(body) != u32::from_le_bytes(c) {
            return Err(ProtoError::BadChecksum);
        }
        let flags = r.u16_le()?;
        let block_size = r.u32_le()?;
        let width = r.u32_le()?;
        let first_viod = r.u32_le()?;
        let seed = r.u64_le()?;
        let real_size = r.u64_le()?;
        let layout_epoch = r.u32_le()?;
        if flags != 0 {
            return Err(ProtoError::InvalidField("flags"));
        }
        validate_layout(block_size, width, first_viod)?;
        Ok(MetaHeader {
            flags,
            block_size,
            width,
            first_viod,
            seed,
            real_size,
            layout_epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MetaHeader {
        MetaHeader {
            flags: 0,
            block_size: 65536,
            width: 4,
            first_viod: 3,
            seed: 0x1234_5678_9abc_def0,
            real_size: 0x42_4242_4242,
            layout_epoch: 7,
        }
    }

    #[test]
    fn round_trip() {
        let mut b = [0u8; 64];
        assert_eq!(sample().encode(&mut b), Ok(HEADER_LEN));
        assert_eq!(&b[..8], b"NFSPMETA");
        assert_eq!(MetaHeader::decode(&b), Ok(sample()));
        assert_eq!(MetaHeader::decode(&b[..HEADER_LEN]), Ok(sample()));
        let l = sample().layout().unwrap();
        assert_eq!(l.width, 4);
    }

    #[test]
    fn errors() {
        let mut b = [0u8; HEADER_LEN];
        sample().encode(&mut b).unwrap();
        for n in 0..HEADER_LEN {
            assert!(MetaHeader::decode(&b[..n]).is_err(), "len {n}");
        }
        assert_eq!(
            MetaHeader::decode(&b[..HEADER_LEN - 1]),
            Err(ProtoError::Truncated)
        );
        let mut x = b;
        x[0] = b'X';
        assert_eq!(MetaHeader::decode(&x), Err(ProtoError::BadMagic));
        let mut x = b;
        x[8] = 2;
        assert_eq!(MetaHeader::decode(&x), Err(ProtoError::BadVersion));
        let mut x = b;
        x[33] ^= 1;
        assert_eq!(MetaHeader::decode(&x), Err(ProtoError::BadChecksum));
        let mut small = [0u8; 10];
        assert_eq!(sample().encode(&mut small), Err(ProtoError::BufferTooSmall));
    }

    fn with(f: impl Fn(&mut [u8; HEADER_LEN])) -> Result<MetaHeader> {
        let mut b = [0u8; HEADER_LEN];
        sample().encode(&mut b).unwrap();
        f(&mut b);
        let crc = crc32c(&b[..44]);
        b[44..].copy_from_slice(&crc.to_le_bytes());
        MetaHeader::decode(&b)
    }

    #[test]
    fn nonsense_fields() {
        let bs = ProtoError::InvalidField("block_size");
        assert_eq!(
            with(|b| b[12..16].copy_from_slice(&0u32.to_le_bytes())),
            Err(bs)
        );
        assert_eq!(
            with(|b| b[12..16].copy_from_slice(&5000u32.to_le_bytes())),
            Err(bs)
        );
        assert_eq!(
            with(|b| b[12..16].copy_from_slice(&(2u32 << 20).to_le_bytes())),
            Err(bs)
        );
        assert_eq!(
            with(|b| b[16..20].copy_from_slice(&0u32.to_le_bytes())),
            Err(ProtoError::InvalidField("width"))
        );
        assert_eq!(
            with(|b| b[20..24].copy_from_slice(&4u32.to_le_bytes())),
            Err(ProtoError::InvalidField("first_viod"))
        );
        assert_eq!(with(|b| b[10] = 1), Err(ProtoError::InvalidField("flags")));
        // Any layout epoch is valid (it only ever grows).
        assert_eq!(
            with(|b| b[43] = 0xff).map(|h| h.layout_epoch),
            Ok(0xff00_0007)
        );
        let mut h = sample();
        h.width = 0;
        assert!(h.encode(&mut [0u8; 64]).is_err());
    }
}
