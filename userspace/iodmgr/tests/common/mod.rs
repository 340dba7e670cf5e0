// SPDX-License-Identifier: GPL-2.0
//! Test helpers: real iods on loopback (in-process servers), the cluster
//! key of the tests, and a fake iod whose answers a test writes (to lie
//! about listings, lengths and instances).

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use iod::{Config, Server, ServerHandle};
use nfsp_proto::auth::{Key, Keys};
use nfsp_proto::wire::{self, Message, MAX_DATAGRAM};
use unlinkd::client::Client;

/// The tests' cluster key.
pub fn keys() -> Keys {
    Keys::new(Key::new(0x7e57, [0x42; 32]).unwrap(), None).unwrap()
}

/// A real iod on `dir`, at `listen` (port 0: any).
pub fn spawn_at(dir: &std::path::Path, listen: SocketAddr) -> ServerHandle {
    let s = Server::bind(Config {
        workers: 4,
        max_inflight: 4,
        ..Config::new(listen, dir, keys())
    })
    .unwrap();
    s.start(Arc::new(AtomicBool::new(false))).unwrap()
}

/// A real iod on `dir`.
pub fn spawn(dir: &std::path::Path) -> ServerHandle {
    spawn_at(dir, "127.0.0.1:0".parse().unwrap())
}

/// A client with the tests' key.
pub fn client() -> Client {
    Client::new(keys(), Duration::from_millis(500), 4).unwrap()
}

/// Seal `m` with the tests' key.
pub fn sealed(m: &Message<'_>) -> Vec<u8> {
    let mut b = vec![0u8; MAX_DATAGRAM];
    let n = m.seal(&keys(), &mut b).unwrap();
    b.truncate(n);
    b
}

/// The instance a fake iod answers with.
pub const FAKE_INSTANCE: u64 = 0xfa4e;

/// A fake iod: every request opened with the tests' key goes to the
/// handler, whose datagram (if any) is sent back from the fake's socket.
pub struct Fake {
    /// Its address.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Start a fake iod.
pub fn fake(mut handler: impl FnMut(&Message<'_>) -> Option<Vec<u8>> + Send + 'static) -> Fake {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let st = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        while !st.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(m) = wire::open(&keys(), &buf[..n]) else {
                continue;
            };
            if let Some(d) = handler(&m) {
                let _ = sock.send_to(&d, from);
            }
        }
    });
    Fake { addr, stop }
}
