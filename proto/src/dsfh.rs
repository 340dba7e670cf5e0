// SPDX-License-Identifier: GPL-2.0
//! Data-server filehandles: what a pNFS flexfiles layout names for each iod,
//! minted by the meta-server's module and checked by the iod on every
//! NFSv3 READ, WRITE and COMMIT a client sends it.
//!
//! Clients send *file* offsets to every data server (RFC 8435 §6, sparse
//! mapping), while an iod's local file is dense: the handle carries the
//! file's [`StripeLayout`] and the viod the iod serves, so the iod maps an
//! offset with [`StripeLayout::pieces`], the very map the module uses.
//!
//! A handle is a capability sent in clear (AUTH_SYS): its tag proves the
//! meta-server minted it *for one iod* (the tag covers that iod's data
//! server address, which the iod knows as the address a connection
//! reached, and the identity of its data directory, see
//! [`wire::identity_of`]), not that it is still current. An iod started
//! on a wiped or another data directory thus refuses every handle minted
//! for the one it replaced, instead of serving holes. The `epoch`
//! fences old handles: the iod refuses one older than the epoch it holds
//! for the file.
//!
//! | bytes | field |
//! |-------|-------|
//! | 2 | magic `"nD"` |
//! | 1 | version |
//! | 1 | 0 |
//! | 4 | key id (u32 LE), of the cluster key that tags it |
//! | 24 | file key |
//! | 4 | block size (u32 LE) |
//! | 2 | stripe width (u16 LE) |
//! | 2 | first viod (u16 LE) |
//! | 2 | this iod's viod (u16 LE) |
//! | 2 | flags (u16 LE): bit 0 read only (a READ layout's) |
//! | 4 | epoch (u32 LE) |
//! | 16 | tag: BLAKE2s-128 under the key, over the handle with the tag as zeros, then the iod's address as [`wire::put_addr`] encodes it, then its data directory's identity (u32 LE) |

#[cfg(not(nfsp_kernel))]
use super::auth::{tags_equal, Keys};
use super::auth::{Key, TAG_LEN};
#[cfg(not(nfsp_kernel))]
use super::codec::Reader;
use super::codec::Writer;
use super::error::{ProtoError, Result};
use super::filekey::{FileKey, FILE_KEY_LEN};
use super::stripe::StripeLayout;
use super::wire::{self, put_addr, ADDR_LEN};
use core::net::SocketAddr;

/// Magic of a data-server filehandle.
pub const MAGIC: [u8; 2] = *b"nD";
/// Format version.
pub const VERSION: u8 = 2;
/// Encoded length (NFSv3 allows up to 64 bytes).
pub const DS_FH_LEN: usize = 4 + 4 + FILE_KEY_LEN + 4 + 4 * 2 + 4 + TAG_LEN;
/// Where the tag starts.
const TAG_AT: usize = DS_FH_LEN - TAG_LEN;

/// The tag of `fh` for the iod at `server` whose data directory has
/// `identity`.
fn tag(
    key: &Key,
    fh: &[u8; DS_FH_LEN],
    server: &SocketAddr,
    identity: u32,
) -> Result<[u8; TAG_LEN]> {
    let mut msg = [0u8; DS_FH_LEN + ADDR_LEN + 4];
    let (head, tail) = msg.split_at_mut(DS_FH_LEN);
    head.copy_from_slice(fh);
    let mut w = Writer::new(tail);
    put_addr(&mut w, server)?;
    w.u32_le(identity)?;
    key.tag(&msg, TAG_AT).ok_or(ProtoError::BufferTooSmall)
}

/// What a data-server filehandle says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DsHandle {
    /// The file.
    pub key: FileKey,
    /// Its striping.
    pub layout: StripeLayout,
    /// The viod (stripe position) the iod holding this handle serves.
    pub viod: u32,
    /// Fencing epoch of the file's layouts.
    pub epoch: u32,
    /// From a READ layout: WRITE and COMMIT are refused.
    pub read_only: bool,
}

/// Flag: the handle is a READ layout's.
const FLAG_READ_ONLY: u16 = 1;

/// Why a handle is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg(not(nfsp_kernel))]
pub enum Refusal {
    /// Not one of ours: wrong length, magic or version, unknown key,
    /// wrong tag, invalid fields (NFS3ERR_BADHANDLE).
    Forged,
    /// Ours, but from a fenced epoch (NFS3ERR_STALE).
    Fenced,
}

impl DsHandle {
    /// Checks the fields (the layout, and the viod within it).
    pub fn validate(&self) -> Result<()> {
        self.layout.validate()?;
        if self.viod >= self.layout.width {
            return Err(ProtoError::InvalidField("viod"));
        }
        Ok(())
    }

    /// Encodes the handle for the iod whose data server is `server` and
    /// whose data directory has `identity`, tagged with `key`, into `out`.
    pub fn seal(
        &self,
        key: &Key,
        server: &SocketAddr,
        identity: u32,
        out: &mut [u8; DS_FH_LEN],
    ) -> Result<()> {
        self.validate()?;
        if identity == wire::UNKNOWN_IDENTITY {
            return Err(ProtoError::InvalidField("identity"));
        }
        let mut w = Writer::new(out);
        w.put(&MAGIC)?;
        w.u8(VERSION)?;
        w.u8(0)?;
        w.u32_le(key.id())?;
        w.put(&self.key.to_bytes())?;
        w.u32_le(self.layout.block_size)?;
        let small = |v: u32| u16::try_from(v).map_err(|_| ProtoError::Overflow);
        w.u16_le(small(self.layout.width)?)?;
        w.u16_le(small(self.layout.first_viod)?)?;
        w.u16_le(small(self.viod)?)?;
        w.u16_le(if self.read_only { FLAG_READ_ONLY } else { 0 })?;
        w.u32_le(self.epoch)?;
        w.zeros(TAG_LEN)?;
        let tag = tag(key, out, server, identity)?;
        out.get_mut(TAG_AT..)
            .ok_or(ProtoError::BufferTooSmall)?
            .copy_from_slice(&tag);
        Ok(())
    }

    /// Decodes `fh`, sent to the data server at `server` of the data
    /// directory `identity`, and checks its tag against `keys` (the
    /// insecure mode accepts no handle: a capability needs a key).
    #[cfg(not(nfsp_kernel))]
    pub fn open(
        fh: &[u8],
        keys: &Keys,
        server: &SocketAddr,
        identity: u32,
    ) -> core::result::Result<DsHandle, Refusal> {
        let Ok(whole) = <&[u8; DS_FH_LEN]>::try_from(fh) else {
            return Err(Refusal::Forged);
        };
        let mut r = Reader::new(fh);
        let head = (|| -> Result<(bool, u32)> {
            let ok = r.bytes(2)? == MAGIC && r.u8()? == VERSION && r.u8()? == 0;
            Ok((ok, r.u32_le()?))
        })();
        let Ok((true, key_id)) = head else {
            return Err(Refusal::Forged);
        };
        let key = keys.find(key_id).ok_or(Refusal::Forged)?;
        let want = tag(key, whole, server, identity).map_err(|_| Refusal::Forged)?;
        let got: [u8; TAG_LEN] = fh
            .get(TAG_AT..)
            .and_then(|t| t.try_into().ok())
            .ok_or(Refusal::Forged)?;
        if !tags_equal(&want, &got) {
            return Err(Refusal::Forged);
        }
        let body = (|| -> Result<DsHandle> {
            let key = FileKey::from_bytes(r.bytes(FILE_KEY_LEN)?)?;
            let layout = StripeLayout {
                block_size: r.u32_le()?,
                width: u32::from(r.u16_le()?),
                first_viod: u32::from(r.u16_le()?),
            };
            let viod = u32::from(r.u16_le()?);
            let flags = r.u16_le()?;
            if flags & !FLAG_READ_ONLY != 0 {
                return Err(ProtoError::InvalidField("flags"));
            }
            let h = DsHandle {
                key,
                layout,
                viod,
                epoch: r.u32_le()?,
                read_only: flags & FLAG_READ_ONLY != 0,
            };
            h.validate()?;
            Ok(h)
        })();
        body.map_err(|_| Refusal::Forged)
    }

    /// Whether an iod that holds `current` as the file's epoch serves it.
    #[cfg(not(nfsp_kernel))]
    pub fn check_epoch(&self, current: u32) -> core::result::Result<(), Refusal> {
        if self.epoch < current {
            Err(Refusal::Fenced)
        } else {
            Ok(())
        }
    }

    /// The local offset of `[offset, offset + len)`, a client's READ or
    /// WRITE: it must lie in one block, of this handle's viod (a flexfiles
    /// client never sends an RPC across a stripe unit when it stripes).
    /// A file of width 1 is not striped: its local file is the file, and
    /// a client's RPCs may span blocks.
    #[cfg(not(nfsp_kernel))]
    pub fn local_offset(&self, offset: u64, len: u64) -> Result<u64> {
        if self.layout.width == 1 {
            offset.checked_add(len).ok_or(ProtoError::Overflow)?;
            return Ok(offset);
        }
        let mut pieces = self.layout.pieces(offset, len.max(1))?;
        let p = pieces.next().ok_or(ProtoError::InvalidField("range"))?;
        if p.viod != self.viod {
            return Err(ProtoError::InvalidField("not this viod's block"));
        }
        if len > 0 && p.len < len {
            return Err(ProtoError::InvalidField("range crosses a block"));
        }
        Ok(p.local_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32, b: u8) -> Key {
        Key::new(id, [b; 32]).unwrap()
    }

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    const ID: u32 = 0x5eed_1d01;

    fn handle() -> DsHandle {
        DsHandle {
            key: FileKey::new(1, 2, 3),
            layout: StripeLayout::new(65536, 4, 1).unwrap(),
            viod: 2,
            epoch: 7,
            read_only: false,
        }
    }

    #[test]
    fn seal_and_open() {
        let k = key(5, 9);
        let keys = Keys::new(k, None).unwrap();
        let mut fh = [0u8; DS_FH_LEN];
        handle().seal(&k, &at(2049), ID, &mut fh).unwrap();
        assert_eq!(DS_FH_LEN, 64, "an NFSv3 filehandle");
        assert_eq!(DsHandle::open(&fh, &keys, &at(2049), ID), Ok(handle()));
        // A rotation's accepted key opens it too.
        let rotated = Keys::new(key(6, 1), Some(k)).unwrap();
        assert_eq!(DsHandle::open(&fh, &rotated, &at(2049), ID), Ok(handle()));
        // Another iod refuses it: its local file holds other blocks.
        assert_eq!(
            DsHandle::open(&fh, &keys, &at(2050), ID),
            Err(Refusal::Forged)
        );
        // So does an iod on another data directory at its address (wiped,
        // swapped): it holds no blocks of the file.
        assert_eq!(
            DsHandle::open(&fh, &keys, &at(2049), ID + 1),
            Err(Refusal::Forged)
        );
        // A handle needs a known identity.
        assert!(handle().seal(&k, &at(2049), 0, &mut fh).is_err());
        let ro = DsHandle {
            read_only: true,
            ..handle()
        };
        ro.seal(&k, &at(2049), ID, &mut fh).unwrap();
        assert_eq!(DsHandle::open(&fh, &keys, &at(2049), ID), Ok(ro));
    }

    #[test]
    fn forged_handles_are_refused() {
        let k = key(5, 9);
        let keys = Keys::new(k, None).unwrap();
        let mut fh = [0u8; DS_FH_LEN];
        let s = at(2049);
        handle().seal(&k, &s, ID, &mut fh).unwrap();
        for i in 0..DS_FH_LEN {
            let mut bad = fh;
            bad[i] ^= 1;
            assert_eq!(
                DsHandle::open(&bad, &keys, &s, ID),
                Err(Refusal::Forged),
                "byte {i}"
            );
        }
        assert_eq!(
            DsHandle::open(&fh[..DS_FH_LEN - 1], &keys, &s, ID),
            Err(Refusal::Forged)
        );
        let other = Keys::new(key(5, 8), None).unwrap();
        assert_eq!(
            DsHandle::open(&fh, &other, &s, ID),
            Err(Refusal::Forged),
            "same id, other key"
        );
        assert_eq!(
            DsHandle::open(&fh, &Keys::insecure(), &s, ID),
            Err(Refusal::Forged)
        );
        // Invalid fields are never sealed.
        let mut h = handle();
        h.viod = 4;
        assert!(h.seal(&k, &s, ID, &mut fh).is_err());
    }

    #[test]
    fn epochs_fence() {
        let h = handle();
        assert_eq!(h.check_epoch(7), Ok(()));
        assert_eq!(h.check_epoch(3), Ok(()));
        assert_eq!(h.check_epoch(8), Err(Refusal::Fenced));
    }

    #[test]
    fn offsets_map_to_the_dense_local_file() {
        let h = handle(); // B = 64 KiB, W = 4, first viod 1: viod 2 holds blocks 1, 5, 9, ...
        let b = 65536u64;
        assert_eq!(h.local_offset(b, b), Ok(0));
        assert_eq!(h.local_offset(5 * b + 100, 200), Ok(b + 100));
        assert_eq!(h.local_offset(9 * b, 0), Ok(2 * b));
        assert!(h.local_offset(0, 10).is_err(), "block 0 is viod 1's");
        assert!(h.local_offset(b + 10, b).is_err(), "crosses into block 2");
        assert!(h.local_offset(u64::MAX, 2).is_err());
        // Width 1: the local file is the file, RPCs may span blocks.
        let one = DsHandle {
            layout: StripeLayout::new(65536, 1, 0).unwrap(),
            viod: 0,
            ..h
        };
        assert_eq!(one.local_offset(100, 1 << 20), Ok(100));
        assert!(one.local_offset(u64::MAX, 2).is_err());
    }
}
