// SPDX-License-Identifier: GPL-2.0
//! Per-sender-IP token buckets (LIST costs directory walks; a flood from
//! one sender must not take the iod's time from everyone else).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most senders tracked at once; idle (full) buckets are forgotten first.
pub const MAX_SENDERS: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets: `rate` tokens a second, at most `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// `rate` per second, bursts of `burst`.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `ip` at `now`; false = over the limit.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let ip = ip.to_canonical();
        let mut m = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if !m.contains_key(&ip) && m.len() >= MAX_SENDERS {
            self.purge_locked(&mut m, now);
            if m.len() >= MAX_SENDERS {
                // Too many busy senders at once: none of them is new.
                return false;
            }
        }
        let b = m.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + dt * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets the buckets that have refilled (as if never used).
    pub fn purge(&self, now: Instant) {
        let mut m = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        self.purge_locked(&mut m, now);
    }

    fn purge_locked(&self, m: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        m.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * self.rate < self.burst
        });
    }

    /// Senders tracked.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no sender is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket() {
        let r = RateLimiter::new(20.0, 40.0);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let n = (0..100).filter(|_| r.allow(a, t0)).count();
        assert_eq!(n, 40);
        assert!(r.allow(b, t0), "other senders are not affected");
        // 1 s later: 20 more
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| r.allow(a, t1)).count(), 20);
        // long idle: purged, full again
        let t2 = t1 + Duration::from_secs(10);
        r.purge(t2);
        assert!(r.is_empty());
        assert_eq!((0..100).filter(|_| r.allow(a, t2)).count(), 40);
    }

    #[test]
    fn bounded() {
        let r = RateLimiter::new(1.0, 1.0);
        let t0 = Instant::now();
        for i in 0..MAX_SENDERS as u32 {
            assert!(r.allow(IpAddr::from(i.to_be_bytes()), t0));
        }
        assert!(!r.allow("10.9.9.9".parse().unwrap(), t0));
        assert!(r.allow("10.9.9.9".parse().unwrap(), t0 + Duration::from_secs(2)));
    }
}
