// SPDX-License-Identifier: GPL-2.0
//! Three iods on loopback driven by a test meta-server written with
//! `nfsp_proto` only: striped + replicated writes, relay reads (straddling
//! via the routing list), COMMIT, TRUNCATE, UNLINK, holes, garbage.

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::meta::{Meta, Rng};
use common::{spawn_cluster, spawn_iod};
use nfsp_proto::wire::{self, Body, Message, Status};
use nfsp_proto::{FileKey, StripeLayout};

const MIB: u64 = 1 << 20;
const SIZE: u64 = 6 * MIB;
const B: u64 = 65536;
const HOLE: (u64, u64) = (4 * MIB + 5000, 300_000);

#[test]
fn three_iods_end_to_end() {
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let paths: Vec<_> = dirs.iter().map(|d| d.path()).collect();
    let iods = spawn_cluster(&paths);
    let a: Vec<_> = iods.iter().map(|p| p.addr).collect();
    // viod 0 = replica chain iod0 -> iod1, viod 1 = iod2; first viod 1.
    let layout = StripeLayout::new(B as u32, 2, 1).expect("layout");
    let key = FileKey::new(0x42, 0x4242_4242, 0x1234_5678);
    let meta = Meta::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![vec![a[0], a[1]], vec![a[2]]],
        layout,
        key,
    );

    // Garbage sender running during the transfer.
    let stop = Arc::new(AtomicBool::new(false));
    let garbage_sent: Arc<Vec<AtomicU64>> = Arc::new((0..3).map(|_| AtomicU64::new(0)).collect());
    let g = {
        let (stop, sent, a) = (Arc::clone(&stop), Arc::clone(&garbage_sent), a.clone());
        std::thread::spawn(move || {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let mut rng = Rng(99);
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) && i < 3000 {
                let mut d = vec![0u8; 1 + rng.below(1500) as usize];
                rng.fill(&mut d);
                d[0] = b'X'; // never the magic
                let t = i % 3;
                s.send_to(&d, a[t]).expect("send garbage");
                sent[t].fetch_add(1, Ordering::Relaxed);
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    // Random writes (many straddling block boundaries), avoiding the hole.
    let mut model = vec![0u8; SIZE as usize];
    let mut rng = Rng(0x5eed);
    let mut writes = 0;
    let mut straddling = 0;
    // Make sure the last block is written so the file has its full size.
    let mut tail = vec![0u8; 10_000];
    rng.fill(&mut tail);
    meta.write(SIZE - 10_000, &tail);
    model[(SIZE - 10_000) as usize..].copy_from_slice(&tail);
    while writes < 150 {
        let len = 1 + rng.below(200_000);
        let off = rng.below(SIZE - len);
        if off < HOLE.0 + HOLE.1 && off + len > HOLE.0 {
            continue;
        }
        if off / B != (off + len - 1) / B {
            straddling += 1;
        }
        let mut d = vec![0u8; len as usize];
        rng.fill(&mut d);
        meta.write(off, &d);
        model[off as usize..(off + len) as usize].copy_from_slice(&d);
        writes += 1;
    }
    assert!(straddling > 100, "only {straddling} straddling writes");

    // Random relay reads, including straddling ones through the routing list.
    for _ in 0..150 {
        let len = 1 + rng.below(300_000);
        let off = rng.below(SIZE - len);
        let got = meta.read(off, len);
        assert!(
            got == model[off as usize..(off + len) as usize],
            "read {off}+{len} differs"
        );
    }
    // Explicit thesis-style straddle: 8 KiB at 60 KiB, and a multi-hop read.
    assert_eq!(meta.read(60 * 1024, 8192), model[60 * 1024..68 * 1024]);
    let groups = meta.read_groups(100, 3 * B);
    assert!(
        groups.iter().any(|g| g.len() >= 2),
        "expected a multi-hop read"
    );
    assert_eq!(meta.read(100, 3 * B), model[100..(100 + 3 * B) as usize]);
    // Full sequential read, byte-exact.
    let all = meta.read(0, SIZE);
    assert!(all == model, "full read differs");
    // The hole reads as zeros.
    assert!(meta.read(HOLE.0, HOLE.1).iter().all(|b| *b == 0));
    // Past the end of every local file: zeros.
    assert!(meta.read(SIZE, 3 * B).iter().all(|b| *b == 0));

    stop.store(true, Ordering::Relaxed);
    g.join().expect("garbage thread");

    // Replica chain: both members of viod 0 hold identical data.
    let mut pb = [0u8; 64];
    let rel = key.write_local_path(&mut pb).unwrap().to_string();
    let f0 = std::fs::read(dirs[0].path().join(&rel)).expect("iod0 file");
    let f1 = std::fs::read(dirs[1].path().join(&rel)).expect("iod1 file");
    let f2 = std::fs::read(dirs[2].path().join(&rel)).expect("iod2 file");
    assert!(!f0.is_empty() && f0 == f1, "replicas differ");
    assert_eq!(f0.len() as u64, layout.local_len(0, SIZE).unwrap());
    assert_eq!(f2.len() as u64, layout.local_len(1, SIZE).unwrap());
    // Local layout follows the cyclic formula: check a few blocks.
    for p in layout.pieces(0, SIZE).unwrap().step_by(7) {
        let f = if p.viod == 0 { &f0 } else { &f2 };
        let lo = p.local_offset as usize;
        assert_eq!(
            &f[lo..lo + p.len as usize],
            &model[p.file_offset as usize..p.file_end() as usize]
        );
    }

    // COMMIT acks on every viod.
    for ack in meta.commit() {
        assert_eq!(ack.status, Status::Ok);
    }

    // Garbage was counted, nothing else disturbed.
    let mut total_malformed = 0;
    for (i, addr) in a.iter().enumerate() {
        let s = meta.ping(*addr);
        let sent = garbage_sent[i].load(Ordering::Relaxed);
        assert!(
            s.malformed > 0 && s.malformed <= sent,
            "iod{i}: malformed {} sent {sent}",
            s.malformed
        );
        assert!(s.requests > 0);
        assert_eq!(s.errors, 0, "iod{i} errors");
        total_malformed += s.malformed;
    }
    assert!(total_malformed > 100);
    // PONG tells the space of the file system holding the data.
    let fs = nix::sys::statvfs::statvfs(dirs[0].path()).expect("statvfs");
    let s = meta.ping(a[0]);
    assert_eq!(
        s.space_total,
        fs.blocks() * fs.fragment_size(),
        "space_total"
    );
    assert!(s.space_avail <= s.space_free && s.space_free <= s.space_total);
    assert!(s.space_avail > 0, "a test machine has room");
    let before = meta.ping(a[2]);
    assert!(before.bytes_written > 0 && before.bytes_read > 0);

    // A request with an unknown protocol version (correctly signed) is
    // dropped and counted as malformed; unsigned, it is a bad tag.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut buf = vec![0u8; 256];
    let id = meta.next_id();
    let n = Message::new(id, 0, Body::Ping).encode(&mut buf).unwrap();
    buf[4] = 9; // version
    wire::seal(&meta.keys, &mut buf[..n]).unwrap();
    probe.send_to(&buf[..n], a[2]).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut r = [0u8; 256];
    assert!(
        probe.recv_from(&mut r).is_err(),
        "bad version must get no answer"
    );
    let after = meta.ping(a[2]);
    assert_eq!(after.malformed, before.malformed + 1);
    assert_eq!(after.bad_auth, before.bad_auth);
    // Stale answers while the meta learnt the instances, nothing else.
    assert_eq!(after.replays, 0, "iod2 replays");
    assert!(after.refused > 0 && after.refused <= meta.stales.load(Ordering::Relaxed));

    // TRUNCATE to a size inside a block, then zeros past the cut.
    let cut = 2 * MIB + 12_345;
    for ack in meta.truncate(cut, 0) {
        assert_eq!(ack.status, Status::Ok);
    }
    let f0 = std::fs::metadata(dirs[0].path().join(&rel)).unwrap().len();
    let f1 = std::fs::metadata(dirs[1].path().join(&rel)).unwrap().len();
    let f2 = std::fs::metadata(dirs[2].path().join(&rel)).unwrap().len();
    assert_eq!(
        (f0, f1, f2),
        (
            layout.local_len(0, cut).unwrap(),
            layout.local_len(0, cut).unwrap(),
            layout.local_len(1, cut).unwrap()
        )
    );
    assert_eq!(meta.read(0, cut), model[..cut as usize]);
    assert!(
        meta.read(cut, SIZE - cut).iter().all(|b| *b == 0),
        "data past the cut"
    );
    // Grow again: the old bytes between cut and the new write stay zero.
    meta.write(5 * MIB, b"regrown");
    let z = meta.read(cut, 5 * MIB - cut);
    assert!(
        z.iter().all(|b| *b == 0),
        "stale data reappeared after truncate"
    );
    assert_eq!(meta.read(5 * MIB, 7), b"regrown");

    // UNLINK removes every local file; a second UNLINK is fine.
    let acks = meta.unlink();
    assert_eq!(
        acks.iter().map(|a| a.value).collect::<Vec<_>>(),
        vec![1, 1, 1]
    );
    assert!(acks.iter().all(|a| a.status == Status::Ok));
    for d in &dirs {
        assert!(!d.path().join(&rel).exists(), "local file still there");
    }
    let acks = meta.unlink();
    assert!(acks.iter().all(|a| a.status == Status::Ok && a.value == 0));
    // Reading a deleted file yields zeros (no stale data).
    assert!(meta.read(0, 100_000).iter().all(|b| *b == 0));
}

#[test]
fn write_error_is_acked_to_origin() {
    // A member whose data directory is unusable answers an error ack at once.
    let good = tempfile::tempdir().unwrap();
    let bad = tempfile::tempdir().unwrap();
    let mut c = spawn_cluster(&[good.path(), bad.path()]);
    let b = c.pop().unwrap();
    let g = c.pop().unwrap();
    // Replace the bad iod's data dir content with a file where a
    // sub-directory must go: make every hashed dir creation fail.
    let key = FileKey::new(1, 2, 3);
    let mut pb = [0u8; 64];
    let rel = key.write_local_path(&mut pb).unwrap().to_string();
    let first = rel.split('/').next().unwrap();
    std::fs::write(bad.path().join(first), b"not a directory").unwrap();
    let layout = StripeLayout::new(B as u32, 1, 0).unwrap();
    let meta = Meta::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![vec![g.addr, b.addr]],
        layout,
        key,
    );
    let req = meta.encode(
        g.addr,
        Body::Write(nfsp_proto::wire::Write {
            key,
            local_offset: 0,
            chain: nfsp_proto::wire::Chain {
                origin: meta.addr,
                members: nfsp_proto::wire::List::Items(&[nfsp_proto::wire::ChainMember {
                    addr: b.addr,
                    instance: 0,
                }]),
            },
            data: b"hello",
        }),
    );
    let r = meta.transact(&[req]);
    match meta.open(&r[0]).unwrap().body {
        Body::Ack(a) => assert_eq!(a.status, Status::Io),
        other => panic!("expected ack, got {other:?}"),
    }
    // The head of the chain did write its copy.
    assert_eq!(std::fs::read(good.path().join(&rel)).unwrap(), b"hello");
    assert_eq!(meta.ping(b.addr).errors, 1);
}

/// LIST pages through everything an iod holds, in listing order, with a
/// cursor; unknown names are skipped; after UNLINK the keys are gone.
#[test]
fn list_pages_in_key_order() {
    use nfsp_proto::wire::{List, ListEntry, ListRequest, Unlink};
    let dir = tempfile::tempdir().unwrap();
    let iod = spawn_iod(dir.path());
    let meta = Meta::simple();
    let mut keys: Vec<FileKey> = (0..700u64).map(|i| FileKey::new(5, i, i ^ 0x55)).collect();
    for (i, k) in keys.iter().enumerate() {
        let mut pb = [0u8; 64];
        let p = dir.path().join(k.write_local_path(&mut pb).unwrap());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, vec![1u8; i % 10]).unwrap();
    }
    // foreign names are not listed
    std::fs::write(dir.path().join("README"), b"x").unwrap();
    let mut pb = [0u8; 64];
    let p = dir.path().join(keys[0].write_local_path(&mut pb).unwrap());
    std::fs::write(p.with_file_name("garbage.tmp"), b"x").unwrap();
    keys.sort_by(|a, b| a.list_cmp(b));
    let list = |after: Option<FileKey>, max: u16| -> (Vec<ListEntry>, bool) {
        let b = meta.call(iod.addr, Body::List(ListRequest { after, max }));
        match meta.open(&b).unwrap().body {
            Body::ListReply(r) => {
                assert_eq!(r.status, Status::Ok);
                (r.entries.iter().collect(), r.more)
            }
            other => panic!("expected a list reply, got {other:?}"),
        }
    };
    let mut got = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let (page, more) = list(after, 256);
        pages += 1;
        got.extend(page.iter().copied());
        after = page.last().map(|e| e.key);
        if !more {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(got.iter().map(|e| e.key).collect::<Vec<_>>(), keys);
    for e in &got {
        assert_eq!(e.len, e.key.inode % 10);
        assert!(e.mtime_s > 1_600_000_000);
    }
    // exactly max entries left: no 'more'
    let (page, more) = list(Some(keys[keys.len() - 11]), 10);
    assert_eq!((page.len(), more), (10, false));
    let (page, more) = list(Some(keys[keys.len() - 12]), 10);
    assert_eq!((page.len(), more), (10, true));
    // UNLINK half, list again
    for chunk in keys[..350].chunks(256) {
        let b = meta.call(
            iod.addr,
            Body::Unlink(Unlink {
                keys: List::Items(chunk),
            }),
        );
        match meta.open(&b).unwrap().body {
            Body::Ack(a) => assert_eq!(a.value, chunk.len() as u64),
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    let (page, more) = list(None, 1024);
    assert!(!more);
    let mut left = keys[350..].to_vec();
    left.sort_by(|a, b| a.list_cmp(b));
    assert_eq!(page.iter().map(|e| e.key).collect::<Vec<_>>(), left);
}
