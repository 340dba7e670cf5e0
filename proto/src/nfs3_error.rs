// SPDX-License-Identifier: GPL-2.0
//! The NFSv3 READ reply that refuses a call: what a direct-mode READ gets
//! (sent by an iod, from the meta-server's address, like the data it could
//! not have) when no member of a viod can serve it, instead of nothing.
//!
//! Reply ([`READ_ERROR_REPLY_LEN`] = 32 bytes): xid, msg_type=REPLY(1),
//! reply_stat=MSG_ACCEPTED(0), verifier {AUTH_NONE(0), len 0},
//! accept_stat=SUCCESS(0), nfsstat3, post_op_attr FALSE.

use super::codec::{Reader, Writer};
use super::error::{ProtoError, Result};

/// NFS3ERR_JUKEBOX: the server cannot serve the call now; the client tries
/// again after a while (Linux: 5 s) instead of counting a timeout.
pub const NFS3ERR_JUKEBOX: u32 = 10008;
/// Encoded length of a READ reply that carries only an error status.
pub const READ_ERROR_REPLY_LEN: usize = 32;

/// Length of an accepted RPC reply's header with an empty AUTH_NONE
/// verifier: xid, REPLY, MSG_ACCEPTED, AUTH_NONE, 0, SUCCESS.
const RPC_ACCEPTED_LEN: usize = 24;

/// Encodes into `buf` the READ3 reply that refuses, with `status` (not
/// NFS3_OK), the call that `reply` (nfsd's successful reply, up to the
/// data) answers; returns [`READ_ERROR_REPLY_LEN`]. Only a reply accepted
/// with an empty AUTH_NONE verifier (what nfsd sends to AUTH_SYS and
/// AUTH_NONE callers) can be turned into one: anything else is refused.
pub fn encode_read_error(reply: &[u8], status: u32, buf: &mut [u8]) -> Result<usize> {
    if status == 0 {
        return Err(ProtoError::InvalidField("nfsstat3"));
    }
    let head = reply.get(..RPC_ACCEPTED_LEN).ok_or(ProtoError::Truncated)?;
    let mut r = Reader::new(head);
    let xid = r.u32_be()?;
    for (want, what) in [
        (1, "msg_type"),
        (0, "reply_stat"),
        (0, "verifier flavor"),
        (0, "verifier length"),
        (0, "accept_stat"),
    ] {
        if r.u32_be()? != want {
            return Err(ProtoError::InvalidField(what));
        }
    }
    let mut w = Writer::new(buf);
    for v in [xid, 1, 0, 0, 0, 0, status, 0] {
        w.u32_be(v)?;
    }
    Ok(w.position())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfs3::{Fattr3, ReadReplyPrefix, READ_REPLY_PREFIX_LEN};

    #[test]
    fn jukebox_reply() {
        let prefix = ReadReplyPrefix {
            xid: 0x0102_0304,
            attr: Fattr3 {
                ftype: 1,
                ..Fattr3::default()
            },
            count: 5,
            eof: false,
        };
        let mut header = [0u8; READ_REPLY_PREFIX_LEN];
        prefix.encode(&mut header).expect("prefix");
        let mut b = [0xffu8; 64];
        assert_eq!(
            encode_read_error(&header, NFS3ERR_JUKEBOX, &mut b),
            Ok(READ_ERROR_REPLY_LEN)
        );
        let words: Vec<u32> = b[..READ_ERROR_REPLY_LEN]
            .chunks(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(words, [0x0102_0304, 1, 0, 0, 0, 0, 10008, 0]);
        // never taken for a success prefix; never a status of 0
        assert!(ReadReplyPrefix::decode(&b[..READ_ERROR_REPLY_LEN], false).is_err());
        assert!(encode_read_error(&header, 0, &mut b).is_err());
        assert!(encode_read_error(&header, NFS3ERR_JUKEBOX, &mut b[..31]).is_err());
        assert!(encode_read_error(&header[..23], NFS3ERR_JUKEBOX, &mut b).is_err());
        // a verifier that is not an empty AUTH_NONE one: not rewritten
        let mut other = header;
        other[15] = 6;
        assert!(encode_read_error(&other, NFS3ERR_JUKEBOX, &mut b).is_err());
        let mut other = header;
        other[19] = 8;
        assert!(encode_read_error(&other, NFS3ERR_JUKEBOX, &mut b).is_err());
    }
}
