// SPDX-License-Identifier: GPL-2.0
//! The status snapshot: one entry per member, rewritten by `iodmgr run`
//! every interval into the state file (JSON, replaced atomically), read by
//! `iodmgr status`, rendered by the metrics endpoint, and read back at
//! start (which down members hold their viod's newest data).

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use nfsp_proto::ListLine;
use serde::{Deserialize, Serialize};

use crate::health::Tracker;

/// One member.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IodStatus {
    /// Viod id.
    pub viod: u32,
    /// Iod address.
    pub iod: String,
    /// `up`, `down` or `resync` (the kernel's).
    pub state: String,
    /// Last PING round trip in microseconds.
    pub latency_us: Option<u64>,
    /// Missed PINGs in a row.
    pub misses: u32,
    /// Last PONG, seconds since the Unix epoch.
    pub last_seen: Option<u64>,
    /// Lacks writes (must be re-synced before serving).
    pub stale: bool,
    /// Taken down for slowness.
    pub slow_down: bool,
    /// A re-sync to it is running.
    pub resyncing: bool,
    /// Bytes copied to it by re-syncs.
    pub resync_bytes: u64,
    /// Why it is down, or the last event.
    pub reason: String,
    /// Kernel counter: requests sent to it.
    pub requests: u64,
    /// Kernel counter: bytes moved.
    pub bytes: u64,
    /// Kernel counter: error answers.
    pub errors: u64,
    /// Kernel counter: timeouts.
    pub timeouts: u64,
    /// Kernel counter: errors of its data server reported by pNFS clients.
    #[serde(default)]
    pub ds_errors: u64,
    /// The iod's instance from its last PONG (16 hex digits: a JSON number
    /// would lose bits in most readers); it changes when the iod restarts.
    #[serde(default)]
    pub instance: Option<String>,
    /// Restarts of the iod seen (instance changes).
    #[serde(default)]
    pub restarts: u64,
}

impl IodStatus {
    /// From the kernel's line and the monitor's tracker.
    pub fn new(l: &ListLine, t: &Tracker) -> Self {
        IodStatus {
            viod: l.viod,
            iod: l.addr.to_string(),
            state: l.state.as_str().to_string(),
            latency_us: t.latency.map(|d| d.as_micros() as u64),
            misses: t.misses,
            last_seen: t
                .last_seen
                .and_then(|s| s.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            stale: t.stale,
            slow_down: t.slow_down,
            resyncing: t.resyncing,
            resync_bytes: t.resync_bytes,
            reason: t.reason.clone(),
            requests: l.requests,
            bytes: l.bytes,
            errors: l.errors,
            timeouts: l.timeouts,
            ds_errors: l.ds_errors,
            instance: t.instance.map(|i| format!("{i:016x}")),
            restarts: t.restarts,
        }
    }

    /// [`IodStatus::instance`] as a number.
    pub fn instance_u64(&self) -> Option<u64> {
        self.instance
            .as_deref()
            .and_then(|h| u64::from_str_radix(h, 16).ok())
    }
}

/// The state file's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When written, seconds since the Unix epoch.
    pub updated: u64,
    /// The daemon's interval in milliseconds.
    pub interval_ms: u64,
    /// The daemon's process id.
    pub pid: u32,
    /// Every member.
    pub iods: Vec<IodStatus>,
}

impl Snapshot {
    /// A snapshot of `iods` taken now.
    pub fn now(interval_ms: u64, iods: Vec<IodStatus>) -> Self {
        Snapshot {
            updated: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            interval_ms,
            pid: std::process::id(),
            iods,
        }
    }

    /// Write to `path` atomically (temporary file + rename).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, self)?;
        f.write_all(b"\n")?;
        drop(f);
        std::fs::rename(&tmp, path)
    }

    /// Read `path`.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let s = std::fs::read_to_string(path)?;
        serde_json::from_str(&s).map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/iodmgr.json");
        let s = Snapshot::now(
            500,
            vec![IodStatus {
                viod: 1,
                iod: "10.0.0.1:7000".into(),
                state: "down".into(),
                latency_us: Some(250),
                misses: 3,
                stale: true,
                reason: "no answer".into(),
                ..IodStatus::default()
            }],
        );
        s.write(&p).unwrap();
        assert_eq!(Snapshot::read(&p).unwrap(), s);
        // Files of older versions (no instance, no restarts) still read.
        let old = r#"{"updated":1,"interval_ms":500,"pid":2,"iods":[{"viod":0,"iod":"x","state":"up",
            "latency_us":null,"misses":0,"last_seen":null,"stale":false,"slow_down":false,
            "resyncing":false,"resync_bytes":0,"reason":"","requests":0,"bytes":0,"errors":0,
            "timeouts":0}]}"#;
        let o: Snapshot = serde_json::from_str(old).unwrap();
        assert_eq!(
            (o.iods[0].instance.as_deref(), o.iods[0].restarts),
            (None, 0)
        );
        let i = IodStatus {
            instance: Some("ffffffffffffffff".into()),
            ..IodStatus::default()
        };
        assert_eq!(i.instance_u64(), Some(u64::MAX));
        let j = serde_json::to_value(&i).unwrap();
        assert_eq!(j["instance"], "ffffffffffffffff");
        assert_eq!(j["restarts"], 0);
        assert!(!p.with_extension("tmp").exists());
        assert!(Snapshot::read(&d.path().join("none")).is_err());
    }
}
