// SPDX-License-Identifier: GPL-2.0
//! Shared test helpers: spawning iod processes with the test key.
#![allow(dead_code)]

pub mod meta;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use nfsp_proto::auth::Keys;

/// A spawned iod, killed on drop.
pub struct IodProc {
    pub child: Child,
    pub addr: SocketAddr,
    /// Its stdout after the banner (the --stats-json lines).
    pub stdout: BufReader<ChildStdout>,
    /// The key file it reads (rewrite + SIGHUP to rotate).
    pub key_file: Option<PathBuf>,
    _key_dir: Option<tempfile::TempDir>,
}

impl IodProc {
    /// Send a signal (SIGHUP: reload the key file, SIGUSR1: stats).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        use nix::unistd::Pid;
        nix::sys::signal::kill(Pid::from_raw(self.child.id() as i32), sig).expect("kill");
    }

    /// Send SIGHUP (reload the key file).
    pub fn hup(&self) {
        self.signal(nix::sys::signal::Signal::SIGHUP);
    }
}

impl Drop for IodProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawn `cmd` (already set up to run the iod) and wait for its
/// "iod listening on ADDR" line.
pub fn spawn_iod_cmd(mut cmd: Command) -> IodProc {
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn iod");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let mut stdout = BufReader::new(out);
    stdout.read_line(&mut line).expect("read iod banner");
    let addr = line
        .trim()
        .strip_prefix("iod listening on ")
        .unwrap_or_else(|| panic!("unexpected iod banner {line:?}"))
        .parse()
        .expect("iod address");
    IodProc {
        child,
        addr,
        stdout,
        key_file: None,
        _key_dir: None,
    }
}

/// Write `keys` as a key file (mode 0600) in `dir`.
pub fn write_key_file(dir: &Path, keys: &Keys) -> PathBuf {
    let p = dir.join("cluster.key");
    nfsp_keys::store(&p, keys).expect("store key file");
    p
}

/// How to start a test iod.
pub struct Opts {
    pub listen: SocketAddr,
    /// `None` = `--insecure`.
    pub keys: Option<Keys>,
    pub peers: Vec<SocketAddr>,
    pub meta: Vec<SocketAddr>,
    pub extra: Vec<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            listen: "127.0.0.1:0".parse().unwrap(),
            keys: Some(meta::test_keys()),
            peers: Vec::new(),
            meta: Vec::new(),
            extra: Vec::new(),
        }
    }
}

/// The iod command line for `dir` and `o` (key file written in a new
/// temporary directory, returned with it).
pub fn iod_command(dir: &Path, o: &Opts) -> (Command, Option<(tempfile::TempDir, PathBuf)>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iod"));
    cmd.arg("--listen")
        .arg(o.listen.to_string())
        .args(["--workers", "4", "--data"])
        .arg(dir);
    let kf = o.keys.as_ref().map(|k| {
        let d = tempfile::tempdir().expect("key dir");
        let p = write_key_file(d.path(), k);
        (d, p)
    });
    match &kf {
        Some((_, p)) => {
            cmd.arg("--key-file").arg(p);
        }
        None => {
            cmd.arg("--insecure");
        }
    }
    for p in &o.peers {
        cmd.arg("--peer").arg(p.to_string());
    }
    for m in &o.meta {
        cmd.arg("--meta").arg(m.to_string());
    }
    cmd.args(&o.extra);
    // NFSP_TEST_IOD_LOG=debug shows what the iods do.
    cmd.env(
        "RUST_LOG",
        std::env::var("NFSP_TEST_IOD_LOG").unwrap_or_else(|_| "error".into()),
    );
    (cmd, kf)
}

/// Spawn an iod as described by `o`.
pub fn spawn_iod_with(dir: &Path, o: &Opts) -> IodProc {
    let (cmd, kf) = iod_command(dir, o);
    let mut p = spawn_iod_cmd(cmd);
    if let Some((d, path)) = kf {
        p.key_file = Some(path);
        p._key_dir = Some(d);
    }
    p
}

/// Spawn an iod on 127.0.0.1 (ephemeral port) serving `dir`, test key.
pub fn spawn_iod(dir: &Path) -> IodProc {
    spawn_iod_with(dir, &Opts::default())
}

/// `n` free UDP ports on 127.0.0.1 (free when asked: a tiny race).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    socks
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect()
}

/// One iod per directory, each listing every iod as a peer (itself too,
/// as a deployment does with one shared list).
pub fn spawn_cluster(dirs: &[&Path]) -> Vec<IodProc> {
    let addrs = free_addrs(dirs.len());
    dirs.iter()
        .zip(&addrs)
        .map(|(d, a)| {
            let o = Opts {
                listen: *a,
                peers: addrs.clone(),
                ..Opts::default()
            };
            spawn_iod_with(d, &o)
        })
        .collect()
}

/// Every data file under `dir` (relative paths, sorted).
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    // The data directory's identity is not a local file of the data.
    v.retain(|f| f != iod::store::IDENTITY_FILE);
    v.sort();
    v
}
