// SPDX-License-Identifier: GPL-2.0
//! The iod's security rules (issue "Authenticated cluster"), each tested
//! on loopback against real iod processes: authentication and key
//! rotation (rule 1), instances (2), the replay window (3), address
//! discipline (4), cost bounds (5), counters (6), and no amplification
//! for an attacker without the key.

mod common;

use std::io::{BufRead, Read as _};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::meta::{test_key, test_keys, Meta, Rng, TEST_KEY_ID};
use common::{files_under, spawn_cluster, spawn_iod, spawn_iod_with, Opts};
use nfsp_proto::auth::Keys;
use nfsp_proto::wire::{
    self, Ack, Body, Chain, ChainMember, Hop, IodStats, List, ListEntry, ListReply, ListRequest,
    Message, MsgType, ReadReply, ReplySpec, RequestId, Status, Unlink, HEADER_LEN,
};
use nfsp_proto::FileKey;

const K: FileKey = FileKey {
    export: 0x42,
    inode: 0x4242,
    seed: 0x77,
};

fn sink(ip: &str) -> UdpSocket {
    UdpSocket::bind(format!("{ip}:0")).expect("bind sink")
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("addr")
}

/// True when nothing arrives on `s` within `ms`.
fn silent(s: &UdpSocket, ms: u64) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(ms))).unwrap();
    let mut b = [0u8; 65536];
    s.recv_from(&mut b).is_err()
}

fn local_path(key: &FileKey) -> String {
    let mut pb = [0u8; 64];
    key.write_local_path(&mut pb).unwrap().to_string()
}

/// The answer to `req` (sent raw, no retransmission): source, message
/// header (id, instance) and body as an ACK.
fn ack_for(
    meta: &Meta,
    req: &common::meta::Req,
    to: SocketAddr,
) -> (SocketAddr, RequestId, u64, Ack) {
    meta.send_raw(&req.bytes, to);
    let deadline = Instant::now() + Duration::from_secs(3);
    while let Some((b, from)) = meta.recv_within(deadline.saturating_duration_since(Instant::now()))
    {
        let Some(m) = meta.open(&b) else { continue };
        if m.id != req.id {
            continue;
        }
        match m.body {
            Body::Ack(a) => return (from, m.id, m.instance, a),
            other => panic!("expected an ACK, got {other:?}"),
        }
    }
    panic!("no answer to {:?}", req.id)
}

/// Every message type, unsigned, to instance `inst`; the requests name
/// `origin` as origin and `target` as hop, chain member and client.
fn every_type(
    meta: &Meta,
    inst: u64,
    origin: SocketAddr,
    target: SocketAddr,
) -> Vec<(MsgType, Vec<u8>)> {
    let members = [ChainMember {
        addr: target,
        instance: inst,
    }];
    let hops = [Hop {
        addr: target,
        local_offset: 0,
        len: 100,
        instance: inst,
    }];
    let chain = Chain {
        origin,
        members: List::Items(&members),
    };
    let keys = [K];
    let entries = [ListEntry {
        key: K,
        len: 1,
        mtime_s: 1,
    }];
    let header = [0u8; 64];
    let bodies = [
        Body::Read(wire::Read {
            key: K,
            local_offset: 0,
            len: 100,
            routes: List::Items(&hops),
            reply: ReplySpec::Relay { origin },
            gathered: &[],
        }),
        Body::Read(wire::Read {
            key: K,
            local_offset: 0,
            len: 100,
            routes: List::Items(&[]),
            reply: ReplySpec::Direct {
                origin,
                client: target,
                source: target,
                header: &header,
                pad: true,
            },
            gathered: &[],
        }),
        Body::Write(wire::Write {
            key: K,
            local_offset: 0,
            chain,
            data: b"attack",
        }),
        Body::Commit(wire::Commit { key: K, chain }),
        Body::Truncate(wire::Truncate {
            key: K,
            new_len: 1 << 30,
            extend_only: false,
            layout_epoch: 0,
            chain,
        }),
        Body::Unlink(Unlink {
            keys: List::Items(&keys),
        }),
        Body::Ping,
        Body::List(ListRequest {
            after: None,
            max: 1024,
        }),
        Body::Ack(Ack {
            op: MsgType::Write,
            status: Status::Ok,
            value: 1,
        }),
        Body::Pong(IodStats::default()),
        Body::ReadReply(ReadReply {
            status: Status::Ok,
            data: b"zz",
        }),
        Body::ListReply(ListReply {
            status: Status::Ok,
            more: false,
            entries: List::Items(&entries),
        }),
    ];
    bodies
        .into_iter()
        .map(|b| {
            let t = b.msg_type();
            let mut buf = vec![0u8; 65536];
            let n = Message::new(meta.next_id(), inst, b)
                .encode(&mut buf)
                .unwrap();
            buf.truncate(n);
            (t, buf)
        })
        .collect()
}

/// What an attacker without the key can make of one datagram: unsigned,
/// signed with a guessed key under the cluster's key id or another id,
/// and correctly signed then altered in one bit (header and body fields,
/// the key id, the tag; not the magic, which makes it plain garbage).
fn forgeries(unsigned: &[u8]) -> Vec<Vec<u8>> {
    let mut v = vec![unsigned.to_vec()];
    for k in [test_key(TEST_KEY_ID, 0x66), test_key(0x0bad_0001, 0x5a)] {
        let mut b = unsigned.to_vec();
        wire::seal(&Keys::new(k, None).unwrap(), &mut b).unwrap();
        v.push(b);
    }
    let mut good = unsigned.to_vec();
    wire::seal(&test_keys(), &mut good).unwrap();
    for at in [4, 5, 9, 20, 28, 33, 41, 55, HEADER_LEN + 1, good.len() - 1] {
        let mut b = good.clone();
        b[at] ^= 0x10;
        v.push(b);
    }
    v
}

/// Rule 1: every datagram goes through `wire::open`; unsigned, wrongly
/// signed and altered datagrams of every type are dropped, counted in
/// `bad_auth`, never answered, and change nothing on disk.
#[test]
fn rule1_unauthenticated_datagrams_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let target = sink("127.0.0.1");
    // The target is a configured peer and meta address: only the key stops it.
    let iod = spawn_iod_with(
        dir.path(),
        &Opts {
            peers: vec![addr(&target)],
            meta: vec![addr(&target)],
            ..Opts::default()
        },
    );
    let p = dir.path().join(local_path(&K));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, b"precious").unwrap();
    let before = files_under(dir.path());
    let meta = Meta::simple();
    let (s0, inst) = meta.ping_instance(iod.addr);
    let attacker = sink("127.0.0.1");
    let mut sent = 0u64;
    let mut types = 0;
    for (_, unsigned) in every_type(&meta, inst, addr(&attacker), addr(&target)) {
        types += 1;
        for d in forgeries(&unsigned) {
            attacker.send_to(&d, iod.addr).unwrap();
            sent += 1;
        }
    }
    assert_eq!(types, 12, "every message type");
    assert!(silent(&attacker, 500), "a forged datagram was answered");
    assert!(silent(&target, 100), "a forged datagram was acted on");
    let s1 = meta.ping(iod.addr);
    assert_eq!(
        s1.bad_auth - s0.bad_auth,
        sent,
        "bad_auth counts every forgery"
    );
    assert_eq!(s1.requests - s0.requests, 1, "only our PING was a request");
    assert_eq!((s1.malformed, s1.refused, s1.replays), (0, 0, 0));
    assert_eq!(
        files_under(dir.path()),
        before,
        "nothing created or removed"
    );
    assert_eq!(std::fs::read(&p).unwrap(), b"precious", "nothing written");
    eprintln!(
        "rule 1: {sent} forged datagrams of {types} types dropped, bad_auth {}",
        s1.bad_auth
    );
}

/// Rule 1: no start without a valid key file unless --insecure, which
/// warns once and is in --help; in that mode only unsigned datagrams pass.
#[test]
fn rule1_key_file_required_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_iod");
    let run = |extra: &[&str]| {
        Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let missing = dir.path().join("none.key");
    let o = run(&["--key-file", missing.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("key file") && err.contains("--insecure"),
        "{err}"
    );
    // readable by others: refused
    let kd = tempfile::tempdir().unwrap();
    let kf = common::write_key_file(kd.path(), &test_keys());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(&["--key-file", kf.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("0600"));
    // garbage: refused
    std::fs::write(&kf, "sign 1 2\n").unwrap();
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!run(&["--key-file", kf.to_str().unwrap()]).status.success());
    // --help says what --insecure does
    let help = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--insecure") && help.contains("INSECURE"),
        "{help}"
    );
    // --insecure: runs, warns once, unsigned only
    let (mut cmd, _) = common::iod_command(
        dir.path(),
        &Opts {
            keys: None,
            ..Opts::default()
        },
    );
    cmd.env("RUST_LOG", "warn").stderr(Stdio::piped());
    let mut p = common::spawn_iod_cmd(cmd);
    let mut meta = Meta::simple();
    meta.keys = Keys::insecure();
    let s = meta.ping(p.addr);
    assert_eq!(s.bad_auth, 0);
    let signed = Meta::simple();
    signed.send_raw(&signed.encode(p.addr, Body::Ping).bytes, p.addr);
    assert!(
        silent(&signed.sock, 300),
        "a signed datagram is refused in insecure mode"
    );
    assert_eq!(meta.ping(p.addr).bad_auth, 1);
    let _ = p.child.kill();
    let _ = p.child.wait();
    let mut err = String::new();
    p.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(err.matches("INSECURE").count(), 1, "{err}");
}

/// A fresh PING signed by `meta`, and its answer if one comes within `ms`.
fn ping_answered(meta: &Meta, iod: SocketAddr, ms: u64) -> Option<Vec<u8>> {
    let r = meta.encode(iod, Body::Ping);
    meta.send_raw(&r.bytes, iod);
    let deadline = Instant::now() + Duration::from_millis(ms);
    while let Some((b, _)) = meta.recv_within(deadline.saturating_duration_since(Instant::now())) {
        if meta.open(&b).is_some_and(|m| m.id == r.id) {
            return Some(b);
        }
    }
    None
}

/// Wait (up to 5 s) until `cond` holds.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Rule 1: SIGHUP reloads the key file (sign + accept slots) without
/// dropping requests; a bad file keeps the old keys.
#[test]
fn rule1_sighup_rotates_keys() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = test_key(0x1111_0001, 0x11);
    let k2 = test_key(0x2222_0002, 0x22);
    let iod = spawn_iod_with(
        dir.path(),
        &Opts {
            keys: Some(Keys::new(k1, None).unwrap()),
            ..Opts::default()
        },
    );
    let kf = iod.key_file.clone().unwrap();
    let mut old = Meta::simple();
    old.keys = Keys::new(k1, Some(k2)).unwrap();
    let mut new = Meta::simple();
    new.keys = Keys::new(k2, Some(k1)).unwrap();
    assert!(ping_answered(&old, iod.addr, 1000).is_some());
    assert!(
        ping_answered(&new, iod.addr, 300).is_none(),
        "k2 not accepted yet"
    );

    // Traffic signed with k1 (accepting k2 answers) during the reloads.
    let stop = Arc::new(AtomicBool::new(false));
    let bg = {
        let (stop, to, keys) = (Arc::clone(&stop), iod.addr, old.keys);
        std::thread::spawn(move || {
            let mut m = Meta::simple();
            m.keys = keys;
            m.viods = vec![vec![to]];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                m.write(n * 100, b"during rotation");
                m.ping(to);
                n += 1;
            }
            (n, m.retransmits.load(Ordering::Relaxed))
        })
    };
    // 1. everyone accepts k2
    nfsp_keys::store(&kf, &Keys::new(k1, Some(k2)).unwrap()).unwrap();
    iod.hup();
    assert!(
        eventually(|| ping_answered(&new, iod.addr, 200).is_some()),
        "k2 accepted after SIGHUP"
    );
    // 2. the iod signs with k2, still accepts k1
    nfsp_keys::store(&kf, &Keys::new(k2, Some(k1)).unwrap()).unwrap();
    iod.hup();
    let k2_only = Keys::new(k2, None).unwrap();
    assert!(eventually(|| {
        ping_answered(&old, iod.addr, 200).is_some_and(|b| wire::open(&k2_only, &b).is_ok())
    }));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (ops, retransmits) = bg.join().unwrap();
    assert!(ops > 0);
    assert_eq!(retransmits, 0, "a request was dropped during the rotation");
    // 3. k1 retired
    nfsp_keys::store(&kf, &Keys::new(k2, None).unwrap()).unwrap();
    iod.hup();
    assert!(eventually(|| ping_answered(
        &old_signing_only(k1),
        iod.addr,
        200
    )
    .is_none()));
    assert!(ping_answered(&new, iod.addr, 1000).is_some());
    // 4. a broken key file: the old keys stay
    std::fs::write(&kf, "sign nonsense\n").unwrap();
    iod.hup();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        ping_answered(&new, iod.addr, 1000).is_some(),
        "a failed reload kept the keys"
    );
    assert!(ping_answered(&old_signing_only(k1), iod.addr, 300).is_none());
    let s = new.ping(iod.addr);
    assert!(s.bad_auth >= 2);
    eprintln!("rule 1 rotation: {ops} write+ping rounds during two reloads, 0 retransmissions");
}

fn old_signing_only(k1: nfsp_proto::auth::Key) -> Meta {
    let mut m = Meta::simple();
    m.keys = Keys::new(k1, None).unwrap();
    m
}

/// Rule 2: requests must name the iod's current instance (else `Stale`,
/// with our instance and the request's id, nothing applied); after a
/// restart on the same directory a captured request is Stale.
#[test]
fn rule2_instance_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let iod = spawn_iod(dir.path());
    let mut meta = Meta::simple();
    meta.key = K;
    meta.viods = vec![vec![iod.addr]];
    // unknown instance (0): Stale, carrying the instance, nothing created
    let req = meta.encode(
        iod.addr,
        Body::Truncate(wire::Truncate {
            key: K,
            new_len: 5,
            extend_only: false,
            layout_epoch: 0,
            chain: Chain {
                origin: meta.addr,
                members: List::Items(&[]),
            },
        }),
    );
    let (from, id, inst1, a) = ack_for(&meta, &req, iod.addr);
    assert_eq!((from, id), (iod.addr, req.id));
    assert_eq!(
        (a.op, a.status, a.value),
        (MsgType::Truncate, Status::Stale, 0)
    );
    assert!(files_under(dir.path()).is_empty());
    let (s, pong_inst) = meta.ping_instance(iod.addr);
    assert_eq!(pong_inst, inst1);
    assert_eq!(s.refused, 1);
    // captured write, then a newer one
    meta.learn(iod.addr, inst1);
    let w_old = meta.write_requests(0, b"old!");
    meta.transact(&w_old);
    meta.write(0, b"new!");
    let p = dir.path().join(local_path(&K));
    assert_eq!(std::fs::read(&p).unwrap(), b"new!");
    drop(iod);
    let iod2 = spawn_iod(dir.path());
    let (from, id, inst2, a) = ack_for(&meta, &w_old[0], iod2.addr);
    assert_eq!((from, id), (iod2.addr, w_old[0].id));
    assert_eq!((a.op, a.status), (MsgType::Write, Status::Stale));
    assert_ne!(inst2, inst1, "a restart picks a new instance");
    assert_eq!(
        std::fs::read(&p).unwrap(),
        b"new!",
        "the captured write changed nothing"
    );
    // the meta learns the new instance and goes on
    meta.viods = vec![vec![iod2.addr]];
    meta.write(4, b"more");
    assert_eq!(std::fs::read(&p).unwrap(), b"new!more");
    assert_eq!(meta.ping_instance(iod2.addr).1, inst2);
    eprintln!("rule 2: instance {inst1:016x} -> {inst2:016x} after restart; captured WRITE answered Stale");
}

/// Rule 3: duplicates and replays. A replayed WRITE (after a newer write
/// to the same range) is not applied again and gets the cached ACK, also
/// through a replica chain (the head re-forwards, the member answers from
/// its cache); replayed READ and LIST get no answer, a replayed PING its
/// PONG (PINGs stay out of the window); a seq older than the window gets
/// nothing; a READ whose route comes back to an iod works.
#[test]
fn rule3_replays_and_duplicates() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<_> = dirs.iter().map(|d| d.path()).collect();
    let iods = spawn_cluster(&paths);
    let (a, b, c) = (iods[0].addr, iods[1].addr, iods[2].addr);
    let mut meta = Meta::simple();
    meta.key = K;
    meta.viods = vec![vec![a, b]];
    for x in [a, b, c] {
        meta.ping(x); // learn the instances: the captured requests are valid
    }
    let rel = local_path(&K);
    let w_old = meta.write_requests(0, b"old!");
    let acks = meta.expect_acks(&meta.transact(&w_old), MsgType::Write);
    assert_eq!((acks[0].status, acks[0].value), (Status::Ok, 4));
    meta.write(0, b"new!");
    let (from, id, _, ack) = ack_for(&meta, &w_old[0], a);
    assert_eq!(from, b, "the chain's last member answers again");
    assert_eq!(id, w_old[0].id);
    assert_eq!((ack.status, ack.value), (Status::Ok, 4));
    for d in &dirs[..2] {
        assert_eq!(
            std::fs::read(d.path().join(&rel)).unwrap(),
            b"new!",
            "replay applied"
        );
    }
    assert_eq!(meta.ping(a).replays, 1);
    assert_eq!(meta.ping(b).replays, 1);

    // UNLINK on C: the replay gets the cached ACK, removes nothing
    meta.viods = vec![vec![c]];
    meta.write(0, b"x");
    let keys = [K];
    let un = meta.encode(
        c,
        Body::Unlink(Unlink {
            keys: List::Items(&keys),
        }),
    );
    let (_, _, _, ack) = ack_for(&meta, &un, c);
    assert_eq!(ack.value, 1);
    meta.write(0, b"back");
    let (_, _, _, ack) = ack_for(&meta, &un, c);
    assert_eq!((ack.status, ack.value), (Status::Ok, 1), "cached ACK");
    assert_eq!(std::fs::read(dirs[2].path().join(&rel)).unwrap(), b"back");

    // READ, LIST, PING: a replay gets nothing
    let rd = meta.read_request(
        &[Hop {
            addr: c,
            local_offset: 0,
            len: 4,
            instance: 0,
        }],
        ReplySpec::Relay { origin: meta.addr },
    );
    let list = meta.encode(
        c,
        Body::List(ListRequest {
            after: None,
            max: 10,
        }),
    );
    let before = meta.ping(c).replays;
    for r in [&rd, &list] {
        let got = meta.transact(std::slice::from_ref(r));
        assert!(meta.open(&got[0]).is_some());
        meta.send_raw(&r.bytes, c);
        assert!(silent(&meta.sock, 400), "replayed {:?} answered", r.id);
    }
    assert_eq!(meta.ping(c).replays, before + 2);
    // PING stays out of the window: a replay gets its PONG again, no
    // longer than the PING, to the datagram's source (harmless).
    let ping = meta.encode(c, Body::Ping);
    for _ in 0..2 {
        let got = meta.transact(std::slice::from_ref(&ping));
        let m = meta.open(&got[0]).unwrap();
        assert!(matches!(m.body, Body::Pong(_)) && got[0].len() <= ping.bytes.len());
    }
    assert_eq!(meta.ping(c).replays, before + 2, "PINGs are no replays");

    // older than the window: the cached answer is gone too
    meta.skip_seqs(2 * nfsp_iod_window());
    meta.call(
        c,
        Body::List(ListRequest {
            after: None,
            max: 1,
        }),
    );
    meta.send_raw(&un.bytes, c);
    assert!(
        silent(&meta.sock, 400),
        "a seq older than the window was answered"
    );
    assert_eq!(meta.ping(c).replays, before + 3);

    // a route A -> C -> A (A twice): the second visit is not a duplicate
    meta.viods = vec![vec![a]];
    meta.write(0, b"AAAA");
    meta.viods = vec![vec![c]];
    meta.write(0, b"CCCC");
    let hops = [
        Hop {
            addr: a,
            local_offset: 0,
            len: 4,
            instance: 0,
        },
        Hop {
            addr: c,
            local_offset: 0,
            len: 4,
            instance: 0,
        },
        Hop {
            addr: a,
            local_offset: 1,
            len: 3,
            instance: 0,
        },
    ];
    let rd = meta.read_request(&hops, ReplySpec::Relay { origin: meta.addr });
    let got = meta.transact(std::slice::from_ref(&rd));
    match meta.open(&got[0]).unwrap().body {
        Body::ReadReply(r) => assert_eq!(r.data, b"AAAACCCCAAA"),
        other => panic!("expected a read reply, got {other:?}"),
    }
    meta.send_raw(&rd.bytes, a);
    assert!(silent(&meta.sock, 400), "replayed multi-hop READ answered");
    eprintln!("rule 3: replayed WRITE/UNLINK answered from the cache, READ/LIST replays dropped");
}

fn nfsp_iod_window() -> u64 {
    iod::replay::WINDOW
}

/// Rule 3: a full epoch table rotates the instance instead of forgetting
/// an epoch: a request captured before is then Stale, never applied.
#[test]
fn rule3_full_epoch_table_rotates_instance() {
    let dir = tempfile::tempdir().unwrap();
    let iod = spawn_iod(dir.path());
    let mut meta = Meta::simple();
    meta.key = K;
    meta.viods = vec![vec![iod.addr]];
    let (_, inst) = meta.ping_instance(iod.addr);
    meta.learn(iod.addr, inst);
    let w = meta.write_requests(0, b"abcd");
    meta.transact(&w);
    meta.write(0, b"efgh");
    // Only requests naming the current instance enter the table: a key
    // holder's fresh LISTs of distinct epochs.
    let flood = sink("127.0.0.1");
    let mut b = vec![0u8; 512];
    for e in 0..iod::replay::MAX_EPOCHS as u64 + 64 {
        let id = RequestId {
            epoch: 0xe000_0000_0000_0000 | (e + 1),
            seq: 1,
        };
        let list = Body::List(ListRequest {
            after: None,
            max: 1,
        });
        let n = Message::new(id, inst, list)
            .seal(&test_keys(), &mut b)
            .unwrap();
        flood.send_to(&b[..n], iod.addr).unwrap();
        if e % 256 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(
        eventually(|| meta.ping_instance(iod.addr).1 != inst),
        "instance rotated"
    );
    let (_, _, inst2, a) = ack_for(&meta, &w[0], iod.addr);
    assert_eq!(a.status, Status::Stale);
    assert_ne!(inst2, inst);
    assert_eq!(
        std::fs::read(dir.path().join(local_path(&K))).unwrap(),
        b"efgh"
    );
}

/// An iod for the address tests: peers = itself + `peer`, meta = `meta`.
fn rule4_iod(dir: &std::path::Path, peer: SocketAddr, meta: SocketAddr) -> common::IodProc {
    let listen = common::free_addrs(1)[0];
    spawn_iod_with(
        dir,
        &Opts {
            listen,
            peers: vec![listen, peer],
            meta: vec![meta],
            ..Opts::default()
        },
    )
}

/// Rule 4: direct replies only from a `--meta` address, never to a local
/// or peer address; hops and chain members must be peers, a chain member
/// never the iod itself; a first hop must name its sender (IP and port)
/// as origin. Each violation: ACK Refused to the sender, nothing sent to the target,
/// nothing written. Datagrams from the meta address are dropped.
#[test]
fn rule4_address_discipline() {
    let dir = tempfile::tempdir().unwrap();
    let peer = sink("127.0.0.1");
    let meta_nfs = sink("127.0.0.1");
    let outsider = sink("127.0.0.1");
    let far = sink("127.0.0.2");
    // the sender's IP, another port
    let neighbour = sink("127.0.0.1");
    let iod = rule4_iod(dir.path(), addr(&peer), addr(&meta_nfs));
    let me = iod.addr;
    let mut meta = Meta::simple();
    meta.key = K;
    let (_, inst) = meta.ping_instance(me);
    meta.learn(me, inst);
    let header = [0u8; 32];
    let read = |hops: &[Hop], reply| {
        let mut route = vec![Hop {
            addr: me,
            local_offset: 0,
            len: 10,
            instance: 0,
        }];
        route.extend_from_slice(hops);
        meta.read_request(&route, reply)
    };
    let hop = |a: SocketAddr| Hop {
        addr: a,
        local_offset: 0,
        len: 10,
        instance: 0,
    };
    let direct = |client, source| ReplySpec::Direct {
        origin: meta.addr,
        client,
        source,
        header: &header,
        pad: true,
    };
    let write = |origin, member: Option<SocketAddr>| {
        let m: Vec<ChainMember> = member
            .map(|addr| ChainMember { addr, instance: 0 })
            .into_iter()
            .collect();
        meta.encode(
            me,
            Body::Write(wire::Write {
                key: K,
                local_offset: 0,
                chain: Chain {
                    origin,
                    members: List::Items(&m),
                },
                data: b"no",
            }),
        )
    };
    let relay = ReplySpec::Relay { origin: meta.addr };
    let cases = [
        ("READ hop not a peer", read(&[hop(addr(&outsider))], relay)),
        (
            "chain member not a peer",
            write(meta.addr, Some(addr(&outsider))),
        ),
        ("chain member is the iod", write(meta.addr, Some(me))),
        (
            "direct source not --meta",
            read(&[], direct(addr(&outsider), addr(&outsider))),
        ),
        (
            "direct client is the iod",
            read(&[], direct(me, addr(&meta_nfs))),
        ),
        (
            "direct client is a peer",
            read(&[], direct(addr(&peer), addr(&meta_nfs))),
        ),
        (
            "READ origin is not the sender",
            read(&[], ReplySpec::Relay { origin: addr(&far) }),
        ),
        ("WRITE origin is not the sender", write(addr(&far), None)),
        (
            "READ origin is the sender's IP, another port",
            read(
                &[],
                ReplySpec::Relay {
                    origin: addr(&neighbour),
                },
            ),
        ),
        (
            "WRITE origin is the sender's IP, another port",
            write(addr(&neighbour), None),
        ),
    ];
    for (what, req) in &cases {
        let (from, id, i, a) = ack_for(&meta, req, me);
        assert_eq!((from, id, i), (me, req.id, inst), "{what}");
        assert_eq!(a.status, Status::Refused, "{what}");
    }
    for s in [&peer, &meta_nfs, &outsider, &far, &neighbour] {
        assert!(silent(s, 200), "something was sent to {}", addr(s));
    }
    assert!(files_under(dir.path()).is_empty(), "a refused WRITE wrote");
    assert_eq!(meta.ping(me).refused, cases.len() as u64);

    // controls: a peer hop is forwarded (with the peer's instance), and a
    // hop naming the iod itself is served in place, not sent to itself
    meta.learn(addr(&peer), 0x9ee7);
    let fwd = read(&[hop(addr(&peer))], relay);
    meta.send_raw(&fwd.bytes, me);
    let mut buf = [0u8; 65536];
    peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let (n, from) = peer.recv_from(&mut buf).expect("forwarded to the peer");
    let m = wire::open(&test_keys(), &buf[..n]).unwrap();
    assert_eq!((from, m.id, m.instance), (me, fwd.id, 0x9ee7));
    meta.viods = vec![vec![me]];
    meta.write(0, b"0123456789abcdefghij");
    let own = meta.read_request(
        &[
            hop(me),
            Hop {
                addr: me,
                local_offset: 10,
                len: 10,
                instance: 0,
            },
        ],
        relay,
    );
    match meta
        .open(&meta.transact(std::slice::from_ref(&own))[0])
        .unwrap()
        .body
    {
        Body::ReadReply(r) => assert_eq!(r.data, b"0123456789abcdefghij"),
        other => panic!("expected a read reply, got {other:?}"),
    }

    // a datagram from the meta-server's NFS address: dropped unanswered
    let before = meta.ping(me).refused;
    let r = meta.encode(me, Body::Ping);
    meta_nfs.send_to(&r.bytes, me).unwrap();
    assert!(silent(&meta_nfs, 400));
    assert_eq!(meta.ping(me).refused, before + 1);
    eprintln!(
        "rule 4: {} violations refused, nothing sent to their targets",
        cases.len()
    );
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// PING `iod` every 100 ms for `secs`, returning the round trips.
fn ping_series(meta: &Meta, iod: SocketAddr, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            meta.ping(iod);
            let rtt = t.elapsed();
            std::thread::sleep(Duration::from_millis(100));
            rtt
        })
        .collect()
}

/// Rule 5: a LIST flood (500/s for 3 s from one sender) is rate-limited
/// and queued apart: every PING is answered, at the same median latency.
#[test]
fn rule5_list_flood_does_not_starve_ping() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3000u64 {
        let k = FileKey::new(9, i, i);
        let p = dir.path().join(local_path(&k));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }
    let iod = spawn_iod(dir.path());
    let meta = Meta::simple();
    let (_, inst) = meta.ping_instance(iod.addr);
    // warm up, then the baseline
    ping_series(&meta, iod.addr, 5);
    let mut base = ping_series(&meta, iod.addr, 30);
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let (stop, to) = (Arc::clone(&stop), iod.addr);
        std::thread::spawn(move || {
            let s = sink("127.0.0.1");
            s.set_nonblocking(true).unwrap();
            let m = Meta::simple();
            m.learn(to, inst);
            let t0 = Instant::now();
            let (mut sent, mut answers) = (0u64, 0u64);
            let mut buf = vec![0u8; 65536];
            while t0.elapsed() < Duration::from_secs(3) && !stop.load(Ordering::Relaxed) {
                let r = m.encode(
                    to,
                    Body::List(ListRequest {
                        after: None,
                        max: 1024,
                    }),
                );
                s.send_to(&r.bytes, to).unwrap();
                sent += 1;
                while s.recv_from(&mut buf).is_ok() {
                    answers += 1;
                }
                // 500 a second
                let due = t0 + Duration::from_millis(2 * sent);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            std::thread::sleep(Duration::from_millis(300));
            while s.recv_from(&mut buf).is_ok() {
                answers += 1;
            }
            (sent, answers)
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let before = meta.retransmits.load(Ordering::Relaxed);
    let mut during = ping_series(&meta, iod.addr, 25);
    let lost = meta.retransmits.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let (sent, answers) = flood.join().unwrap();
    let (b, d) = (median(&mut base), median(&mut during));
    eprintln!(
        "rule 5: PING median {:.0} us without LIST flood, {:.0} us during {sent} LISTs \
         ({answers} answered); {lost} PINGs retransmitted",
        b.as_secs_f64() * 1e6,
        d.as_secs_f64() * 1e6
    );
    assert_eq!(lost, 0, "every PING answered at once");
    assert!(
        d <= b * 2,
        "PING median {d:?} during the flood vs {b:?} without"
    );
    assert!(sent > 1000);
    assert!(answers <= 40 + 20 * 4, "LIST rate limit: {answers} answers");
    let s = meta.ping(iod.addr);
    assert!(
        s.drops >= sent - answers - 10,
        "drops {} sent {sent} answers {answers}",
        s.drops
    );
}

/// Rule 5: WRITE and TRUNCATE beyond --max-file-size are refused TooBig.
#[test]
fn rule5_max_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let iod = spawn_iod(dir.path());
    let mut meta = Meta::simple();
    meta.key = K;
    let (_, inst) = meta.ping_instance(iod.addr);
    meta.learn(iod.addr, inst);
    let trunc = |meta: &Meta, to, new_len| {
        meta.encode(
            to,
            Body::Truncate(wire::Truncate {
                key: K,
                new_len,
                extend_only: false,
                layout_epoch: 0,
                chain: Chain {
                    origin: meta.addr,
                    members: List::Items(&[]),
                },
            }),
        )
    };
    let write = |meta: &Meta, to, local_offset, data: &[u8]| {
        meta.encode(
            to,
            Body::Write(wire::Write {
                key: K,
                local_offset,
                chain: Chain {
                    origin: meta.addr,
                    members: List::Items(&[]),
                },
                data,
            }),
        )
    };
    let status = |meta: &Meta, r: &common::meta::Req, to| ack_for(meta, r, to).3.status;
    assert_eq!(
        status(&meta, &trunc(&meta, iod.addr, 1 << 62), iod.addr),
        Status::TooBig
    );
    assert_eq!(
        status(
            &meta,
            &write(&meta, iod.addr, (1 << 40) - 2, b"1234"),
            iod.addr
        ),
        Status::TooBig
    );
    assert!(files_under(dir.path()).is_empty(), "no file created");
    // a small limit
    let dir2 = tempfile::tempdir().unwrap();
    let small = spawn_iod_with(
        dir2.path(),
        &Opts {
            extra: vec!["--max-file-size".into(), "1000".into()],
            ..Opts::default()
        },
    );
    let (_, inst) = meta.ping_instance(small.addr);
    meta.learn(small.addr, inst);
    let to = small.addr;
    assert_eq!(
        status(&meta, &write(&meta, to, 997, b"1234"), to),
        Status::TooBig
    );
    assert_eq!(status(&meta, &trunc(&meta, to, 1001), to), Status::TooBig);
    assert!(files_under(dir2.path()).is_empty());
    assert_eq!(
        status(&meta, &write(&meta, to, 996, b"1234"), to),
        Status::Ok
    );
    assert_eq!(status(&meta, &trunc(&meta, to, 1000), to), Status::Ok);
    assert_eq!(
        std::fs::metadata(dir2.path().join(local_path(&K)))
            .unwrap()
            .len(),
        1000
    );
}

/// An attacker without the key makes the iods send nothing at all: every
/// message type unsigned and forged, naming itself, other hosts and the
/// other iod as origin, client, hop and member, plus random garbage.
#[test]
fn amplification_unauthenticated_attacker_gets_nothing() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<_> = dirs.iter().map(|d| d.path()).collect();
    let iods = spawn_cluster(&paths);
    let meta = Meta::simple();
    let attacker = sink("127.0.0.1");
    let victims = [sink("127.0.0.1"), sink("127.0.0.2")];
    let insts: Vec<u64> = iods.iter().map(|p| meta.ping_instance(p.addr).1).collect();
    let s0: Vec<IodStats> = iods.iter().map(|p| meta.ping(p.addr)).collect();
    let mut rng = Rng(0xa77ac);
    let (mut sent, mut bytes) = (0u64, 0u64);
    for _ in 0..5 {
        for (i, iod) in iods.iter().enumerate() {
            let other = iods[1 - i].addr;
            for origin in [addr(&attacker), addr(&victims[0]), addr(&victims[1])] {
                for target in [other, addr(&victims[0]), addr(&victims[1])] {
                    for (_, d) in every_type(&meta, insts[i], origin, target) {
                        for f in forgeries(&d) {
                            attacker.send_to(&f, iod.addr).unwrap();
                            sent += 1;
                            bytes += f.len() as u64;
                        }
                    }
                    // Small bursts: every datagram must reach the iod to be
                    // counted (the receive buffer is 208 KiB without root).
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            for _ in 0..50 {
                let mut g = vec![0u8; rng.below(2000) as usize];
                rng.fill(&mut g);
                if g.len() >= 4 && rng.below(2) == 0 {
                    g[..4].copy_from_slice(b"NFSP");
                }
                attacker.send_to(&g, iod.addr).unwrap();
                sent += 1;
                bytes += g.len() as u64;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut received = 0usize;
    let mut buf = vec![0u8; 65536];
    for s in [&attacker, &victims[0], &victims[1]] {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        while let Ok((n, _)) = s.recv_from(&mut buf) {
            received += n;
        }
    }
    let dropped: u64 = iods
        .iter()
        .zip(&s0)
        .map(|(p, s0)| {
            let s = meta.ping(p.addr);
            assert_eq!(s.requests - s0.requests, 1, "only our PING was served");
            (s.bad_auth - s0.bad_auth) + (s.malformed - s0.malformed)
        })
        .sum();
    eprintln!(
        "amplification: attacker sent {sent} datagrams ({bytes} bytes); iods sent {received} bytes \
         to the attacker and its victims, dropped {dropped}"
    );
    assert_eq!(received, 0);
    assert_eq!(dropped, sent);
    for d in &dirs {
        assert!(files_under(d.path()).is_empty());
    }
}

/// Rule 6: the new counters are in PONG and in the --stats-json output.
#[test]
fn rule6_counters_in_stats_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut iod = spawn_iod_with(
        dir.path(),
        &Opts {
            extra: vec!["--stats-json".into()],
            ..Opts::default()
        },
    );
    let meta = Meta::simple();
    // one of each: a bad tag, a replay, a Stale refusal
    let mut unsigned = vec![0u8; 256];
    let n = Message::new(meta.next_id(), 0, Body::Ping)
        .encode(&mut unsigned)
        .unwrap();
    meta.send_raw(&unsigned[..n], iod.addr);
    let (_, inst) = meta.ping_instance(iod.addr);
    meta.learn(iod.addr, inst);
    let p = meta.encode(
        iod.addr,
        Body::List(ListRequest {
            after: None,
            max: 1,
        }),
    );
    meta.transact(std::slice::from_ref(&p));
    meta.send_raw(&p.bytes, iod.addr);
    let c = meta.encode(
        iod.addr,
        Body::Commit(wire::Commit {
            key: K,
            chain: Chain {
                origin: meta.addr,
                members: List::Items(&[]),
            },
        }),
    );
    meta.forget_instances();
    let c = meta.reissue(&c);
    assert_eq!(ack_for(&meta, &c, iod.addr).3.status, Status::Stale);
    std::thread::sleep(Duration::from_millis(200));
    let s = meta.ping(iod.addr);
    assert_eq!((s.bad_auth, s.replays, s.refused), (1, 1, 1));
    iod.signal(nix::sys::signal::Signal::SIGUSR1);
    let mut line = String::new();
    iod.stdout.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["bad_auth"], 1, "{line}");
    assert_eq!(v["replays"], 1, "{line}");
    assert_eq!(v["refused"], 1, "{line}");
}

/// A socket for floods: a receive buffer for every answer of a batch.
fn flood_sock() -> UdpSocket {
    use nix::sys::socket::{setsockopt, sockopt};
    let s = sink("127.0.0.1");
    let n: usize = 8 << 20;
    if setsockopt(&s, sockopt::RcvBufForce, &n).is_err() {
        let _ = setsockopt(&s, sockopt::RcvBuf, &n);
    }
    s
}

/// Sends `dgrams` to `to` from `s` in batches of 32, collecting whatever
/// comes back (a batch waits for its answers, or 50 ms of silence, so
/// that no receive buffer overflows); then 500 ms more.
fn exchange_all(s: &UdpSocket, dgrams: &[Vec<u8>], to: SocketAddr) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut drain = |want: usize, quiet_ms: u64, got: &mut Vec<Vec<u8>>| {
        s.set_read_timeout(Some(Duration::from_millis(quiet_ms)))
            .unwrap();
        while got.len() < want {
            match s.recv_from(&mut buf) {
                Ok((n, _)) => got.push(buf[..n].to_vec()),
                Err(_) => break,
            }
        }
    };
    for (i, chunk) in dgrams.chunks(32).enumerate() {
        for d in chunk {
            s.send_to(d, to).unwrap();
        }
        drain(32 * i + chunk.len(), 50, &mut got);
    }
    drain(usize::MAX, 500, &mut got);
    got
}

fn sealed(id: RequestId, instance: u64, body: Body<'_>) -> Vec<u8> {
    let mut b = vec![0u8; wire::MAX_DATAGRAM];
    let n = Message::new(id, instance, body)
        .seal(&test_keys(), &mut b)
        .unwrap();
    b.truncate(n);
    b
}

/// Rule 3: captured datagrams cannot fill the epoch table. PINGs stay out
/// of it (each authenticated PING gets its PONG, no longer than the PING,
/// replays included), and a request naming another instance is answered
/// `Stale` before the table is touched: 4,100 PINGs of distinct epochs
/// replayed 3 times, then old-instance requests of 5,000 epochs, rotate
/// nothing.
#[test]
fn rule3_captured_datagrams_do_not_rotate_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    let iod = spawn_iod(dir.path());
    let meta = Meta::simple();
    let (_, inst) = meta.ping_instance(iod.addr);
    let flood = flood_sock();
    // PINGs of past iodmgr/iodctl runs (instance 0, one epoch each)
    let pings: Vec<Vec<u8>> = (0..4100u64)
        .map(|e| {
            let id = RequestId {
                epoch: 0xc0de_0000_0000_0000 | (e + 1),
                seq: 3,
            };
            sealed(id, 0, Body::Ping)
        })
        .collect();
    let mut pongs = 0usize;
    for _ in 0..3 {
        for a in exchange_all(&flood, &pings, iod.addr) {
            let m = meta.open(&a).expect("signed answer");
            assert!(matches!(m.body, Body::Pong(_)), "{:?}", m.body);
            assert!(a.len() <= pings[0].len(), "a PONG longer than the PING");
            assert_eq!(m.instance, inst);
            pongs += 1;
        }
    }
    assert_eq!(
        meta.ping_instance(iod.addr).1,
        inst,
        "replayed PINGs rotated the instance"
    );
    assert_eq!(pongs, 3 * pings.len(), "every authenticated PING answered");
    // requests of 5,000 epochs naming an old instance
    let old = inst ^ 0x0123_4567_89ab_cdef;
    let keys = [K];
    let reqs: Vec<(RequestId, Vec<u8>)> = (0..5000u64)
        .map(|e| {
            let id = RequestId {
                epoch: 0xd1e0_0000_0000_0000 | (e + 1),
                seq: 1,
            };
            let body = Body::Unlink(Unlink {
                keys: List::Items(&keys),
            });
            (id, sealed(id, old, body))
        })
        .collect();
    let dgrams: Vec<Vec<u8>> = reqs.iter().map(|r| r.1.clone()).collect();
    let mut stale = std::collections::HashSet::new();
    for a in exchange_all(&flood, &dgrams, iod.addr) {
        let m = meta.open(&a).expect("signed answer");
        match m.body {
            Body::Ack(a) if a.status == Status::Stale && m.instance == inst => {
                stale.insert(m.id);
            }
            other => panic!("expected Stale, got {other:?}"),
        }
    }
    assert_eq!(
        meta.ping_instance(iod.addr).1,
        inst,
        "old-instance requests rotated the instance"
    );
    assert_eq!(stale.len(), reqs.len(), "every old-instance request Stale");
    assert!(reqs.iter().all(|r| stale.contains(&r.0)));
    let s = meta.ping(iod.addr);
    assert_eq!((s.replays, s.refused), (0, reqs.len() as u64));
    eprintln!(
        "rule 3: {} PING datagrams ({} epochs x 3) answered, {} old-instance requests Stale, \
         0 instance rotations",
        pongs,
        pings.len(),
        stale.len()
    );
}

/// Rule 2: after a restart, every request of the old instance is `Stale`,
/// even one far older than the sender's latest: the instance is checked
/// before the window, which learns nothing from it.
#[test]
fn rule2_old_inflight_requests_after_restart_are_stale() {
    let dir = tempfile::tempdir().unwrap();
    let listen = common::free_addrs(1)[0];
    let opts = Opts {
        listen,
        ..Opts::default()
    };
    let iod = spawn_iod_with(dir.path(), &opts);
    let mut meta = Meta::simple();
    meta.key = K;
    let (_, inst1) = meta.ping_instance(listen);
    meta.learn(listen, inst1);
    let keys = [K];
    let unlink = |meta: &Meta| {
        meta.encode(
            listen,
            Body::Unlink(Unlink {
                keys: List::Items(&keys),
            }),
        )
    };
    let early = unlink(&meta);
    meta.skip_seqs(2 * nfsp_iod_window());
    let late = unlink(&meta);
    drop(iod);
    let _iod2 = spawn_iod_with(dir.path(), &opts);
    let (_, _, inst2, a) = ack_for(&meta, &late, listen);
    assert_eq!(a.status, Status::Stale);
    assert_ne!(inst2, inst1);
    // in flight before the restart, older than the window below `late`
    let (_, id, i, a) = ack_for(&meta, &early, listen);
    assert_eq!((id, i, a.status), (early.id, inst2, Status::Stale));
    let s = meta.ping(listen);
    assert_eq!((s.replays, s.refused), (0, 2));
}

/// Rule 3: forwarded copies keep the origin's id, so a copy meant for iod
/// Y, replayed to iod Z first, must not mark that id at Z: the genuine
/// copy Z gets later (next hop of a READ, chain member of a WRITE) is
/// served.
#[test]
fn rule3_copy_for_another_iod_does_not_preempt_the_genuine_one() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<_> = dirs.iter().map(|d| d.path()).collect();
    let iods = spawn_cluster(&paths);
    let (y, z) = (iods[0].addr, iods[1].addr);
    let mut meta = Meta::simple();
    meta.key = K;
    meta.viods = vec![vec![y]];
    meta.write(0, b"YYYY");
    meta.viods = vec![vec![z]];
    meta.write(0, b"ZZZZ");
    let hop = |addr| Hop {
        addr,
        local_offset: 0,
        len: 4,
        instance: 0,
    };
    // READ route Y -> Z; its copy for Y, sent to Z from the origin's
    // address (an on-path attacker forges it): Stale (Y's instance)
    let rd = meta.read_request(&[hop(y), hop(z)], ReplySpec::Relay { origin: meta.addr });
    let (from, _, _, a) = ack_for(&meta, &rd, z);
    assert_eq!((from, a.status), (z, Status::Stale));
    // the genuine request: Y forwards it to Z, Z answers
    meta.send_raw(&rd.bytes, y);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut data = None;
    while let Some((b, from)) = meta.recv_within(deadline.saturating_duration_since(Instant::now()))
    {
        let Some(m) = meta.open(&b) else { continue };
        if let (true, Body::ReadReply(r)) = (m.id == rd.id && from == z, m.body) {
            data = Some(r.data.to_vec());
            break;
        }
    }
    assert_eq!(
        data.as_deref(),
        Some(&b"YYYYZZZZ"[..]),
        "the genuine READ was pre-empted at Z"
    );
    // WRITE chain Y -> Z; its copy for Y sent to Z by an attacker: Refused
    meta.viods = vec![vec![y, z]];
    let w = meta.write_requests(0, b"both").remove(0);
    let attacker = sink("127.0.0.1");
    attacker.send_to(&w.bytes, z).unwrap();
    attacker
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut b = vec![0u8; 65536];
    let (n, _) = attacker.recv_from(&mut b).expect("refusal");
    match meta.open(&b[..n]).unwrap().body {
        Body::Ack(a) => assert_eq!(a.status, Status::Refused),
        other => panic!("expected Refused, got {other:?}"),
    }
    let (from, id, _, a) = ack_for(&meta, &w, y);
    assert_eq!((from, id), (z, w.id), "the chain's last member answers");
    assert_eq!((a.status, a.value), (Status::Ok, 4));
    for d in &dirs {
        assert_eq!(
            std::fs::read(d.path().join(local_path(&K))).unwrap(),
            b"both"
        );
    }
}

/// A UDP relay standing for a chain member: passes what it receives to
/// `to` (from its own socket), drops the first datagram (a lost forward),
/// and reports every datagram's id and length.
fn lossy_relay(
    to: SocketAddr,
    stop: Arc<AtomicBool>,
) -> (
    SocketAddr,
    std::sync::mpsc::Receiver<(RequestId, usize)>,
    std::thread::JoinHandle<()>,
) {
    let s = flood_sock();
    let a = addr(&s);
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = vec![0u8; 65536];
        let mut first = true;
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, _)) = s.recv_from(&mut buf) else {
                continue;
            };
            let Ok(m) = wire::open(&test_keys(), &buf[..n]) else {
                continue;
            };
            let _ = tx.send((m.id, n));
            if !std::mem::take(&mut first) {
                s.send_to(&buf[..n], to).unwrap();
            }
        }
    });
    (a, rx, t)
}

/// Rule 3: a finished, forwarded mutation is forwarded again at most
/// twice in its life. A lost forward is still repaired by the origin's
/// retransmission; 50 replays of a 60 KiB WRITE from the origin's address
/// make the head send at most 2 copies: the iods send less than the
/// replayer.
#[test]
fn rule3_replayed_forwarded_write_is_reforwarded_at_most_twice() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs = common::free_addrs(2);
    let (yl, zl) = (addrs[0], addrs[1]);
    let stop = Arc::new(AtomicBool::new(false));
    let (relay, seen, relay_t) = lossy_relay(zl, Arc::clone(&stop));
    // Y forwards to the relay, which passes to Z: both know it as a peer
    let spawn = |dir: &std::path::Path, listen| {
        spawn_iod_with(
            dir,
            &Opts {
                listen,
                peers: vec![listen, relay],
                ..Opts::default()
            },
        )
    };
    let _y = spawn(dirs[0].path(), yl);
    let _z = spawn(dirs[1].path(), zl);
    let mut meta = Meta::simple();
    meta.key = K;
    meta.viods = vec![vec![yl, relay]];
    meta.learn(yl, meta.ping_instance(yl).1);
    meta.learn(relay, meta.ping_instance(zl).1);
    let mut rng = Rng(0x5eed);
    let mut data = vec![0u8; wire::MAX_DATA_PER_MSG];
    rng.fill(&mut data);

    // A: the first forward is lost; the origin's retransmission repairs it
    let wa = meta.write_requests(0, &data);
    assert_eq!(wa.len(), 1);
    let acks = meta.expect_acks(&meta.transact(&wa), MsgType::Write);
    assert_eq!(
        (acks[0].status, acks[0].value),
        (Status::Ok, data.len() as u64)
    );
    assert!(meta.retransmits.load(Ordering::Relaxed) >= 1);
    let rel = local_path(&K);
    let local = |i: usize| std::fs::read(dirs[i].path().join(&rel)).unwrap();
    assert_eq!(&local(1)[..data.len()], &data[..], "Z has the WRITE");

    // B: forwarded once, then replayed 50 times from the origin's address
    rng.fill(&mut data);
    let wb = meta.write_requests(2 * 65536, &data);
    assert_eq!(wb.len(), 1);
    meta.expect_acks(&meta.transact(&wb), MsgType::Write);
    std::thread::sleep(Duration::from_millis(200));
    let so_far: Vec<(RequestId, usize)> = seen.try_iter().collect();
    let count = |id| so_far.iter().filter(|(i, _)| *i == id).count();
    assert_eq!(count(wa[0].id), 2, "A: the lost forward and one re-forward");
    assert_eq!(count(wb[0].id), 1);
    let dgram = wb[0].bytes.len();
    let (mut replayed, mut answered) = (0usize, 0usize);
    for _ in 0..50 {
        meta.send_raw(&wb[0].bytes, yl);
        replayed += dgram;
        std::thread::sleep(Duration::from_millis(5));
        while let Some((b, _)) = meta.recv_within(Duration::from_millis(1)) {
            answered += b.len();
        }
    }
    while let Some((b, _)) = meta.recv_within(Duration::from_millis(500)) {
        answered += b.len();
    }
    let copies: Vec<usize> = seen
        .try_iter()
        .filter(|(i, _)| *i == wb[0].id)
        .map(|x| x.1)
        .collect();
    let forwarded: usize = copies.iter().sum();
    stop.store(true, Ordering::Relaxed);
    relay_t.join().unwrap();
    let iods_sent = forwarded + answered;
    eprintln!(
        "rule 3: 50 replays of a {dgram}-byte WRITE ({replayed} bytes): {} re-forwards \
         ({forwarded} bytes) to the next member, {answered} bytes of answers; iods sent \
         {iods_sent} bytes",
        copies.len()
    );
    assert!(copies.len() <= 2, "{} re-forwards", copies.len());
    assert!(iods_sent < replayed, "{iods_sent} >= {replayed}");
    assert!(meta.ping(yl).replays >= 50);
    assert_eq!(&local(1)[2 * 65536..], &data[..]);
    assert_eq!(&local(0)[2 * 65536..], &data[..]);
}

/// Rule 3: the reply cache covers the whole window: after 1,000 more
/// mutations, a retransmission of the first gets its cached ACK (not
/// applied again).
#[test]
fn rule3_retransmission_after_1000_mutations_gets_the_cached_ack() {
    let dir = tempfile::tempdir().unwrap();
    let iod = spawn_iod(dir.path());
    let mut meta = Meta::simple();
    meta.key = K;
    meta.viods = vec![vec![iod.addr]];
    meta.learn(iod.addr, meta.ping_instance(iod.addr).1);
    let reqs: Vec<common::meta::Req> = (0..1000u32)
        .map(|i| {
            meta.write_requests(u64::from(i) * 4, &i.to_le_bytes())
                .remove(0)
        })
        .collect();
    for a in meta.expect_acks(&meta.transact(&reqs), MsgType::Write) {
        assert_eq!((a.status, a.value), (Status::Ok, 4));
    }
    meta.write(0, b"new!");
    let (from, id, _, a) = ack_for(&meta, &reqs[0], iod.addr);
    assert_eq!((from, id), (iod.addr, reqs[0].id));
    assert_eq!((a.op, a.status, a.value), (MsgType::Write, Status::Ok, 4));
    let f = std::fs::read(dir.path().join(local_path(&K))).unwrap();
    assert_eq!(
        &f[..8],
        b"new!\x01\x00\x00\x00",
        "the retransmission was not applied"
    );
    assert!(meta.ping(iod.addr).replays >= 1);
}
