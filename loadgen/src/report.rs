//! The result of a run: what `--json` writes, what `compare` and `--plot`
//! read, and the table printed at the end.
//!
//! Field names are a contract (scripts and `docs/BENCHMARKS.md` use them):
//! add fields, never rename them.

use serde::{Deserialize, Serialize};

use crate::stats::Latency;
use crate::timeline::Sample;

/// Bumped when a field changes meaning.
pub const REPORT_VERSION: u32 = 1;

/// One run, measured window only (warmup excluded).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// The full configuration of the run (the command line, resolved).
    pub config: serde_json::Value,
    pub host: Host,
    /// Length of the measured window, seconds.
    pub measured_s: f64,
    pub throughput: Throughput,
    pub latency_us: Latencies,
    /// Latency by percentile, for plots: produce-to-ack and end to end.
    pub spectrum: Spectra,
    pub verify: Verify,
    /// The server's flow-control hints, over the whole run.
    #[serde(default)]
    pub flow: Flow,
    /// Each producer's share, for fairness runs.
    #[serde(default)]
    pub producers: Vec<ProducerFigures>,
    /// The run second by second, from the start of sending (warmup
    /// included).
    #[serde(default)]
    pub timeline: Vec<Sample>,
    /// `--with-stream`: a stream consumer's figures from the same run,
    /// beside the subscription's (which are `throughput.consume_*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_beside: Option<Beside>,
    /// How late a sleeping thread woke on each watched CPU in the measured
    /// window (`--hiccups`): the platform's own stalls, to read the
    /// latency tail against.
    #[serde(default)]
    pub hiccups: Vec<CpuHiccups>,
    /// How busy each CPU of the host was over the measured window.
    #[serde(default)]
    pub cpu_busy: Vec<CpuBusy>,
}

/// One CPU's time over the measured window (`/proc/stat`), in percent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuBusy {
    pub cpu: usize,
    /// Running anything (user, system, interrupts), steal excluded.
    pub busy_pct: f64,
    /// Taken by the hypervisor for another guest.
    pub steal_pct: f64,
}

/// One CPU's hiccups: how much later than asked a thread sleeping 1 ms at
/// a time woke (see [`hiccup`](crate::hiccup)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuHiccups {
    pub cpu: usize,
    /// Sleeps measured.
    pub samples: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Wakes at least 1 ms late.
    pub stalls: u64,
    /// The lateness of those wakes, summed: time the CPU was not there.
    pub stalled_ms: f64,
    /// The watcher ran at real-time priority, ahead of the run's threads:
    /// its lateness is the platform's alone. When false it also measures
    /// how busy the run kept the CPU.
    #[serde(default)]
    pub realtime: bool,
}

/// A stream consumer that read the whole topic beside a subscription's
/// subscribers, in the same run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Beside {
    pub consume_msgs_per_s: f64,
    pub consume_mb_per_s: f64,
    pub end_to_end: Percentiles,
    /// Its own check of every message (it reads them all too).
    pub verify: Verify,
}

/// Throttle hints (`throttle_ms` of produce responses) received, warmup
/// included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// Produce responses with a non-zero hint.
    pub throttle_hints: u64,
    /// Sum of the hints as honoured (each at most 1 s): how long
    /// partitions were held back, summed over partitions.
    pub throttled_ms_total: u64,
}

/// One producer's figures, measured window only (the throttle counts:
/// whole run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProducerFigures {
    pub id: u32,
    /// The index of its QUIC connection (`--connections`).
    pub connection: u32,
    /// Messages acknowledged in the measured window.
    pub acked: u64,
    pub acked_msgs_per_s: f64,
    pub produce_ack_p50_us: f64,
    pub produce_ack_p99_us: f64,
    pub throttle_hints: u64,
    pub throttled_ms_total: u64,
}

/// Where the run happened: loadgen and server share it unless `--server`
/// points elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    pub cpus: usize,
    pub kernel: String,
    /// True when loadgen started the server itself (same host, same cores).
    pub spawned_server: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Throughput {
    /// Messages acknowledged per second (`--ack none`: answered).
    pub produce_msgs_per_s: f64,
    /// Payload megabytes (10^6) acknowledged per second.
    pub produce_mb_per_s: f64,
    pub consume_msgs_per_s: f64,
    pub consume_mb_per_s: f64,
    /// The open-loop target, when there was one.
    pub target_msgs_per_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latencies {
    /// From the intended send time (open loop) or the batch's creation
    /// (closed loop) to the produce answer.
    pub produce_ack: Percentiles,
    /// From the same start to the moment a consumer read the message.
    pub end_to_end: Percentiles,
}

/// Microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(latency: &Latency) -> Percentiles {
        let h = latency.histogram();
        let us = |ns: u64| ns as f64 / 1000.0;
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            p9999: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Spectra {
    pub produce_ack: Vec<SpectrumPoint>,
    pub end_to_end: Vec<SpectrumPoint>,
}

/// The latency at or below which `percentile` percent of messages fell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    /// 0..=100.
    pub percentile: f64,
    pub latency_us: f64,
}

/// The spectrum of a histogram: HdrHistogram's quantile iteration, five
/// steps per halving of the distance to 100%.
pub fn spectrum(latency: &Latency) -> Vec<SpectrumPoint> {
    latency
        .histogram()
        .iter_quantiles(5)
        .map(|v| SpectrumPoint {
            percentile: v.quantile_iterated_to() * 100.0,
            latency_us: v.value_iterated_to() as f64 / 1000.0,
        })
        .collect()
}

/// What the run checked, over every message, warmup included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verify {
    /// Messages handed to the server.
    pub sent: u64,
    /// Messages the server acknowledged.
    pub acked: u64,
    /// Messages whose produce failed for good (after retries).
    pub failed: u64,
    /// Open loop: messages that fell due before the end but were never sent
    /// (the run fell behind its schedule and was stopped).
    #[serde(default)]
    pub unsent: u64,
    /// Distinct messages consumed.
    pub consumed: u64,
    /// Acknowledged but never consumed.
    pub lost: u64,
    /// Consumed more than once.
    pub duplicated: u64,
    /// Consumed after a later message of the same producer and partition.
    pub out_of_order: u64,
    /// Consumed messages that were not loadgen's (bad payload).
    pub foreign: u64,
}

impl Verify {
    /// True when nothing acknowledged went missing and nothing failed.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.failed == 0 && self.foreign == 0
    }
}

impl Report {
    /// True when every consumer's check passed.
    pub fn passed(&self) -> bool {
        self.verify.passed()
            && self
                .stream_beside
                .as_ref()
                .is_none_or(|b| b.verify.passed())
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let t = &self.throughput;
        let mut out = String::new();
        let line = |out: &mut String, s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(
            &mut out,
            format!(
                "measured {:.1} s{}",
                self.measured_s,
                if self.host.spawned_server {
                    " (loadgen and server on the same host)"
                } else {
                    ""
                }
            ),
        );
        line(
            &mut out,
            format!(
                "produce  {:>12.0} msg/s {:>9.1} MB/s",
                t.produce_msgs_per_s, t.produce_mb_per_s
            ),
        );
        line(
            &mut out,
            format!(
                "consume  {:>12.0} msg/s {:>9.1} MB/s",
                t.consume_msgs_per_s, t.consume_mb_per_s
            ),
        );
        line(
            &mut out,
            format!(
                "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}   (ms)",
                "latency", "p50", "p90", "p99", "p99.9", "p99.99", "max"
            ),
        );
        for (name, p) in [
            ("produce-ack", &self.latency_us.produce_ack),
            ("end-to-end", &self.latency_us.end_to_end),
        ] {
            let ms = |us: f64| format!("{:.3}", us / 1000.0);
            line(
                &mut out,
                format!(
                    "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                    name,
                    ms(p.p50),
                    ms(p.p90),
                    ms(p.p99),
                    ms(p.p999),
                    ms(p.p9999),
                    ms(p.max)
                ),
            );
        }
        line(
            &mut out,
            format!(
                "flow     throttle hints {} throttled {} ms in total",
                self.flow.throttle_hints, self.flow.throttled_ms_total
            ),
        );
        if self.producers.len() > 1 {
            for p in &self.producers {
                line(
                    &mut out,
                    format!(
                        "producer {:<3} (connection {}) {:>12.0} msg/s  p99 ack {:.3} ms  throttle hints {}",
                        p.id,
                        p.connection,
                        p.acked_msgs_per_s,
                        p.produce_ack_p99_us / 1000.0,
                        p.throttle_hints
                    ),
                );
            }
        }
        if let Some(b) = &self.stream_beside {
            let v = &b.verify;
            line(
                &mut out,
                format!(
                    "stream beside {:>8.0} msg/s {:>9.1} MB/s  end-to-end p50 {:.3} p99 {:.3} ms  \
                     consumed {} lost {} duplicated {} out-of-order {} -> {}",
                    b.consume_msgs_per_s,
                    b.consume_mb_per_s,
                    b.end_to_end.p50 / 1000.0,
                    b.end_to_end.p99 / 1000.0,
                    v.consumed,
                    v.lost,
                    v.duplicated,
                    v.out_of_order,
                    if v.passed() { "ok" } else { "FAILED" }
                ),
            );
        }
        if !self.cpu_busy.is_empty() {
            let cpus: Vec<String> = self
                .cpu_busy
                .iter()
                .map(|c| {
                    format!(
                        "CPU {} {:.1}% busy (steal {:.1}%)",
                        c.cpu, c.busy_pct, c.steal_pct
                    )
                })
                .collect();
            line(&mut out, format!("cpus     {}", cpus.join(", ")));
        }
        for h in &self.hiccups {
            let share = if self.measured_s > 0.0 {
                h.stalled_ms / (self.measured_s * 10.0)
            } else {
                0.0
            };
            line(
                &mut out,
                format!(
                    "hiccups  CPU {:<3} late p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3} ms  \
                     {} stalls over 1 ms, {:.1} ms stalled ({:.2}% of the window){}",
                    h.cpu,
                    h.p50_us / 1000.0,
                    h.p99_us / 1000.0,
                    h.p999_us / 1000.0,
                    h.max_us / 1000.0,
                    h.stalls,
                    h.stalled_ms,
                    share,
                    if h.realtime {
                        ""
                    } else {
                        ", ordinary priority"
                    }
                ),
            );
        }
        let v = &self.verify;
        line(
            &mut out,
            format!(
                "verify   sent {} acked {} failed {} unsent {} consumed {} lost {} duplicated {} out-of-order {} -> {}",
                v.sent,
                v.acked,
                v.failed,
                v.unsent,
                v.consumed,
                v.lost,
                v.duplicated,
                v.out_of_order,
                if v.passed() { "ok" } else { "FAILED" }
            ),
        );
        out
    }
}
