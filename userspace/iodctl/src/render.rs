// SPDX-License-Identifier: GPL-2.0
//! Human tables and JSON for `list` and `stats`.

use std::io::Write;

use anyhow::Context;
use nfsp_proto::ListLine;
use serde::Serialize;

/// One member in `list --json`.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct MemberJson {
    /// Viod id.
    pub viod: u32,
    /// Iod address.
    pub iod: String,
    /// `up`, `down` or `resync`.
    pub state: &'static str,
    /// Requests sent.
    pub requests: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Error answers.
    pub errors: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Mean latency in microseconds.
    pub latency_us: u64,
    /// Errors of its data server reported by pNFS clients.
    pub ds_errors: u64,
    /// The identity of its data directory (8 hex digits), once known.
    pub identity: Option<String>,
    /// Another identity it answered with (it is kept down until
    /// re-synced or accepted).
    pub foreign: Option<String>,
}

/// An identity for humans and JSON: 8 hex digits, or none (0).
fn identity_text(identity: u32) -> Option<String> {
    (identity != 0).then(|| format!("{identity:08x}"))
}

/// The JSON array of `list --json`.
pub fn list_json(members: &[ListLine]) -> Vec<MemberJson> {
    members
        .iter()
        .map(|l| MemberJson {
            viod: l.viod,
            iod: l.addr.to_string(),
            state: l.state.as_str(),
            requests: l.requests,
            bytes: l.bytes,
            errors: l.errors,
            timeouts: l.timeouts,
            latency_us: l.latency_us,
            ds_errors: l.ds_errors,
            identity: identity_text(l.identity),
            foreign: identity_text(l.foreign),
        })
        .collect()
}

/// Left-align the first `left` columns, right-align the rest (numbers).
fn table(rows: &[Vec<String>], left: usize) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let w = widths[c];
            if c < left {
                line.push_str(&format!("{cell:<w$}"));
            } else {
                line.push_str(&format!("{cell:>w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The table of `list`: one row per member, sorted by viod as the kernel
/// gives them.
pub fn list_table(members: &[ListLine]) -> String {
    let mut rows = vec![[
        "VIOD",
        "IOD",
        "STATE",
        "REQUESTS",
        "BYTES",
        "ERRORS",
        "TIMEOUTS",
        "LATENCY",
        "DS_ERRORS",
        "IDENTITY",
        "FOREIGN",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for l in members {
        rows.push(vec![
            l.viod.to_string(),
            l.addr.to_string(),
            l.state.to_string(),
            l.requests.to_string(),
            l.bytes.to_string(),
            l.errors.to_string(),
            l.timeouts.to_string(),
            format!("{}us", l.latency_us),
            l.ds_errors.to_string(),
            identity_text(l.identity).unwrap_or_else(|| "-".into()),
            identity_text(l.foreign).unwrap_or_else(|| "-".into()),
        ]);
    }
    // VIOD is a number but reads better left-aligned under its header.
    table(&rows, 3)
}

/// The JSON object of `stats --json`, in the kernel's order.
pub fn stats_json(stats: &[(String, u64)]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (k, v) in stats {
        m.insert(k.clone(), (*v).into());
    }
    serde_json::Value::Object(m)
}

/// The table of `stats`: NAME VALUE.
pub fn stats_table(stats: &[(String, u64)]) -> String {
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|(k, v)| vec![k.clone(), v.to_string()])
        .collect();
    table(&rows, 1)
}

/// Print on stdout; a closed pipe is not worth a panic.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing to stdout"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfsp_proto::{Answer, IodState};

    fn member(line: &str) -> ListLine {
        match Answer::parse(line).unwrap() {
            Answer::Member(l) => l,
            a => panic!("not a member: {a}"),
        }
    }

    fn sample() -> Vec<ListLine> {
        vec![
            member("viod 0 iod 10.99.0.11:7000 up requests=12 bytes=786432 errors=0 timeouts=0 latency_us=350"),
            member("viod 1 iod 10.99.0.12:7000 down requests=3 bytes=0 errors=1 timeouts=2 latency_us=0 ds_errors=7 identity=1d0000a1 foreign=f00000b2"),
            member("viod 12 iod [2001:db8::1]:7000 resync requests=0 bytes=0 errors=0 timeouts=0 latency_us=0"),
        ]
    }

    #[test]
    fn list_as_table() {
        let t = list_table(&sample());
        let expect = "\
VIOD  IOD                 STATE   REQUESTS   BYTES  ERRORS  TIMEOUTS  LATENCY  DS_ERRORS  IDENTITY   FOREIGN
0     10.99.0.11:7000     up            12  786432       0         0    350us          0         -         -
1     10.99.0.12:7000     down           3       0       1         2      0us          7  1d0000a1  f00000b2
12    [2001:db8::1]:7000  resync         0       0       0         0      0us          0         -         -
";
        assert_eq!(t, expect);
        assert_eq!(
            list_table(&[]),
            "VIOD  IOD  STATE  REQUESTS  BYTES  ERRORS  TIMEOUTS  LATENCY  DS_ERRORS  IDENTITY  FOREIGN\n"
        );
    }

    #[test]
    fn list_as_json() {
        let j = serde_json::to_string(&list_json(&sample()[..1])).unwrap();
        assert_eq!(
            j,
            r#"[{"viod":0,"iod":"10.99.0.11:7000","state":"up","requests":12,"bytes":786432,"errors":0,"timeouts":0,"latency_us":350,"ds_errors":0,"identity":null,"foreign":null}]"#
        );
        let all = list_json(&sample());
        assert_eq!(all[2].state, IodState::Resync.as_str());
        assert_eq!(all[2].iod, "[2001:db8::1]:7000");
        assert_eq!(all[1].identity.as_deref(), Some("1d0000a1"));
        assert_eq!(all[1].foreign.as_deref(), Some("f00000b2"));
        assert_eq!(serde_json::to_string(&list_json(&[])).unwrap(), "[]");
    }

    #[test]
    fn stats_rendering() {
        let s = vec![
            ("reads".to_string(), 5),
            ("direct_bytes".to_string(), 1 << 20),
        ];
        assert_eq!(
            stats_table(&s),
            "reads               5\ndirect_bytes  1048576\n"
        );
        let j = serde_json::to_string(&stats_json(&s)).unwrap();
        assert!(
            j.contains(r#""reads":5"#) && j.contains(r#""direct_bytes":1048576"#),
            "{j}"
        );
    }
}
