// SPDX-License-Identifier: GPL-2.0
//! The iod as a pNFS flexfiles data server (NFSv3 over TCP): file offsets
//! map to the dense local file, holes read as zeros, forged or misdirected
//! filehandles are refused, other programs and versions get the RPC
//! answers a Linux client expects.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use common::meta::test_keys;
use common::{spawn_iod_with, Opts};
use nfsp_proto::dsfh::{DsHandle, DS_FH_LEN};
use nfsp_proto::filekey::FileKey;
use nfsp_proto::stripe::StripeLayout;

const B: u64 = 65536;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Rpc {
    s: TcpStream,
    xid: u32,
}

fn be(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

fn opaque(b: &[u8]) -> Vec<u8> {
    let mut v = be(&[b.len() as u32]);
    v.extend_from_slice(b);
    v.resize(v.len() + (4 - b.len() % 4) % 4, 0);
    v
}

impl Rpc {
    fn connect(a: SocketAddr) -> Rpc {
        Rpc {
            s: TcpStream::connect(a).expect("connect to the data server"),
            xid: 1,
        }
    }

    /// One call (AUTH_SYS uid 1000 like a flexfiles client); the reply's
    /// words after the xid.
    fn call(&mut self, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        self.xid += 1;
        let mut m = be(&[self.xid, 0, 2, prog, vers, proc_, 1]);
        m.extend(opaque(&be(&[0, 0, 1000, 1000, 0])[..])); // stamp, "", uid, gid, no gids
        m.extend(be(&[0, 0]));
        m.extend_from_slice(args);
        let mark = 0x8000_0000u32 | m.len() as u32;
        self.s.write_all(&mark.to_be_bytes()).unwrap();
        self.s.write_all(&m).unwrap();
        let mut mk = [0u8; 4];
        self.s.read_exact(&mut mk).unwrap();
        let len = (u32::from_be_bytes(mk) & 0x7fff_ffff) as usize;
        let mut r = vec![0u8; len];
        self.s.read_exact(&mut r).unwrap();
        assert_eq!(
            u32::from_be_bytes(r[..4].try_into().unwrap()),
            self.xid,
            "xid"
        );
        r.split_off(4)
    }

    fn nfs(&mut self, proc_: u32, args: &[u8]) -> Vec<u8> {
        let r = self.call(100_003, 3, proc_, args);
        // REPLY, MSG_ACCEPTED, verifier AUTH_NONE, SUCCESS
        assert_eq!(&r[..20], &be(&[1, 0, 0, 0, 0])[..], "accepted");
        r[20..].to_vec()
    }
}

fn word(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes(b[4 * i..4 * i + 4].try_into().unwrap())
}

fn write_args(fh: &[u8], off: u64, stable: u32, data: &[u8]) -> Vec<u8> {
    let mut a = opaque(fh);
    a.extend(off.to_be_bytes());
    a.extend(be(&[data.len() as u32, stable]));
    a.extend(opaque(data));
    a
}

fn read_args(fh: &[u8], off: u64, count: u32) -> Vec<u8> {
    let mut a = opaque(fh);
    a.extend(off.to_be_bytes());
    a.extend(be(&[count]));
    a
}

/// The identity of the data directory `dir` (an iod has started on it).
fn identity_of(dir: &std::path::Path) -> u32 {
    let text = std::fs::read_to_string(dir.join("nfsp-identity")).unwrap();
    u32::from_str_radix(text.trim_end(), 16).unwrap()
}

#[test]
fn serves_striped_reads_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ds: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let o = Opts {
        extra: vec!["--ds-listen".into(), ds.to_string()],
        ..Opts::default()
    };
    let _iod = spawn_iod_with(dir.path(), &o);
    let id = identity_of(dir.path());
    let key = test_keys();
    let sign = *key.signing().unwrap();
    // Viod 1 of a 3-wide file whose block 0 is on viod 2: viod 1 holds
    // blocks 2, 5, 8, ... at local offsets 0, B, 2B, ...
    let h = DsHandle {
        key: FileKey::new(7, 8, 9),
        layout: StripeLayout::new(B as u32, 3, 2).unwrap(),
        viod: 1,
        epoch: 1,
        read_only: false,
    };
    let mut fh = [0u8; DS_FH_LEN];
    h.seal(&sign, &ds, id, &mut fh).unwrap();
    let mut c = Rpc::connect(ds);

    // NULL.
    assert!(c.nfs(0, &[]).is_empty());

    // WRITE FILE_SYNC of block 5, then block 2 UNSTABLE and a COMMIT.
    let block5: Vec<u8> = (0..B).map(|i| (i % 251) as u8).collect();
    let r = c.nfs(7, &write_args(&fh, 5 * B, 2, &block5));
    assert_eq!(word(&r, 0), 0, "WRITE status");
    assert_eq!(
        (word(&r, 3), word(&r, 4)),
        (B as u32, 2),
        "count, FILE_SYNC"
    );
    let verf = r[20..28].to_vec();
    let r = c.nfs(7, &write_args(&fh, 2 * B + 10, 0, b"hello"));
    assert_eq!((word(&r, 0), word(&r, 4)), (0, 0), "UNSTABLE");
    assert_eq!(r[20..28], verf[..], "one verifier while the iod runs");
    let r = c.nfs(21, &read_args(&fh, 0, 0));
    assert_eq!(word(&r, 0), 0, "COMMIT status");
    assert_eq!(r[12..20], verf[..], "COMMIT verifier");

    // The local file is dense: block 5 at B, block 2 at 0.
    let local = {
        let mut p = [0u8; nfsp_proto::filekey::LOCAL_PATH_LEN];
        dir.path().join(h.key.write_local_path(&mut p).unwrap())
    };
    let bytes = std::fs::read(&local).unwrap();
    assert_eq!(bytes.len() as u64, 2 * B);
    assert_eq!(&bytes[10..15], b"hello");
    assert_eq!(&bytes[B as usize..], &block5[..]);

    // READ back; the hole in block 2 reads as zeros; the local file's end
    // is the file's end: a short READ there, with EOF.
    let r = c.nfs(6, &read_args(&fh, 5 * B + 100, 1000));
    assert_eq!(
        (word(&r, 0), word(&r, 2), word(&r, 3), word(&r, 4)),
        (0, 1000, 0, 1000)
    );
    assert_eq!(&r[20..1020], &block5[100..1100]);
    let r = c.nfs(6, &read_args(&fh, 2 * B + 1000, 4096));
    assert_eq!(word(&r, 0), 0);
    assert!(r[20..20 + 4096].iter().all(|b| *b == 0), "a hole is zeros");
    let r = c.nfs(6, &read_args(&fh, 6 * B - 100, 100));
    assert_eq!(
        (word(&r, 2), word(&r, 3)),
        (100, 0),
        "a full READ: other viods may follow"
    );
    let r = c.nfs(6, &read_args(&fh, 6 * B - 100, 200));
    assert_eq!(word(&r, 0), 22, "across a block");
    let r = c.nfs(6, &read_args(&fh, 8 * B, 4096));
    assert_eq!(
        (word(&r, 0), word(&r, 2), word(&r, 3)),
        (0, 0, 1),
        "past the end: short, EOF"
    );

    // A READ layout's handle: reads, never writes.
    let mut ro = [0u8; DS_FH_LEN];
    DsHandle {
        read_only: true,
        ..h
    }
    .seal(&sign, &ds, id, &mut ro)
    .unwrap();
    assert_eq!(word(&c.nfs(6, &read_args(&ro, 2 * B + 10, 5)), 0), 0);
    assert_eq!(
        word(&c.nfs(7, &write_args(&ro, 2 * B, 2, b"x")), 0),
        13,
        "ACCES"
    );
    assert_eq!(word(&c.nfs(21, &read_args(&ro, 0, 0)), 0), 13, "ACCES");

    // Not this viod's block, or across a block: NFS3ERR_INVAL.
    let r = c.nfs(6, &read_args(&fh, 0, 10));
    assert_eq!(word(&r, 0), 22);
    let r = c.nfs(7, &write_args(&fh, 3 * B - 2, 0, b"abcd"));
    assert_eq!(word(&r, 0), 22, "a write across blocks 2 and 3");

    // Forged: one bit changed, another key, another iod's handle.
    let mut bad = fh;
    bad[20] ^= 1;
    assert_eq!(
        word(&c.nfs(6, &read_args(&bad, 2 * B, 10)), 0),
        10001,
        "BADHANDLE"
    );
    let other = nfsp_proto::auth::Key::new(99, [7; 32]).unwrap();
    let mut fh2 = [0u8; DS_FH_LEN];
    h.seal(&other, &ds, id, &mut fh2).unwrap();
    assert_eq!(word(&c.nfs(7, &write_args(&fh2, 2 * B, 2, b"x")), 0), 10001);
    let elsewhere: SocketAddr = "127.0.0.1:1".parse().unwrap();
    h.seal(&sign, &elsewhere, id, &mut fh2).unwrap();
    assert_eq!(
        word(&c.nfs(21, &read_args(&fh2, 0, 0)), 0),
        10001,
        "for another iod"
    );
    h.seal(&sign, &ds, id ^ 1, &mut fh2).unwrap();
    assert_eq!(
        word(&c.nfs(6, &read_args(&fh2, 2 * B, 10)), 0),
        10001,
        "for another data directory"
    );
    assert_eq!(&std::fs::read(&local).unwrap(), &bytes, "nothing applied");

    // Other programs (the LOCALIO probe), versions and procedures.
    let r = c.call(400_122, 1, 0, &[]);
    assert_eq!(&r[..20], &be(&[1, 0, 0, 0, 1])[..], "PROG_UNAVAIL");
    let r = c.call(100_003, 4, 0, &[]);
    assert_eq!(
        &r[..28],
        &be(&[1, 0, 0, 0, 2, 3, 3])[..],
        "PROG_MISMATCH 3..3"
    );
    let r = c.call(100_003, 3, 1, &[]);
    assert_eq!(
        &r[..20],
        &be(&[1, 0, 0, 0, 3])[..],
        "PROC_UNAVAIL (GETATTR)"
    );
    let r = c.call(100_003, 3, 6, &be(&[70]));
    assert_eq!(&r[..20], &be(&[1, 0, 0, 0, 4])[..], "GARBAGE_ARGS");

    // Many connections at once, each served.
    let mut conns: Vec<Rpc> = (0..16).map(|_| Rpc::connect(ds)).collect();
    for c in &mut conns {
        let r = c.nfs(6, &read_args(&fh, 2 * B + 10, 5));
        assert_eq!(&r[20..25], b"hello");
    }

    // Not an RPC call: the connection is closed, the server goes on.
    let mut junk = TcpStream::connect(ds).unwrap();
    junk.write_all(&[0x80, 0, 0, 4, 1, 2, 3, 4]).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(junk.read(&mut b).unwrap_or(0), 0, "closed");
    assert!(c.nfs(0, &[]).is_empty());
}

/// A truncate from the meta-server that raises the file's layout epoch
/// fences the data-server filehandles minted before: their READ, WRITE and
/// COMMIT get NFS3ERR_STALE and write nothing, across an iod restart;
/// handles of the new epoch are served.
#[test]
fn fences_handles_of_older_layout_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let ds: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let o = Opts {
        extra: vec!["--ds-listen".into(), ds.to_string()],
        ..Opts::default()
    };
    let iod = spawn_iod_with(dir.path(), &o);
    let id = identity_of(dir.path());
    let sign = *test_keys().signing().unwrap();
    let layout = StripeLayout::new(B as u32, 1, 0).unwrap();
    let key = FileKey::new(3, 4, 5);
    let handle = |epoch| {
        let mut fh = [0u8; DS_FH_LEN];
        DsHandle {
            key,
            layout,
            viod: 0,
            epoch,
            read_only: false,
        }
        .seal(&sign, &ds, id, &mut fh)
        .unwrap();
        fh
    };
    let (old, new) = (handle(0), handle(1));
    let mut c = Rpc::connect(ds);
    assert_eq!(
        word(&c.nfs(7, &write_args(&old, 0, 2, b"abcdef")), 0),
        0,
        "before the fence"
    );

    let meta = common::meta::Meta::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![vec![iod.addr]],
        layout,
        key,
    );
    for ack in meta.truncate(3, 1) {
        assert_eq!(ack.status, nfsp_proto::wire::Status::Ok);
    }
    const STALE: u32 = 70;
    assert_eq!(
        word(&c.nfs(7, &write_args(&old, 0, 2, b"late")), 0),
        STALE,
        "WRITE"
    );
    assert_eq!(word(&c.nfs(6, &read_args(&old, 0, 3)), 0), STALE, "READ");
    assert_eq!(word(&c.nfs(21, &read_args(&old, 0, 0)), 0), STALE, "COMMIT");
    let local = {
        let mut p = [0u8; nfsp_proto::filekey::LOCAL_PATH_LEN];
        dir.path().join(key.write_local_path(&mut p).unwrap())
    };
    assert_eq!(std::fs::read(&local).unwrap(), b"abc", "nothing written");
    assert_eq!(
        word(&c.nfs(7, &write_args(&new, 3, 2, b"XY")), 0),
        0,
        "the new epoch"
    );
    // The meta-server asks for the local length (what clients wrote).
    let reply = meta.call(iod.addr, nfsp_proto::wire::Body::Length(key));
    match meta.open(&reply).map(|m| m.body) {
        Some(nfsp_proto::wire::Body::Ack(a)) => {
            assert_eq!(
                (a.op, a.status, a.value),
                (
                    nfsp_proto::wire::MsgType::Length,
                    nfsp_proto::wire::Status::Ok,
                    5
                )
            )
        }
        other => panic!("LENGTH answered {other:?}"),
    }

    // The epoch outlives the iod.
    drop(c);
    drop(iod);
    let _iod = spawn_iod_with(dir.path(), &o);
    let mut c = Rpc::connect(ds);
    assert_eq!(
        word(&c.nfs(7, &write_args(&old, 0, 2, b"late")), 0),
        STALE,
        "after a restart"
    );
    let r = c.nfs(6, &read_args(&new, 0, 10));
    assert_eq!((word(&r, 0), word(&r, 2)), (0, 5));
    assert_eq!(&r[20..25], b"abcXY");
    assert_eq!(
        identity_of(dir.path()),
        id,
        "the data directory keeps its identity"
    );

    // Wiped: the iod starts as another data directory and serves none of
    // the handles minted for the old one (a hole of zeros otherwise).
    drop(c);
    drop(_iod);
    std::fs::remove_dir_all(dir.path()).unwrap();
    let _iod = spawn_iod_with(dir.path(), &o);
    assert_ne!(identity_of(dir.path()), id);
    let mut c = Rpc::connect(ds);
    assert_eq!(
        word(&c.nfs(6, &read_args(&new, 0, 10)), 0),
        10001,
        "READ after a wipe: BADHANDLE"
    );
    assert_eq!(
        word(&c.nfs(7, &write_args(&new, 0, 2, b"x")), 0),
        10001,
        "WRITE after a wipe"
    );
}
