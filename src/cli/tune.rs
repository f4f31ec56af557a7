//! `tidegate tune check|apply|disk`: checks the host against what tidegate
//! needs, applies the safe fixes and probes the data directory's disk
//! (`tidegate-tuning` does the work; this is the command line, the server
//! configuration mapping and the output).
//!
//! Exit codes: `check` gives 0 / 1 / 2 for ok / warnings / critical;
//! `apply` gives 0 when done (or nothing to do), 2 when it refuses to run
//! without root, 1 on any other error; `disk` gives 0 or 1.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use tidegate_core::config::{Overrides, ServeConfig, Size};
use tidegate_tuning::{
    Change, Expectations, Finding, Host, ProbeConfig, ProbeReport, Probes, Summary, TuneError,
};

#[derive(Args, Debug)]
pub(crate) struct TuneArgs {
    #[command(subcommand)]
    command: TuneCommand,
    /// The server's TOML configuration: its `cores` and `data_dir` say
    /// which CPUs and which disk to check (default: all CPUs, every NVMe).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Root of procfs (tests point it at a fixture tree).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/proc",
        global = true,
        hide = true
    )]
    proc_root: PathBuf,
    /// Root of sysfs (tests point it at a fixture tree).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/sys",
        global = true,
        hide = true
    )]
    sys_root: PathBuf,
}

#[derive(Subcommand, Debug)]
enum TuneCommand {
    /// Check the host: one row per finding with its current and
    /// recommended value, severity and why it matters. Exit code 0 / 1 / 2
    /// for ok / warnings / critical.
    ///
    /// Examples:
    ///   tidegate tune check
    ///   tidegate tune check --config /etc/tidegate/tidegate.toml --json
    #[command(verbatim_doc_comment)]
    Check {
        /// Print `{"findings": [...], "summary": {...}}` instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Apply the safe fixes (UDP buffer sysctls, vm.swappiness, the block
    /// I/O scheduler) and print each as `key: old -> new`. Needs root;
    /// running it twice changes nothing the second time.
    ///
    /// Examples:
    ///   tidegate tune apply --dry-run
    ///   sudo tidegate tune apply --config /etc/tidegate/tidegate.toml
    #[command(verbatim_doc_comment)]
    Apply {
        /// Print the changes without writing them (no root needed).
        #[arg(long)]
        dry_run: bool,
    },
    /// Probe the disk under the data directory: O_DIRECT sequential write
    /// bandwidth by write size and writes in flight, and fdatasync latency.
    /// Writes the best write size and concurrency to PATH/disk.toml, which
    /// `tidegate serve --data-dir PATH` uses unless the config file, the
    /// environment or a flag sets them. Needs free space of --size.
    ///
    /// Examples:
    ///   tidegate tune disk /var/lib/tidegate
    ///   tidegate tune disk ./tidegate-data --size 1GiB --json
    #[command(verbatim_doc_comment)]
    Disk {
        /// The data directory (created if missing).
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Bytes written per (write size, depth) cell; larger is steadier,
        /// 25 cells are written.
        #[arg(long, value_name = "SIZE", default_value = "256MiB")]
        size: Size,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(args: TuneArgs) -> anyhow::Result<ExitCode> {
    // The probe needs neither the host's files nor the server config.
    if let TuneCommand::Disk { path, size, json } = &args.command {
        return disk(path, *size, *json);
    }
    let host = Host::new(&args.proc_root, &args.sys_root);
    let expect = expectations(&host, args.config.as_deref())?;
    match args.command {
        TuneCommand::Check { json } => check(&host, &expect, json),
        TuneCommand::Apply { dry_run } => apply(&host, &expect, dry_run),
        TuneCommand::Disk { path, size, json } => disk(&path, size, json),
    }
}

/// What the server configuration asks of the host: shard cores from
/// `cores`, the disk from `data_dir`. The UDP buffer is the library's
/// documented default until the QUIC config has a key for it.
fn expectations(host: &Host, config: Option<&Path>) -> anyhow::Result<Expectations> {
    let config = ServeConfig::load(config, std::env::vars(), &Overrides::default())?;
    let shard_cores = tidegate_tuning::shard_cores_from_spec(&config.cores.to_string())?;
    // A data dir on overlayfs or tmpfs has no block device: check every
    // NVMe namespace instead.
    let data_devices = tidegate_tuning::block_device_of(host, &config.data_dir)
        .ok()
        .flatten()
        .into_iter()
        .collect();
    // The sysctls must allow the larger of the two buffers the QUIC
    // listener asks for.
    let q = &config.quic;
    let udp_buffer_bytes = q
        .socket_receive_buffer
        .bytes()
        .max(q.socket_send_buffer.bytes());
    Ok(Expectations {
        shard_cores,
        data_devices,
        udp_buffer_bytes,
        ..Expectations::default()
    })
}

fn check(host: &Host, expect: &Expectations, json: bool) -> anyhow::Result<ExitCode> {
    let findings = tidegate_tuning::check(host, expect, &Probes::run());
    let summary = Summary::of(&findings);
    let mut out = std::io::stdout().lock();
    if json {
        let doc = json!({ "findings": findings, "summary": summary });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        print_table(&mut out, &findings)?;
        writeln!(
            out,
            "\n{} ok, {} warning(s), {} critical",
            summary.ok, summary.warning, summary.critical
        )?;
    }
    Ok(ExitCode::from(summary.worst.exit_code()))
}

/// Columns padded to their widest cell; `why` last since it is long.
fn print_table(out: &mut impl std::io::Write, findings: &[Finding]) -> std::io::Result<()> {
    let header = ["SEVERITY", "WHAT", "CURRENT", "RECOMMENDED"];
    let rows: Vec<[&str; 4]> = findings
        .iter()
        .map(|f| [f.severity.as_str(), &f.what, &f.current, &f.recommended])
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |out: &mut dyn std::io::Write, cells: [&str; 4], why: &str| {
        for (cell, width) in cells.iter().zip(widths) {
            write!(out, "{cell:<width$}  ")?;
        }
        writeln!(out, "{why}")
    };
    line(out, header, "WHY")?;
    for (row, finding) in rows.into_iter().zip(findings) {
        line(out, row, &finding.why)?;
    }
    Ok(())
}

fn apply(host: &Host, expect: &Expectations, dry_run: bool) -> anyhow::Result<ExitCode> {
    if !dry_run {
        if let Err(e @ TuneError::NotRoot { .. }) =
            tidegate_tuning::require_root(tidegate_tuning::effective_uid())
        {
            eprintln!("tidegate: {e}");
            return Ok(ExitCode::from(2));
        }
    }
    let changes = tidegate_tuning::plan(host, expect).context("planning the changes")?;
    let mut out = std::io::stdout().lock();
    if changes.is_empty() {
        writeln!(
            out,
            "nothing to change: the safe settings are already applied"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if dry_run {
        writeln!(out, "dry run: would change")?;
    }
    for Change { key, old, new, .. } in &changes {
        writeln!(out, "{key}: {old} -> {new}")?;
    }
    if !dry_run {
        tidegate_tuning::apply(&changes).context("applying the changes")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn disk(dir: &Path, size: Size, json: bool) -> anyhow::Result<ExitCode> {
    // The probe writes its file inside the data directory, so it must exist
    // before the probe, not only before disk.toml is written.
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = ProbeConfig::new(dir, size.bytes());
    if !json {
        eprintln!(
            "probing {}: {} per cell, {} cells, then {} fdatasyncs",
            dir.display(),
            size,
            config.block_sizes.len() * config.depths.len(),
            config.sync_samples
        );
    }
    let report = tidegate_tuning::probe(&config).context("probing the disk")?;
    let text = tidegate_tuning::disk_toml(&report, &tidegate_tuning::now_rfc3339());
    let written = tidegate_tuning::write_disk_toml(dir, &text)?;
    let mut out = std::io::stdout().lock();
    if json {
        let doc = json!({ "report": report, "written": written });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        print_probe(&mut out, &report, &written)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_probe(
    out: &mut impl std::io::Write,
    report: &ProbeReport,
    written: &Path,
) -> std::io::Result<()> {
    let s = &report.fdatasync;
    let best = &report.best;
    let chunk = tidegate_tuning::format_size(best.block_bytes as u64);
    writeln!(
        out,
        "O_DIRECT sequential writes, MB/s (write size x writes in flight):"
    )?;
    write!(out, "{}", tidegate_tuning::bandwidth_table(report, "  "))?;
    writeln!(
        out,
        "\nfdatasync after a {} write ({} samples): p50 {} us, p90 {} us, p99 {} us, max {} us",
        tidegate_tuning::format_size(tidegate_tuning::SYNC_WRITE_BYTES as u64),
        s.samples,
        s.p50_us,
        s.p90_us,
        s.p99_us,
        s.max_us
    )?;
    writeln!(
        out,
        "\nchosen: write_chunk_bytes = {chunk}, write_concurrency = {} ({:.0} MB/s)",
        best.depth, best.mb_per_s
    )?;
    writeln!(out, "wrote {}", written.display())
}
