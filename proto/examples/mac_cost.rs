// SPDX-License-Identifier: GPL-2.0
//! The MAC's cost: `wire::seal` of a 60 KiB WRITE, in nanoseconds per
//! message and MB/s (`cargo run --release -p nfsp_proto --example mac_cost`).

use std::net::SocketAddr;
use std::time::Instant;

use nfsp_proto::auth::{Key, Keys};
use nfsp_proto::wire::{self, Body, Chain, List, Message, RequestId, Write, MAX_DATAGRAM};
use nfsp_proto::FileKey;

fn main() {
    let keys = Keys::new(Key::new(1, [0x42; 32]).expect("key"), None).expect("keys");
    let data = vec![0xa5u8; wire::MAX_DATA_PER_MSG];
    let origin: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
    let m = Message::new(
        RequestId { epoch: 1, seq: 1 },
        7,
        Body::Write(Write {
            key: FileKey::new(1, 2, 3),
            local_offset: 0,
            chain: Chain {
                origin,
                members: List::Items(&[]),
            },
            data: &data,
        }),
    );
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let n = m.seal(&keys, &mut buf).expect("seal");
    let rounds = 2000u32;
    let t = Instant::now();
    for _ in 0..rounds {
        wire::seal(&keys, &mut buf[..n]).expect("seal");
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(rounds);
    let t = Instant::now();
    for _ in 0..rounds {
        wire::open(&keys, &buf[..n]).expect("open");
    }
    let ns_open = t.elapsed().as_nanos() as f64 / f64::from(rounds);
    println!(
        "{{\"bytes\":{n},\"seal_ns\":{ns:.0},\"open_ns\":{ns_open:.0},\"seal_mb_s\":{:.0}}}",
        n as f64 / ns * 1e3
    );
}
