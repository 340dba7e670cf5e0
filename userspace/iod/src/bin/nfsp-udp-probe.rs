// SPDX-License-Identifier: GPL-2.0
//! `nfsp-udp-probe`: tiny UDP helper for the network-namespace tests (run
//! with `ip netns exec`): act as an NFSv3 client sending one READ call and
//! printing the reply, or send one datagram given in hex.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use nfsp_proto::nfs3::ReadCall;

/// UDP probe for nfsp tests.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Send an NFSv3 READ call to SERVER, print "ready LOCAL", then wait
    /// for one reply and print "reply FROM LEN HEX".
    Call {
        /// Local address to bind.
        #[arg(long)]
        bind: SocketAddr,
        /// NFS server address (the meta-server).
        #[arg(long)]
        server: SocketAddr,
        /// RPC xid.
        #[arg(long)]
        xid: u32,
        /// READ offset.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// READ count.
        #[arg(long)]
        count: u32,
        /// How long to wait for the reply.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// Send one datagram (hex payload) from BIND to TO; with --wait-ms,
    /// then wait for one answer and print "reply FROM LEN HEX".
    Send {
        /// Local address to bind.
        #[arg(long)]
        bind: SocketAddr,
        /// Destination.
        #[arg(long)]
        to: SocketAddr,
        /// Payload in hex.
        #[arg(long)]
        hex: String,
        /// Wait this long for an answer (none: do not wait).
        #[arg(long)]
        wait_ms: Option<u64>,
    },
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> anyhow::Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd hex length");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            let pair = s.get(i..i + 2).context("hex")?;
            u8::from_str_radix(pair, 16).context("bad hex digit")
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    match Args::parse().cmd {
        Cmd::Call {
            bind,
            server,
            xid,
            offset,
            count,
            timeout_ms,
        } => {
            let s = UdpSocket::bind(bind).with_context(|| format!("bind {bind}"))?;
            let call = ReadCall {
                xid,
                fh: &[0x4e, 0x46, 0x53, 0x50, 0, 0, 0, 1],
                offset,
                count,
            };
            let mut b = [0u8; 256];
            let n = call.encode(&mut b).context("encode call")?;
            s.send_to(b.get(..n).context("len")?, server)
                .context("send call")?;
            println!("ready {}", s.local_addr().context("local addr")?);
            s.set_read_timeout(Some(Duration::from_millis(timeout_ms)))
                .context("timeout")?;
            let mut r = vec![0u8; 65536];
            let (n, from) = s.recv_from(&mut r).context("waiting for the reply")?;
            println!("reply {from} {n} {}", hex(r.get(..n).context("len")?));
        }
        Cmd::Send {
            bind,
            to,
            hex,
            wait_ms,
        } => {
            let s = UdpSocket::bind(bind).with_context(|| format!("bind {bind}"))?;
            let data = unhex(&hex)?;
            s.send_to(&data, to)
                .with_context(|| format!("send to {to}"))?;
            if let Some(ms) = wait_ms {
                s.set_read_timeout(Some(Duration::from_millis(ms.max(1))))
                    .context("timeout")?;
                let mut r = vec![0u8; 65536];
                let (n, from) = s.recv_from(&mut r).context("waiting for the answer")?;
                println!(
                    "reply {from} {n} {}",
                    crate::hex(r.get(..n).context("len")?)
                );
            }
        }
    }
    Ok(())
}
