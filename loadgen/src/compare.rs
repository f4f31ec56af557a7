//! Side-by-side comparison of two reports (`--json` files): what changed in
//! the configuration, and how each headline number moved.
//!
//! The output is plain text meant for a terminal or a commit message, so
//! numbers carry their units and the B/A column makes "2× slower" visible
//! without mental arithmetic.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::report::{CpuHiccups, Percentiles, Report, REPORT_VERSION};

/// Reads a report written by `--json`.
///
/// A report of another version is refused: the version is bumped exactly when
/// a field changes meaning, so comparing across versions would mislead.
pub fn load(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading report {}", path.display()))?;
    let report: Report = serde_json::from_str(&text).with_context(|| {
        format!(
            "parsing report {} (expected the JSON written by `tidegate-loadgen --json`)",
            path.display()
        )
    })?;
    if report.version != REPORT_VERSION {
        bail!(
            "report {} has version {}, this loadgen reads version {}",
            path.display(),
            report.version,
            REPORT_VERSION
        );
    }
    Ok(report)
}

/// How a value is printed; the ratio is always of the raw numbers.
#[derive(Clone, Copy)]
enum Unit {
    /// Counts and rates: thousands separators, no decimals.
    Count,
    /// Megabytes per second: thousands separators, one decimal.
    Megabytes,
    /// Microseconds, shown as µs, ms or s.
    Micros,
}

struct Row {
    metric: String,
    /// None when the run did not measure it (e.g. no consumer, so no end to
    /// end latency): printing 0 µs would read as "infinitely fast".
    a: Option<f64>,
    b: Option<f64>,
    unit: Unit,
}

/// Renders the comparison of run `a` (the baseline) and run `b`.
pub fn render(a_name: &str, a: &Report, b_name: &str, b: &Report) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "A: {a_name} ({}, {:.0} s)", a.started_at, a.measured_s);
    let _ = writeln!(out, "B: {b_name} ({}, {:.0} s)", b.started_at, b.measured_s);
    let _ = writeln!(out, "{}", differences_line(a, b));
    out.push('\n');
    out.push_str(&table(&rows(a, b)));
    out
}

/// "config differs: ack: durable -> written, ..." (and host, when it differs:
/// numbers from different machines are not comparable).
fn differences_line(a: &Report, b: &Report) -> String {
    let mut changes = config_changes(&a.config, &b.config);
    let hosts = [
        (
            "host.cpus",
            a.host.cpus.to_string(),
            b.host.cpus.to_string(),
        ),
        ("host.kernel", a.host.kernel.clone(), b.host.kernel.clone()),
        (
            "host.spawned_server",
            a.host.spawned_server.to_string(),
            b.host.spawned_server.to_string(),
        ),
    ];
    for (key, va, vb) in hosts {
        if va != vb {
            changes.push(format!("{key}: {va} -> {vb}"));
        }
    }
    if changes.is_empty() {
        "config: identical".to_string()
    } else {
        format!("config differs: {}", changes.join(", "))
    }
}

/// Top-level keys whose values differ, sorted by key. Nested values are
/// compared whole and shown as compact JSON: the config is flat in practice,
/// and one level keeps the line short.
fn config_changes(a: &Value, b: &Value) -> Vec<String> {
    let (Value::Object(ma), Value::Object(mb)) = (a, b) else {
        return if a == b {
            Vec::new()
        } else {
            vec![format!(
                "config: {} -> {}",
                show_json(Some(a)),
                show_json(Some(b))
            )]
        };
    };
    let keys: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    keys.into_iter()
        .filter(|k| ma.get(*k) != mb.get(*k))
        .map(|k| format!("{k}: {} -> {}", show_json(ma.get(k)), show_json(mb.get(k))))
        .collect()
}

fn show_json(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn rows(a: &Report, b: &Report) -> Vec<Row> {
    let row = |metric: &str, a: f64, b: f64, unit: Unit| Row {
        metric: metric.to_string(),
        a: Some(a),
        b: Some(b),
        unit,
    };
    let (ta, tb) = (&a.throughput, &b.throughput);
    let mut rows = vec![
        row(
            "produce msgs/s",
            ta.produce_msgs_per_s,
            tb.produce_msgs_per_s,
            Unit::Count,
        ),
        row(
            "produce MB/s",
            ta.produce_mb_per_s,
            tb.produce_mb_per_s,
            Unit::Megabytes,
        ),
        row(
            "consume msgs/s",
            ta.consume_msgs_per_s,
            tb.consume_msgs_per_s,
            Unit::Count,
        ),
        row(
            "consume MB/s",
            ta.consume_mb_per_s,
            tb.consume_mb_per_s,
            Unit::Megabytes,
        ),
    ];
    latency_rows(
        &mut rows,
        "produce_ack",
        &a.latency_us.produce_ack,
        &b.latency_us.produce_ack,
    );
    latency_rows(
        &mut rows,
        "end_to_end",
        &a.latency_us.end_to_end,
        &b.latency_us.end_to_end,
    );
    // u64 -> f64 only loses precision above 2^53.
    let (fa, fb) = (&a.flow, &b.flow);
    rows.push(row(
        "flow throttle hints",
        fa.throttle_hints as f64,
        fb.throttle_hints as f64,
        Unit::Count,
    ));
    rows.push(row(
        "flow throttled ms",
        fa.throttled_ms_total as f64,
        fb.throttled_ms_total as f64,
        Unit::Count,
    ));
    hiccup_rows(&mut rows, a, b);
    let (va, vb) = (&a.verify, &b.verify);
    // failed and foreign are included because Verify::passed depends on them.
    let counts = [
        ("sent", va.sent, vb.sent),
        ("acked", va.acked, vb.acked),
        ("failed", va.failed, vb.failed),
        ("unsent", va.unsent, vb.unsent),
        ("consumed", va.consumed, vb.consumed),
        ("lost", va.lost, vb.lost),
        ("duplicated", va.duplicated, vb.duplicated),
        ("out_of_order", va.out_of_order, vb.out_of_order),
        ("foreign", va.foreign, vb.foreign),
    ];
    for (name, ca, cb) in counts {
        // u64 -> f64 only loses precision above 2^53 messages.
        rows.push(row(
            &format!("verify {name}"),
            ca as f64,
            cb as f64,
            Unit::Count,
        ));
    }
    rows
}

/// One figure of a CPU's hiccups, as compared.
type HiccupFigure = fn(&CpuHiccups) -> f64;

/// How busy each CPU was and the platform's stalls on it, for each CPU
/// either run measured: a run's tail differs from another's as much
/// through these as through the change.
fn hiccup_rows<'a>(rows: &mut Vec<Row>, a: &'a Report, b: &'a Report) {
    let mut cpus: Vec<usize> = a.hiccups.iter().chain(&b.hiccups).map(|h| h.cpu).collect();
    cpus.extend(a.cpu_busy.iter().chain(&b.cpu_busy).map(|c| c.cpu));
    cpus.sort_unstable();
    cpus.dedup();
    let of = |r: &'a Report, cpu: usize| r.hiccups.iter().find(|h| h.cpu == cpu);
    for cpu in cpus {
        let busy = |r: &Report| r.cpu_busy.iter().find(|c| c.cpu == cpu).map(|c| c.busy_pct);
        if busy(a).is_some() || busy(b).is_some() {
            rows.push(Row {
                metric: format!("cpu{cpu} busy %"),
                a: busy(a),
                b: busy(b),
                unit: Unit::Count,
            });
        }
        let (ha, hb) = (of(a, cpu), of(b, cpu));
        let figures: [(&str, HiccupFigure); 3] = [
            ("p99", |h| h.p99_us),
            ("max", |h| h.max_us),
            ("stalled", |h| h.stalled_ms * 1000.0),
        ];
        for (name, figure) in figures {
            rows.push(Row {
                metric: format!("hiccups cpu{cpu} {name}"),
                a: ha.map(figure),
                b: hb.map(figure),
                unit: Unit::Micros,
            });
        }
    }
}

fn latency_rows(rows: &mut Vec<Row>, kind: &str, a: &Percentiles, b: &Percentiles) {
    let pairs = [
        ("p50", a.p50, b.p50),
        ("p90", a.p90, b.p90),
        ("p99", a.p99, b.p99),
        ("p99.9", a.p999, b.p999),
        ("p99.99", a.p9999, b.p9999),
        ("max", a.max, b.max),
    ];
    let measured = |p: &Percentiles, v: f64| (p.count > 0).then_some(v);
    for (name, va, vb) in pairs {
        rows.push(Row {
            metric: format!("{kind} {name}"),
            a: measured(a, va),
            b: measured(b, vb),
            unit: Unit::Micros,
        });
    }
}

/// Columns `metric | A | B | B/A`: metric left-aligned, numbers right-aligned
/// so that digits line up.
fn table(rows: &[Row]) -> String {
    let header = ["metric", "A", "B", "B/A"].map(String::from);
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.metric.clone(),
                show(r.a, r.unit),
                show(r.b, r.unit),
                ratio(r.a, r.b),
            ]
        })
        .collect();
    let mut widths = [0_usize; 4];
    for line in std::iter::once(&header).chain(&cells) {
        for (w, cell) in widths.iter_mut().zip(line) {
            // chars, not bytes: "µ" is two bytes but one column.
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    push_line(&mut out, &header, &widths);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "{}", rule.join("-+-"));
    for line in &cells {
        push_line(&mut out, line, &widths);
    }
    out
}

fn push_line(out: &mut String, cells: &[String; 4], widths: &[usize; 4]) {
    let [m, a, b, r] = cells;
    let [wm, wa, wb, wr] = widths;
    let _ = writeln!(out, "{m:<wm$} | {a:>wa$} | {b:>wb$} | {r:>wr$}");
}

/// B/A with two decimals; "-" when A is zero or either side is missing (no
/// meaningful ratio).
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a != 0.0 && a.is_finite() && b.is_finite() => {
            format!("{:.2}", b / a)
        }
        _ => "-".to_string(),
    }
}

fn show(value: Option<f64>, unit: Unit) -> String {
    let Some(value) = value else {
        return "-".to_string();
    };
    if !value.is_finite() {
        return value.to_string();
    }
    match unit {
        Unit::Count => thousands(value, 0),
        Unit::Megabytes => thousands(value, 1),
        Unit::Micros => micros(value),
    }
}

/// "812 µs", "4.31 ms", "43.1 ms", "431 ms", "1.52 s": about three
/// significant digits, in the unit that keeps the number small.
fn micros(us: f64) -> String {
    if us < 10.0 {
        format!("{us:.1} µs")
    } else if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{} ms", three_digits(us / 1_000.0))
    } else {
        format!("{} s", three_digits(us / 1_000_000.0))
    }
}

fn three_digits(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        thousands(v, 0)
    }
}

/// `1523000.0` -> "1,523,000" (with `decimals` digits after the point).
fn thousands(value: f64, decimals: usize) -> String {
    let fixed = format!("{:.*}", decimals, value.abs());
    let (int, frac) = match fixed.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (fixed.as_str(), None),
    };
    let mut grouped = String::with_capacity(int.len() + int.len() / 3 + 4);
    if value < 0.0 && fixed.bytes().any(|c| c != b'0' && c != b'.') {
        grouped.push('-');
    }
    for (i, digit) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if let Some(frac) = frac {
        grouped.push('.');
        grouped.push_str(frac);
    }
    grouped
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::report::{Host, Latencies, Spectra, Throughput, Verify};

    fn report(produce_msgs_per_s: f64, ack: &str, p99_us: f64) -> Report {
        let latency = Percentiles {
            count: 1000,
            mean: 500.0,
            p50: 400.0,
            p90: 700.0,
            p99: p99_us,
            p999: 3_000.0,
            p9999: 5_000.0,
            max: 12_000.0,
        };
        Report {
            version: REPORT_VERSION,
            started_at: "2025-01-01T00:00:00Z".to_string(),
            config: serde_json::json!({ "ack": ack, "producers": 4, "payload_bytes": 256 }),
            host: Host {
                cpus: 2,
                kernel: "6.1".to_string(),
                spawned_server: true,
            },
            measured_s: 30.0,
            throughput: Throughput {
                produce_msgs_per_s,
                produce_mb_per_s: produce_msgs_per_s * 256.0 / 1e6,
                consume_msgs_per_s: produce_msgs_per_s,
                consume_mb_per_s: produce_msgs_per_s * 256.0 / 1e6,
                target_msgs_per_s: None,
            },
            latency_us: Latencies {
                produce_ack: latency.clone(),
                end_to_end: latency,
            },
            spectrum: Spectra::default(),
            verify: Verify {
                sent: 1_000,
                acked: 1_000,
                consumed: 1_000,
                ..Verify::default()
            },
            flow: Default::default(),
            producers: Vec::new(),
            timeline: Vec::new(),
            stream_beside: None,
            hiccups: Vec::new(),
            cpu_busy: Vec::new(),
        }
    }

    fn line_of<'a>(text: &'a str, metric: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(&format!("{metric} ")))
            .unwrap_or_else(|| panic!("no row {metric:?} in\n{text}"))
    }

    /// The B/A cell of a table line.
    fn ratio_cell(line: &str) -> &str {
        line.rsplit('|').next().unwrap_or_default().trim()
    }

    #[test]
    fn render_shows_ratio_and_changed_config_key() {
        let a = report(761_500.0, "durable", 812.0);
        let b = report(1_523_000.0, "written", 4_310.0);
        let text = render("a.json", &a, "b.json", &b);
        assert!(
            text.contains("config differs: ack: durable -> written"),
            "{text}"
        );
        assert!(!text.contains("producers"), "unchanged key listed:\n{text}");

        let produce = line_of(&text, "produce msgs/s");
        assert!(produce.contains("761,500"), "{produce}");
        assert!(produce.contains("1,523,000"), "{produce}");
        assert_eq!(ratio_cell(produce), "2.00", "{produce}");

        let p99 = line_of(&text, "produce_ack p99");
        assert!(p99.contains("812 µs") && p99.contains("4.31 ms"), "{p99}");
        assert_eq!(ratio_cell(p99), "5.31", "{p99}");
    }

    #[test]
    fn render_compares_hiccups_cpu_by_cpu() {
        let a = report(1_000.0, "written", 900.0);
        let mut b = a.clone();
        let cpu = |cpu, max_us, stalled_ms| crate::report::CpuHiccups {
            cpu,
            samples: 10_000,
            p99_us: 150.0,
            max_us,
            stalled_ms,
            ..Default::default()
        };
        b.hiccups = vec![cpu(0, 4_000.0, 32.0), cpu(1, 800.0, 0.0)];
        let mut a = a;
        a.hiccups = vec![cpu(0, 2_000.0, 8.0)];
        let text = render("a", &a, "b", &b);
        let max = line_of(&text, "hiccups cpu0 max");
        assert!(max.contains("2.00 ms") && max.contains("4.00 ms"), "{max}");
        assert_eq!(ratio_cell(max), "2.00", "{max}");
        assert_eq!(ratio_cell(line_of(&text, "hiccups cpu0 stalled")), "4.00");
        // A CPU only one run watched: a dash on the other side.
        let only_b = line_of(&text, "hiccups cpu1 max");
        assert!(
            only_b.contains("800 µs") && only_b.contains('-'),
            "{only_b}"
        );
    }

    #[test]
    fn render_compares_throttle_hints() {
        let a = report(1_000.0, "durable", 900.0);
        let mut b = a.clone();
        b.flow.throttle_hints = 40;
        b.flow.throttled_ms_total = 1_200;
        let text = render("a", &a, "b", &b);
        let hints = line_of(&text, "flow throttle hints");
        assert!(hints.contains("40"), "{hints}");
        assert_eq!(ratio_cell(hints), "-", "{hints}");
        assert!(
            line_of(&text, "flow throttled ms").contains("1,200"),
            "{text}"
        );
    }

    #[test]
    fn render_uses_dash_when_baseline_is_zero_and_aligns_columns() {
        let a = report(1_000.0, "durable", 900.0);
        let mut b = a.clone();
        b.verify.lost = 3;
        let text = render("a", &a, "b", &b);
        assert!(text.contains("config: identical"), "{text}");
        let lost = line_of(&text, "verify lost");
        assert_eq!(ratio_cell(lost), "-", "{lost}");
        // Every table line puts its separators in the same columns.
        let table: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("metric"))
            .collect();
        let bars = |l: &str| -> Vec<usize> {
            l.chars()
                .enumerate()
                .filter(|&(_, c)| c == '|' || c == '+')
                .map(|(i, _)| i)
                .collect()
        };
        let first = bars(table[0]);
        assert_eq!(first.len(), 3);
        for l in &table {
            assert_eq!(bars(l), first, "misaligned: {l:?}");
        }
    }

    #[test]
    fn unmeasured_latency_shows_dash_not_zero() {
        let a = report(1_000.0, "durable", 900.0);
        let mut b = a.clone();
        b.latency_us.end_to_end = Percentiles::default();
        let text = render("a", &a, "b", &b);
        let p50 = line_of(&text, "end_to_end p50");
        let cells: Vec<&str> = p50.split('|').map(str::trim).collect();
        assert_eq!(cells, ["end_to_end p50", "400 µs", "-", "-"], "{p50}");
    }

    #[test]
    fn config_changes_list_added_and_removed_keys() {
        let a = serde_json::json!({ "ack": "durable", "rate": 1000 });
        let b = serde_json::json!({ "ack": "durable", "batch": 64 });
        assert_eq!(
            config_changes(&a, &b),
            ["batch: (absent) -> 64", "rate: 1000 -> (absent)"]
        );
    }

    #[test]
    fn load_of_missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-report.json");
        let err = load(&path).unwrap_err();
        assert!(
            format!("{err:#}").contains("no-such-report.json"),
            "{err:#}"
        );
    }

    #[test]
    fn load_of_garbage_errors_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.json");
        std::fs::write(&path, "{ this is not json").unwrap();
        let err = load(&path).unwrap_err();
        assert!(format!("{err:#}").contains("garbage.json"), "{err:#}");
    }

    #[test]
    fn load_reads_back_what_serde_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        let original = report(1_000.0, "durable", 900.0);
        std::fs::write(&path, serde_json::to_string(&original).unwrap()).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(
            loaded.latency_us.produce_ack,
            original.latency_us.produce_ack
        );
        assert_eq!(loaded.config, original.config);
    }

    #[test]
    fn load_refuses_another_report_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("future.json");
        let mut future = report(1_000.0, "durable", 900.0);
        future.version = REPORT_VERSION + 1;
        std::fs::write(&path, serde_json::to_string(&future).unwrap()).unwrap();
        let err = load(&path).unwrap_err();
        assert!(format!("{err:#}").contains("version"), "{err:#}");
    }

    #[test]
    fn numbers_get_units_and_separators() {
        assert_eq!(thousands(1_523_000.0, 0), "1,523,000");
        assert_eq!(thousands(999.0, 0), "999");
        assert_eq!(thousands(1_234.56, 1), "1,234.6");
        assert_eq!(thousands(-1_000.0, 0), "-1,000");
        assert_eq!(micros(3.25), "3.2 µs");
        assert_eq!(micros(812.4), "812 µs");
        assert_eq!(micros(4_310.0), "4.31 ms");
        assert_eq!(micros(43_100.0), "43.1 ms");
        assert_eq!(micros(431_000.0), "431 ms");
        assert_eq!(micros(1_520_000.0), "1.52 s");
        assert_eq!(ratio(Some(0.0), Some(5.0)), "-");
        assert_eq!(ratio(Some(2.0), None), "-");
        assert_eq!(ratio(Some(2.0), Some(1.0)), "0.50");
    }
}
