//! Platform hiccups, after Gil Tene's jHiccup: a thread on each watched CPU
//! sleeps for [`INTERVAL`] over and over and records how much later than
//! asked it woke.
//!
//! Whatever keeps a CPU from running a thread that is ready shows here,
//! whatever the system under test does: another busy thread, a kernel
//! thread that does not yield, interrupts, the hypervisor taking the vCPU
//! away. A message in flight while its core stalls for 4 ms is at least
//! 4 ms late, so a run's latency tail is read beside its platform's: when
//! the CPUs on a message's path are stalled for more than 1% of the time,
//! no server gets its p99 below those stalls.
//!
//! The watchers ask for the lowest real-time priority (`SCHED_FIFO` 1): on
//! a CPU the run keeps busy, an ordinary thread would wait its turn behind
//! the run's own threads and measure how busy the CPU is, not what the
//! platform takes away. Where that is refused (no privilege), they run as
//! ordinary threads and the report says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::Clock;
use crate::report::{CpuHiccups, Percentiles};
use crate::stats::Latency;

/// How long each sleep asks for (jHiccup's default).
pub const INTERVAL: Duration = Duration::from_millis(1);
/// A wake at least this late counts as a stall.
pub const STALL_NS: u64 = 1_000_000;

/// The watching threads of a run, one per CPU.
pub struct Meter {
    watchers: Vec<(usize, JoinHandle<Watched>)>,
    stop: Arc<AtomicBool>,
}

/// What one watcher saw in the measured window.
#[derive(Debug, Default)]
struct Watched {
    late: Latency,
    stalls: u64,
    stalled_ns: u64,
    /// Pinning failed: the figures would not be this CPU's.
    unpinned: bool,
    /// Ran at real-time priority (see the module's docs).
    realtime: bool,
}

impl Meter {
    /// Starts a watcher on each of `cpus`; they record from the clock's
    /// warm mark to its end and then stop by themselves.
    pub fn start(cpus: &[usize], clock: Clock) -> std::io::Result<Meter> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut watchers = Vec::with_capacity(cpus.len());
        for &cpu in cpus {
            let stop = stop.clone();
            let thread = std::thread::Builder::new()
                .name(format!("hiccup-{cpu}"))
                .spawn(move || watch(cpu, clock, &stop))?;
            watchers.push((cpu, thread));
        }
        Ok(Meter { watchers, stop })
    }

    /// Stops the watchers (if the window has not ended yet) and returns
    /// each CPU's figures; a CPU whose watcher could not be pinned to it
    /// is left out.
    pub fn finish(self) -> Vec<CpuHiccups> {
        self.stop.store(true, Ordering::Relaxed);
        self.watchers
            .into_iter()
            .filter_map(|(cpu, thread)| {
                let watched = thread.join().ok()?;
                (!watched.unpinned).then(|| figures(cpu, &watched))
            })
            .collect()
    }
}

fn watch(cpu: usize, clock: Clock, stop: &AtomicBool) -> Watched {
    let mut watched = Watched::default();
    if let Err(e) = tidegate_affinity::pin_current_thread(cpu) {
        tracing::warn!("cannot watch CPU {cpu} for hiccups: {e}");
        watched.unpinned = true;
        return watched;
    }
    watched.realtime = match thread_priority::set_thread_priority_and_policy(
        thread_priority::thread_native_id(),
        thread_priority::ThreadPriority::Min,
        thread_priority::ThreadSchedulePolicy::Realtime(
            thread_priority::RealtimeThreadSchedulePolicy::Fifo,
        ),
    ) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("hiccup watcher of CPU {cpu} runs at ordinary priority: {e:?}");
            false
        }
    };
    // The default timer slack (50 us) would show in every sample.
    if let Err(e) = nix::sys::prctl::set_timerslack(1_000) {
        tracing::debug!("cannot lower the timer slack: {e}");
    }
    let interval_ns = u64::try_from(INTERVAL.as_nanos()).unwrap_or(u64::MAX);
    let (warm, end) = (clock.warm_ns(), clock.end_ns());
    while !stop.load(Ordering::Relaxed) {
        let asleep = clock.now_ns();
        if asleep >= end {
            break;
        }
        std::thread::sleep(INTERVAL);
        let late = clock
            .now_ns()
            .saturating_sub(asleep)
            .saturating_sub(interval_ns);
        if asleep >= warm {
            watched.record(late);
        }
    }
    watched
}

impl Watched {
    fn record(&mut self, late_ns: u64) {
        self.late.record(late_ns);
        if late_ns >= STALL_NS {
            self.stalls += 1;
            self.stalled_ns = self.stalled_ns.saturating_add(late_ns);
        }
    }
}

fn figures(cpu: usize, watched: &Watched) -> CpuHiccups {
    let late = Percentiles::of(&watched.late);
    CpuHiccups {
        cpu,
        samples: late.count,
        p50_us: late.p50,
        p99_us: late.p99,
        p999_us: late.p999,
        max_us: late.max,
        stalls: watched.stalls,
        stalled_ms: watched.stalled_ns as f64 / 1e6,
        realtime: watched.realtime,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_wakes_a_millisecond_late_or_more_count_as_stalls() {
        let mut w = Watched::default();
        for late in [50_000, 999_999, 1_000_000, 4_000_000] {
            w.record(late);
        }
        let f = figures(3, &w);
        assert_eq!(f.cpu, 3);
        assert_eq!(f.samples, 4);
        assert_eq!(f.stalls, 2);
        assert!((f.stalled_ms - 5.0).abs() < 1e-9, "{f:?}");
        assert!((f.max_us - 4000.0).abs() < 4.0, "{f:?}");
    }

    #[test]
    fn a_cpu_without_samples_reports_zeros() {
        let f = figures(0, &Watched::default());
        assert_eq!((f.samples, f.stalls), (0, 0));
        assert_eq!((f.p99_us, f.max_us, f.stalled_ms), (0.0, 0.0, 0.0));
    }

    #[test]
    fn watchers_record_the_window_and_stop_at_its_end() {
        // A 50 ms window right away: about 50 samples of a 1 ms sleep.
        let clock = Clock::start(Duration::ZERO, Duration::from_millis(50));
        let cpu = tidegate_affinity::allowed_cpus().unwrap()[0];
        let meter = Meter::start(&[cpu], clock).unwrap();
        clock.sleep_until(clock.end_ns());
        let figures = meter.finish();
        assert_eq!(figures.len(), 1);
        let f = &figures[0];
        assert_eq!(f.cpu, cpu);
        // At most one sample per millisecond of window; a loaded CI box may
        // give far fewer, but never none.
        assert!(f.samples >= 1 && f.samples <= 51, "{f:?}");
        assert!(f.p50_us <= f.p99_us && f.p99_us <= f.max_us, "{f:?}");
    }
}
