// SPDX-License-Identifier: GPL-2.0
//! The ONC-RPC + NFSv3 READ reply prefix the meta-server prebuilds for a
//! direct-mode READ (XDR, big-endian, no record marker over UDP), and a
//! minimal READ call codec (used by tests and tools).
//!
//! Reply prefix ([`READ_REPLY_PREFIX_LEN`] = 128 bytes): xid, msg_type=REPLY(1),
//! reply_stat=MSG_ACCEPTED(0), verifier {AUTH_NONE(0), len 0},
//! accept_stat=SUCCESS(0), nfsstat3=NFS3_OK(0), post_op_attr {TRUE, fattr3},
//! count, eof, opaque data length (= count). The iod appends `count` data
//! bytes and zero padding to a multiple of 4.

use super::codec::{Reader, Writer};
use super::error::{ProtoError, Result};

/// RPC program number of NFS.
pub const NFS_PROGRAM: u32 = 100003;
/// NFS version 3.
pub const NFS_V3: u32 = 3;
/// NFSPROC3_READ.
pub const NFSPROC3_READ: u32 = 6;
/// Encoded length of a fattr3.
pub const FATTR3_LEN: usize = 84;
/// Encoded length of the READ reply prefix.
pub const READ_REPLY_PREFIX_LEN: usize = 32 + FATTR3_LEN + 12;
/// Largest NFSv3 file handle.
pub const NFS3_FHSIZE: usize = 64;

/// XDR padding needed after `n` opaque bytes.
pub fn xdr_pad_len(n: usize) -> usize {
    (4 - (n % 4)) % 4
}

/// An NFSv3 timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct NfsTime3 {
    /// Seconds.
    pub seconds: u32,
    /// Nanoseconds.
    pub nseconds: u32,
}

/// NFSv3 file attributes (RFC 1813 fattr3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Fattr3 {
    /// ftype3 (1 = NF3REG).
    pub ftype: u32,
    /// Mode bits.
    pub mode: u32,
    /// Link count.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size (the real size for NFSP files).
    pub size: u64,
    /// Bytes used.
    pub used: u64,
    /// Device numbers (specdata1, specdata2).
    pub rdev: (u32, u32),
    /// File system id.
    pub fsid: u64,
    /// File id (inode).
    pub fileid: u64,
    /// Access time.
    pub atime: NfsTime3,
    /// Modification time.
    pub mtime: NfsTime3,
    /// Change time.
    pub ctime: NfsTime3,
}

impl Fattr3 {
    fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        for v in [self.ftype, self.mode, self.nlink, self.uid, self.gid] {
            w.u32_be(v)?;
        }
        w.u64_be(self.size)?;
        w.u64_be(self.used)?;
        w.u32_be(self.rdev.0)?;
        w.u32_be(self.rdev.1)?;
        w.u64_be(self.fsid)?;
        w.u64_be(self.fileid)?;
        for t in [self.atime, self.mtime, self.ctime] {
            w.u32_be(t.seconds)?;
            w.u32_be(t.nseconds)?;
        }
        Ok(())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let ftype = r.u32_be()?;
        if !(1..=7).contains(&ftype) {
            return Err(ProtoError::InvalidField("ftype"));
        }
        let mode = r.u32_be()?;
        let nlink = r.u32_be()?;
        let uid = r.u32_be()?;
        let gid = r.u32_be()?;
        let size = r.u64_be()?;
        let used = r.u64_be()?;
        let rdev = (r.u32_be()?, r.u32_be()?);
        let fsid = r.u64_be()?;
        let fileid = r.u64_be()?;
        let mut t = [NfsTime3::default(); 3];
        for x in t.iter_mut() {
            x.seconds = r.u32_be()?;
            x.nseconds = r.u32_be()?;
        }
        Ok(Fattr3 {
            ftype,
            mode,
            nlink,
            uid,
            gid,
            size,
            used,
            rdev,
            fsid,
            fileid,
            atime: t[0],
            mtime: t[1],
            ctime: t[2],
        })
    }
}

/// Everything in a successful READ3 reply except the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadReplyPrefix {
    /// RPC transaction id (copied from the call).
    pub xid: u32,
    /// Post-operation attributes.
    pub attr: Fattr3,
    /// Bytes returned.
    pub count: u32,
    /// End of file reached.
    pub eof: bool,
}

impl ReadReplyPrefix {
    /// Encode into `buf`; returns [`READ_REPLY_PREFIX_LEN`].
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        let out = buf
            .get_mut(..READ_REPLY_PREFIX_LEN)
            .ok_or(ProtoError::BufferTooSmall)?;
        let mut w = Writer::new(out);
        w.u32_be(self.xid)?;
        w.u32_be(1)?; // REPLY
        w.u32_be(0)?; // MSG_ACCEPTED
        w.u32_be(0)?; // AUTH_NONE
        w.u32_be(0)?; // verifier length
        w.u32_be(0)?; // SUCCESS
        w.u32_be(0)?; // NFS3_OK
        w.u32_be(1)?; // attributes_follow
        self.attr.encode(&mut w)?;
        w.u32_be(self.count)?;
        w.u32_be(self.eof as u32)?;
        w.u32_be(self.count)?; // opaque data length
        Ok(w.position())
    }

    /// Decode a prefix (exactly the prefix, or a whole reply when
    /// `allow_data` is true: then the data length and padding are checked
    /// and the data slice returned).
    pub fn decode(buf: &[u8], allow_data: bool) -> Result<(Self, &[u8])> {
        let mut r = Reader::new(buf);
        let xid = r.u32_be()?;
        let expect = |r: &mut Reader<'_>, v: u32, what: &'static str| -> Result<()> {
            if r.u32_be()? != v {
                Err(ProtoError::InvalidField(what))
            } else {
                Ok(())
            }
        };
        expect(&mut r, 1, "msg_type")?;
        expect(&mut r, 0, "reply_stat")?;
        let _flavor = r.u32_be()?;
        let vlen = r.u32_be()? as usize;
        if vlen > 400 {
            return Err(ProtoError::InvalidField("verifier"));
        }
        r.bytes(
            vlen.checked_add(xdr_pad_len(vlen))
                .ok_or(ProtoError::Overflow)?,
        )?;
        expect(&mut r, 0, "accept_stat")?;
        expect(&mut r, 0, "nfsstat3")?;
        expect(&mut r, 1, "attributes_follow")?;
        let attr = Fattr3::decode(&mut r)?;
        let count = r.u32_be()?;
        let eof = match r.u32_be()? {
            0 => false,
            1 => true,
            _ => return Err(ProtoError::InvalidField("eof")),
        };
        let dlen = r.u32_be()?;
        if dlen != count {
            return Err(ProtoError::InvalidField("count"));
        }
        let prefix = ReadReplyPrefix {
            xid,
            attr,
            count,
            eof,
        };
        if !allow_data {
            r.finish()?;
            return Ok((prefix, &[]));
        }
        let n = count as usize;
        let data = r.bytes(n)?;
        let pad = r.bytes(xdr_pad_len(n))?;
        if pad.iter().any(|b| *b != 0) {
            return Err(ProtoError::InvalidField("padding"));
        }
        r.finish()?;
        Ok((prefix, data))
    }
}

/// A READ3 call (AUTH_NONE or AUTH_SYS credentials; the body of the
/// credential is skipped on decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCall<'a> {
    /// Transaction id.
    pub xid: u32,
    /// File handle (<= 64 bytes).
    pub fh: &'a [u8],
    /// Offset.
    pub offset: u64,
    /// Count.
    pub count: u32,
}

impl<'a> ReadCall<'a> {
    /// Encode with AUTH_NONE credentials and verifier.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        if self.fh.len() > NFS3_FHSIZE {
            return Err(ProtoError::InvalidField("fh"));
        }
        let mut w = Writer::new(buf);
        w.u32_be(self.xid)?;
        w.u32_be(0)?; // CALL
        w.u32_be(2)?; // rpcvers
        w.u32_be(NFS_PROGRAM)?;
        w.u32_be(NFS_V3)?;
        w.u32_be(NFSPROC3_READ)?;
        w.u32_be(0)?; // cred AUTH_NONE
        w.u32_be(0)?;
        w.u32_be(0)?; // verf AUTH_NONE
        w.u32_be(0)?;
        w.u32_be(self.fh.len() as u32)?;
        w.put(self.fh)?;
        w.zeros(xdr_pad_len(self.fh.len()))?;
        w.u64_be(self.offset)?;
        w.u32_be(self.count)?;
        Ok(w.position())
    }

    /// Decode a READ3 call datagram.
    pub fn decode(buf: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(buf);
        let xid = r.u32_be()?;
        for (v, what) in [
            (0, "msg_type"),
            (2, "rpcvers"),
            (NFS_PROGRAM, "prog"),
            (NFS_V3, "vers"),
            (NFSPROC3_READ, "proc"),
        ] {
            if r.u32_be()? != v {
                return Err(ProtoError::InvalidField(what));
            }
        }
        for _ in 0..2 {
            let _flavor = r.u32_be()?;
            let len = r.u32_be()? as usize;
            if len > 400 {
                return Err(ProtoError::InvalidField("auth"));
            }
            r.bytes(len + xdr_pad_len(len))?;
        }
        let fhlen = r.u32_be()? as usize;
        if fhlen > NFS3_FHSIZE {
            return Err(ProtoError::InvalidField("fh"));
        }
        let fh = r.bytes(fhlen)?;
        r.bytes(xdr_pad_len(fhlen))?;
        let offset = r.u64_be()?;
        let count = r.u32_be()?;
        r.finish()?;
        Ok(ReadCall {
            xid,
            fh,
            offset,
            count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr() -> Fattr3 {
        Fattr3 {
            ftype: 1,
            mode: 0o644,
            nlink: 1,
            uid: 1000,
            gid: 1000,
            size: 6 << 20,
            used: 6 << 20,
            rdev: (0, 0),
            fsid: 0x42,
            fileid: 0x4242_4242,
            atime: NfsTime3 {
                seconds: 1,
                nseconds: 2,
            },
            mtime: NfsTime3 {
                seconds: 3,
                nseconds: 4,
            },
            ctime: NfsTime3 {
                seconds: 5,
                nseconds: 6,
            },
        }
    }

    #[test]
    fn reply_round_trip() {
        let p = ReadReplyPrefix {
            xid: 0xdeadbeef,
            attr: attr(),
            count: 5,
            eof: true,
        };
        let mut b = [0u8; 256];
        let n = p.encode(&mut b).unwrap();
        assert_eq!(n, READ_REPLY_PREFIX_LEN);
        assert_eq!(&b[..4], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(ReadReplyPrefix::decode(&b[..n], false), Ok((p, &[][..])));
        b[n..n + 5].copy_from_slice(b"hello");
        let (q, d) = ReadReplyPrefix::decode(&b[..n + 8], true).unwrap();
        assert_eq!(q, p);
        assert_eq!(d, b"hello");
        assert!(ReadReplyPrefix::decode(&b[..n + 7], true).is_err());
        assert!(ReadReplyPrefix::decode(&b[..n + 9], true).is_err());
        for k in 0..n {
            assert!(ReadReplyPrefix::decode(&b[..k], false).is_err());
        }
        assert_eq!(p.encode(&mut [0u8; 127]), Err(ProtoError::BufferTooSmall));
        let mut x = b;
        x[7] = 0;
        assert_eq!(
            ReadReplyPrefix::decode(&x[..n], false),
            Err(ProtoError::InvalidField("msg_type"))
        );
    }

    #[test]
    fn call_round_trip() {
        let c = ReadCall {
            xid: 9,
            fh: &[1, 2, 3, 4, 5],
            offset: 65536,
            count: 32768,
        };
        let mut b = [0u8; 256];
        let n = c.encode(&mut b).unwrap();
        assert_eq!(n % 4, 0);
        assert_eq!(ReadCall::decode(&b[..n]), Ok(c));
        for k in 0..n {
            assert!(ReadCall::decode(&b[..k]).is_err());
        }
        let long = [0u8; 65];
        assert!(ReadCall { fh: &long, ..c }.encode(&mut b).is_err());
        assert_eq!(xdr_pad_len(0), 0);
        assert_eq!(xdr_pad_len(5), 3);
    }
}
