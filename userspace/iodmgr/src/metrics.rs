// SPDX-License-Identifier: GPL-2.0
//! The metrics endpoint: `GET /metrics` on a plain `TcpListener`, answered
//! in the OpenMetrics text format when the scraper accepts it
//! (`application/openmetrics-text`), else in Prometheus' text format 0.0.4.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::status::IodStatus;

/// Content type of the OpenMetrics answer.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text answer.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escape a label value.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    value: fn(&IodStatus) -> Option<String>,
}

const FAMILIES: &[Family<'static>] = &[
    Family {
        name: "nfsp_iod_up",
        kind: "gauge",
        help: "1 when the iod serves reads (state up), else 0",
        value: |s| Some(u8::from(s.state == "up").to_string()),
    },
    Family {
        name: "nfsp_iod_resyncing",
        kind: "gauge",
        help: "1 while the iod is being re-synced (state resync), else 0",
        value: |s| Some(u8::from(s.state == "resync").to_string()),
    },
    Family {
        name: "nfsp_iod_latency_seconds",
        kind: "gauge",
        help: "Round-trip time of the last answered PING",
        value: |s| s.latency_us.map(|us| format!("{:.6}", us as f64 / 1e6)),
    },
    Family {
        name: "nfsp_iod_ping_misses",
        kind: "gauge",
        help: "PINGs missed in a row",
        value: |s| Some(s.misses.to_string()),
    },
    Family {
        name: "nfsp_iod_requests",
        kind: "counter",
        help: "Requests the meta-server sent to the iod",
        value: |s| Some(s.requests.to_string()),
    },
    Family {
        name: "nfsp_iod_bytes",
        kind: "counter",
        help: "Data bytes the meta-server moved to or from the iod",
        value: |s| Some(s.bytes.to_string()),
    },
    Family {
        name: "nfsp_iod_errors",
        kind: "counter",
        help: "Error answers of the iod to the meta-server",
        value: |s| Some(s.errors.to_string()),
    },
    Family {
        name: "nfsp_iod_timeouts",
        kind: "counter",
        help: "Meta-server requests the iod did not answer in time",
        value: |s| Some(s.timeouts.to_string()),
    },
    Family {
        name: "nfsp_iod_resync_bytes",
        kind: "counter",
        help: "Bytes copied to the iod by re-syncs",
        value: |s| Some(s.resync_bytes.to_string()),
    },
];

/// The exposition of `iods`: OpenMetrics (`# EOF`-terminated, counters'
/// samples named `…_total` under a family without the suffix) or the
/// Prometheus text format (families named like their samples).
pub fn render(iods: &[IodStatus], openmetrics: bool) -> String {
    let mut out = String::new();
    for f in FAMILIES {
        let sample = if f.kind == "counter" {
            format!("{}_total", f.name)
        } else {
            f.name.to_string()
        };
        let family = if openmetrics { f.name } else { &sample };
        let _ = writeln!(out, "# TYPE {family} {}", f.kind);
        let _ = writeln!(out, "# HELP {family} {}", f.help);
        for s in iods {
            if let Some(v) = (f.value)(s) {
                let _ = writeln!(
                    out,
                    "{sample}{{viod=\"{}\",iod=\"{}\"}} {v}",
                    s.viod,
                    esc(&s.iod)
                );
            }
        }
    }
    if openmetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Answer one HTTP request on `stream`.
fn answer(stream: TcpStream, iods: &Mutex<Vec<IodStatus>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut r = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    r.read_line(&mut request)?;
    let mut openmetrics = false;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        let l = h.to_ascii_lowercase();
        if l.starts_with("accept:") && l.contains("application/openmetrics-text") {
            openmetrics = true;
        }
    }
    let mut w = stream;
    let mut words = request.split_ascii_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, ctype, body) = if method != "GET" && method != "HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        )
    } else if path == "/metrics" || path.starts_with("/metrics?") {
        let snap = iods.lock().map(|g| g.clone()).unwrap_or_default();
        let ct = if openmetrics { OPENMETRICS } else { PROMETHEUS };
        ("200 OK", ct, render(&snap, openmetrics))
    } else {
        ("404 Not Found", "text/plain", "see /metrics\n".to_string())
    };
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        w.write_all(body.as_bytes())?;
    }
    w.flush()
}

/// Serve `/metrics` from `listener` in a background thread.
pub fn serve(listener: TcpListener, iods: Arc<Mutex<Vec<IodStatus>>>) {
    std::thread::spawn(move || {
        for s in listener.incoming() {
            match s {
                Ok(s) => {
                    if let Err(e) = answer(s, &iods) {
                        log::debug!("metrics request: {e}");
                    }
                }
                Err(e) => log::warn!("metrics: accept: {e}"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn iods() -> Vec<IodStatus> {
        vec![
            IodStatus {
                viod: 0,
                iod: "10.99.0.11:7000".into(),
                state: "up".into(),
                latency_us: Some(1500),
                requests: 10,
                bytes: 655360,
                errors: 1,
                timeouts: 2,
                resync_bytes: 4096,
                ..IodStatus::default()
            },
            IodStatus {
                viod: 1,
                iod: "[::1]:7000".into(),
                state: "down".into(),
                latency_us: None,
                misses: 3,
                ..IodStatus::default()
            },
        ]
    }

    #[test]
    fn openmetrics_text() {
        let t = render(&iods(), true);
        assert!(t.contains("# TYPE nfsp_iod_up gauge\n"));
        assert!(t.contains("nfsp_iod_up{viod=\"0\",iod=\"10.99.0.11:7000\"} 1\n"));
        assert!(t.contains("nfsp_iod_up{viod=\"1\",iod=\"[::1]:7000\"} 0\n"));
        assert!(
            t.contains("nfsp_iod_latency_seconds{viod=\"0\",iod=\"10.99.0.11:7000\"} 0.001500\n")
        );
        assert!(
            !t.contains("nfsp_iod_latency_seconds{viod=\"1\""),
            "no PONG yet"
        );
        assert!(t.contains("# TYPE nfsp_iod_requests counter\n"));
        assert!(t.contains("nfsp_iod_requests_total{viod=\"0\",iod=\"10.99.0.11:7000\"} 10\n"));
        assert!(t.contains("nfsp_iod_errors_total{viod=\"0\",iod=\"10.99.0.11:7000\"} 1\n"));
        assert!(t.contains("nfsp_iod_timeouts_total{viod=\"0\",iod=\"10.99.0.11:7000\"} 2\n"));
        assert!(
            t.contains("nfsp_iod_resync_bytes_total{viod=\"0\",iod=\"10.99.0.11:7000\"} 4096\n")
        );
        assert!(t.contains("nfsp_iod_ping_misses{viod=\"1\",iod=\"[::1]:7000\"} 3\n"));
        assert!(t.ends_with("# EOF\n"));
        // Every sample line: name{labels} value.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let (name, rest) = l.split_once('{').unwrap();
            assert!(name.starts_with("nfsp_iod_"), "{l}");
            let (_, v) = rest.rsplit_once("} ").unwrap();
            v.parse::<f64>().unwrap();
        }
    }

    #[test]
    fn prometheus_text() {
        let t = render(&iods(), false);
        assert!(t.contains("# TYPE nfsp_iod_requests_total counter\n"));
        assert!(!t.contains("# EOF"));
        assert!(t.contains("nfsp_iod_up{viod=\"0\",iod=\"10.99.0.11:7000\"} 1\n"));
    }

    #[test]
    fn escapes_labels() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn serves_http() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        serve(l, Arc::new(Mutex::new(iods())));
        let get = |req: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let r = get("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains(OPENMETRICS));
        assert!(r.ends_with("# EOF\n"));
        let r = get("GET /metrics HTTP/1.0\r\n\r\n");
        assert!(r.contains(PROMETHEUS), "{r}");
        assert!(r.contains("nfsp_iod_up{viod=\"0\""));
        let r = get("GET / HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        let r = get("POST /metrics HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    }
}
