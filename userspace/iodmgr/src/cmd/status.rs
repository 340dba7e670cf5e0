// SPDX-License-Identifier: GPL-2.0
//! `iodmgr status [--state PATH] [--json]`

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use iodmgr::status::Snapshot;

/// Arguments of `status`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The state file the daemon rewrites every interval.
    #[arg(long, value_name = "PATH", default_value = iodmgr::DEFAULT_STATE)]
    pub state: PathBuf,
    /// Print the state file's JSON: {"updated":S,"interval_ms":N,"pid":P,"iods":[...]}
    /// (each iod with its "instance", 16 hex digits, and "restarts").
    #[arg(long)]
    pub json: bool,
}

/// The human table of a snapshot, `now` = Unix seconds.
pub fn table(s: &Snapshot, now: u64) -> String {
    let mut rows = vec![[
        "VIOD",
        "IOD",
        "STATE",
        "LATENCY",
        "MISSES",
        "LAST SEEN",
        "RESYNCED",
        "RESTARTS",
        "NOTE",
    ]
    .map(String::from)
    .to_vec()];
    for i in &s.iods {
        rows.push(vec![
            i.viod.to_string(),
            i.iod.clone(),
            i.state.clone(),
            i.latency_us
                .map_or("-".into(), |us| format!("{:.1} ms", us as f64 / 1000.0)),
            i.misses.to_string(),
            i.last_seen.map_or("never".into(), |t| {
                format!("{} s ago", now.saturating_sub(t))
            }),
            format!("{} B", i.resync_bytes),
            i.restarts.to_string(),
            format!(
                "{}{}",
                if i.stale && i.state != "up" {
                    "stale; "
                } else {
                    ""
                },
                i.reason
            ),
        ]);
    }
    let w: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| format!("{v:<w$}", w = w[c]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let age = now.saturating_sub(s.updated);
    out.push_str(&format!(
        "updated {age} s ago by pid {} (interval {} ms){}\n",
        s.pid,
        s.interval_ms,
        if age * 1000 > 5 * s.interval_ms.max(1000) {
            ": stale, is iodmgr running?"
        } else {
            ""
        }
    ));
    out
}

impl Args {
    /// Print the state file.
    pub fn run(&self) -> anyhow::Result<()> {
        let s = Snapshot::read(&self.state)
            .with_context(|| format!("reading {} (is iodmgr running?)", self.state.display()))?;
        if self.json {
            println!("{}", serde_json::to_string(&s).context("JSON")?);
        } else {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            print!("{}", table(&s, now));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iodmgr::status::IodStatus;

    #[test]
    fn renders_a_table() {
        let s = Snapshot {
            updated: 100,
            interval_ms: 500,
            pid: 42,
            iods: vec![
                IodStatus {
                    viod: 0,
                    iod: "10.99.0.11:7000".into(),
                    state: "up".into(),
                    latency_us: Some(1234),
                    last_seen: Some(99),
                    ..IodStatus::default()
                },
                IodStatus {
                    viod: 0,
                    iod: "10.99.0.12:7000".into(),
                    state: "down".into(),
                    misses: 7,
                    stale: true,
                    reason: "no answer to 3 PINGs in a row".into(),
                    ..IodStatus::default()
                },
            ],
        };
        let t = table(&s, 101);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("VIOD  IOD"), "{t}");
        assert!(
            lines[1].contains("1.2 ms") && lines[1].contains("2 s ago"),
            "{t}"
        );
        assert!(
            lines[2].contains("never") && lines[2].contains("stale; no answer"),
            "{t}"
        );
        assert!(lines[3].starts_with("updated 1 s ago by pid 42"), "{t}");
        assert!(table(&s, 1000).contains("is iodmgr running?"));
    }
}
