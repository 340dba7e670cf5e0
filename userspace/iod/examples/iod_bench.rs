// SPDX-License-Identifier: GPL-2.0
//! Loopback throughput of relay-mode reads and chained writes, with 1 and
//! 3 iods (in-process servers), several requests in flight.
//!
//! `cargo run --release -p iod --example iod_bench [-- MiB [window]]`

#[path = "../tests/common/meta.rs"]
mod meta;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use iod::{Config, Server};
use meta::{Meta, Rng};
use nfsp_proto::{FileKey, StripeLayout};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mib: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let window: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let size = mib << 20;
    println!("iod_bench: {mib} MiB file, 64 KiB blocks, {window} requests in flight, loopback, relay mode");
    for n in [1usize, 3] {
        let stop = Arc::new(AtomicBool::new(false));
        let dirs: Vec<tempfile::TempDir> = (0..n)
            .map(|_| tempfile::tempdir())
            .collect::<Result<_, _>>()?;
        let mut handles = Vec::new();
        for d in &dirs {
            let s = Server::bind(Config {
                listen: "127.0.0.1:0".parse()?,
                data_dir: d.path().to_path_buf(),
                workers: Config::default_workers(),
                max_inflight: 1024,
            })?;
            handles.push(s.start(Arc::clone(&stop))?);
        }
        let viods = handles.iter().map(|h| vec![h.addr]).collect();
        let layout = StripeLayout::new(65536, n as u32, 0)?;
        let mut m = Meta::new("127.0.0.1:0".parse()?, viods, layout, FileKey::new(1, 2, 3));
        m.window = window;
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
