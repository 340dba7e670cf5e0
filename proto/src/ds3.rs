// SPDX-License-Identifier: GPL-2.0
//! The NFSv3 subset an iod serves as a pNFS flexfiles data server (RFC
//! 8435 §2.1: NULL, READ, WRITE, COMMIT), over TCP: ONC RPC calls (RFC
//! 5531) and their replies, XDR (big-endian). User space only.
//!
//! Every decoder takes one record (the record marking is the server's) and
//! rejects what does not parse, with no panic path; a call for another
//! program, version or procedure decodes as such, so that the server
//! answers PROG_UNAVAIL, PROG_MISMATCH or PROC_UNAVAIL.

use super::codec::{Reader, Writer};
use super::error::{ProtoError, Result};

/// RPC program number of NFS.
pub const NFS_PROGRAM: u32 = 100_003;
/// NFS version 3.
pub const NFS_V3: u32 = 3;
/// NFSPROC3_NULL.
pub const PROC_NULL: u32 = 0;
/// NFSPROC3_READ.
pub const PROC_READ: u32 = 6;
/// NFSPROC3_WRITE.
pub const PROC_WRITE: u32 = 7;
/// NFSPROC3_COMMIT.
pub const PROC_COMMIT: u32 = 21;
/// Largest NFSv3 filehandle.
pub const FHSIZE: usize = 64;
/// Largest READ or WRITE count served (a flexfiles client's RPCs are
/// bounded by the stripe unit, at most 4 MiB).
pub const MAX_IO: u32 = 4 << 20;
/// Largest credential or verifier body (RFC 5531).
const MAX_AUTH: usize = 400;
/// AUTH_NONE.
pub const AUTH_NONE: u32 = 0;
/// AUTH_SYS.
pub const AUTH_SYS: u32 = 1;

/// `nfsstat3` values the data server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Nfsstat3 {
    /// NFS3_OK.
    Ok = 0,
    /// NFS3ERR_IO.
    Io = 5,
    /// NFS3ERR_ACCES.
    Acces = 13,
    /// NFS3ERR_NOSPC.
    Nospc = 28,
    /// NFS3ERR_INVAL.
    Inval = 22,
    /// NFS3ERR_STALE.
    Stale = 70,
    /// NFS3ERR_BADHANDLE.
    Badhandle = 10001,
    /// NFS3ERR_SERVERFAULT.
    Serverfault = 10006,
}

/// `stable_how`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StableHow {
    /// UNSTABLE.
    Unstable = 0,
    /// DATA_SYNC.
    DataSync = 1,
    /// FILE_SYNC.
    FileSync = 2,
}

/// The header of an RPC call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallHeader {
    /// Transaction id.
    pub xid: u32,
    /// Program.
    pub prog: u32,
    /// Version.
    pub vers: u32,
    /// Procedure.
    pub proc_: u32,
    /// Credential flavor (its body is skipped: a data server's filehandle
    /// is the capability).
    pub flavor: u32,
}

/// The arguments of a call the data server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Args<'a> {
    /// NULL.
    Null,
    /// READ3args.
    Read {
        /// Filehandle.
        fh: &'a [u8],
        /// File offset.
        offset: u64,
        /// Bytes asked.
        count: u32,
    },
    /// WRITE3args.
    Write {
        /// Filehandle.
        fh: &'a [u8],
        /// File offset.
        offset: u64,
        /// How stable the client wants it.
        stable: StableHow,
        /// The data (its length is the count).
        data: &'a [u8],
    },
    /// COMMIT3args.
    Commit {
        /// Filehandle.
        fh: &'a [u8],
        /// Range start.
        offset: u64,
        /// Range length (0: to the end).
        count: u32,
    },
}

fn pad(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn opaque<'a>(r: &mut Reader<'a>, max: usize) -> Result<&'a [u8]> {
    let len = r.u32_be()? as usize;
    if len > max {
        return Err(ProtoError::InvalidField("opaque length"));
    }
    let b = r.bytes(len)?;
    if r.bytes(pad(len))?.iter().any(|b| *b != 0) {
        return Err(ProtoError::InvalidField("padding"));
    }
    Ok(b)
}

/// Decodes the RPC call header of `record`; the reader is left at the
/// procedure's arguments.
pub fn decode_call<'a>(record: &'a [u8]) -> Result<(CallHeader, Reader<'a>)> {
    let mut r = Reader::new(record);
    let xid = r.u32_be()?;
    if r.u32_be()? != 0 {
        return Err(ProtoError::InvalidField("msg_type"));
    }
    if r.u32_be()? != 2 {
        return Err(ProtoError::InvalidField("rpcvers"));
    }
    let prog = r.u32_be()?;
    let vers = r.u32_be()?;
    let proc_ = r.u32_be()?;
    let flavor = r.u32_be()?;
    opaque(&mut r, MAX_AUTH)?;
    let _verf_flavor = r.u32_be()?;
    opaque(&mut r, MAX_AUTH)?;
    Ok((
        CallHeader {
            xid,
            prog,
            vers,
            proc_,
            flavor,
        },
        r,
    ))
}

/// Decodes the arguments of an NFSv3 procedure the data server serves;
/// `None` for another procedure (PROC_UNAVAIL).
pub fn decode_args<'a>(proc_: u32, mut r: Reader<'a>) -> Result<Option<Args<'a>>> {
    let args = match proc_ {
        PROC_NULL => Args::Null,
        PROC_READ => Args::Read {
            fh: opaque(&mut r, FHSIZE)?,
            offset: r.u64_be()?,
            count: r.u32_be()?,
        },
        PROC_WRITE => {
            let fh = opaque(&mut r, FHSIZE)?;
            let offset = r.u64_be()?;
            let count = r.u32_be()?;
            let stable = match r.u32_be()? {
                0 => StableHow::Unstable,
                1 => StableHow::DataSync,
                2 => StableHow::FileSync,
                _ => return Err(ProtoError::InvalidField("stable")),
            };
            let data = opaque(&mut r, MAX_IO as usize)?;
            if data.len() != count as usize {
                return Err(ProtoError::InvalidField("write count"));
            }
            Args::Write {
                fh,
                offset,
                stable,
                data,
            }
        }
        PROC_COMMIT => Args::Commit {
            fh: opaque(&mut r, FHSIZE)?,
            offset: r.u64_be()?,
            count: r.u32_be()?,
        },
        _ => return Ok(None),
    };
    r.finish()?;
    Ok(Some(args))
}

/// How an accepted call ended, before its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// SUCCESS: results follow.
    Success,
    /// PROG_UNAVAIL.
    ProgUnavail,
    /// PROG_MISMATCH: only NFSv3.
    ProgMismatch,
    /// PROC_UNAVAIL.
    ProcUnavail,
    /// GARBAGE_ARGS.
    GarbageArgs,
}

/// Writes the reply header of an accepted call (AUTH_NONE verifier).
pub fn encode_accepted(w: &mut Writer<'_>, xid: u32, how: Accept) -> Result<()> {
    w.u32_be(xid)?;
    w.u32_be(1)?; // REPLY
    w.u32_be(0)?; // MSG_ACCEPTED
    w.u32_be(AUTH_NONE)?;
    w.u32_be(0)?;
    match how {
        Accept::Success => w.u32_be(0),
        Accept::ProgUnavail => w.u32_be(1),
        Accept::ProgMismatch => {
            w.u32_be(2)?;
            w.u32_be(NFS_V3)?;
            w.u32_be(NFS_V3)
        }
        Accept::ProcUnavail => w.u32_be(3),
        Accept::GarbageArgs => w.u32_be(4),
    }
}

/// Writes the reply to a call whose credential flavor is refused
/// (MSG_DENIED, AUTH_ERROR, AUTH_BADCRED).
pub fn encode_bad_cred(w: &mut Writer<'_>, xid: u32) -> Result<()> {
    w.u32_be(xid)?;
    w.u32_be(1)?; // REPLY
    w.u32_be(1)?; // MSG_DENIED
    w.u32_be(1)?; // AUTH_ERROR
    w.u32_be(1) // AUTH_BADCRED
}

/// Writes READ3res after the reply header: `data` is written by the
/// caller after this prefix (then [`pad_len`] zero bytes).
pub fn encode_read_ok(w: &mut Writer<'_>, count: u32, eof: bool) -> Result<()> {
    w.u32_be(Nfsstat3::Ok as u32)?;
    w.u32_be(0)?; // post_op_attr: none (clients ignore a DS's)
    w.u32_be(count)?;
    w.u32_be(u32::from(eof))?;
    w.u32_be(count)
}

/// Zero bytes that follow `n` opaque bytes.
pub fn pad_len(n: usize) -> usize {
    pad(n)
}

/// Writes a failed READ3res, WRITE3res or COMMIT3res.
pub fn encode_error(w: &mut Writer<'_>, proc_: u32, status: Nfsstat3) -> Result<()> {
    w.u32_be(status as u32)?;
    match proc_ {
        PROC_READ => w.u32_be(0), // post_op_attr
        _ => {
            w.u32_be(0)?; // wcc_data: no pre_op_attr
            w.u32_be(0) // no post_op_attr
        }
    }
}

/// Writes WRITE3res (success).
pub fn encode_write_ok(
    w: &mut Writer<'_>,
    count: u32,
    committed: StableHow,
    verf: [u8; 8],
) -> Result<()> {
    w.u32_be(Nfsstat3::Ok as u32)?;
    w.u32_be(0)?;
    w.u32_be(0)?;
    w.u32_be(count)?;
    w.u32_be(committed as u32)?;
    w.put(&verf)
}

/// Writes COMMIT3res (success).
pub fn encode_commit_ok(w: &mut Writer<'_>, verf: [u8; 8]) -> Result<()> {
    w.u32_be(Nfsstat3::Ok as u32)?;
    w.u32_be(0)?;
    w.u32_be(0)?;
    w.put(&verf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(proc_: u32, flavor: u32, args: &[u8]) -> std::vec::Vec<u8> {
        let mut b = std::vec![0u8; 512 + args.len()];
        let mut w = Writer::new(&mut b);
        for v in [7, 0, 2, NFS_PROGRAM, NFS_V3, proc_, flavor] {
            w.u32_be(v).unwrap();
        }
        // AUTH_SYS body: stamp, machine "c", uid, gid, no gids.
        let body: &[u32] = if flavor == AUTH_SYS {
            &[20, 1, 0x63000000, 0, 0, 0]
        } else {
            &[0]
        };
        if flavor == AUTH_SYS {
            w.u32_be(20).unwrap();
            for v in &body[1..] {
                w.u32_be(*v).unwrap();
            }
        } else {
            w.u32_be(0).unwrap();
        }
        w.u32_be(AUTH_NONE).unwrap();
        w.u32_be(0).unwrap();
        w.put(args).unwrap();
        let n = w.position();
        b.truncate(n);
        b
    }

    fn be(words: &[u32]) -> std::vec::Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn decodes_read_write_commit() {
        let fh = [1u8, 2, 3, 4, 5];
        let mut args = be(&[5]);
        args.extend_from_slice(&fh);
        args.extend_from_slice(&[0, 0, 0]);
        args.extend(be(&[0, 65536, 4096]));
        let rec = call(PROC_READ, AUTH_SYS, &args);
        let (h, r) = decode_call(&rec).unwrap();
        assert_eq!(
            (h.xid, h.prog, h.vers, h.proc_, h.flavor),
            (7, NFS_PROGRAM, 3, PROC_READ, AUTH_SYS)
        );
        assert_eq!(
            decode_args(h.proc_, r).unwrap(),
            Some(Args::Read {
                fh: &fh,
                offset: 65536,
                count: 4096
            })
        );

        let mut w = be(&[5]);
        w.extend_from_slice(&fh);
        w.extend_from_slice(&[0, 0, 0]);
        w.extend(be(&[1, 2, 3, 2, 3]));
        w.extend_from_slice(b"abc\0");
        let rec = call(PROC_WRITE, AUTH_NONE, &w);
        let (h, r) = decode_call(&rec).unwrap();
        assert_eq!(
            decode_args(h.proc_, r).unwrap(),
            Some(Args::Write {
                fh: &fh,
                offset: (1 << 32) | 2,
                stable: StableHow::FileSync,
                data: b"abc"
            })
        );
        // Another procedure decodes as such: PROC_UNAVAIL.
        let rec = call(1, AUTH_NONE, &[]);
        let (h, r) = decode_call(&rec).unwrap();
        assert_eq!(decode_args(h.proc_, r), Ok(None));
    }

    #[test]
    fn rejects_malformed_calls() {
        let fh = [9u8; 4];
        let mut w = be(&[4]);
        w.extend_from_slice(&fh);
        w.extend(be(&[0, 0, 4, 0]));
        w.extend(be(&[3]));
        w.extend_from_slice(b"abc\0");
        let rec = call(PROC_WRITE, AUTH_NONE, &w);
        let (h, r) = decode_call(&rec).unwrap();
        assert!(
            decode_args(h.proc_, r).is_err(),
            "count 4 with 3 data bytes"
        );
        let mut long = be(&[65]);
        long.extend_from_slice(&[0u8; 68]);
        long.extend(be(&[0, 0, 1]));
        let rec = call(PROC_READ, AUTH_NONE, &long);
        let (h, r) = decode_call(&rec).unwrap();
        assert!(decode_args(h.proc_, r).is_err(), "a 65-byte filehandle");
        for n in 0..rec.len() {
            // Truncated records never decode (nor panic).
            if let Ok((h, r)) = decode_call(&rec[..n]) {
                assert!(decode_args(h.proc_, r).is_err());
            }
        }
        let mut reply = rec.clone();
        reply[7] = 1;
        assert!(decode_call(&reply).is_err(), "a reply is not a call");
    }

    #[test]
    fn encodes_replies() {
        let mut b = [0u8; 64];
        let mut w = Writer::new(&mut b);
        encode_accepted(&mut w, 9, Accept::ProgMismatch).unwrap();
        assert_eq!(&b[..32], &be(&[9, 1, 0, 0, 0, 2, 3, 3])[..]);
        let mut w = Writer::new(&mut b);
        encode_write_ok(&mut w, 3, StableHow::Unstable, [1; 8]).unwrap();
        assert_eq!(w.position(), 28);
        assert_eq!(pad_len(3), 1);
        assert_eq!(pad_len(4), 0);
    }
}
