// SPDX-License-Identifier: GPL-2.0
//! The identity of an NFSP file's data on the iods and its local path.
//!
//! Local path (relative to the iod's data directory), [`LOCAL_PATH_LEN`]
//! bytes of ASCII: `"ab/cd/EEEEEEEEEEEEEEEE-IIIIIIIIIIIIIIII-SSSSSSSSSSSSSSSS"`
//! with export, inode and seed as 16 lowercase hex digits. `ab` and `cd` are
//! bytes 0 and 1 (lowercase hex) of `h = crc32c(export.to_le_bytes() ++
//! inode.to_le_bytes() ++ seed.to_le_bytes())` taken little-endian, so files
//! spread over 256 × 256 = 65536 sub-directories.

use super::crc32c::crc32c_update;
use super::error::{ProtoError, Result};

/// Length of the file-name part (`export-inode-seed`).
#[cfg(not(nfsp_kernel))]
pub const FILE_NAME_LEN: usize = 16 * 3 + 2;
/// Length of the full local path `ab/cd/<name>`.
#[cfg(not(nfsp_kernel))]
pub const LOCAL_PATH_LEN: usize = 6 + FILE_NAME_LEN;
/// Encoded length of a file key on the wire / in records (3 × u64 LE).
pub const FILE_KEY_LEN: usize = 24;

/// The export identifier of a file system: its UUID (`s_uuid`, as given by
/// the `FS_IOC_GETFSUUID` ioctl) folded to 64 bits. Inode numbers are
/// unique within one file system, so keys of different exports differ.
pub fn export_id(fs_uuid: &[u8; 16]) -> u64 {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    for (i, b) in fs_uuid.iter().enumerate() {
        if let Some(slot) = if i < 8 {
            lo.get_mut(i)
        } else {
            hi.get_mut(i - 8)
        } {
            *slot = *b;
        }
    }
    u64::from_le_bytes(lo) ^ u64::from_le_bytes(hi)
}

/// (export, inode, seed): names the data of one NFSP file on every iod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileKey {
    /// Export identifier: [`export_id`] of the meta-files' file system.
    pub export: u64,
    /// Inode number of the meta-file.
    pub inode: u64,
    /// Seed from the meta-file header.
    pub seed: u64,
}

#[cfg(not(nfsp_kernel))]
const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(not(nfsp_kernel))]
fn put_hex_u64(out: &mut [u8], v: u64) {
    for (i, o) in out.iter_mut().take(16).enumerate() {
        let shift = 60 - 4 * i as u32;
        *o = HEX[((v >> shift) & 0xf) as usize];
    }
}

#[cfg(not(nfsp_kernel))]
fn parse_hex_u64(s: &[u8]) -> Result<u64> {
    if s.len() != 16 {
        return Err(ProtoError::InvalidField("file name"));
    }
    let mut v: u64 = 0;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return Err(ProtoError::InvalidField("file name")),
        };
        v = (v << 4) | d as u64;
    }
    Ok(v)
}

impl FileKey {
    /// New key.
    #[cfg(not(nfsp_kernel))]
    pub fn new(export: u64, inode: u64, seed: u64) -> Self {
        FileKey {
            export,
            inode,
            seed,
        }
    }

    /// The documented placement hash.
    pub fn hash(&self) -> u32 {
        let h = crc32c_update(0, &self.export.to_le_bytes());
        let h = crc32c_update(h, &self.inode.to_le_bytes());
        crc32c_update(h, &self.seed.to_le_bytes())
    }

    /// The two sub-directory bytes.
    pub fn subdirs(&self) -> (u8, u8) {
        let h = self.hash().to_le_bytes();
        (h[0], h[1])
    }

    /// 24-byte little-endian encoding (export, inode, seed).
    pub fn to_bytes(&self) -> [u8; FILE_KEY_LEN] {
        let mut b = [0u8; FILE_KEY_LEN];
        b[..8].copy_from_slice(&self.export.to_le_bytes());
        b[8..16].copy_from_slice(&self.inode.to_le_bytes());
        b[16..].copy_from_slice(&self.seed.to_le_bytes());
        b
    }

    /// Inverse of [`FileKey::to_bytes`] (`b` must be exactly 24 bytes).
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        if b.len() != FILE_KEY_LEN {
            return Err(ProtoError::Truncated);
        }
        let mut r = super::codec::Reader::new(b);
        Ok(FileKey {
            export: r.u64_le()?,
            inode: r.u64_le()?,
            seed: r.u64_le()?,
        })
    }

    /// Write the file name `export-inode-seed` into `buf`.
    #[cfg(not(nfsp_kernel))]
    pub fn write_file_name<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str> {
        let out = buf
            .get_mut(..FILE_NAME_LEN)
            .ok_or(ProtoError::BufferTooSmall)?;
        put_hex_u64(&mut out[0..16], self.export);
        out[16] = b'-';
        put_hex_u64(&mut out[17..33], self.inode);
        out[33] = b'-';
        put_hex_u64(&mut out[34..50], self.seed);
        core::str::from_utf8(out).map_err(|_| ProtoError::InvalidField("file name"))
    }

    /// Write the local path `ab/cd/export-inode-seed` into `buf`
    /// (at least [`LOCAL_PATH_LEN`] bytes).
    #[cfg(not(nfsp_kernel))]
    pub fn write_local_path<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str> {
        let out = buf
            .get_mut(..LOCAL_PATH_LEN)
            .ok_or(ProtoError::BufferTooSmall)?;
        let (a, b) = self.subdirs();
        out[0] = HEX[(a >> 4) as usize];
        out[1] = HEX[(a & 0xf) as usize];
        out[2] = b'/';
        out[3] = HEX[(b >> 4) as usize];
        out[4] = HEX[(b & 0xf) as usize];
        out[5] = b'/';
        self.write_file_name(&mut out[6..])?;
        core::str::from_utf8(out).map_err(|_| ProtoError::InvalidField("file name"))
    }

    /// Listing order (the iod LIST order): the order of the local paths,
    /// i.e. by sub-directory bytes `(ab, cd)`, then export, inode, seed
    /// (the fixed-width lowercase hex name sorts like the numbers).
    pub fn list_cmp(&self, other: &FileKey) -> core::cmp::Ordering {
        (self.subdirs(), self.export, self.inode, self.seed).cmp(&(
            other.subdirs(),
            other.export,
            other.inode,
            other.seed,
        ))
    }

    /// Parse a file name written by [`FileKey::write_file_name`].
    #[cfg(not(nfsp_kernel))]
    pub fn parse_file_name(name: &str) -> Result<Self> {
        let b = name.as_bytes();
        if b.len() != FILE_NAME_LEN {
            return Err(ProtoError::InvalidField("file name"));
        }
        if b.get(16) != Some(&b'-') || b.get(33) != Some(&b'-') {
            return Err(ProtoError::InvalidField("file name"));
        }
        let part = |r: core::ops::Range<usize>| {
            b.get(r)
                .ok_or(ProtoError::InvalidField("file name"))
                .and_then(parse_hex_u64)
        };
        Ok(FileKey {
            export: part(0..16)?,
            inode: part(17..33)?,
            seed: part(34..50)?,
        })
    }

    /// Parse a full local path `ab/cd/name` and check that the
    /// sub-directories match the hash (a misplaced file is an error).
    #[cfg(not(nfsp_kernel))]
    pub fn parse_local_path(path: &str) -> Result<Self> {
        let name = path
            .get(6..)
            .ok_or(ProtoError::InvalidField("local path"))?;
        let key = Self::parse_file_name(name)?;
        let mut buf = [0u8; LOCAL_PATH_LEN];
        if key.write_local_path(&mut buf)? != path {
            return Err(ProtoError::InvalidField("local path"));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_id_folds_the_uuid() {
        let mut u = [0u8; 16];
        u[0] = 1;
        u[8] = 3;
        assert_eq!(super::export_id(&u), 2);
        assert_eq!(super::export_id(&[0xab; 16]), 0);
    }

    use super::*;

    #[test]
    fn round_trip() {
        let k = FileKey::new(1, 0x4242_4242, 0x1234_5678);
        let mut buf = [0u8; 80];
        let p = k.write_local_path(&mut buf).unwrap();
        assert_eq!(p.len(), LOCAL_PATH_LEN);
        assert!(p.ends_with("/0000000000000001-0000000042424242-0000000012345678"));
        let (a, b) = k.subdirs();
        assert_eq!(&p[..6], format!("{a:02x}/{b:02x}/"));
        let p = p.to_owned();
        assert_eq!(FileKey::parse_local_path(&p), Ok(k));
        assert_eq!(FileKey::parse_file_name(&p[6..]), Ok(k));
        assert_eq!(FileKey::from_bytes(&k.to_bytes()), Ok(k));
        let m = FileKey::new(u64::MAX, 0, 0xdead_beef_0000_0001);
        let mut nb = [0u8; FILE_NAME_LEN];
        let n = m.write_file_name(&mut nb).unwrap().to_owned();
        assert_eq!(FileKey::parse_file_name(&n), Ok(m));
    }

    #[test]
    fn errors() {
        let k = FileKey::new(0xabc, 2, 3);
        assert_eq!(
            k.write_local_path(&mut [0u8; 10]),
            Err(ProtoError::BufferTooSmall)
        );
        let mut buf = [0u8; LOCAL_PATH_LEN];
        let p = k.write_local_path(&mut buf).unwrap().to_owned();
        assert!(FileKey::parse_file_name("").is_err());
        assert!(FileKey::parse_file_name(&p[6..].to_uppercase()).is_err());
        assert!(FileKey::parse_file_name(&p[6..].replace('-', "_")).is_err());
        assert!(FileKey::parse_file_name(&p[7..]).is_err());
        let wrong_dir = format!("zz{}", &p[2..]);
        assert!(FileKey::parse_local_path(&wrong_dir).is_err());
        assert!(FileKey::parse_local_path("ab").is_err());
        // multi-byte UTF-8 must not panic
        assert!(FileKey::parse_local_path("ééééééééééééééééééééééééééééééééé").is_err());
        assert!(FileKey::from_bytes(&[0u8; 23]).is_err());
    }

    #[test]
    fn list_order_is_local_path_order() {
        let mut keys: [FileKey; 64] = [FileKey::default(); 64];
        for (i, k) in keys.iter_mut().enumerate() {
            *k = FileKey::new(i as u64 % 3, 1000 - i as u64, i as u64 * 7919);
        }
        keys.sort_by(|a, b| a.list_cmp(b));
        let paths: [[u8; LOCAL_PATH_LEN]; 64] = core::array::from_fn(|i| {
            let mut b = [0u8; LOCAL_PATH_LEN];
            keys[i].write_local_path(&mut b).unwrap();
            b
        });
        assert!(paths.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(keys[0].list_cmp(&keys[0]), core::cmp::Ordering::Equal);
    }

    #[test]
    fn spread() {
        let mut seen = [false; 256];
        for i in 0..4096u64 {
            seen[FileKey::new(1, i, 7).subdirs().0 as usize] = true;
        }
        assert!(seen.iter().filter(|x| **x).count() > 250);
    }
}
