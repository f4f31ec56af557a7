//! `tidegate-loadgen`: the benchmark harness. Produces and consumes at
//! once against a tidegate server, measures throughput and latency
//! (HdrHistogram, open loop without coordinated omission, or closed loop),
//! and verifies every message: an acknowledged message that never arrives
//! fails the run.
//!
//! Exit codes: 0 the run passed; 1 an error stopped it; 2 bad arguments;
//! 3 verification failed (lost or failed messages).

mod acker;
mod clock;
mod compare;
mod config;
mod consumer;
mod cpustat;
mod flood;
mod hiccup;
mod payload;
mod plot;
mod producer;
mod report;
mod run;
mod schedule;
mod server;
mod stats;
mod subscriber;
mod throttle;
mod timeline;
mod verify;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::config::{Cli, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TIDEGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tidegate-loadgen: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::Flood {
        server,
        rate,
        duration,
        allow_remote,
    }) = cli.command
    {
        let flooded = flood::run(server, rate, duration, allow_remote)?;
        println!(
            "flooded {server}: {} Initials sent, {} datagrams answered",
            flooded.sent, flooded.answers
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(Command::Compare { a, b, plot }) = cli.command {
        let (ra, rb) = (compare::load(&a)?, compare::load(&b)?);
        let (na, nb) = (a.display().to_string(), b.display().to_string());
        print!("{}", compare::render(&na, &ra, &nb, &rb));
        if let Some(path) = plot {
            let mut series = Vec::new();
            for (kind, of_a, of_b) in [
                (
                    "produce-ack",
                    &ra.spectrum.produce_ack,
                    &rb.spectrum.produce_ack,
                ),
                (
                    "end-to-end",
                    &ra.spectrum.end_to_end,
                    &rb.spectrum.end_to_end,
                ),
            ] {
                for (name, points) in [(&na, of_a), (&nb, of_b)] {
                    series.push(plot::Series {
                        label: format!("{name} {kind}"),
                        points,
                    });
                }
            }
            plot::write_svg(&path, "latency by percentile", &series)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let args = cli.run;
    if let Err(e) = args.validate() {
        eprintln!("tidegate-loadgen: {e}");
        return Ok(ExitCode::from(2));
    }
    let report = run::run(&args)?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        plot::write_report_svg(path, &report)?;
    }
    if let Some(path) = &args.plot_timeline {
        plot::write_timeline_svg(path, &report)?;
    }
    if report.passed() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("tidegate-loadgen: verification failed");
        Ok(ExitCode::from(3))
    }
}
