// SPDX-License-Identifier: GPL-2.0
//! `nfsp-rwverify`: a verified random read/write workload for the failover
//! tests (fio needs SysV shared memory, which the test VM's kernel lacks).
//!
//! Each job (a thread) owns one file of `--size` bytes in `--dir`, lays it
//! out block by block, then does `--ops` random block operations, half
//! writes (a new version of the block) and half reads, every read checked
//! against the version it must hold; a final pass reads every block back.
//! A block's bytes are derived from (seed, job, block, version) and start
//! with those numbers, so a mismatch says which version came back. Any I/O
//! error or wrong byte ends the run with exit status 1.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;

/// Verified random read/write workload (one file per job).
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Args {
    /// Directory of the files (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Jobs (threads, one file each).
    #[arg(long, default_value_t = 2)]
    jobs: u32,
    /// File size in MiB.
    #[arg(long, default_value_t = 24)]
    size_mib: u64,
    /// Block size in KiB.
    #[arg(long, default_value_t = 64)]
    bs_kib: usize,
    /// Random block operations per job after the layout.
    #[arg(long, default_value_t = 400)]
    ops: u64,
    /// Seed of the block contents and of the operations.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Open with O_DIRECT (every block goes to the server).
    #[arg(long)]
    direct: bool,
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The content of `block` at `version`.
fn fill(buf: &mut [u8], seed: u64, job: u32, block: u64, version: u32) {
    let mut x = mix(seed ^ mix(u64::from(job) << 40 ^ block ^ mix(u64::from(version))));
    for c in buf.chunks_mut(8) {
        x = mix(x);
        c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
    }
    let head = [u64::from(job), block, u64::from(version)];
    for (c, v) in buf.chunks_mut(8).zip(head) {
        c.copy_from_slice(&v.to_le_bytes()[..c.len()]);
    }
}

/// A page-aligned buffer (O_DIRECT).
struct Aligned {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let raw = vec![0u8; len + 4096];
        let off = (4096 - raw.as_ptr() as usize % 4096) % 4096;
        Aligned { raw, off, len }
    }
    fn get(&mut self) -> &mut [u8] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

struct Stats {
    reads: u64,
    writes: u64,
}

fn job(a: &Args, j: u32, path: &Path) -> anyhow::Result<Stats> {
    let bs = a.bs_kib * 1024;
    let blocks = (a.size_mib * 1024 * 1024 / bs as u64).max(1);
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true).truncate(true);
    if a.direct {
        o.custom_flags(libc::O_DIRECT);
    }
    let f: File = o
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut version = vec![0u32; blocks as usize];
    let (mut want, mut got) = (Aligned::new(bs), Aligned::new(bs));
    let mut st = Stats {
        reads: 0,
        writes: 0,
    };
    let write = |b: u64, v: u32, buf: &mut Aligned| -> anyhow::Result<()> {
        fill(buf.get(), a.seed, j, b, v);
        f.write_all_at(buf.get(), b * bs as u64)
            .with_context(|| format!("{}: writing block {b}", path.display()))
    };
    let check = |b: u64, v: u32, want: &mut Aligned, got: &mut Aligned| -> anyhow::Result<()> {
        f.read_exact_at(got.get(), b * bs as u64)
            .with_context(|| format!("{}: reading block {b}", path.display()))?;
        fill(want.get(), a.seed, j, b, v);
        if got.get() != want.get() {
            let g = got.get();
            let word =
                |i: usize| u64::from_le_bytes(g[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            let first = g.iter().zip(want.get().iter()).position(|(x, y)| x != y);
            bail!(
                "{}: block {b}: expected version {v}, read a block saying job {} block {} \
                 version {} (first wrong byte at {first:?})",
                path.display(),
                word(0),
                word(1),
                word(2)
            );
        }
        Ok(())
    };
    for b in 0..blocks {
        write(b, 0, &mut want)?;
        st.writes += 1;
    }
    let mut x = mix(a.seed ^ (u64::from(j) << 32));
    for _ in 0..a.ops {
        x = mix(x);
        let b = x % blocks;
        if (x >> 32) & 1 == 0 {
            version[b as usize] += 1;
            write(b, version[b as usize], &mut want)?;
            st.writes += 1;
        } else {
            check(b, version[b as usize], &mut want, &mut got)?;
            st.reads += 1;
        }
    }
    for b in 0..blocks {
        check(b, version[b as usize], &mut want, &mut got)?;
        st.reads += 1;
    }
    Ok(st)
}

fn main() -> std::process::ExitCode {
    let a = Args::parse();
    let run = || -> anyhow::Result<()> {
        std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
        let start = Instant::now();
        let handles: Vec<_> = (0..a.jobs)
            .map(|j| {
                let a = a.clone();
                std::thread::spawn(move || {
                    let p = a.dir.join(format!("rw.{j}"));
                    job(&a, j, &p)
                })
            })
            .collect();
        let (mut reads, mut writes, mut err) = (0, 0, None);
        for h in handles {
            match h.join() {
                Ok(Ok(s)) => {
                    reads += s.reads;
                    writes += s.writes;
                }
                Ok(Err(e)) => err = Some(e),
                Err(_) => err = Some(anyhow::anyhow!("a job panicked")),
            }
        }
        if let Some(e) = err {
            return Err(e);
        }
        let s = start.elapsed().as_secs_f64();
        let mb = (reads + writes) as f64 * (a.bs_kib * 1024) as f64 / 1e6;
        println!(
            "rwverify: {} jobs, {reads} reads + {writes} writes of {} KiB verified, \
             0 errors, {s:.1} s, {:.1} MB/s",
            a.jobs,
            a.bs_kib,
            mb / s
        );
        Ok(())
    };
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rwverify: FAILED: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_verifies_in_a_directory() {
        let d = tempfile::tempdir().unwrap();
        let a = Args {
            dir: d.path().to_path_buf(),
            jobs: 1,
            size_mib: 1,
            bs_kib: 64,
            ops: 100,
            seed: 3,
            direct: false,
        };
        let s = job(&a, 0, &d.path().join("f")).unwrap();
        assert_eq!(s.reads + s.writes, 16 + 100 + 16);
    }

    #[test]
    fn versions_differ() {
        let (mut a, mut b) = (vec![0u8; 100], vec![0u8; 100]);
        fill(&mut a, 1, 0, 5, 1);
        fill(&mut b, 1, 0, 5, 2);
        assert_ne!(a, b);
        assert_eq!(&a[8..16], &5u64.to_le_bytes());
    }
}
