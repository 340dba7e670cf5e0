// SPDX-License-Identifier: GPL-2.0
//! Deletion records handed from the kernel to `unlinkd` through
//! `/dev/nfsp_unlink`, and the acknowledgements unlinkd writes back.
//!
//! Record ([`RECORD_LEN`] = 64 bytes, little-endian): magic `b"NFUL"` (u32),
//! version u16 (= 1), flags u16 (0), sequence u64, export u64, inode u64,
//! seed u64, real size u64, block size u32, stripe width u32, first viod u32,
//! CRC32C of bytes 0..60.
//!
//! Acknowledgement ([`ACK_LEN`] = 24 bytes): magic `b"NFUA"`, version u16,
//! flags u16 (0), first u64, last u64: records `first..=last` are durable
//! in unlinkd's journal and may be dropped by the kernel.

use super::codec::{Reader, Writer};
use super::crc32c::crc32c;
use super::error::{ProtoError, Result};
use super::filekey::FileKey;
use super::metafile::validate_layout;
use super::stripe::StripeLayout;

/// Record magic.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"NFUL");
/// Ack magic.
pub const ACK_MAGIC: u32 = u32::from_le_bytes(*b"NFUA");
/// Format version of records and acks.
pub const VERSION: u16 = 1;
/// Record length.
pub const RECORD_LEN: usize = 64;
/// Ack length.
pub const ACK_LEN: usize = 24;

/// One pending deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnlinkRecord {
    /// Kernel-assigned sequence number (acknowledged by unlinkd).
    pub seq: u64,
    /// File data key.
    pub key: FileKey,
    /// Real size at deletion (tells which viods hold data).
    pub real_size: u64,
    /// Striping map of the file.
    pub layout: StripeLayout,
}

impl UnlinkRecord {
    /// Encode into `buf` (>= 64 bytes).
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        validate_layout(
            self.layout.block_size,
            self.layout.width,
            self.layout.first_viod,
        )?;
        let out = buf
            .get_mut(..RECORD_LEN)
            .ok_or(ProtoError::BufferTooSmall)?;
        let mut w = Writer::new(out);
        w.u32_le(RECORD_MAGIC)?;
        w.u16_le(VERSION)?;
        w.u16_le(0)?;
        w.u64_le(self.seq)?;
        w.u64_le(self.key.export)?;
        w.u64_le(self.key.inode)?;
        w.u64_le(self.key.seed)?;
        w.u64_le(self.real_size)?;
        w.u32_le(self.layout.block_size)?;
        w.u32_le(self.layout.width)?;
        w.u32_le(self.layout.first_viod)?;
        let crc = crc32c(w.written());
        w.u32_le(crc)?;
        Ok(RECORD_LEN)
    }

    /// Decode exactly one record (`buf.len() == RECORD_LEN`).
    #[cfg(not(nfsp_kernel))]
    pub fn decode(buf: &[u8]) -> Result<Self> {
        if buf.len() < RECORD_LEN {
            return Err(ProtoError::Truncated);
        }
        if buf.len() > RECORD_LEN {
            return Err(ProtoError::TrailingBytes);
        }
        let mut r = Reader::new(buf);
        if r.u32_le()? != RECORD_MAGIC {
            return Err(ProtoError::BadMagic);
        }
        if r.u16_le()? != VERSION {
            return Err(ProtoError::BadVersion);
        }
        let body = buf.get(..RECORD_LEN - 4).ok_or(ProtoError::Truncated)?;
        let mut tail = Reader::new(buf.get(RECORD_LEN - 4..).ok_or(ProtoError::Truncated)?);
        if crc32c(body) != tail.u32_le()? {
            return Err(ProtoError::BadChecksum);
        }
        if r.u16_le()? != 0 {
            return Err(ProtoError::InvalidField("flags"));
        }
        let seq = r.u64_le()?;
        let key = FileKey::new(r.u64_le()?, r.u64_le()?, r.u64_le()?);
        let real_size = r.u64_le()?;
        let layout = validate_layout(r.u32_le()?, r.u32_le()?, r.u32_le()?)?;
        Ok(UnlinkRecord {
            seq,
            key,
            real_size,
            layout,
        })
    }
}

/// Acknowledgement of records `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnlinkAck {
    /// First durable sequence number.
    pub first: u64,
    /// Last durable sequence number (>= first).
    pub last: u64,
}

impl UnlinkAck {
    /// Encode into `buf` (>= 24 bytes).
    #[cfg(not(nfsp_kernel))]
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        if self.first > self.last {
            return Err(ProtoError::InvalidField("range"));
        }
        let out = buf.get_mut(..ACK_LEN).ok_or(ProtoError::BufferTooSmall)?;
        let mut w = Writer::new(out);
        w.u32_le(ACK_MAGIC)?;
        w.u16_le(VERSION)?;
        w.u16_le(0)?;
        w.u64_le(self.first)?;
        w.u64_le(self.last)?;
        Ok(ACK_LEN)
    }

    /// Decode exactly one ack.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        if r.u32_le()? != ACK_MAGIC {
            return Err(ProtoError::BadMagic);
        }
        if r.u16_le()? != VERSION {
            return Err(ProtoError::BadVersion);
        }
        if r.u16_le()? != 0 {
            return Err(ProtoError::InvalidField("flags"));
        }
        let first = r.u64_le()?;
        let last = r.u64_le()?;
        r.finish()?;
        if first > last {
            return Err(ProtoError::InvalidField("range"));
        }
        Ok(UnlinkAck { first, last })
    }

    /// Whether `seq` is covered.
    pub fn covers(&self, seq: u64) -> bool {
        self.first <= seq && seq <= self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> UnlinkRecord {
        UnlinkRecord {
            seq: 77,
            key: FileKey::new(1, 2, 3),
            real_size: 1 << 30,
            layout: StripeLayout {
                block_size: 65536,
                width: 8,
                first_viod: 5,
            },
        }
    }

    #[test]
    fn record_round_trip_and_errors() {
        let mut b = [0u8; RECORD_LEN];
        assert_eq!(rec().encode(&mut b), Ok(RECORD_LEN));
        assert_eq!(UnlinkRecord::decode(&b), Ok(rec()));
        for k in 0..RECORD_LEN {
            assert_eq!(UnlinkRecord::decode(&b[..k]), Err(ProtoError::Truncated));
        }
        let mut big = [0u8; RECORD_LEN + 1];
        big[..RECORD_LEN].copy_from_slice(&b);
        assert_eq!(UnlinkRecord::decode(&big), Err(ProtoError::TrailingBytes));
        let mut x = b;
        x[0] = 0;
        assert_eq!(UnlinkRecord::decode(&x), Err(ProtoError::BadMagic));
        let mut x = b;
        x[4] = 9;
        assert_eq!(UnlinkRecord::decode(&x), Err(ProtoError::BadVersion));
        let mut x = b;
        x[20] ^= 0x10;
        assert_eq!(UnlinkRecord::decode(&x), Err(ProtoError::BadChecksum));
        let mut x = b;
        x[56..60].copy_from_slice(&9u32.to_le_bytes()); // first_viod >= width
        let crc = crc32c(&x[..60]);
        x[60..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            UnlinkRecord::decode(&x),
            Err(ProtoError::InvalidField("first_viod"))
        );
        let mut bad = rec();
        bad.layout.block_size = 100;
        assert!(bad.encode(&mut b).is_err());
        assert_eq!(
            rec().encode(&mut [0u8; 63]),
            Err(ProtoError::BufferTooSmall)
        );
    }

    #[test]
    fn ack() {
        let a = UnlinkAck { first: 5, last: 9 };
        let mut b = [0u8; ACK_LEN];
        a.encode(&mut b).unwrap();
        assert_eq!(UnlinkAck::decode(&b), Ok(a));
        assert!(a.covers(5) && a.covers(9) && !a.covers(10));
        assert!(UnlinkAck { first: 2, last: 1 }.encode(&mut b).is_err());
        let mut x = b;
        x[8..16].copy_from_slice(&100u64.to_le_bytes());
        assert_eq!(
            UnlinkAck::decode(&x),
            Err(ProtoError::InvalidField("range"))
        );
        assert_eq!(UnlinkAck::decode(&b[..23]), Err(ProtoError::Truncated));
        let mut x = b;
        x[1] = 0;
        assert_eq!(UnlinkAck::decode(&x), Err(ProtoError::BadMagic));
    }
}
