//! `tidegate tune check|apply`: checks the host against what tidegate
//! needs and applies the safe fixes (`tidegate-tuning` does the work; this
//! is the command line, the server configuration mapping and the output).
//!
//! Exit codes: `check` gives 0 / 1 / 2 for ok / warnings / critical;
//! `apply` gives 0 when done (or nothing to do), 2 when it refuses to run
//! without root, 1 on any other error.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use tidegate_core::config::{Overrides, ServeConfig};
use tidegate_tuning::{Change, Expectations, Finding, Host, Probes, Summary, TuneError};

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
}

pub(crate) fn run(args: TuneArgs) -> anyhow::Result<ExitCode> {
    let host = Host::new(&args.proc_root, &args.sys_root);
    let expect = expectations(&host, args.config.as_deref())?;
    match args.command {
        TuneCommand::Check { json } => check(&host, &expect, json),
        TuneCommand::Apply { dry_run } => apply(&host, &expect, dry_run),
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
