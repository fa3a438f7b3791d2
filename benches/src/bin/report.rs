//! The README's performance table and chart: criterion medians of the last `cargo bench` run beside
//! the peers of `shared/peers/peers.py` runs.
//!
//! ```text
//! cargo bench -p conv-benches --bench conv           # writes target/criterion/<row>/<id>/
//! cargo run --release -p conv-benches --bin report -- \
//!     --peers benches/peers/<date>_1thread.tsv --peers2 benches/peers/<date>_2threads.tsv \
//!     --svg docs/performance.svg
//! ```
//!
//! Prints a markdown table (one line per row of `ROWS`, then the geometric means) and, with
//! `--svg`, writes a bar chart of best-peer time / our time per row, 1 and 2 threads. `--peers`
//! and `--peers2` may be repeated: a row's best peer is then the fastest median over all the
//! files (peers' medians vary by 10-50% between runs minutes apart on this shared machine, so
//! the best of several runs is the demanding comparison). Options:
//! `--criterion DIR` (default: `target/criterion` of this workspace), `--peak GFLOPS` (default:
//! measured, see `conv_benches::peak`). Ids read per row: `generated`, `generated_2t`, `generic`,
//! and every id whose directory starts with `rust` (Rust peers, with the `rust-peers` feature);
//! a missing id prints `-`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use conv_benches::{bench_isa, peak::peak_gflops, ROWS};

struct Options {
    criterion: PathBuf,
    peers: Vec<PathBuf>,
    peers2: Vec<PathBuf>,
    svg: Option<PathBuf>,
    peak: Option<f64>,
}

fn options() -> Options {
    let mut o = Options {
        criterion: Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"),
        peers: Vec::new(),
        peers2: Vec::new(),
        svg: None,
        peak: None,
    };
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        o.criterion = PathBuf::from(dir).join("criterion");
    }
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--criterion" => o.criterion = value().into(),
            "--peers" => o.peers.push(value().into()),
            "--peers2" => o.peers2.push(value().into()),
            "--svg" => o.svg = Some(value().into()),
            "--peak" => o.peak = Some(value().parse().expect("--peak GFLOPS")),
            _ => panic!(
                "unknown option {flag}; usage: report [--criterion DIR] [--peers TSV] \
                 [--peers2 TSV] [--svg FILE] [--peak GFLOPS]"
            ),
        }
    }
    o
}

/// Criterion's median estimate in microseconds of `<dir>/<row>/<id>`, if that id was run.
fn median_us(dir: &Path, row: &str, id: &str) -> Option<f64> {
    let path = dir.join(row).join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(json["median"]["point_estimate"].as_f64()? / 1e3)
}

/// The fastest Rust peer of `row`: (name, microseconds).
fn rust_peer(dir: &Path, row: &str) -> Option<(String, f64)> {
    let entries = std::fs::read_dir(dir.join(row)).ok()?;
    entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let peer = name.strip_prefix("rust")?.trim_start_matches(['_', '/']);
            Some((peer.to_string(), median_us(dir, row, &name)?))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The fastest peer per shape over peers.py TSVs (`shape peer threads median_us ...`).
fn best_peers(paths: &[PathBuf]) -> BTreeMap<String, (String, f64)> {
    let mut best: BTreeMap<String, (String, f64)> = BTreeMap::new();
    for path in paths {
        for (shape, (peer, us)) in best_peers_of(path) {
            let entry = best.entry(shape).or_insert((peer.clone(), us));
            if us < entry.1 {
                *entry = (peer, us);
            }
        }
    }
    best
}

/// The fastest peer per shape of one peers.py TSV.
fn best_peers_of(path: &Path) -> BTreeMap<String, (String, f64)> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{}: no column {name}", path.display()))
    };
    let (shape, peer, median) = (col("shape"), col("peer"), col("median_us"));
    let mut best: BTreeMap<String, (String, f64)> = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let Some(us) = f.get(median).and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        if !us.is_finite() || f[shape].starts_with('_') {
            continue;
        }
        let entry = best
            .entry(f[shape].to_string())
            .or_insert((f[peer].to_string(), us));
        if us < entry.1 {
            *entry = (f[peer].to_string(), us);
        }
    }
    best
}

/// Display names of the peers.py peers.
fn peer_name(peer: &str) -> &str {
    match peer {
        "ort" => "ORT",
        "openvino" => "OpenVINO",
        "tflite_xnnpack" => "XNNPACK",
        "torch" => "PyTorch",
        other => other,
    }
}

/// One line of the table.
struct Line {
    row: &'static str,
    ours: Option<f64>,
    ours2: Option<f64>,
    peer: Option<(String, f64)>,
    peer2: Option<(String, f64)>,
}

fn fmt_us(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn ratio(num: Option<f64>, den: Option<f64>) -> Option<f64> {
    Some(num? / den?)
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}x"))
}

fn geomean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

fn main() {
    let o = options();
    let isa = bench_isa();
    let peak = o.peak.unwrap_or_else(|| peak_gflops(isa));
    let peers = best_peers(&o.peers);
    let peers2 = best_peers(&o.peers2);
    let files = |paths: &[PathBuf]| match paths {
        [] => "-".to_string(),
        _ => paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" + "),
    };
    let dir = &o.criterion;

    println!(
        "Criterion medians (us) from `{}`, ISA {}; peers: {} (1 thread), {} (2 threads); \
         one-core FMA peak {peak:.0} GFLOP/s.\n",
        dir.display(),
        isa.name(),
        files(&o.peers),
        files(&o.peers2),
    );
    println!(
        "| row | ours | best peer | peer / ours | ours, 2 threads | 1 -> 2 threads | best peer, 2 threads | peer / ours, 2 threads | generic | best Rust peer | GFLOP/s | % of peak |"
    );
    println!("|---|---:|---|---:|---:|---:|---|---:|---:|---|---:|---:|");
    let mut lines = Vec::new();
    for row in ROWS {
        let ours = median_us(dir, row.name, "generated");
        let ours2 = median_us(dir, row.name, "generated_2t");
        let generic = median_us(dir, row.name, "generic");
        let line = Line {
            row: row.name,
            ours,
            ours2,
            peer: peers.get(row.name).cloned(),
            peer2: peers2.get(row.name).cloned(),
        };
        let peer_cell = |p: &Option<(String, f64)>| {
            p.as_ref()
                .map_or("-".into(), |(n, us)| format!("{us:.1} {}", peer_name(n)))
        };
        let rust = rust_peer(dir, row.name).map_or("-".into(), |(n, us)| format!("{us:.1} {n}"));
        let gflops = ours.map(|us| row.flops() as f64 / us / 1e3);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {rust} | {} | {} |",
            row.name,
            fmt_us(ours),
            peer_cell(&line.peer),
            fmt_ratio(ratio(line.peer.as_ref().map(|p| p.1), ours)),
            fmt_us(ours2),
            fmt_ratio(ratio(ours, ours2)),
            peer_cell(&line.peer2),
            fmt_ratio(ratio(line.peer2.as_ref().map(|p| p.1), ours2)),
            fmt_us(generic),
            gflops.map_or("-".into(), |g| format!("{g:.1}")),
            gflops.map_or("-".into(), |g| format!("{:.0}%", 100.0 * g / peak)),
        );
        lines.push(line);
    }
    let r1: Vec<f64> = lines
        .iter()
        .filter_map(|l| ratio(l.peer.as_ref().map(|p| p.1), l.ours))
        .collect();
    let r2: Vec<f64> = lines
        .iter()
        .filter_map(|l| ratio(l.peer2.as_ref().map(|p| p.1), l.ours2))
        .collect();
    println!(
        "\nGeometric mean of best-peer time / our time: {} over {} rows (1 thread), {} over {} rows \
         (2 threads). Rows behind the best peer: 1 thread {}, 2 threads {}.",
        fmt_ratio(geomean(&r1)),
        r1.len(),
        fmt_ratio(geomean(&r2)),
        r2.len(),
        r1.iter().filter(|r| **r < 1.0).count(),
        r2.iter().filter(|r| **r < 1.0).count(),
    );
    if let Some(path) = &o.svg {
        std::fs::write(path, svg(&lines)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("wrote {}", path.display());
    }
}

/// Horizontal bars of best-peer time / our time per row (1 and 2 threads), a line at parity.
fn svg(lines: &[Line]) -> String {
    let (label_w, bar_w, row_h, top) = (190.0, 520.0, 34.0, 56.0);
    let ratios: Vec<[Option<f64>; 2]> = lines
        .iter()
        .map(|l| {
            [
                ratio(l.peer.as_ref().map(|p| p.1), l.ours),
                ratio(l.peer2.as_ref().map(|p| p.1), l.ours2),
            ]
        })
        .collect();
    let max = ratios
        .iter()
        .flatten()
        .flatten()
        .fold(2.0f64, |m, r| m.max(*r))
        .ceil();
    let x = |r: f64| label_w + bar_w * r / max;
    let height = top + row_h * lines.len() as f64 + 40.0;
    let width = label_w + bar_w + 70.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">Best peer time / conv-kernel time (right of 1 = conv-kernel faster)</text>"#
    );
    for (i, (label, color)) in [("1 thread", "#3b6fb6"), ("2 threads", "#e08a2c")]
        .iter()
        .enumerate()
    {
        let lx = label_w + 150.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="30" width="12" height="12" fill="{color}"/><text x="{}" y="40">{label}</text>"#,
            lx + 16.0
        );
    }
    for k in 0..=(max as usize) {
        let gx = x(k as f64);
        let stroke = if k == 1 { "#333" } else { "#ddd" };
        let _ = writeln!(
            s,
            r#"<line x1="{gx}" y1="{top}" x2="{gx}" y2="{}" stroke="{stroke}"/><text x="{gx}" y="{}" text-anchor="middle">{k}x</text>"#,
            height - 30.0,
            height - 14.0
        );
    }
    for (i, (line, rs)) in lines.iter().zip(&ratios).enumerate() {
        let y = top + row_h * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            y + row_h / 2.0 + 4.0,
            line.row
        );
        for (j, (r, color)) in rs.iter().zip(["#3b6fb6", "#e08a2c"]).enumerate() {
            let Some(r) = r else { continue };
            let by = y + 4.0 + 13.0 * j as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{label_w}" y="{by}" width="{:.1}" height="12" fill="{color}"/><text x="{:.1}" y="{}" font-size="10">{r:.2}</text>"#,
                x(*r) - label_w,
                x(*r) + 4.0,
                by + 10.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
