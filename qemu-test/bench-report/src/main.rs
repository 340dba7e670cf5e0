// SPDX-License-Identifier: GPL-2.0
//! `bench-report`: turns the CSV of `make bench` into a Markdown report and
//! the thesis's figure redrawn: aggregate read bandwidth against the number
//! of clients, for plain knfsd and for nfsp over 1, 2, 4 and 8 iods, with
//! the optimal line min(N, M) × link.

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
}

fn parse(text: &str) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("server,") {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 12 {
            bail!("line {}: {} fields, expected 12: '{line}'", i + 1, f.len());
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
         spread = first/last client completion time.\n",
        link_mbps
    );
    md.push_str("| iods N | clients M | plain UDP | plain TCP | nfsp UDP direct | nfsp TCP relay | optimal | CPU (direct) | spread (direct) | meta sent (direct) | nfsd µs/READ plain → direct |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for &n in &iods {
        for &m in &clients {
            let pu = get("plain", "udp", "read", 0, m);
            let pt = get("plain", "tcp", "read", 0, m);
            let nu = get("nfsp", "udp", "read", n, m);
            let nt = get("nfsp", "tcp", "read", n, m);
            let cell = |r: Option<&Run>, base: Option<&Run>| match (r, base) {
                (Some(r), Some(b)) => format!("{:.1} ({:.2}x)", r.mbps(), r.mbps() / b.mbps()),
                (Some(r), None) => format!("{:.1}", r.mbps()),
                _ => "-".to_string(),
            };
            let plain = |r: Option<&Run>| r.map_or("-".to_string(), |r| format!("{:.1}", r.mbps()));
            let optimal = f64::from(n.min(m)) * link_mbps;
            let _ = writeln!(
                md,
                "| {n} | {m} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} |",
                plain(pu),
                plain(pt),
                cell(nu, pu),
                cell(nt, pt),
                optimal,
                nu.map_or("-".into(), |r| format!("{} %", r.cpu_pct)),
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
    let writes: Vec<&Run> = runs.iter().filter(|r| r.op == "write").collect();
    if !writes.is_empty() {
        md.push_str("\nWrites (M clients writing at once, NFSv3/TCP; nfsp over all iods):\n\n");
        md.push_str("| clients M | plain knfsd | nfsp | ratio |\n|---|---|---|---|\n");
        for &m in &clients {
            let p = writes
                .iter()
                .find(|r| r.server == "plain" && r.clients == m);
            let q = writes.iter().find(|r| r.server == "nfsp" && r.clients == m);
            if let (Some(p), Some(q)) = (p, q) {
                let _ = writeln!(
                    md,
                    "| {m} | {:.1} | {:.1} | {:.2}x |",
                    p.mbps(),
                    q.mbps(),
                    q.mbps() / p.mbps()
                );
            }
        }
    }
    let reads: u64 = runs.iter().map(|r| r.reads).sum();
    let _ = writeln!(
        md,
        "\n{} runs, {} READ RPCs served by nfsd in all.",
        runs.len(),
        reads
    );
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
    let root = BitMapBackend::new(png, (1400, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
    ];
    for (panel, (proto, title)) in panels.iter().zip([
        ("udp", "NFSv3/UDP: nfsp direct reads"),
        ("tcp", "NFSv3/TCP: nfsp relayed reads"),
    ]) {
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
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))?
                .label(format!("nfsp, {n} iod{}", if n > 1 { "s" } else { "" }))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
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
            .filter(|((s, p, op, ..), _)| s == "plain" && p == proto && op == "read")
            .map(|((.., m), r)| (f64::from(*m), r.mbps()))
            .collect();
        plain.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(plain.clone(), BLACK.stroke_width(3)))?
            .label("plain knfsd")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(3)));
        chart.draw_series(plain.iter().map(|&p| Circle::new(p, 4, BLACK.filled())))?;
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

    #[test]
    fn rejects_garbage() {
        assert!(parse("plain,udp,read,0").is_err());
        assert!(parse("plain,udp,read,x,1,1,1,1,1,1,1,1").is_err());
        assert!(parse("").is_err());
    }
}
