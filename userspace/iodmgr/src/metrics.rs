// SPDX-License-Identifier: GPL-2.0
//! The metrics endpoint: `GET /metrics` on a plain `TcpListener`, answered
//! in the OpenMetrics text format when the scraper accepts it
//! (`application/openmetrics-text`), else in Prometheus' text format 0.0.4.
//!
//! One thread per connection, at most [`Limits::max_conns`] at once (more
//! are closed unread), a deadline from accept to the end of the request
//! head and a bound on its size: an idle, slow or flooding client holds
//! one slot for at most the deadline and never delays another scrape.

use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
        name: "nfsp_iod_ds_errors",
        kind: "counter",
        help: "Errors of the iod's pNFS data server that clients reported",
        value: |s| Some(s.ds_errors.to_string()),
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

/// Default port of the endpoint (`--metrics` without a value or with a
/// bare port).
pub const DEFAULT_PORT: u16 = 9477;
/// `--metrics` without a value: loopback only (the metrics name every iod
/// and its load; exposing them is a choice, `--metrics 0.0.0.0:9477`).
pub const DEFAULT_ADDR: &str = "127.0.0.1:9477";

/// Bounds that keep one client from holding the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; further ones are closed at once.
    pub max_conns: usize,
    /// From accept to the end of the request head: a deadline, not a
    /// per-read timeout, so a byte now and then does not extend it.
    pub head_deadline: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub max_head: usize,
    /// From the end of the head to the last byte of the answer.
    pub write_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_conns: 16,
            head_deadline: Duration::from_secs(2),
            max_head: 8 * 1024,
            write_deadline: Duration::from_secs(5),
        }
    }
}

/// What the endpoint did, for the log and the tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests answered (any status).
    pub answered: AtomicU64,
    /// Connections closed unread: `max_conns` were being served.
    pub rejected: AtomicU64,
    /// Connections cut at the head deadline.
    pub timed_out: AtomicU64,
    /// Request heads over `max_head` (answered 431).
    pub too_large: AtomicU64,
    active: AtomicUsize,
}

impl Stats {
    /// Connections being served now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// Releases a connection slot when its thread ends (or never starts).
struct Slot(Arc<Stats>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream whose reads can be bounded in time (a trait so that the head
/// reader can be tested on a counting source).
trait TimedRead: Read {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()>;
}

impl TimedRead for &TcpStream {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))
    }
}

/// Why no request head was read.
#[derive(Debug)]
enum HeadError {
    /// `max_head` bytes without the end of the head.
    TooLarge,
    /// The deadline passed first.
    Deadline,
    Io(io::Error),
}

/// Read a request head: the request line, then header lines up to a blank
/// one (or the end of the stream, as a line reader would). Never reads
/// more than `max` bytes, never waits past `deadline`.
fn read_head<R: TimedRead>(r: &mut R, max: usize, deadline: Instant) -> Result<Vec<u8>, HeadError> {
    let mut buf = vec![0u8; max];
    let (mut len, mut line_start, mut first) = (0, 0, true);
    loop {
        if len == max {
            return Err(HeadError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Deadline);
        }
        r.set_timeout(left).map_err(HeadError::Io)?;
        let n = match r.read(&mut buf[len..]) {
            Ok(0) => {
                buf.truncate(len);
                return Ok(buf);
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // The loop's deadline check decides (a timeout may fire early).
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(HeadError::Io(e)),
        };
        // Only the new bytes are scanned: a byte-by-byte sender costs O(n).
        for i in len..len + n {
            if buf[i] != b'\n' {
                continue;
            }
            let blank = buf[line_start..i].iter().all(u8::is_ascii_whitespace);
            line_start = i + 1;
            if first {
                first = false;
            } else if blank {
                buf.truncate(i + 1);
                return Ok(buf);
            }
        }
        len += n;
    }
}

/// Write all of `data` before `deadline`.
fn write_by(mut w: &TcpStream, mut data: &[u8], deadline: Instant) -> io::Result<()> {
    while !data.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(ErrorKind::TimedOut, "write deadline"));
        }
        w.set_write_timeout(Some(left))?;
        match w.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A complete answer (head and, unless `head_only`, body).
fn response(status: &str, ctype: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The answer to a request head.
fn route(head: &[u8], iods: &Mutex<Vec<IodStatus>>) -> Vec<u8> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split_inclusive('\n');
    let request = lines.next().unwrap_or("");
    let openmetrics = lines.any(|h| {
        let l = h.to_ascii_lowercase();
        l.starts_with("accept:") && l.contains("application/openmetrics-text")
    });
    let mut words = request.split_ascii_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let head_only = method == "HEAD";
    if method != "GET" && method != "HEAD" {
        response(
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n",
            head_only,
        )
    } else if path == "/metrics" || path.starts_with("/metrics?") {
        let snap = iods.lock().map(|g| g.clone()).unwrap_or_default();
        let ct = if openmetrics { OPENMETRICS } else { PROMETHEUS };
        response("200 OK", ct, &render(&snap, openmetrics), head_only)
    } else {
        response("404 Not Found", "text/plain", "see /metrics\n", head_only)
    }
}

/// Answer one HTTP request on `stream`, accepted at `accepted`.
fn answer(
    stream: &TcpStream,
    accepted: Instant,
    iods: &Mutex<Vec<IodStatus>>,
    limits: &Limits,
    stats: &Stats,
) -> io::Result<()> {
    let mut r = stream;
    let out = match read_head(&mut r, limits.max_head, accepted + limits.head_deadline) {
        Ok(head) => route(&head, iods),
        Err(HeadError::TooLarge) => {
            stats.too_large.fetch_add(1, Ordering::Relaxed);
            log::debug!("metrics: request head over {} bytes", limits.max_head);
            let body = format!("request head over {} bytes\n", limits.max_head);
            response(
                "431 Request Header Fields Too Large",
                "text/plain",
                &body,
                false,
            )
        }
        Err(HeadError::Deadline) => {
            stats.timed_out.fetch_add(1, Ordering::Relaxed);
            log::debug!(
                "metrics: no complete request within {} ms",
                limits.head_deadline.as_millis()
            );
            response(
                "408 Request Timeout",
                "text/plain",
                "request too slow\n",
                false,
            )
        }
        Err(HeadError::Io(e)) => return Err(e),
    };
    write_by(stream, &out, Instant::now() + limits.write_deadline)?;
    stats.answered.fetch_add(1, Ordering::Relaxed);
    // FIN right after the answer, before the close (which sends RST when
    // unread bytes are left, e.g. after a 431).
    stream.shutdown(Shutdown::Write)
}

/// Serve `/metrics` from `listener` in background threads, with the
/// default [`Limits`].
pub fn serve(listener: TcpListener, iods: Arc<Mutex<Vec<IodStatus>>>) -> io::Result<Arc<Stats>> {
    serve_with(listener, iods, Limits::default())
}

/// Serve `/metrics` from `listener`: an accept thread, and a thread per
/// connection (at most `limits.max_conns` at once).
pub fn serve_with(
    listener: TcpListener,
    iods: Arc<Mutex<Vec<IodStatus>>>,
    limits: Limits,
) -> io::Result<Arc<Stats>> {
    let stats = Arc::new(Stats::default());
    let st = Arc::clone(&stats);
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || accept_loop(&listener, &iods, limits, &st))?;
    Ok(stats)
}

fn accept_loop(
    listener: &TcpListener,
    iods: &Arc<Mutex<Vec<IodStatus>>>,
    limits: Limits,
    stats: &Arc<Stats>,
) {
    for s in listener.incoming() {
        let s = match s {
            Ok(s) => s,
            Err(e) => {
                log::warn!("metrics: accept: {e}");
                // EMFILE and the like persist: do not spin on them.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let accepted = Instant::now();
        if stats.active.fetch_add(1, Ordering::Relaxed) >= limits.max_conns {
            stats.active.fetch_sub(1, Ordering::Relaxed);
            let n = stats.rejected.fetch_add(1, Ordering::Relaxed) + 1;
            // 1, 2, 4, 8, …: a flood does not flood the log.
            if n.is_power_of_two() {
                log::warn!(
                    "metrics: {n} connection(s) refused so far ({} being served)",
                    limits.max_conns
                );
            }
            drop(s);
            continue;
        }
        let slot = Slot(Arc::clone(stats));
        let iods = Arc::clone(iods);
        let spawned = std::thread::Builder::new()
            .name("metrics-conn".into())
            .spawn(move || {
                let slot = slot;
                if let Err(e) = answer(&s, accepted, &iods, &limits, &slot.0) {
                    log::debug!("metrics request: {e}");
                }
            });
        if let Err(e) = spawned {
            // The closure, its stream and its slot are dropped with it.
            log::warn!("metrics: cannot start a connection thread: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicBool;

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
        serve(l, Arc::new(Mutex::new(iods()))).unwrap();
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

    #[test]
    fn head_request_has_no_body() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        serve(l, Arc::new(Mutex::new(iods()))).unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"HEAD /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let len = render(&iods(), false).len();
        assert!(out.contains(&format!("Content-Length: {len}\r\n")), "{out}");
        assert!(out.ends_with("\r\n\r\n"), "{out}");
    }

    /// A source of `data` then (if `endless`) 'A's forever, `chunk` bytes
    /// a read, counting what it handed out.
    struct Source {
        data: Vec<u8>,
        endless: bool,
        chunk: usize,
        given: usize,
    }

    impl Read for Source {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut n = buf.len().min(self.chunk);
            if !self.endless {
                n = n.min(self.data.len().saturating_sub(self.given));
            }
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = self.data.get(self.given + i).copied().unwrap_or(b'A');
            }
            self.given += n;
            Ok(n)
        }
    }

    impl TimedRead for Source {
        fn set_timeout(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    fn source(data: &[u8], endless: bool, chunk: usize) -> Source {
        Source {
            data: data.to_vec(),
            endless,
            chunk,
            given: 0,
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn head_reader_never_reads_past_the_limit() {
        for chunk in [1, 100, 4096, 1 << 20] {
            let mut r = source(b"", true, chunk);
            assert!(matches!(
                read_head(&mut r, 8192, later()),
                Err(HeadError::TooLarge)
            ));
            assert_eq!(r.given, 8192, "chunk {chunk}");
        }
        // A header line that never ends, after a request line.
        let mut r = source(b"GET /metrics HTTP/1.1\r\nX-Long: ", true, 7);
        assert!(matches!(
            read_head(&mut r, 8192, later()),
            Err(HeadError::TooLarge)
        ));
        assert_eq!(r.given, 8192);
    }

    #[test]
    fn head_reader_stops_at_the_blank_line() {
        let req = b"GET /metrics HTTP/1.1\r\nAccept: x\r\n\r\n";
        for chunk in [1, 3, 1000] {
            // Bytes after the head (none are expected) are not consumed
            // beyond the read that brought the blank line.
            let mut r = source(req, true, chunk);
            let h = read_head(&mut r, 8192, later()).unwrap();
            assert_eq!(h, req, "chunk {chunk}");
        }
        // Bare newlines, a blank line of spaces, the end of the stream.
        let h = read_head(&mut source(b"GET / HTTP/1.0\n \n", false, 5), 64, later()).unwrap();
        assert_eq!(h, b"GET / HTTP/1.0\n \n");
        let h = read_head(&mut source(b"GET /metrics", false, 5), 64, later()).unwrap();
        assert_eq!(h, b"GET /metrics");
        // An empty request line is the request line, not the end.
        let h = read_head(&mut source(b"\r\nX: 1\r\n\r\nrest", false, 64), 64, later()).unwrap();
        assert_eq!(h, b"\r\nX: 1\r\n\r\n");
        // Exactly the limit is fine, one byte more is not.
        let mut exact = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        exact.resize(254, b'a');
        exact.extend_from_slice(b"\n\n");
        assert_eq!(exact.len(), 256);
        assert_eq!(
            read_head(&mut source(&exact, false, 10), 256, later()).unwrap(),
            exact
        );
        exact.insert(30, b'a');
        assert!(matches!(
            read_head(&mut source(&exact, false, 10), 256, later()),
            Err(HeadError::TooLarge)
        ));
        // A passed deadline reads nothing.
        let mut r = source(req, false, 10);
        assert!(matches!(
            read_head(&mut r, 256, Instant::now()),
            Err(HeadError::Deadline)
        ));
        assert_eq!(r.given, 0);
    }

    fn server(limits: Limits) -> (SocketAddr, Arc<Stats>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let st = serve_with(l, Arc::new(Mutex::new(iods())), limits).unwrap();
        (addr, st)
    }

    /// One scrape: the answer and how long it took.
    fn scrape(addr: SocketAddr) -> (String, Duration) {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        (out, t.elapsed())
    }

    /// Connect and wait until the server counts the connection as served.
    fn hold(addr: SocketAddr, st: &Stats) -> TcpStream {
        let before = st.active();
        let s = TcpStream::connect(addr).unwrap();
        let t = Instant::now();
        while st.active() <= before && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(st.active() > before, "connection not accepted");
        s
    }

    /// Before: one idle connection held the single-threaded endpoint for
    /// its 5 s read timeout, so this scrape took 5 s.
    #[test]
    fn idle_connection_does_not_delay_a_scrape() {
        let (addr, st) = server(Limits::default());
        let idle = hold(addr, &st);
        let (r, took) = scrape(addr);
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(took < Duration::from_secs(1), "scrape took {took:?}");
        eprintln!("scrape with an idle connection open: {took:?}");
        drop(idle);
    }

    /// Before: a byte every 300 ms reset the 5 s per-read timeout, so the
    /// endpoint was held for good.
    #[test]
    fn slow_loris_is_cut_at_the_deadline() {
        let (addr, st) = server(Limits::default());
        let s = hold(addr, &st);
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let mut w = s.try_clone().unwrap();
        let stop2 = Arc::clone(&stop);
        let loris = std::thread::spawn(move || {
            let msg = b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa";
            for b in msg.iter().cycle() {
                if stop2.load(Ordering::Relaxed) || w.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        // Other scrapes go through meanwhile.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(300));
            let (r, took) = scrape(addr);
            assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
            assert!(took < Duration::from_secs(1), "scrape took {took:?}");
        }
        let mut r = &s;
        r.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Vec::new();
        let _ = r.read_to_end(&mut out); // EOF, or a reset after the answer
        let cut = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        loris.join().unwrap();
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 408"), "{out}");
        assert!(
            cut > Duration::from_millis(1500) && cut < Duration::from_secs(3),
            "cut after {cut:?}"
        );
        assert_eq!(st.timed_out.load(Ordering::Relaxed), 1);
        eprintln!("slow client cut after {cut:?}");
    }

    /// Before: the line was read into memory until the sender stopped,
    /// and nothing was answered.
    #[test]
    fn oversized_head_without_newline_is_refused() {
        let (addr, st) = server(Limits::default());
        let t0 = Instant::now();
        let s = TcpStream::connect(addr).unwrap();
        let mut w = s.try_clone().unwrap();
        let flood = std::thread::spawn(move || {
            let chunk = vec![b'A'; 64 * 1024];
            for _ in 0..16 {
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let mut r = &s;
        r.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Vec::new();
        let _ = r.read_to_end(&mut out);
        let took = t0.elapsed();
        drop(s);
        flood.join().unwrap();
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert_eq!(st.too_large.load(Ordering::Relaxed), 1);
        let (r, _) = scrape(addr);
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    }

    #[test]
    fn connections_beyond_the_limit_are_closed_at_once() {
        let (addr, st) = server(Limits {
            max_conns: 2,
            head_deadline: Duration::from_secs(10),
            ..Limits::default()
        });
        let a = hold(addr, &st);
        let b = hold(addr, &st);
        let t = Instant::now();
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        assert!(out.is_empty());
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(st.rejected.load(Ordering::Relaxed), 1);
        drop((a, b));
        let t = Instant::now();
        while st.active() > 0 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let (r, _) = scrape(addr);
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    }

    #[test]
    fn a_request_in_pieces_within_the_deadline_is_answered() {
        let (addr, _) = server(Limits::default());
        let mut s = TcpStream::connect(addr).unwrap();
        for p in [
            "GET /met",
            "rics HTTP/1.1\r\n",
            "Accept: application/openmetrics-text\r\n",
            "\r\n",
        ] {
            s.write_all(p.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("# EOF\n"));
    }
}
