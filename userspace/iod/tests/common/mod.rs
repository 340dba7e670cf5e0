// SPDX-License-Identifier: GPL-2.0
//! Shared test helpers: spawning iod processes.
#![allow(dead_code)]

pub mod meta;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A spawned iod, killed on drop.
pub struct IodProc {
    pub child: Child,
    pub addr: SocketAddr,
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
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("spawn iod");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("read iod banner");
    let addr = line
        .trim()
        .strip_prefix("iod listening on ")
        .unwrap_or_else(|| panic!("unexpected iod banner {line:?}"))
        .parse()
        .expect("iod address");
    IodProc { child, addr }
}

/// Spawn an iod on 127.0.0.1 (ephemeral port) serving `dir`.
pub fn spawn_iod(dir: &Path) -> IodProc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iod"));
    cmd.args(["--listen", "127.0.0.1:0", "--workers", "4", "--data"])
        .arg(dir);
    cmd.env("RUST_LOG", "warn");
    spawn_iod_cmd(cmd)
}
