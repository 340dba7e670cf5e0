// SPDX-License-Identifier: GPL-2.0
//! Re-sync between two real iods on loopback (in-process servers): the
//! returning member has stale bytes, a wrong length, a missing file and a
//! leftover; after the re-sync both list the same keys and lengths and
//! read the same bytes. A lying source (a fake iod): a forged huge length
//! is skipped, a listing that does not advance fails. Also: PING of a live
//! and a silent iod, and an iod restart (new instance) seen by the client
//! and the monitor.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use common::{client, fake, sealed, spawn, spawn_at, FAKE_INSTANCE};
use iodmgr::health::{Config as HealthConfig, Monitor};
use iodmgr::resync::{Report, Resync, ResyncError, CHUNK, DEFAULT_MAX_FILE_SIZE};
use nfsp_proto::wire::{
    Ack, Body, List, ListEntry, ListReply, Message, MsgType, ReadReply, Status,
};
use nfsp_proto::{FileKey, IodState, ListLine};
use unlinkd::client::{Client, ClientError};

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

fn job(source: SocketAddr, target: SocketAddr) -> Resync {
    Resync {
        client: client(),
        source,
        target,
        abort: Arc::new(AtomicBool::new(false)),
        progress: Arc::default(),
        pause: Duration::from_millis(50),
        max_rounds: 10,
        max_file_size: DEFAULT_MAX_FILE_SIZE,
    }
}

/// Run `r` in a thread; a hang fails the test instead of blocking it.
fn run_bounded(r: Resync) -> Result<Report, ResyncError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(r.run());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the re-sync must end")
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
        progress: Arc::clone(&progress),
        ..job(s.addr, t.addr)
    }
    .run()
    .unwrap();
    assert_eq!(r.files, 6);
    assert_eq!(r.deleted, 1);
    assert_eq!(r.truncated, 4, "k3, k4, k5, k6");
    assert_eq!(r.too_big, 0);
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
    let r = job(s.addr, t.addr).run().unwrap();
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
        client: Client::new(common::keys(), Duration::from_millis(20), 2).unwrap(),
        abort,
        pause: Duration::from_millis(10),
        max_rounds: 3,
        ..job(silent.local_addr().unwrap(), t.addr)
    };
    assert!(matches!(job(abort).run(), Err(ResyncError::Aborted)));
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
    let p = r[1].expect("PONG");
    assert!(p.rtt < Duration::from_millis(300));
    assert!(p.stats.uptime_s < 60);
    assert_eq!(p.instance, live.instance());
    assert_eq!(c.instance(live.addr), Some(live.instance()));
    live.shutdown();
}

/// The pattern a fake source serves: byte `o` of a file is `o * 7 % 251`.
fn pattern(off: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = ((off + i as u64) * 7 % 251) as u8;
    }
}

/// A fake source listing `entries` (sorted here), serving the pattern.
fn lying_source(mut entries: Vec<ListEntry>) -> common::Fake {
    entries.sort_by(|a, b| a.key.list_cmp(&b.key));
    fake(move |m| match m.body {
        Body::List(l) => {
            let after: Vec<ListEntry> = entries
                .iter()
                .filter(|e| l.after.is_none_or(|c| c.list_cmp(&e.key).is_lt()))
                .copied()
                .collect();
            let r = ListReply {
                status: Status::Ok,
                more: false,
                entries: List::Items(&after),
            };
            Some(sealed(&Message::new(
                m.id,
                FAKE_INSTANCE,
                Body::ListReply(r),
            )))
        }
        Body::Read(r) => {
            let mut data = vec![0u8; r.len as usize];
            pattern(r.local_offset, &mut data);
            let rr = ReadReply {
                status: Status::Ok,
                data: &data,
            };
            Some(sealed(&Message::new(
                m.id,
                FAKE_INSTANCE,
                Body::ReadReply(rr),
            )))
        }
        _ => None,
    })
}

#[test]
fn a_forged_huge_length_is_skipped() {
    let dt = tempfile::tempdir().unwrap();
    let t = spawn(dt.path());
    let (huge, fine) = (FileKey::new(9, 1, 1), FileKey::new(9, 2, 2));
    let e = |key, len| ListEntry {
        key,
        len,
        mtime_s: 0,
    };
    // 2^62 bytes: sizing anything by it would abort the process.
    let src = lying_source(vec![e(huge, 1 << 62), e(fine, 150_000)]);
    let r = run_bounded(job(src.addr, t.addr)).unwrap();
    assert_eq!((r.files, r.too_big, r.truncated), (2, 1, 1), "{r:?}");
    assert_eq!(r.copied, 150_000);
    let mut c = client();
    assert_eq!(
        listing(&mut c, t.addr),
        vec![(fine, 150_000)],
        "huge not created"
    );
    let mut want = vec![0u8; 150_000];
    pattern(0, &mut want);
    assert_eq!(get(&mut c, t.addr, fine, 150_000), want);

    // A lower bound skips the other one too.
    let dt2 = tempfile::tempdir().unwrap();
    let t2 = spawn(dt2.path());
    let r = run_bounded(Resync {
        max_file_size: 100_000,
        ..job(src.addr, t2.addr)
    })
    .unwrap();
    assert_eq!((r.too_big, r.copied, r.truncated), (2, 0, 0), "{r:?}");
    assert!(listing(&mut c, t2.addr).is_empty());
    t.shutdown();
    t2.shutdown();
}

/// A fake target that takes everything and holds nothing.
fn sink() -> common::Fake {
    fake(|m| {
        let ack = |op| {
            let a = Ack {
                op,
                status: Status::Ok,
                value: 0,
            };
            Some(sealed(&Message::new(m.id, FAKE_INSTANCE, Body::Ack(a))))
        };
        match m.body {
            Body::List(_) => {
                let r = ListReply {
                    status: Status::Ok,
                    more: false,
                    entries: List::Items(&[]),
                };
                Some(sealed(&Message::new(
                    m.id,
                    FAKE_INSTANCE,
                    Body::ListReply(r),
                )))
            }
            Body::Read(r) => {
                let data = vec![0u8; r.len as usize];
                let rr = ReadReply {
                    status: Status::Ok,
                    data: &data,
                };
                Some(sealed(&Message::new(
                    m.id,
                    FAKE_INSTANCE,
                    Body::ReadReply(rr),
                )))
            }
            Body::Write(_) => ack(MsgType::Write),
            Body::Truncate(_) => ack(MsgType::Truncate),
            Body::Unlink(_) => ack(MsgType::Unlink),
            _ => None,
        }
    })
}

#[test]
fn a_huge_length_is_walked_lazily_when_believed() {
    let src = lying_source(vec![ListEntry {
        key: FileKey::new(9, 1, 1),
        len: 1 << 62,
        mtime_s: 0,
    }]);
    let dst = sink();
    let abort = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let r = Resync {
        abort: Arc::clone(&abort),
        progress: Arc::clone(&progress),
        max_file_size: u64::MAX,
        ..job(src.addr, dst.addr)
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(r.run());
    });
    // Copying chunk after chunk, no allocation by the length.
    let start = Instant::now();
    while progress.load(Ordering::Relaxed) < 3 * CHUNK {
        assert!(start.elapsed() < Duration::from_secs(30), "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    abort.store(true, Ordering::Relaxed);
    let res = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(matches!(res, Err(ResyncError::Aborted)), "{res:?}");
}

#[test]
fn a_listing_that_does_not_advance_fails() {
    let dt = tempfile::tempdir().unwrap();
    let t = spawn(dt.path());
    let e = |i| ListEntry {
        key: FileKey::new(9, i, 0),
        len: 10,
        mtime_s: 0,
    };
    let mut page: Vec<ListEntry> = (1..4).map(e).collect();
    page.sort_by(|a, b| a.key.list_cmp(&b.key));
    // The same page again and again, always "more".
    let p = page.clone();
    let again = fake(move |m| {
        let Body::List(_) = m.body else { return None };
        let r = ListReply {
            status: Status::Ok,
            more: true,
            entries: List::Items(&p),
        };
        Some(sealed(&Message::new(
            m.id,
            FAKE_INSTANCE,
            Body::ListReply(r),
        )))
    });
    // "more" with nothing in the page.
    let empty = fake(move |m| {
        let Body::List(_) = m.body else { return None };
        let r = ListReply {
            status: Status::Ok,
            more: true,
            entries: List::Items(&[]),
        };
        Some(sealed(&Message::new(
            m.id,
            FAKE_INSTANCE,
            Body::ListReply(r),
        )))
    });
    for (src, why) in [
        (again.addr, "entries not after the cursor"),
        (empty.addr, "'more' with an empty page"),
    ] {
        let start = Instant::now();
        let err = run_bounded(job(src, t.addr)).unwrap_err();
        assert!(
            matches!(&err, ResyncError::Iod(ClientError::BadListing { addr, why: w }) if *addr == src && *w == why),
            "{err}"
        );
        assert!(err.to_string().contains(&src.to_string()), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
        // As the target, too.
        let err = run_bounded(job(t.addr, src)).unwrap_err();
        assert!(
            matches!(err, ResyncError::Iod(ClientError::BadListing { .. })),
            "{err}"
        );
    }
    t.shutdown();
}

#[test]
fn a_restarted_iod_gets_the_request_again_with_its_new_instance() {
    let d = tempfile::tempdir().unwrap();
    let first = spawn(d.path());
    let addr = first.addr;
    let key = FileKey::new(5, 5, 5);
    let mut c = client();
    put(&mut c, addr, key, &bytes(1, 1000));
    assert_eq!(c.instance(addr), Some(first.instance()));
    let old = first.instance();
    first.shutdown();
    // Same port, same data, a new instance.
    let second = spawn_at(d.path(), addr);
    assert_ne!(second.instance(), old);
    // Sent with the old instance: Stale, then again with the new one.
    c.truncate(addr, key, 500).unwrap();
    assert_eq!(c.instance(addr), Some(second.instance()));
    assert_eq!(listing(&mut c, addr), vec![(key, 500)]);
    assert_eq!(second.stats.refused.load(Ordering::Relaxed), 1, "one Stale");

    // The monitor sees the restart in the PONGs.
    let line = ListLine {
        viod: 0,
        addr,
        state: IodState::Up,
        requests: 0,
        bytes: 0,
        errors: 0,
        timeouts: 0,
        latency_us: 0,
        ds_errors: 0,
        identity: 0,
        foreign: 0,
    };
    let mut m = Monitor::new(HealthConfig::default(), &[]);
    let beat = |m: &mut Monitor, c: &mut Client| {
        let p = c.ping_many(&[addr], Duration::from_millis(500))[0].expect("PONG");
        m.round(
            &[line],
            &[(addr, p.rtt)].into(),
            Instant::now(),
            SystemTime::now(),
        );
        m.note_instances(&HashMap::from([(addr, p.instance)]))
    };
    assert!(beat(&mut m, &mut c).is_empty(), "first heard");
    assert!(beat(&mut m, &mut c).is_empty());
    let before = second.instance();
    second.shutdown();
    let third = spawn_at(d.path(), addr);
    assert_eq!(
        beat(&mut m, &mut c),
        vec![(0, addr, before, third.instance())]
    );
    let st = m.statuses(&[line]);
    assert_eq!(st[0].restarts, 1);
    assert_eq!(st[0].instance_u64(), Some(third.instance()));
    third.shutdown();
}
