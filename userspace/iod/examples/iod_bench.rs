// SPDX-License-Identifier: GPL-2.0
//! The cost of authentication (BLAKE2s-128 over a 60 KiB WRITE), then
//! loopback throughput of relay-mode reads and chained writes, with 1 and
//! 3 iods (in-process servers), several requests in flight, every
//! datagram signed with the test key.
//!
//! `cargo run --release -p iod --example iod_bench [-- MiB [window]]`

#[path = "../tests/common/meta.rs"]
mod meta;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use iod::{Config, Server};
use meta::{test_keys, Meta, Rng};
use nfsp_proto::wire::{self, Body, Chain, List, Message, RequestId, MAX_DATA_PER_MSG};
use nfsp_proto::{FileKey, StripeLayout};

/// Nanoseconds per `wire::seal` and per `wire::open` of a WRITE carrying
/// MAX_DATA_PER_MSG (61,440) bytes.
fn mac_cost() -> anyhow::Result<(f64, f64, usize)> {
    let keys = test_keys();
    let mut data = vec![0u8; MAX_DATA_PER_MSG];
    Rng(5).fill(&mut data);
    let m = Message::new(
        RequestId { epoch: 1, seq: 1 },
        7,
        Body::Write(wire::Write {
            key: FileKey::new(1, 2, 3),
            local_offset: 0,
            chain: Chain {
                origin: "127.0.0.1:1".parse()?,
                members: List::Items(&[]),
            },
            data: &data,
        }),
    );
    let mut buf = vec![0u8; wire::MAX_DATAGRAM];
    let n = m.encode(&mut buf)?;
    let d = buf.get_mut(..n).ok_or_else(|| anyhow::anyhow!("length"))?;
    let rounds = 2000u32;
    for _ in 0..50 {
        wire::seal(&keys, d)?;
    }
    let t = Instant::now();
    for _ in 0..rounds {
        wire::seal(&keys, std::hint::black_box(&mut *d))?;
    }
    let seal = t.elapsed().as_nanos() as f64 / f64::from(rounds);
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(wire::open(&keys, std::hint::black_box(&*d))?);
    }
    let open = t.elapsed().as_nanos() as f64 / f64::from(rounds);
    Ok((seal, open, n))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mib: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let window: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let size = mib << 20;
    let (seal, open, n) = mac_cost()?;
    println!(
        "MAC: wire::seal {seal:.0} ns, wire::open {open:.0} ns per {MAX_DATA_PER_MSG}-byte WRITE \
         ({n}-byte datagram, BLAKE2s-128 at {:.0} MB/s)",
        n as f64 / seal * 1e3
    );
    println!("iod_bench: {mib} MiB file, 64 KiB blocks, {window} requests in flight, loopback, relay mode, signed");
    for n in [1usize, 3] {
        let stop = Arc::new(AtomicBool::new(false));
        let dirs: Vec<tempfile::TempDir> = (0..n)
            .map(|_| tempfile::tempdir())
            .collect::<Result<_, _>>()?;
        let mut handles = Vec::new();
        for d in &dirs {
            let mut cfg = Config::new("127.0.0.1:0".parse()?, d.path(), test_keys());
            cfg.max_inflight = 1024;
            let s = Server::bind(cfg)?;
            handles.push(s.start(Arc::clone(&stop))?);
        }
        let viods = handles.iter().map(|h| vec![h.addr]).collect();
        let layout = StripeLayout::new(65536, n as u32, 0)?;
        let mut m = Meta::new("127.0.0.1:0".parse()?, viods, layout, FileKey::new(1, 2, 3));
        m.window = window;
        for h in &handles {
            m.learn(h.addr, h.instance());
        }
        let chunk = 4u64 << 20;
        let mut data = vec![0u8; chunk as usize];
        Rng(1).fill(&mut data);
        let t = Instant::now();
        let mut off = 0;
        while off < size {
            m.write(off, &data);
            off += chunk;
        }
        let w = size as f64 / t.elapsed().as_secs_f64() / 1e6;
        let t = Instant::now();
        let mut off = 0;
        while off < size {
            let got = m.read(off, chunk);
            assert_eq!(got.len() as u64, chunk);
            off += chunk;
        }
        let r = size as f64 / t.elapsed().as_secs_f64() / 1e6;
        println!(
            "{n} iod(s): write {w:.0} MB/s, read {r:.0} MB/s (retransmits {})",
            m.retransmits.load(std::sync::atomic::Ordering::Relaxed)
        );
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for h in handles {
            h.shutdown();
        }
    }
    Ok(())
}
