// SPDX-License-Identifier: GPL-2.0
//! Lock-free counters reported in PONG.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use nfsp_proto::wire::IodStats;

/// Daemon counters (all monotonic except `in_flight`).
#[derive(Debug)]
pub struct Stats {
    start: Instant,
    /// Valid requests handled.
    pub requests: AtomicU64,
    /// Bytes read from local files.
    pub bytes_read: AtomicU64,
    /// Bytes written to local files.
    pub bytes_written: AtomicU64,
    /// Failed requests.
    pub errors: AtomicU64,
    /// Malformed datagrams.
    pub malformed: AtomicU64,
    /// Dropped requests.
    pub drops: AtomicU64,
    /// Requests being served now.
    pub in_flight: AtomicU64,
    /// Datagrams dropped for a missing, unknown or wrong tag.
    pub bad_auth: AtomicU64,
    /// Authenticated requests dropped as replays or duplicates.
    pub replays: AtomicU64,
    /// Requests refused by the address rules or answered Stale.
    pub refused: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            start: Instant::now(),
            requests: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            bad_auth: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }
}

impl Stats {
    /// Add to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    /// A consistent-enough copy for PONG.
    pub fn snapshot(&self) -> IodStats {
        IodStats {
            uptime_s: self.start.elapsed().as_secs(),
            requests: self.requests.load(Relaxed),
            bytes_read: self.bytes_read.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            errors: self.errors.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            drops: self.drops.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            bad_auth: self.bad_auth.load(Relaxed),
            replays: self.replays.load(Relaxed),
            refused: self.refused.load(Relaxed),
            ..IodStats::default()
        }
    }

    /// JSON form of a snapshot.
    pub fn to_json(s: &IodStats) -> serde_json::Value {
        serde_json::json!({
            "uptime_s": s.uptime_s,
            "requests": s.requests,
            "bytes_read": s.bytes_read,
            "bytes_written": s.bytes_written,
            "errors": s.errors,
            "malformed": s.malformed,
            "drops": s.drops,
            "in_flight": s.in_flight,
            "bad_auth": s.bad_auth,
            "replays": s.replays,
            "refused": s.refused,
            "space_total": s.space_total,
            "space_free": s.space_free,
            "space_avail": s.space_avail,
        })
    }
}
