// SPDX-License-Identifier: GPL-2.0
//! The fuzz checks, shared by the cargo-fuzz targets (`proto/fuzz`) and
//! the seed replay of `cargo test` (`proto/tests/fuzz_seeds.rs`), and the
//! generator of the committed seed corpus ([`seeds`]).
//!
//! Only with the `fuzzing` feature: this module uses `std` (vectors,
//! strings) and is never part of the kernel module, which includes the
//! other files one by one.
//!
//! Each check takes arbitrary bytes, returns when its properties hold and
//! panics when one does not: decoding never panics, whatever decodes
//! re-encodes to the same bytes (or value), and what one party sends the
//! other accepts.

extern crate std;

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use super::auth::{self, keyfile, Key, Keys, KEY_LEN};
use super::control::{self, Answer, Command, ErrorLine, IodState, ListLine, Members};
use super::crc32c::crc32c;
use super::error::ProtoError;
use super::filekey::{FileKey, FILE_NAME_LEN, LOCAL_PATH_LEN};
use super::journal::{Entries, Entry, ENTRY_LEN};
use super::metafile::{MetaHeader, HEADER_LEN as META_LEN};
use super::nfs3::{Fattr3, NfsTime3, ReadCall, ReadReplyPrefix, READ_REPLY_PREFIX_LEN};
use super::stripe::StripeLayout;
use super::unlink::{UnlinkAck, UnlinkRecord, ACK_LEN, RECORD_LEN};
use super::wire::{
    self, Ack, Body, Chain, ChainMember, Commit, Hop, IodStats, List, ListEntry, ListReply,
    ListRequest, Message, MsgType, Read, ReadReply, ReplySpec, RequestId, Status, Truncate, Unlink,
    Write, AUTH_TAG_LEN, AUTH_TAG_OFFSET, HEADER_LEN, KEY_ID_OFFSET, MAX_CHAIN, MAX_DATAGRAM,
    MAX_DATA_PER_MSG, MAX_LIST_ENTRIES, MAX_UNLINK_KEYS,
};

/// A check: returns, or panics on the property that does not hold.
pub type Check = fn(&[u8]);

/// Every fuzz target: its name (the binary in `proto/fuzz`, the seed
/// directory `proto/fuzz/seeds/<name>`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("metafile", metafile),
    ("wire", wire),
    ("unlink", unlink),
    ("control", control),
    ("nfs3", nfs3),
    ("filekey", filekey),
    ("journal", journal),
    ("auth", auth),
    ("restamp", restamp),
    ("ds3", ds3),
    ("dsfh", dsfh),
    ("ffreturn", ffreturn),
];

/// The data-server address the `dsfh` seeds are sealed for.
fn ds_addr() -> core::net::SocketAddr {
    core::net::SocketAddr::from(([10, 0, 0, 1], 7000))
}

/// The data directory identity of the iod at [`ds_addr`].
const DS_IDENTITY: u32 = 0x0d5d_1d01;

/// `ds3` target: an RPC record a pNFS client sends an iod decodes without
/// panicking, within the limits a data server relies on.
pub fn ds3(data: &[u8]) {
    use super::ds3::{decode_args, decode_call, Args, FHSIZE, MAX_IO};
    let Ok((call, args)) = decode_call(data) else {
        return;
    };
    match decode_args(call.proc_, args) {
        Ok(Some(Args::Read { fh, .. })) | Ok(Some(Args::Commit { fh, .. })) => {
            assert!(fh.len() <= FHSIZE);
        }
        Ok(Some(Args::Write { fh, data, .. })) => {
            assert!(fh.len() <= FHSIZE && data.len() <= MAX_IO as usize);
        }
        Ok(Some(Args::Null)) | Ok(None) | Err(_) => {}
    }
}

/// `dsfh` target: a filehandle a client presents opens only if it is
/// exactly what the module would seal (then it maps offsets safely).
pub fn dsfh(data: &[u8]) {
    use super::dsfh::{DsHandle, DS_FH_LEN};
    let keys = test_keys();
    if let Ok(h) = DsHandle::open(data, &keys, &ds_addr(), DS_IDENTITY) {
        let sign = keys.find(u32::from_le_bytes([data[4], data[5], data[6], data[7]]));
        let mut again = [0u8; DS_FH_LEN];
        h.seal(
            sign.expect("the key that opened it"),
            &ds_addr(),
            DS_IDENTITY,
            &mut again,
        )
        .expect("an opened handle seals again");
        assert_eq!(&again[..], data);
        let _ = h.local_offset(u64::MAX - 1, 4096);
        let _ = h.local_offset(0, u64::MAX);
    }
}

/// `ffreturn` target: the body of a LAYOUTRETURN a pNFS client sends the
/// meta-server yields at most its cap of data-server errors, each read
/// from the body's own bytes, or an error; never a panic.
pub fn ffreturn(data: &[u8]) {
    let mut n = 0usize;
    let r = super::ffl::for_each_return_error(data, |_| n += 1);
    // Each error takes 24 bytes of the body.
    assert!(n * 24 <= data.len());
    if r.is_ok() {
        assert!(n <= 256);
    }
}

/// Id of the fixed test signing key.
pub const TEST_SIGN_ID: u32 = 0x7e57_0001;
/// Id of the fixed test accepted-only key.
pub const TEST_ACCEPT_ID: u32 = 0x7e57_0002;

fn test_key_bytes(salt: u8) -> [u8; KEY_LEN] {
    // Fixed and public: these keys only sign seeds, never a cluster.
    core::array::from_fn(|i| salt ^ (i as u8).wrapping_mul(37))
}

/// The fixed test signing key ([`TEST_SIGN_ID`]).
pub fn test_key() -> Key {
    Key::new(TEST_SIGN_ID, test_key_bytes(0x51)).expect("valid test key")
}

/// The fixed test accepted-only key ([`TEST_ACCEPT_ID`]).
pub fn test_accept_key() -> Key {
    Key::new(TEST_ACCEPT_ID, test_key_bytes(0xa3)).expect("valid test key")
}

/// Keys that sign with [`test_key`] and also accept [`test_accept_key`].
pub fn test_keys() -> Keys {
    Keys::new(test_key(), Some(test_accept_key())).expect("distinct ids")
}

/// A copy of `datagram` with the key id and the tag zeroed (what
/// [`Message::encode`] writes before [`wire::seal`]).
fn unsigned(datagram: &[u8]) -> Vec<u8> {
    let mut d = datagram.to_vec();
    if let Some(f) = d.get_mut(KEY_ID_OFFSET..KEY_ID_OFFSET + 4) {
        f.fill(0);
    }
    if let Some(f) = d.get_mut(AUTH_TAG_OFFSET..AUTH_TAG_OFFSET + AUTH_TAG_LEN) {
        f.fill(0);
    }
    d
}

/// `wire` target: `Message::decode`; what decodes re-encodes to the same
/// bytes (key id and tag aside), seals and opens under the test keys, and
/// its lists (READ hops and forwarding, chains, LIST_REPLY order) hold.
pub fn wire(data: &[u8]) {
    let Ok(m) = Message::decode(data) else {
        return;
    };
    // A decoded message re-encodes to exactly its length: no slack needed.
    let mut buf = vec![0u8; data.len()];
    let n = m.encode(&mut buf).expect("a decoded message re-encodes");
    assert_eq!(&buf[..n], &unsigned(data)[..], "encode(decode(x)) == x");
    let keys = test_keys();
    assert_eq!(m.seal(&keys, &mut buf), Ok(n));
    let opened = wire::open(&keys, &buf[..n]).expect("a sealed message opens");
    assert_eq!(
        opened,
        Message {
            key_id: TEST_SIGN_ID,
            auth_tag: opened.auth_tag,
            ..m
        }
    );
    assert_eq!(
        wire::open(&Keys::insecure(), &buf[..n]),
        Err(ProtoError::UnknownKey),
        "the insecure mode refuses signed messages"
    );
    match m.body {
        Body::Read(r) => read_forward(&m, &r, data.len()),
        Body::Write(w) => walk_chain(&w.chain),
        Body::Commit(c) => walk_chain(&c.chain),
        Body::Truncate(t) => walk_chain(&t.chain),
        Body::Unlink(u) => {
            assert!(u.keys.len() <= MAX_UNLINK_KEYS);
            assert_eq!(u.keys.iter().count(), u.keys.len());
        }
        Body::ListReply(l) => {
            assert!(l.entries.len() <= MAX_LIST_ENTRIES);
            assert!(l.status == Status::Ok || (!l.more && l.entries.is_empty()));
            let keys: Vec<FileKey> = l.entries.iter().map(|e| e.key).collect();
            assert_eq!(keys.len(), l.entries.len());
            assert!(
                keys.windows(2).all(|w| w[0].list_cmp(&w[1]).is_lt()),
                "entries strictly increase in listing order"
            );
        }
        _ => {}
    }
}

/// A decoded READ: its totals hold, and the copy forwarded to its first
/// hop (with this hop's bytes appended) opens as the READ that hop must
/// serve.
fn read_forward(m: &Message<'_>, r: &Read<'_>, len: usize) {
    let total = r.total_len().expect("a decoded READ has a total");
    assert!(total <= MAX_DATA_PER_MSG);
    assert_eq!(r.routes.iter().count(), r.routes.len());
    let append = r.len as usize;
    // One hop less, this hop's bytes more.
    let mut f = vec![0u8; len + append];
    let Some(hop) = r.routes.first() else {
        assert!(r.encode_forward_prefix(m.id, append, &mut f).is_err());
        return;
    };
    let (to, p) = r
        .encode_forward_prefix(m.id, append, &mut f)
        .expect("the forwarded READ fits");
    assert_eq!(to, hop);
    let end = p + append;
    f[p..end].fill(0xa5);
    let keys = test_keys();
    wire::seal(&keys, &mut f[..end]).expect("seals");
    let fm = wire::open(&keys, &f[..end]).expect("the forwarded READ opens");
    assert_eq!((fm.id, fm.instance), (m.id, hop.instance));
    let Body::Read(fr) = fm.body else {
        panic!("the forwarded READ is a {:?}", fm.body.msg_type());
    };
    assert_eq!(
        (fr.key, fr.local_offset, fr.len, fr.reply),
        (r.key, hop.local_offset, hop.len, r.reply)
    );
    assert_eq!(fr.routes, r.routes.rest());
    assert_eq!(fr.gathered.len(), r.gathered.len() + append);
    assert_eq!(&fr.gathered[..r.gathered.len()], r.gathered);
    assert!(fr.gathered[r.gathered.len()..].iter().all(|b| *b == 0xa5));
    assert_eq!(fr.total_len(), Ok(total), "forwarding keeps the total");
}

/// Walking a chain visits each member once, in order, and ends.
fn walk_chain(c: &Chain<'_>) {
    let n = c.members.len();
    assert!(n <= MAX_CHAIN);
    let mut cur = *c;
    let mut steps = 0;
    while let Some((member, rest)) = cur.next() {
        assert_eq!(Some(member), c.members.get(steps));
        steps += 1;
        assert_eq!(rest.members.len(), n - steps);
        assert_eq!(rest.origin, c.origin);
        cur = rest;
    }
    assert_eq!(steps, n);
}

/// `metafile` target: `MetaHeader::decode`; what decodes re-encodes, and
/// its layout tiles a range.
pub fn metafile(data: &[u8]) {
    let Ok(h) = MetaHeader::decode(data) else {
        return;
    };
    let mut b = [0u8; META_LEN];
    h.encode(&mut b).expect("a decoded header re-encodes");
    assert_eq!(
        &b[..],
        &data[..META_LEN],
        "bytes after the header are ignored"
    );
    let l = h.layout().expect("a decoded header has a valid layout");
    let start = h.real_size / 2;
    let mut pos = start;
    for p in l.pieces(start, 300_000).into_iter().flatten().take(64) {
        assert!(p.len > 0);
        assert_eq!(p.file_offset, pos, "pieces are contiguous");
        assert!(p.viod < h.width);
        pos = p.file_offset + p.len;
    }
    for v in 0..h.width.min(4) {
        let _ = l.local_len(v, h.real_size);
    }
}

/// `unlink` target: deletion records and acknowledgements re-encode.
pub fn unlink(data: &[u8]) {
    if let Ok(r) = UnlinkRecord::decode(data) {
        let mut b = [0u8; RECORD_LEN];
        r.encode(&mut b).expect("a decoded record re-encodes");
        assert_eq!(&b[..], data);
    }
    if let Ok(a) = UnlinkAck::decode(data) {
        let mut b = [0u8; ACK_LEN];
        a.encode(&mut b).expect("a decoded ack re-encodes");
        assert_eq!(&b[..], data);
        assert!(a.covers(a.first) && a.covers(a.last));
    }
}

/// `control` target: commands and answer lines print back to what they
/// parse from; the error line for a refused command parses as an answer.
pub fn control(data: &[u8]) {
    let Ok(s) = core::str::from_utf8(data) else {
        return;
    };
    match Command::parse(s) {
        Ok(c) => {
            let printed = c.to_string();
            assert!(printed.len() <= control::MAX_LINE);
            assert_eq!(Command::parse(&printed), Ok(c));
        }
        Err(e) => {
            // What the module answers to a bad write, iodctl must read.
            let line = ErrorLine(&e).to_string();
            match Answer::parse(&line) {
                Ok(Answer::Error { errno, message }) => {
                    assert_eq!(errno, e.errno_name());
                    assert_eq!(message, e.to_string());
                }
                other => panic!("{line:?} parses as {other:?}"),
            }
        }
    }
    if let Ok(a) = Answer::parse(s) {
        let printed = a.to_string();
        assert_eq!(Answer::parse(&printed), Ok(a));
    }
    let _ = IodState::parse(s);
    for w in s.split_ascii_whitespace().take(64) {
        if let Ok(a) = control::parse_addr(w) {
            assert_eq!(control::parse_addr(&a.to_string()), Ok(a));
        }
    }
}

/// `nfs3` target: READ reply prefixes and READ calls re-encode.
pub fn nfs3(data: &[u8]) {
    if let Ok((p, d)) = ReadReplyPrefix::decode(data, true) {
        assert_eq!(d.len(), p.count as usize);
        let mut b = [0u8; READ_REPLY_PREFIX_LEN];
        p.encode(&mut b).expect("a decoded prefix re-encodes");
        assert_eq!(ReadReplyPrefix::decode(&b, false).map(|x| x.0), Ok(p));
    }
    if let Ok((p, d)) = ReadReplyPrefix::decode(data, false) {
        assert!(d.is_empty());
        let mut b = [0u8; READ_REPLY_PREFIX_LEN];
        p.encode(&mut b).expect("a decoded prefix re-encodes");
        assert_eq!(ReadReplyPrefix::decode(&b, false).map(|x| x.0), Ok(p));
    }
    if let Ok(c) = ReadCall::decode(data) {
        let mut b = [0u8; 256];
        let n = c.encode(&mut b).expect("a decoded call re-encodes");
        // Credentials are skipped on decode and re-encoded as AUTH_NONE.
        assert_eq!(ReadCall::decode(&b[..n]), Ok(c));
    }
}

/// `filekey` target: file names, local paths and key bytes round-trip.
pub fn filekey(data: &[u8]) {
    if let Ok(s) = core::str::from_utf8(data) {
        if let Ok(k) = FileKey::parse_file_name(s) {
            let mut n = [0u8; FILE_NAME_LEN];
            assert_eq!(k.write_file_name(&mut n).ok(), Some(s));
            let mut b = [0u8; LOCAL_PATH_LEN];
            let p = k.write_local_path(&mut b).expect("fits");
            assert_eq!(FileKey::parse_local_path(p), Ok(k));
        }
        if let Ok(k) = FileKey::parse_local_path(s) {
            let mut b = [0u8; LOCAL_PATH_LEN];
            assert_eq!(k.write_local_path(&mut b).ok(), Some(s));
        }
    }
    if let Ok(k) = FileKey::from_bytes(data) {
        assert_eq!(&k.to_bytes()[..], data);
    }
}

/// `journal` target: entries re-encode; a journal image iterates in
/// whole entries.
pub fn journal(data: &[u8]) {
    if let Ok(e) = Entry::decode(data) {
        let mut b = [0u8; ENTRY_LEN];
        e.encode(&mut b).expect("a decoded entry re-encodes");
        assert_eq!(&b[..], data);
    }
    let it = Entries::new(data);
    assert!(it.complete_len() <= data.len() && it.tail() < ENTRY_LEN);
    assert_eq!(it.complete_len() + it.tail(), data.len());
    let mut next = 0;
    for (at, e) in it {
        assert_eq!(at, next);
        next = at + ENTRY_LEN;
        assert!(next <= data.len());
        let _ = e.map(|e| e.key());
    }
    assert_eq!(next, data.len() - data.len() % ENTRY_LEN);
}

/// `auth` target: key files, key words and hex re-print to what they
/// parse from; `wire::open` / `wire::verify` under the test keys and the
/// insecure mode; what opens re-seals to the same bytes; and any sealed
/// buffer verifies, until one bit flips.
pub fn auth(data: &[u8]) {
    if let Ok(s) = core::str::from_utf8(data) {
        auth_text(s);
    }
    let keys = test_keys();
    for ks in [keys, Keys::insecure()] {
        let verified = wire::verify(&ks, data);
        let Ok(m) = wire::open(&ks, data) else {
            continue;
        };
        assert_eq!(verified, Ok(()));
        assert_eq!(Message::decode(data), Ok(m));
        let signer = match ks.find(m.key_id) {
            Some(k) => Keys::new(*k, None).expect("one key"),
            None => {
                assert!(ks.is_insecure(), "opened with a key not held");
                assert_eq!((m.key_id, m.auth_tag), (0, [0; AUTH_TAG_LEN]));
                Keys::insecure()
            }
        };
        let mut b = vec![0u8; data.len()];
        assert_eq!(m.seal(&signer, &mut b), Ok(data.len()));
        assert_eq!(&b[..], data, "what opens re-seals to the same bytes");
    }
    if (HEADER_LEN..=MAX_DATAGRAM).contains(&data.len()) {
        let mut d = data.to_vec();
        wire::seal(&keys, &mut d).expect("seals");
        assert_eq!(wire::verify(&keys, &d), Ok(()));
        // Only the decoder can refuse it now.
        assert_eq!(wire::open(&keys, &d), Message::decode(&d));
        assert_eq!(
            wire::verify(&Keys::insecure(), &d),
            Err(ProtoError::UnknownKey)
        );
        let i = (data[0] as usize * 251 + data[1] as usize) % d.len();
        d[i] ^= 1 << (data[2] & 7);
        assert!(wire::verify(&keys, &d).is_err(), "bit flip at {i} verifies");
    }
}

fn auth_text(s: &str) {
    if let Ok(keys) = keyfile::parse(s) {
        assert!(!keys.is_insecure());
        let mut out = String::new();
        keyfile::write(&mut out, &keys).expect("writes");
        assert_eq!(keyfile::parse(&out), Ok(keys));
    }
    let mut words = s.split_ascii_whitespace();
    if let Ok(k) = auth::parse_key_words(&mut words) {
        let mut out = String::new();
        auth::write_key_words(&mut out, &k).expect("writes");
        assert_eq!(
            auth::parse_key_words(&mut out.split_ascii_whitespace()),
            Ok(k)
        );
    }
    for w in s.split_ascii_whitespace().take(64) {
        if let Ok(id) = auth::parse_key_id(w) {
            assert_ne!(id, 0);
            assert_eq!(hex(&id.to_be_bytes()), w.to_ascii_lowercase());
        }
        if let Ok(b) = auth::parse_hex::<KEY_LEN>(w) {
            assert_eq!(hex(&b), w.to_ascii_lowercase());
        }
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::new();
    auth::write_hex(&mut s, b).expect("writes");
    s
}

fn instance_for(a: &SocketAddr) -> u64 {
    // Any function of the address: what restamp must copy into the fields.
    let mut b = [0u8; 18];
    if let SocketAddr::V6(v6) = a {
        b[..16].copy_from_slice(&v6.ip().octets());
    } else if let SocketAddr::V4(v4) = a {
        b[..4].copy_from_slice(&v4.ip().octets());
    }
    b[16..].copy_from_slice(&a.port().to_le_bytes());
    (crc32c(&b) as u64) << 8 | 0x42
}

/// `restamp` target: `wire::restamp` of what decodes (a datagram we
/// sent) succeeds; its output opens and carries the new id and the
/// current instances, and nothing else changes. Anything else is refused.
pub fn restamp(data: &[u8]) {
    // A sender's epoch is never 0 (the decoder refuses 0).
    let id = RequestId {
        epoch: crc32c(data) as u64 | 1 << 40,
        seq: u64::MAX - data.len() as u64,
    };
    let to = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 7), 7000));
    for keys in [test_keys(), Keys::insecure()] {
        let mut buf = vec![0u8; data.len()];
        let r = wire::restamp(&keys, data, id, &to, &instance_for, &mut buf);
        let Ok(old) = Message::decode(data) else {
            assert!(r.is_err(), "restamp of what does not decode");
            continue;
        };
        let n = r.expect("whatever decodes restamps");
        assert_eq!(n, data.len(), "restamping keeps the length");
        let new = wire::open(&keys, &buf[..n]).expect("a restamped datagram opens");
        check_restamped(&old, &new, id, instance_for(&to));
        let mut again = vec![0u8; n];
        let n2 = wire::restamp(&keys, &buf[..n], id, &to, &instance_for, &mut again);
        assert_eq!(n2, Ok(n));
        assert_eq!(again, &buf[..n], "restamping twice changes nothing more");
    }
}

fn check_restamped(old: &Message<'_>, new: &Message<'_>, id: RequestId, instance: u64) {
    assert_eq!((new.id, new.instance, new.flags), (id, instance, old.flags));
    let hops_ok = |a: List<'_, Hop>, b: List<'_, Hop>| {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b.iter()) {
            let instance = instance_for(&x.addr);
            assert_eq!(y, Hop { instance, ..x });
        }
    };
    let chain_ok = |a: Chain<'_>, b: Chain<'_>| {
        assert_eq!(a.origin, b.origin);
        assert_eq!(a.members.len(), b.members.len());
        for (x, y) in a.members.iter().zip(b.members.iter()) {
            let instance = instance_for(&x.addr);
            assert_eq!(y, ChainMember { instance, ..x });
        }
    };
    match (old.body, new.body) {
        (Body::Read(a), Body::Read(b)) => {
            assert_eq!(
                (a.key, a.local_offset, a.len, a.reply, a.gathered),
                (b.key, b.local_offset, b.len, b.reply, b.gathered)
            );
            hops_ok(a.routes, b.routes);
        }
        (Body::Write(a), Body::Write(b)) => {
            assert_eq!(
                (a.key, a.local_offset, a.data),
                (b.key, b.local_offset, b.data)
            );
            chain_ok(a.chain, b.chain);
        }
        (Body::Commit(a), Body::Commit(b)) => {
            assert_eq!(a.key, b.key);
            chain_ok(a.chain, b.chain);
        }
        (Body::Truncate(a), Body::Truncate(b)) => {
            assert_eq!(
                (a.key, a.new_len, a.extend_only),
                (b.key, b.new_len, b.extend_only)
            );
            chain_ok(a.chain, b.chain);
        }
        (a, b) => assert_eq!(a, b),
    }
}

// ---------------------------------------------------------------------
// Seed corpus

/// One committed seed: `proto/fuzz/seeds/<target>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// The fuzz target (a name of [`TARGETS`]).
    pub target: &'static str,
    /// The file name.
    pub name: String,
    /// The contents.
    pub data: Vec<u8>,
}

fn doc4(last: u8, port: u16) -> SocketAddr {
    // Documentation ranges (RFC 5737, RFC 3849): only bytes in a file.
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, last), port))
}

fn doc6(last: u16, port: u16, scope: u32) -> SocketAddr {
    let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last);
    SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))
}

fn reply_prefix(count: u32, eof: bool) -> [u8; READ_REPLY_PREFIX_LEN] {
    let t = |s: u32| NfsTime3 {
        seconds: 1_700_000_000 + s,
        nseconds: 250_000 * s,
    };
    let p = ReadReplyPrefix {
        xid: 0x5eed_0001,
        attr: Fattr3 {
            ftype: 1,
            mode: 0o100644,
            nlink: 1,
            uid: 1000,
            gid: 1000,
            size: 300_000,
            used: 303_104,
            rdev: (0, 0),
            fsid: 0x0801,
            fileid: 0x3344,
            atime: t(1),
            mtime: t(2),
            ctime: t(3),
        },
        count,
        eof,
    };
    let mut b = [0u8; READ_REPLY_PREFIX_LEN];
    p.encode(&mut b).expect("prefix fits");
    b
}

/// The wire messages of the seed corpus, one of each kind, by name.
fn wire_seed_messages(f: &mut dyn FnMut(&str, &Message<'_>)) {
    let key = FileKey::new(0x0000_0801_0000_0001, 0x3344, 0x5eed_5eed_0000_0001);
    let id = |seq: u64| RequestId {
        epoch: 0x0123_4567_89ab_cdef,
        seq,
    };
    let meta = doc4(1, 7100);
    let iod_b = doc4(12, 7000);
    let iod_c = doc6(13, 7000, 0);
    let hops = [
        Hop {
            addr: iod_b,
            local_offset: 65536,
            len: 100,
            instance: 0x1b,
        },
        Hop {
            addr: iod_c,
            local_offset: 0,
            len: 28,
            instance: 0x1c,
        },
    ];
    let members = [
        ChainMember {
            addr: iod_b,
            instance: 0x1b,
        },
        ChainMember {
            addr: iod_c,
            instance: 0x1c,
        },
    ];
    let header = reply_prefix(200, false);
    let direct = ReplySpec::Direct {
        origin: meta,
        client: doc4(50, 842),
        source: doc4(1, 2049),
        header: &header,
        pad: true,
    };
    let data: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(7)).collect();
    let read = |len, routes, reply, gathered| {
        Body::Read(Read {
            key,
            local_offset: 4096,
            len,
            routes,
            reply,
            gathered,
        })
    };
    let req = |seq, body| Message::new(id(seq), 0x1a, body);
    f(
        "read-relay",
        &req(
            1,
            read(
                4096,
                List::Items(&[]),
                ReplySpec::Relay { origin: meta },
                &[],
            ),
        ),
    );
    f(
        "read-direct-hops",
        &req(2, read(72, List::Items(&hops), direct, &[])),
    );
    f(
        "read-direct-forwarded",
        &req(
            3,
            read(
                100,
                List::Items(&hops[1..]),
                direct,
                b"gathered by the first hop",
            ),
        ),
    );
    f(
        "read-reply",
        &req(
            4,
            Body::ReadReply(ReadReply {
                status: Status::Ok,
                data: &data,
            }),
        ),
    );
    f(
        "read-reply-busy",
        &req(
            5,
            Body::ReadReply(ReadReply {
                status: Status::Busy,
                data: &[],
            }),
        ),
    );
    let chain = |members| Chain {
        origin: meta,
        members,
    };
    f(
        "write-chain",
        &req(
            6,
            Body::Write(Write {
                key,
                local_offset: 131_072,
                chain: chain(List::Items(&members)),
                data: &data,
            }),
        ),
    );
    f(
        "commit",
        &req(
            7,
            Body::Commit(Commit {
                key,
                chain: chain(List::Items(&members[1..])),
            }),
        ),
    );
    f(
        "truncate",
        &req(
            8,
            Body::Truncate(Truncate {
                key,
                new_len: 200_000,
                extend_only: false,
                layout_epoch: 2,
                chain: chain(List::Items(&[])),
            }),
        ),
    );
    f("length", &req(12, Body::Length(key)));
    let keys = [key, FileKey::new(1, 2, 3), FileKey::new(u64::MAX, 0, 1)];
    f(
        "unlink",
        &req(
            9,
            Body::Unlink(Unlink {
                keys: List::Items(&keys),
            }),
        ),
    );
    let statuses = [
        Status::Ok,
        Status::NoEntry,
        Status::Io,
        Status::Invalid,
        Status::Busy,
        Status::NoSpace,
        Status::TooBig,
        Status::Unsupported,
        Status::ForwardFailed,
        Status::Stale,
        Status::Refused,
    ];
    let ops = [
        MsgType::Write,
        MsgType::Commit,
        MsgType::Truncate,
        MsgType::Unlink,
        MsgType::Read,
    ];
    for (i, status) in statuses.into_iter().enumerate() {
        let name = format!("ack-{}", format!("{status:?}").to_ascii_lowercase());
        let ack = Ack {
            op: ops[i % ops.len()],
            status,
            value: if status == Status::Ok { 64 } else { 0 },
        };
        f(&name, &req(10 + i as u64, Body::Ack(ack)));
    }
    // A PING may go without the instance: it is how a sender learns it.
    f("ping", &Message::new(id(30), 0, Body::Ping));
    let stats = IodStats {
        uptime_s: 3600,
        requests: 12_345,
        bytes_read: 1 << 30,
        bytes_written: 1 << 29,
        errors: 2,
        malformed: 3,
        drops: 4,
        in_flight: 1,
        bad_auth: 5,
        replays: 6,
        refused: 7,
        space_total: 1 << 40,
        space_free: 1 << 39,
        space_avail: 1 << 38,
    };
    f("pong", &req(31, Body::Pong(stats)));
    f(
        "list",
        &req(
            32,
            Body::List(ListRequest {
                after: None,
                max: 1024,
            }),
        ),
    );
    f(
        "list-cursor",
        &req(
            33,
            Body::List(ListRequest {
                after: Some(key),
                max: 16,
            }),
        ),
    );
    let mut entries: Vec<ListEntry> = (1..=3u64)
        .map(|i| ListEntry {
            key: FileKey::new(0x0801, i * 0x1111, i),
            len: i * 65536,
            mtime_s: 1_700_000_000 + i,
        })
        .collect();
    entries.sort_by(|a, b| a.key.list_cmp(&b.key));
    f(
        "list-reply",
        &req(
            34,
            Body::ListReply(ListReply {
                status: Status::Ok,
                more: true,
                entries: List::Items(&entries),
            }),
        ),
    );
    f(
        "list-reply-error",
        &req(
            35,
            Body::ListReply(ListReply {
                status: Status::Io,
                more: false,
                entries: List::Items(&[]),
            }),
        ),
    );
}

fn sealed(m: &Message<'_>, keys: &Keys) -> Vec<u8> {
    let mut b = vec![0u8; MAX_DATAGRAM];
    let n = m.seal(keys, &mut b).expect("a seed message encodes");
    b.truncate(n);
    // A seed that does not open would only test the error path.
    let opened = wire::open(keys, &b).expect("a seed message opens");
    assert_eq!(opened.body, m.body);
    b
}

fn control_seeds() -> Vec<Seed> {
    let members = Members::from_slice(&[
        doc4(11, 7000),
        doc6(12, 7000, 0),
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            7000,
            0,
            2,
        )),
    ])
    .expect("<= 8 members");
    let eight: Vec<SocketAddr> = (0..8u8).map(|i| doc4(20 + i, 7000 + i as u16)).collect();
    let commands = [
        ("add-viod-3", Command::AddViod { id: 1, members }),
        (
            "add-viod-8",
            Command::AddViod {
                id: 2,
                members: Members::from_slice(&eight).expect("8 members"),
            },
        ),
        ("del-viod", Command::DelViod { id: 2 }),
        (
            "add-iod",
            Command::AddIod {
                viod: 1,
                addr: doc4(14, 7000),
            },
        ),
        (
            "del-iod",
            Command::DelIod {
                viod: 1,
                addr: doc6(12, 7000, 0),
            },
        ),
        (
            "set-state-up",
            Command::SetState {
                viod: 1,
                addr: doc4(11, 7000),
                state: IodState::Up,
            },
        ),
        (
            "set-state-down",
            Command::SetState {
                viod: 1,
                addr: doc4(11, 7000),
                state: IodState::Down,
            },
        ),
        (
            "set-state-resync",
            Command::SetState {
                viod: 1,
                addr: doc6(12, 7000, 0),
                state: IodState::Resync,
            },
        ),
        (
            "identity",
            Command::Identity {
                viod: 1,
                addr: doc4(11, 7000),
                identity: 0x1d00_0001,
            },
        ),
        ("list", Command::List),
        ("stats", Command::Stats),
        ("timeout", Command::Timeout { ms: 2500 }),
        (
            "keys-sign",
            Command::Keys(Keys::new(test_key(), None).expect("one key")),
        ),
        ("keys-sign-accept", Command::Keys(test_keys())),
        ("keys-insecure", Command::Keys(Keys::insecure())),
    ];
    let mut out = Vec::new();
    for (name, c) in &commands {
        assert_eq!(
            Command::parse(&c.to_string()).as_ref(),
            Ok(c),
            "seed command parses"
        );
        // The module gets `echo`'s newline.
        out.push(bytes(
            "control",
            &format!("cmd-{name}"),
            format!("{c}\n").as_bytes(),
        ));
    }
    let member = ListLine {
        viod: 1,
        addr: doc6(12, 7000, 0),
        state: IodState::Resync,
        requests: 10,
        bytes: 4096,
        errors: 1,
        timeouts: 2,
        latency_us: 350,
        ds_errors: 1,
        identity: 0x1d00_0001,
        foreign: 0xf0_0002,
    };
    let answers = [
        ("ok", Answer::Ok),
        (
            "error",
            Answer::Error {
                errno: "ENOENT",
                message: "no such viod",
            },
        ),
        (
            "error-no-message",
            Answer::Error {
                errno: "EINVAL",
                message: "",
            },
        ),
        ("viod", Answer::Member(member)),
        (
            "stat",
            Answer::Stat {
                name: "bad_auth",
                value: 17,
            },
        ),
    ];
    for (name, a) in &answers {
        out.push(bytes(
            "control",
            &format!("answer-{name}"),
            a.to_string().as_bytes(),
        ));
    }
    let e = ErrorLine(&ProtoError::TooMany("members")).to_string();
    out.push(bytes("control", "answer-error-line", e.as_bytes()));
    out
}

fn bytes(target: &'static str, name: &str, data: &[u8]) -> Seed {
    Seed {
        target,
        name: name.to_string(),
        data: data.to_vec(),
    }
}

fn metafile_seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    let headers = [
        ("default-4-wide", MetaHeader::new(0x5eed, 4, 1)),
        (
            "one-viod",
            MetaHeader {
                real_size: 12_345,
                layout_epoch: 3,
                ..MetaHeader::new(1, 1, 0)
            },
        ),
        (
            "wide-1mib-blocks",
            MetaHeader {
                block_size: 1 << 20,
                real_size: 1 << 40,
                ..MetaHeader::new(u64::MAX, 16, 15)
            },
        ),
        (
            "4k-blocks-huge-size",
            MetaHeader {
                block_size: 4096,
                real_size: u64::MAX,
                ..MetaHeader::new(7, 3, 2)
            },
        ),
    ];
    for (name, h) in headers {
        let mut b = [0u8; META_LEN];
        h.encode(&mut b).expect("a seed header encodes");
        out.push(bytes("metafile", name, &b));
    }
    // The xattr is read into a larger buffer: trailing bytes are ignored.
    let mut b = vec![0u8; META_LEN + 16];
    MetaHeader::new(9, 2, 1)
        .encode(&mut b)
        .expect("a seed header encodes");
    out.push(bytes("metafile", "trailing-bytes", &b));
    out
}

fn seed_record(seq: u64) -> UnlinkRecord {
    UnlinkRecord {
        seq,
        key: FileKey::new(0x0801, seq.wrapping_add(0x3344), 0x5eed ^ seq),
        real_size: seq.wrapping_mul(300_000),
        layout: StripeLayout {
            block_size: 65536,
            width: 4,
            first_viod: (seq % 4) as u32,
        },
    }
}

fn unlink_seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    for (name, r) in [
        ("record", seed_record(1)),
        ("record-big", seed_record(u64::MAX / 3)),
    ] {
        let mut b = [0u8; RECORD_LEN];
        r.encode(&mut b).expect("a seed record encodes");
        out.push(bytes("unlink", name, &b));
    }
    for (name, a) in [
        ("ack-one", UnlinkAck { first: 5, last: 5 }),
        (
            "ack-range",
            UnlinkAck {
                first: 1,
                last: 1000,
            },
        ),
    ] {
        let mut b = [0u8; ACK_LEN];
        a.encode(&mut b).expect("a seed ack encodes");
        out.push(bytes("unlink", name, &b));
    }
    out
}

fn journal_seeds() -> Vec<Seed> {
    let entry = |e: Entry| {
        let mut b = [0u8; ENTRY_LEN];
        e.encode(&mut b).expect("a seed entry encodes");
        b
    };
    let pending = entry(Entry::Pending(seed_record(1)));
    let done = entry(Entry::Done {
        seq: 1,
        key: seed_record(1).key,
    });
    let mut image = Vec::new();
    image.extend_from_slice(&pending);
    image.extend_from_slice(&entry(Entry::Pending(seed_record(2))));
    image.extend_from_slice(&done);
    // A crash mid-append leaves a partial entry.
    image.extend_from_slice(&pending[..10]);
    std::vec![
        bytes("journal", "pending", &pending),
        bytes("journal", "done", &done),
        bytes("journal", "image-partial-tail", &image),
    ]
}

/// Calls a pNFS client sends a data server, and its filehandles.
fn ds_seeds() -> Vec<Seed> {
    use super::dsfh::{DsHandle, DS_FH_LEN};
    use super::stripe::StripeLayout;
    let h = DsHandle {
        key: FileKey::new(1, 2, 3),
        layout: StripeLayout::new(65536, 4, 1).expect("a layout"),
        viod: 2,
        epoch: 0,
        read_only: false,
    };
    let mut fh = [0u8; DS_FH_LEN];
    h.seal(&test_key(), &ds_addr(), DS_IDENTITY, &mut fh)
        .expect("seals");
    let mut ro = [0u8; DS_FH_LEN];
    DsHandle {
        read_only: true,
        ..h
    }
    .seal(&test_accept_key(), &ds_addr(), DS_IDENTITY, &mut ro)
    .expect("seals");
    let be = |w: &[u32]| w.iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
    let call = |proc_: u32, args: &[u8]| {
        // xid, CALL, rpcvers 2, NFS, v3, proc, AUTH_SYS {stamp, "", 0, 0, no gids}, AUTH_NONE
        let mut c = be(&[9, 0, 2, 100_003, 3, proc_, 1, 20, 0, 0, 0, 0, 0, 0, 0]);
        c.extend_from_slice(args);
        c
    };
    let with_fh = |rest: &[u32]| {
        let mut a = be(&[DS_FH_LEN as u32]);
        a.extend_from_slice(&fh);
        a.extend(be(rest));
        a
    };
    let mut write = with_fh(&[0, 65536, 3, 2, 3]);
    write.extend_from_slice(b"abc\0");
    vec![
        bytes("ds3", "null", &call(0, &[])),
        bytes("ds3", "read", &call(6, &with_fh(&[0, 65536, 4096]))),
        bytes("ds3", "write-file-sync", &call(7, &write)),
        bytes("ds3", "commit", &call(21, &with_fh(&[0, 0, 0]))),
        bytes("ds3", "getattr", &call(1, &with_fh(&[]))),
        bytes("dsfh", "read-write", &fh),
        bytes("dsfh", "read-only-accept-key", &ro),
        bytes(
            "ffreturn",
            "two-errors",
            &ffreturn_body(&[(7, 10008, 38), (9, 5, 25)]),
        ),
        bytes("ffreturn", "none", &ffreturn_body(&[])),
    ]
}

/// An `ff_layoutreturn4` with one `ff_ioerr4` of these (device, status,
/// opnum) errors, and no statistics.
fn ffreturn_body(errors: &[(u32, u32, u32)]) -> Vec<u8> {
    let be = |v: u32| v.to_be_bytes();
    let mut b = Vec::new();
    b.extend(be(1));
    b.extend([0u8; 8 + 8 + 16]);
    b.extend(be(errors.len() as u32));
    for (dev, status, op) in errors {
        b.extend(42u64.to_ne_bytes());
        b.extend(dev.to_ne_bytes());
        b.extend([0u8; 4]);
        b.extend(be(*status));
        b.extend(be(*op));
    }
    b.extend(be(0));
    b
}

fn nfs3_seeds() -> Vec<Seed> {
    let mut reply = reply_prefix(5, true).to_vec();
    reply.extend_from_slice(b"hello\0\0\0");
    let mut out = std::vec![
        bytes("nfs3", "reply-prefix", &reply_prefix(32768, false)),
        bytes("nfs3", "reply-with-data", &reply),
    ];
    let fh: Vec<u8> = (0..32u8).collect();
    let long_fh = [0xfe; 64];
    for (name, c) in [
        (
            "read-call",
            ReadCall {
                xid: 0x5eed_0002,
                fh: &fh,
                offset: 65536,
                count: 32768,
            },
        ),
        (
            "read-call-64-byte-fh",
            ReadCall {
                xid: 1,
                fh: &long_fh,
                offset: u64::MAX - 4096,
                count: 4096,
            },
        ),
    ] {
        let mut b = [0u8; 256];
        let n = c.encode(&mut b).expect("a seed call encodes");
        out.push(bytes("nfs3", name, &b[..n]));
    }
    // What a Linux client sends: AUTH_SYS credentials (skipped on decode).
    let mut call = Vec::new();
    let mut be = |v: u32| call.extend_from_slice(&v.to_be_bytes());
    for v in [0x5eed_0003, 0, 2, 100_003, 3, 6] {
        be(v);
    }
    // cred: AUTH_SYS, stamp, machine name "c1" (padded), uid, gid, no gids
    for v in [
        1,
        24,
        0x1234,
        2,
        u32::from_be_bytes(*b"c1\0\0"),
        1000,
        1000,
        0,
    ] {
        be(v);
    }
    for v in [0, 0, 8] {
        be(v); // verf AUTH_NONE, fh length
    }
    call.extend_from_slice(&fh[..8]);
    call.extend_from_slice(&4096u64.to_be_bytes());
    call.extend_from_slice(&8192u32.to_be_bytes());
    out.push(bytes("nfs3", "read-call-auth-sys", &call));
    out
}

fn filekey_seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    for (i, k) in [
        FileKey::new(0x0000_0801_0000_0001, 0x3344, 0x5eed_5eed_0000_0001),
        FileKey::new(u64::MAX, 0, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let mut n = [0u8; FILE_NAME_LEN];
        let name = k.write_file_name(&mut n).expect("fits");
        out.push(bytes("filekey", &format!("name-{i}"), name.as_bytes()));
        let mut p = [0u8; LOCAL_PATH_LEN];
        let path = k.write_local_path(&mut p).expect("fits");
        out.push(bytes("filekey", &format!("path-{i}"), path.as_bytes()));
        out.push(bytes("filekey", &format!("bytes-{i}"), &k.to_bytes()));
    }
    out
}

fn auth_seeds(wire_msgs: &[(String, Vec<u8>)]) -> Vec<Seed> {
    let mut out = Vec::new();
    let mut file = |name: &str, keys: &Keys| {
        let mut s = String::new();
        keyfile::write(&mut s, keys).expect("writes");
        out.push(bytes("auth", name, s.as_bytes()));
    };
    file(
        "keyfile-sign",
        &Keys::new(test_key(), None).expect("one key"),
    );
    file("keyfile-sign-accept", &test_keys());
    // By hand: upper-case hex, blank and comment lines, CRLF, tabs.
    let mut hand = String::from("# rotated\r\n\r\n\taccept ");
    auth::write_key_words(&mut hand, &test_accept_key()).expect("writes");
    hand.push_str("\r\nsign  ");
    let mut sign = String::new();
    auth::write_key_words(&mut sign, &test_key()).expect("writes");
    hand.push_str(&sign.to_ascii_uppercase());
    hand.push_str("   \n");
    out.push(bytes("auth", "keyfile-by-hand", hand.as_bytes()));
    for (name, d) in wire_msgs {
        out.push(bytes("auth", name, d));
    }
    out
}

/// The whole seed corpus, in a fixed order (regenerating gives the same
/// files): valid inputs of every kind for every target of [`TARGETS`].
pub fn seeds() -> Vec<Seed> {
    let sign_only = Keys::new(test_key(), None).expect("one key");
    let accept_only = Keys::new(test_accept_key(), None).expect("one key");
    let mut out = Vec::new();
    let mut auth_msgs = Vec::new();
    let mut restamp_msgs = Vec::new();
    wire_seed_messages(&mut |name, m| {
        let signed = sealed(m, &sign_only);
        let plain = sealed(m, &Keys::insecure());
        out.push(bytes("wire", &format!("{name}.signed"), &signed));
        out.push(bytes("wire", &format!("{name}.unsigned"), &plain));
        match name {
            "ping" | "write-chain" | "ack-stale" => {
                auth_msgs.push((format!("{name}.signed"), signed.clone()));
                auth_msgs.push((format!("{name}.unsigned"), plain));
            }
            "read-reply" => {
                // Rotation: signed by the key accepted next to the signing one.
                auth_msgs.push((format!("{name}.accept-key"), sealed(m, &accept_only)));
            }
            _ => {}
        }
        if matches!(
            name,
            "read-relay"
                | "read-direct-hops"
                | "read-direct-forwarded"
                | "write-chain"
                | "commit"
                | "truncate"
                | "unlink"
                | "ping"
                | "list-cursor"
        ) {
            restamp_msgs.push((format!("{name}.signed"), signed));
        }
    });
    for (name, d) in restamp_msgs {
        out.push(bytes("restamp", &name, &d));
    }
    out.extend(auth_seeds(&auth_msgs));
    out.extend(control_seeds());
    out.extend(metafile_seeds());
    out.extend(unlink_seeds());
    out.extend(journal_seeds());
    out.extend(nfs3_seeds());
    out.extend(ds_seeds());
    out.extend(filekey_seeds());
    out
}
