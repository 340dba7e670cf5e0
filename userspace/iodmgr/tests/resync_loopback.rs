// SPDX-License-Identifier: GPL-2.0
//! Re-sync between two real iods on loopback (in-process servers): the
//! returning member has stale bytes, a wrong length, a missing file and a
//! leftover; after the re-sync both list the same keys and lengths and
//! read the same bytes. Also: PING of a live and a silent iod.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use iod::{Config, Server, ServerHandle};
use iodmgr::resync::{Resync, CHUNK};
use nfsp_proto::FileKey;
use unlinkd::client::Client;

fn spawn(dir: &std::path::Path) -> ServerHandle {
    let s = Server::bind(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        workers: 4,
        max_inflight: 4,
    })
    .unwrap();
    s.start(Arc::new(AtomicBool::new(false))).unwrap()
}

fn client() -> Client {
    Client::new(Duration::from_millis(500), 4)
}

/// Pseudo-random bytes.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn put(c: &mut Client, to: SocketAddr, key: FileKey, data: &[u8]) {
    for (i, chunk) in data.chunks(CHUNK as usize).enumerate() {
        c.write(to, key, i as u64 * CHUNK, chunk).unwrap();
    }
    c.truncate(to, key, data.len() as u64).unwrap();
}

fn get(c: &mut Client, from: SocketAddr, key: FileKey, len: u64) -> Vec<u8> {
    let mut out = vec![0u8; len as usize];
    for (i, chunk) in out.chunks_mut(CHUNK as usize).enumerate() {
        c.read(from, key, i as u64 * CHUNK, chunk).unwrap();
    }
    out
}

fn listing(c: &mut Client, at: SocketAddr) -> Vec<(FileKey, u64)> {
    let mut v = Vec::new();
    c.list_all(at, |p| v.extend(p.iter().map(|e| (e.key, e.len))))
        .unwrap();
    v
}

#[test]
fn resync_makes_the_target_identical() {
    let (ds, dt) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (s, t) = (spawn(ds.path()), spawn(dt.path()));
    let mut c = client();
    let k = |i| FileKey::new(0xfeed, i, 42);
    // Same on both.
    let same = bytes(1, 200_000);
    put(&mut c, s.addr, k(1), &same);
    put(&mut c, t.addr, k(1), &same);
    // Stale bytes in the middle on the target.
    let new = bytes(2, 300_000);
    let mut old = new.clone();
    old[130_000..140_000].fill(7);
    put(&mut c, s.addr, k(2), &new);
    put(&mut c, t.addr, k(2), &old);
    // Longer on the target (the source was truncated meanwhile).
    let short = bytes(3, 70_000);
    let mut long = short.clone();
    long.extend_from_slice(&bytes(4, 90_000));
    put(&mut c, s.addr, k(3), &short);
    put(&mut c, t.addr, k(3), &long);
    // Shorter on the target (the source was extended).
    let grown = bytes(5, 250_000);
    put(&mut c, s.addr, k(4), &grown);
    put(&mut c, t.addr, k(4), &grown[..10_000]);
    // Missing on the target; a sparse one with a hole.
    let fresh = bytes(6, 123_457);
    put(&mut c, s.addr, k(5), &fresh);
    let mut sparse = vec![0u8; 400_000];
    sparse[390_000..].copy_from_slice(&bytes(7, 10_000));
    put(&mut c, s.addr, k(6), &sparse);
    // Only on the target (deleted while it was away).
    put(&mut c, t.addr, k(7), &bytes(8, 5000));

    // The leftover must look older than the re-sync.
    std::thread::sleep(Duration::from_millis(2100));
    let progress = Arc::new(AtomicU64::new(0));
    let r = Resync {
        client: client(),
        source: s.addr,
        target: t.addr,
        abort: Arc::new(AtomicBool::new(false)),
        progress: Arc::clone(&progress),
        pause: Duration::from_millis(50),
        max_rounds: 10,
    }
    .run()
    .unwrap();
    assert_eq!(r.files, 6);
    assert_eq!(r.deleted, 1);
    assert_eq!(r.truncated, 4, "k3, k4, k5, k6");
    assert_eq!(r.copied, progress.load(Ordering::Relaxed));
    // Chunk 2 of k2 (stale), k3's first 60 KiB (unchanged: not copied),
    // k4 past 10 000, k5 whole, k6's last chunk only (zeros skipped).
    assert!(r.copied < 1_000_000, "{r:?}");
    assert_eq!(r.rounds, 2, "a second round finds nothing to do");
    assert_eq!(listing(&mut c, s.addr), listing(&mut c, t.addr));
    for (key, len) in listing(&mut c, s.addr) {
        assert_eq!(get(&mut c, s.addr, key, len), get(&mut c, t.addr, key, len));
    }
    assert_eq!(get(&mut c, t.addr, k(2), 300_000), new);
    assert_eq!(get(&mut c, t.addr, k(6), 400_000), sparse);

    // Identical members: one round, nothing copied.
    let r = Resync {
        client: client(),
        source: s.addr,
        target: t.addr,
        abort: Arc::new(AtomicBool::new(false)),
        progress: Arc::default(),
        pause: Duration::from_millis(50),
        max_rounds: 10,
    }
    .run()
    .unwrap();
    assert_eq!((r.rounds, r.copied, r.deleted, r.truncated), (1, 0, 0, 0));
    s.shutdown();
    t.shutdown();
}

#[test]
fn aborts_and_fails_on_a_dead_source() {
    let dt = tempfile::tempdir().unwrap();
    let t = spawn(dt.path());
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let abort = Arc::new(AtomicBool::new(true));
    let job = |abort: Arc<AtomicBool>| Resync {
        client: Client::new(Duration::from_millis(20), 2),
        source: silent.local_addr().unwrap(),
        target: t.addr,
        abort,
        progress: Arc::default(),
        pause: Duration::from_millis(10),
        max_rounds: 3,
    };
    assert!(matches!(
        job(abort).run(),
        Err(iodmgr::resync::ResyncError::Aborted)
    ));
    let e = job(Arc::new(AtomicBool::new(false))).run().unwrap_err();
    assert!(e.to_string().contains("no answer"), "{e}");
    t.shutdown();
}

#[test]
fn pings_live_and_silent_iods() {
    let d = tempfile::tempdir().unwrap();
    let live = spawn(d.path());
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut c = client();
    let r = c.ping_many(
        &[silent.local_addr().unwrap(), live.addr],
        Duration::from_millis(300),
    );
    assert!(r[0].is_none());
    let (rtt, stats) = r[1].expect("PONG");
    assert!(rtt < Duration::from_millis(300));
    assert!(stats.uptime_s < 60);
    live.shutdown();
}
