// SPDX-License-Identifier: GPL-2.0
//! `bench-report`: turns the CSV of `make bench` into a Markdown report and
//! the thesis's figure redrawn: aggregate read bandwidth against the number
//! of clients, for plain knfsd and for nfsp over 1, 2, 4 and 8 iods, with
//! the optimal line min(N, M) × link. A run that lost anything (an RPC
//! retransmission or a drop at any layer) is marked: `!` in the tables, a
//! hollow red marker in the figure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// Build the benchmark report from its CSV.
#[derive(Parser, Debug)]
struct Args {
    /// The CSV written by qemu-test/bench.
    #[arg(long)]
    csv: PathBuf,
    /// Where to write the Markdown report.
    #[arg(long)]
    markdown: PathBuf,
    /// Where to write the PNG figure.
    #[arg(long)]
    png: PathBuf,
    /// The per-host link cap of the run, in Mbit/s.
    #[arg(long)]
    link_mbit: f64,
    /// A TrueType font for the figure's text.
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    font: PathBuf,
}

/// One measured run.
#[derive(Debug, Clone)]
struct Run {
    server: String,
    proto: String,
    op: String,
    iods: u32,
    clients: u32,
    bytes: u64,
    ms: u64,
    min_ms: u64,
    cpu_pct: u32,
    meta_tx: u64,
    reads: u64,
    nfsd_us_per_read: u64,
    /// None in CSVs written before the loss counters existed.
    losses: Option<Losses>,
}

/// What was lost during one run, summed over every host (see
/// qemu-test/bench-guest).
#[derive(Debug, Clone, Default, PartialEq)]
struct Losses {
    /// The clients' RPC calls and retransmissions.
    rpc_calls: u64,
    retrans: u64,
    /// Drops of the hosts' own eth0 qdiscs (what they send).
    qdisc: u64,
    /// Drops of the bridge-side v-HOST qdiscs (what the hosts receive).
    bridge: u64,
    /// IP reassembly failures (Ip ReasmFails).
    reasm: u64,
    /// UDP receive errors (Udp InErrors, RcvbufErrors included).
    udp: u64,
    /// Drops and errors of the veths themselves (either end) and of the
    /// VM's input backlogs.
    link: u64,
    /// Where: "layer:host=n" joined by ';', empty if nowhere.
    hosts: String,
}

impl Losses {
    fn drops(&self) -> u64 {
        self.qdisc + self.bridge + self.reasm + self.udp + self.link
    }

    fn any(&self) -> bool {
        self.retrans > 0 || self.drops() > 0
    }

    /// The layers that dropped, e.g. "bridge 10, reasm 2".
    fn layers(&self) -> String {
        [
            ("qdisc", self.qdisc),
            ("bridge", self.bridge),
            ("reasm", self.reasm),
            ("udp", self.udp),
            ("link", self.link),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(l, n)| format!("{l} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// The drops column: the sum and, if any, the layers.
    fn drops_cell(&self) -> String {
        match self.drops() {
            0 => "0".to_string(),
            d => format!("{d} ({})", self.layers()),
        }
    }
}

impl Run {
    /// Aggregate bandwidth in MB/s (10^6 bytes), until the last client.
    fn mbps(&self) -> f64 {
        self.bytes as f64 / self.ms.max(1) as f64 / 1000.0
    }

    /// Spread of completion times: first client / last client.
    fn spread(&self) -> f64 {
        self.min_ms as f64 / self.ms.max(1) as f64
    }

    /// Did the run lose an RPC or a packet anywhere?
    fn lossy(&self) -> bool {
        self.losses.as_ref().is_some_and(Losses::any)
    }

    /// " !" for a lossy run, to follow its bandwidth.
    fn mark(&self) -> &'static str {
        if self.lossy() {
            " !"
        } else {
            ""
        }
    }
}

/// Fields of a line before the loss counters, and with them.
const OLD_FIELDS: usize = 12;
const FIELDS: usize = 20;

fn parse(text: &str) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("server,") {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != OLD_FIELDS && f.len() != FIELDS {
            bail!(
                "line {}: {} fields, expected {OLD_FIELDS} or {FIELDS}: '{line}'",
                i + 1,
                f.len()
            );
        }
        let num = |k: usize| -> Result<u64> {
            f[k].parse::<u64>().with_context(|| {
                format!(
                    "line {}: field {} is not a number: '{}'",
                    i + 1,
                    k + 1,
                    f[k]
                )
            })
        };
        runs.push(Run {
            server: f[0].to_string(),
            proto: f[1].to_string(),
            op: f[2].to_string(),
            iods: num(3)? as u32,
            clients: num(4)? as u32,
            bytes: num(5)?,
            ms: num(6)?,
            min_ms: num(7)?,
            cpu_pct: num(8)? as u32,
            meta_tx: num(9)?,
            reads: num(10)?,
            nfsd_us_per_read: num(11)?,
            losses: if f.len() == FIELDS {
                Some(Losses {
                    rpc_calls: num(12)?,
                    retrans: num(13)?,
                    qdisc: num(14)?,
                    bridge: num(15)?,
                    reasm: num(16)?,
                    udp: num(17)?,
                    link: num(18)?,
                    hosts: match f[19] {
                        "-" => String::new(),
                        h => h.to_string(),
                    },
                })
            } else {
                None
            },
        });
    }
    if runs.is_empty() {
        bail!("no runs in the CSV");
    }
    Ok(runs)
}

type Key = (String, String, String, u32, u32);

fn index(runs: &[Run]) -> BTreeMap<Key, &Run> {
    runs.iter()
        .map(|r| {
            (
                (
                    r.server.clone(),
                    r.proto.clone(),
                    r.op.clone(),
                    r.iods,
                    r.clients,
                ),
                r,
            )
        })
        .collect()
}

fn markdown(runs: &[Run], link_mbps: f64) -> String {
    let idx = index(runs);
    let get = |s: &str, p: &str, op: &str, n: u32, m: u32| {
        idx.get(&(s.to_string(), p.to_string(), op.to_string(), n, m))
            .copied()
    };
    let mut iods: Vec<u32> = runs
        .iter()
        .filter(|r| r.server == "nfsp" && r.op == "read")
        .map(|r| r.iods)
        .collect();
    iods.sort_unstable();
    iods.dedup();
    let mut clients: Vec<u32> = runs.iter().map(|r| r.clients).collect();
    clients.sort_unstable();
    clients.dedup();

    let mut md = String::new();
    let _ = writeln!(
        md,
        "Aggregate read bandwidth (MB/s = 10^6 bytes/s, until the last client finished), \
         links capped at {:.1} MB/s per host; in brackets the ratio to plain knfsd over the \
         same transport; optimal = min(N, M) links; CPU = the VM's busy share; \
         retrans = the clients' RPC retransmissions / calls; drops = packets dropped \
         at any layer (qdisc = a host's sending queue, bridge = the bridge's queue \
         to a host, reasm = IP reassembly failures, udp = UDP receive errors, link = drops of \
         the veths and the input backlogs); \
         `!` = the run had a retransmission or a drop (see Losses below); \
         spread = first/last client completion time.\n",
        link_mbps
    );
    md.push_str("| iods N | clients M | plain UDP | plain TCP | nfsp UDP direct | nfsp TCP relay | optimal | CPU (direct) | retrans (direct) | drops (direct) | spread (direct) | meta sent (direct) | nfsd µs/READ plain → direct |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for &n in &iods {
        for &m in &clients {
            let pu = get("plain", "udp", "read", 0, m);
            let pt = get("plain", "tcp", "read", 0, m);
            let nu = get("nfsp", "udp", "read", n, m);
            let nt = get("nfsp", "tcp", "read", n, m);
            let cell = |r: Option<&Run>, base: Option<&Run>| match (r, base) {
                (Some(r), Some(b)) => {
                    format!("{:.1} ({:.2}x){}", r.mbps(), r.mbps() / b.mbps(), r.mark())
                }
                (Some(r), None) => format!("{:.1}{}", r.mbps(), r.mark()),
                _ => "-".to_string(),
            };
            let plain = |r: Option<&Run>| {
                r.map_or("-".to_string(), |r| format!("{:.1}{}", r.mbps(), r.mark()))
            };
            let losses = nu.and_then(|r| r.losses.as_ref());
            let optimal = f64::from(n.min(m)) * link_mbps;
            let _ = writeln!(
                md,
                "| {n} | {m} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
                plain(pu),
                plain(pt),
                cell(nu, pu),
                cell(nt, pt),
                optimal,
                nu.map_or("-".into(), |r| format!("{} %", r.cpu_pct)),
                losses.map_or("-".into(), |l| format!("{} / {}", l.retrans, l.rpc_calls)),
                losses.map_or("-".into(), Losses::drops_cell),
                nu.map_or("-".into(), |r| format!("{:.2}", r.spread())),
                nu.map_or("-".into(), |r| format!(
                    "{:.1} %",
                    r.meta_tx as f64 * 100.0 / r.bytes.max(1) as f64
                )),
                match (pu, nu) {
                    (Some(p), Some(d)) =>
                        format!("{} → {}", p.nfsd_us_per_read, d.nfsd_us_per_read),
                    _ => "-".into(),
                },
            );
        }
    }
    let v4_reads = runs.iter().any(|r| r.proto == "v4" && r.op == "read");
    if v4_reads {
        md.push_str(
            "\nNFSv4.2 reads (relayed through the meta-server, as NFSv3/TCP), \
             in brackets the ratio to plain knfsd over NFSv4.2:\n\n",
        );
        md.push_str("| iods N | clients M | plain v4.2 | nfsp v4.2 | retrans plain / nfsp |\n|---|---|---|---|---|\n");
        for &n in &iods {
            for &m in &clients {
                let (Some(p), Some(q)) = (
                    get("plain", "v4", "read", 0, m),
                    get("nfsp", "v4", "read", n, m),
                ) else {
                    continue;
                };
                let _ = writeln!(
                    md,
                    "| {n} | {m} | {:.1}{} | {:.1} ({:.2}x){} | {} / {} |",
                    p.mbps(),
                    p.mark(),
                    q.mbps(),
                    q.mbps() / p.mbps(),
                    q.mark(),
                    retrans_of(p),
                    retrans_of(q)
                );
            }
        }
    }
    if runs.iter().any(|r| r.proto == "pnfs" && r.op == "read") {
        md.push_str(
            "\nNFSv4.2 pNFS reads (the clients read the iods directly; flexfiles \
             layouts), in brackets the ratio to plain knfsd over NFSv4.2 and to \
             the optimal min(N, M) links; meta tx = bytes the meta-server sent:\n\n",
        );
        md.push_str(
            "| iods N | clients M | plain v4.2 | nfsp pNFS | of optimal | meta tx | retrans plain / nfsp |\n|---|---|---|---|---|---|---|\n",
        );
        for &n in &iods {
            for &m in &clients {
                let (Some(p), Some(q)) = (
                    get("plain", "v4", "read", 0, m),
                    get("nfsp", "pnfs", "read", n, m),
                ) else {
                    continue;
                };
                let optimal = f64::from(n.min(m)) * link_mbps;
                let _ = writeln!(
                    md,
                    "| {n} | {m} | {:.1}{} | {:.1} ({:.2}x){} | {:.0} % | {} | {} / {} |",
                    p.mbps(),
                    p.mark(),
                    q.mbps(),
                    q.mbps() / p.mbps(),
                    q.mark(),
                    100.0 * q.mbps() / optimal,
                    q.meta_tx,
                    retrans_of(p),
                    retrans_of(q)
                );
            }
        }
    }
    let writes: Vec<&Run> = runs.iter().filter(|r| r.op == "write").collect();
    if !writes.is_empty() {
        md.push_str(
            "\nWrites (M clients writing at once, each file fsynced; nfsp over all iods):\n\n",
        );
        md.push_str(
            "| transport | clients M | plain knfsd | nfsp | ratio | retrans plain / nfsp |\n|---|---|---|---|---|---|\n",
        );
        for proto in ["tcp", "v4", "pnfs"] {
            for &m in &clients {
                // pNFS is compared with plain knfsd over NFSv4.2.
                let find = |server: &str| {
                    let proto = if server == "plain" && proto == "pnfs" {
                        "v4"
                    } else {
                        proto
                    };
                    writes
                        .iter()
                        .find(|r| r.server == server && r.proto == proto && r.clients == m)
                };
                if let (Some(p), Some(q)) = (find("plain"), find("nfsp")) {
                    let _ = writeln!(
                        md,
                        "| {} | {m} | {:.1}{} | {:.1}{} | {:.2}x | {} / {} |",
                        match proto {
                            "v4" => "NFSv4.2",
                            "pnfs" => "NFSv4.2 pNFS",
                            _ => "NFSv3/TCP",
                        },
                        p.mbps(),
                        p.mark(),
                        q.mbps(),
                        q.mark(),
                        q.mbps() / p.mbps(),
                        retrans_of(p),
                        retrans_of(q)
                    );
                }
            }
        }
    }
    md.push_str(&losses_section(runs));
    let reads: u64 = runs.iter().map(|r| r.reads).sum();
    let _ = writeln!(
        md,
        "\n{} runs, {} READ RPCs served by nfsd in all.",
        runs.len(),
        reads
    );
    md
}

/// A run's RPC retransmissions, or `-` when not counted.
fn retrans_of(r: &Run) -> String {
    r.losses
        .as_ref()
        .map_or("-".into(), |l| l.retrans.to_string())
}

/// The Losses section: every run that lost anything, with the layers and
/// hosts of its drops.
fn losses_section(runs: &[Run]) -> String {
    let mut md = String::from("\nLosses:");
    if runs.iter().all(|r| r.losses.is_none()) {
        md.push_str(" not counted (this CSV predates the loss counters).\n");
        return md;
    }
    let lossy: Vec<&Run> = runs.iter().filter(|r| r.lossy()).collect();
    let retrans: u64 = runs
        .iter()
        .filter_map(|r| r.losses.as_ref())
        .map(|l| l.retrans)
        .sum();
    let counted = runs.iter().filter(|r| r.losses.is_some()).count();
    let _ = writeln!(
        md,
        " {} of {counted} runs had a retransmission or a drop, {retrans} RPC \
         retransmissions in all.\n",
        lossy.len()
    );
    if lossy.is_empty() {
        return md;
    }
    md.push_str(
        "In where, reasm-timeout and reasm-overlap say which of the reassembly failures \
         were timeouts and overlapping fragments (not added to the drops), retrans \
         which clients retransmitted.\n\n",
    );
    md.push_str("| run | N | M | MB/s | retrans / calls | drops | where (layer:host=n) |\n");
    md.push_str("|---|---|---|---|---|---|---|\n");
    for r in lossy {
        let l = r.losses.as_ref().expect("lossy runs have losses");
        let _ = writeln!(
            md,
            "| {} {} {} | {} | {} | {:.1} | {} / {} | {} | {} |",
            r.server,
            r.proto,
            r.op,
            r.iods,
            r.clients,
            r.mbps(),
            l.retrans,
            l.rpc_calls,
            l.drops_cell(),
            if l.hosts.is_empty() { "-" } else { &l.hosts },
        );
    }
    md
}

fn figure(runs: &[Run], link_mbps: f64, png: &PathBuf) -> Result<()> {
    let idx = index(runs);
    let max_m = runs.iter().map(|r| r.clients).max().unwrap_or(1);
    let max_y = runs
        .iter()
        .map(Run::mbps)
        .fold(f64::from(max_m) * link_mbps, f64::max)
        * 1.1;
    // The pNFS panel when there are pNFS runs: the plain line there is
    // knfsd over NFSv4.2, what a pNFS client would get without nfsp.
    let mut kinds = vec![
        ("udp", "udp", "NFSv3/UDP: nfsp direct reads"),
        ("tcp", "tcp", "NFSv3/TCP: nfsp relayed reads"),
    ];
    if runs.iter().any(|r| r.proto == "pnfs" && r.op == "read") {
        kinds.push(("pnfs", "v4", "NFSv4.2 pNFS: clients read the iods"));
    }
    let width = 700 * kinds.len() as u32;
    let root = BitMapBackend::new(png, (width, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, kinds.len()));
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
    ];
    for (panel, &(proto, plain_proto, title)) in panels.iter().zip(kinds.iter()) {
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0.5f64..(f64::from(max_m) + 0.5), 0f64..max_y)?;
        chart
            .configure_mesh()
            .x_labels(max_m as usize)
            .x_label_formatter(&|x| format!("{}", x.round() as u32))
            .x_desc("clients M")
            .y_desc("aggregate MB/s")
            .label_style(("sans-serif", 16))
            .draw()?;
        let mut iods: Vec<u32> = runs
            .iter()
            .filter(|r| r.server == "nfsp")
            .map(|r| r.iods)
            .collect();
        iods.sort_unstable();
        iods.dedup();
        for (i, &n) in iods.iter().enumerate() {
            let color = colors[i % colors.len()];
            let mut pts: Vec<(f64, f64)> = idx
                .iter()
                .filter(|((s, p, op, ni, _), _)| {
                    s == "nfsp" && p == proto && op == "read" && *ni == n
                })
                .map(|((.., m), r)| (f64::from(*m), r.mbps()))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let clean = |&(m, _): &(f64, f64)| {
                !idx.get(&("nfsp".into(), proto.into(), "read".into(), n, m as u32))
                    .is_some_and(|r| r.lossy())
            };
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))?
                .label(format!("nfsp, {n} iod{}", if n > 1 { "s" } else { "" }))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            chart.draw_series(
                pts.iter()
                    .filter(|p| clean(p))
                    .map(|&p| Circle::new(p, 4, color.filled())),
            )?;
            let optimal: Vec<(f64, f64)> = (1..=max_m)
                .map(|m| (f64::from(m), f64::from(n.min(m)) * link_mbps))
                .collect();
            chart.draw_series(DashedLineSeries::new(
                optimal,
                6,
                4,
                color.mix(0.6).stroke_width(1),
            ))?;
        }
        let mut plain: Vec<(f64, f64)> = idx
            .iter()
            .filter(|((s, p, op, ..), _)| s == "plain" && p == plain_proto && op == "read")
            .map(|((.., m), r)| (f64::from(*m), r.mbps()))
            .collect();
        plain.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(plain.clone(), BLACK.stroke_width(3)))?
            .label(if proto == "pnfs" {
                "plain knfsd, NFSv4.2"
            } else {
                "plain knfsd"
            })
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(3)));
        chart.draw_series(plain.iter().map(|&p| Circle::new(p, 4, BLACK.filled())))?;
        // Lossy points: hollow red circles (over the plain ones' dots too).
        let lossy: Vec<(f64, f64)> = runs
            .iter()
            .filter(|r| r.proto == proto && r.op == "read" && r.lossy())
            .map(|r| (f64::from(r.clients), r.mbps()))
            .collect();
        if !lossy.is_empty() {
            let red = RGBColor(220, 0, 0);
            chart
                .draw_series(
                    lossy
                        .iter()
                        .map(|&p| Circle::new(p, 6, WHITE.filled()))
                        .chain(
                            lossy
                                .iter()
                                .map(|&p| Circle::new(p, 6, red.stroke_width(2))),
                        ),
                )?
                .label("retransmission or drop")
                .legend(move |(x, y)| Circle::new((x + 10, y), 6, red.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present().context("writing the PNG")?;
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let font = std::fs::read(&args.font).with_context(|| {
        format!(
            "reading the font {} (Debian package fonts-dejavu-core)",
            args.font.display()
        )
    })?;
    register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("{} is not a usable TrueType font", args.font.display()))?;
    let text = std::fs::read_to_string(&args.csv)
        .with_context(|| format!("reading {}", args.csv.display()))?;
    let runs = parse(&text)?;
    let link_mbps = args.link_mbit / 8.0;
    std::fs::write(&args.markdown, markdown(&runs, link_mbps))
        .with_context(|| format!("writing {}", args.markdown.display()))?;
    figure(&runs, link_mbps, &args.png)?;
    println!(
        "bench-report: {} runs → {} and {}",
        runs.len(),
        args.markdown.display(),
        args.png.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str =
        "server,proto,op,iods,clients,bytes,ms,min_ms,cpu_pct,meta_tx,reads,nfsd_us_per_read\n\
        plain,udp,read,0,2,16000000,2000,1900,50,16500000,500,80\n\
        nfsp,udp,read,2,2,16000000,1000,900,70,100000,500,20\n";

    #[test]
    fn parses_and_reports_ratios() {
        let runs = parse(CSV).unwrap();
        assert_eq!(runs.len(), 2);
        assert!((runs[1].mbps() - 16.0).abs() < 1e-9);
        let md = markdown(&runs, 2.5);
        assert!(
            md.contains("| 2 | 2 | 8.0 | - | 16.0 (2.00x) | - | 5.0 |"),
            "{md}"
        );
    }

    const NEW_CSV: &str =
        "server,proto,op,iods,clients,bytes,ms,min_ms,cpu_pct,meta_tx,reads,nfsd_us_per_read,\
        rpc_calls,retrans,qdisc_drops,bridge_drops,reasm_fails,udp_errors,link_drops,drop_hosts\n\
        plain,udp,read,0,2,16000000,2000,1900,50,16500000,500,80,520,0,0,0,0,0,0,-\n\
        nfsp,udp,read,2,2,16000000,1000,900,70,100000,500,20,530,3,0,5,2,0,0,\
        bridge:client1=5;reasm:client1=2;retrans:client1=3\n";

    #[test]
    fn old_csv_has_no_losses() {
        let runs = parse(CSV).unwrap();
        assert!(runs.iter().all(|r| r.losses.is_none() && !r.lossy()));
        let md = markdown(&runs, 2.5);
        assert!(!md.contains(" !"), "{md}");
        assert!(md.contains("predates the loss counters"), "{md}");
    }

    #[test]
    fn new_csv_marks_losses() {
        let runs = parse(NEW_CSV).unwrap();
        let l = runs[1].losses.as_ref().unwrap();
        assert_eq!((l.rpc_calls, l.retrans, l.drops()), (530, 3, 7));
        assert_eq!(l.layers(), "bridge 5, reasm 2");
        assert!(!runs[0].lossy() && runs[1].lossy());
        assert_eq!(runs[0].losses.as_ref().unwrap().hosts, "");
        let md = markdown(&runs, 2.5);
        assert!(
            md.contains(
                "| 2 | 2 | 8.0 | - | 16.0 (2.00x) ! | - | 5.0 | 70 % | 3 / 530 | 7 (bridge 5, reasm 2) |"
            ),
            "{md}"
        );
        assert!(
            md.contains("1 of 2 runs had a retransmission or a drop, 3 RPC"),
            "{md}"
        );
        assert!(
            md.contains("| nfsp udp read | 2 | 2 | 16.0 | 3 / 530 | 7 (bridge 5, reasm 2) | bridge:client1=5;"),
            "{md}"
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("plain,udp,read,0").is_err());
        assert!(parse("plain,udp,read,0,1,1,1,1,1,1,1,1,1").is_err());
        assert!(parse("plain,udp,read,0,1,1,1,1,1,1,1,1,1,x,0,0,0,0,0,-").is_err());
        assert!(parse("plain,udp,read,0,1,1,1,1,1,1,1,1,1,0,0,0,0,0,-").is_err());
        assert!(parse("plain,udp,read,x,1,1,1,1,1,1,1,1").is_err());
        assert!(parse("").is_err());
    }
}
