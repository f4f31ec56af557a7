//! Adaptive flow control (`docs/FLOW_CONTROL.md`): each shard sizes the
//! window of produce bytes it admits so that its produce latency stays
//! near `flow.latency_target`, and tells producers to back off while it is
//! over.

mod controller;

use controller::{Controller, Settings};

use std::cell::{Cell, RefCell};
use std::time::Duration;

use tidegate_net::QuicServer;

use crate::config::ServeConfig;

/// One shard's flow control: its controller, the hint it sends, and its
/// counters. Lives in the shard's router; touched only by its thread.
pub(crate) struct Flow {
    /// `None` with `flow.enabled = false`: the window stays at the memory
    /// bound and no hint is sent.
    controller: Option<RefCell<Controller>>,
    interval: Duration,
    throttle: Cell<Duration>,
    stalls_seen: Cell<u64>,
    stats: Cell<FlowStats>,
}

/// A shard's flow-control figures, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// True when the window adapts.
    pub enabled: bool,
    /// The admission window now, in bytes.
    pub window_bytes: u64,
    /// The latency target, in microseconds.
    pub target_us: u64,
    /// The p90 produce latency of the last interval that had one, in
    /// microseconds.
    pub latency_us: u64,
    /// The throttle hint sent now, in milliseconds.
    pub throttle_ms: u64,
    /// Produce responses that carried a non-zero hint.
    pub throttle_hints_total: u64,
    /// Intervals in which the window held a request back.
    pub limited_intervals_total: u64,
    /// Control intervals run.
    pub intervals_total: u64,
}

impl Flow {
    pub(crate) fn new(config: &ServeConfig) -> Flow {
        let f = &config.flow;
        let max_window = config.limits.shard_inflight_bytes_max.bytes_usize();
        let controller = f.enabled.then(|| {
            RefCell::new(Controller::new(Settings {
                target: f.latency_target.get(),
                min_window: f.min_window.bytes_usize(),
                max_window,
                interval: f.control_interval.get(),
            }))
        });
        Flow {
            controller,
            interval: f.control_interval.get(),
            throttle: Cell::new(Duration::ZERO),
            stalls_seen: Cell::new(0),
            stats: Cell::new(FlowStats {
                enabled: f.enabled,
                window_bytes: max_window as u64,
                target_us: duration_us(f.latency_target.get()),
                ..FlowStats::default()
            }),
        }
    }

    /// A produce request this shard received was answered after `latency`.
    pub(crate) fn record_produce(&self, latency: Duration) {
        if let Some(c) = &self.controller {
            c.borrow_mut().record(latency);
        }
    }

    /// The hint for a produce response now, in milliseconds (counted).
    pub(crate) fn throttle_ms(&self) -> u32 {
        let ms = u32::try_from(self.throttle.get().as_millis()).unwrap_or(u32::MAX);
        if ms > 0 {
            self.update(|s| s.throttle_hints_total += 1);
        }
        ms
    }

    /// Runs the controller every interval until `running` says stop,
    /// applying its window to the shard's endpoint.
    pub(crate) async fn run(&self, quic: &QuicServer, running: impl Fn() -> bool) {
        let Some(controller) = &self.controller else {
            return futures::future::pending().await;
        };
        while running() {
            glommio::timer::sleep(self.interval).await;
            let stats = quic.stats();
            let limited = stats.credit_stalls_total > self.stalls_seen.get();
            self.stalls_seen.set(stats.credit_stalls_total);
            let decision = controller.borrow_mut().tick(limited);
            quic.set_max_inflight_bytes(decision.window);
            self.throttle.set(decision.throttle);
            self.update(|s| {
                s.window_bytes = decision.window as u64;
                if let Some(l) = decision.latency {
                    s.latency_us = duration_us(l);
                }
                s.throttle_ms = u64::try_from(decision.throttle.as_millis()).unwrap_or(u64::MAX);
                s.limited_intervals_total += u64::from(limited);
                s.intervals_total += 1;
            });
        }
    }

    pub(crate) fn stats(&self) -> FlowStats {
        self.stats.get()
    }

    fn update(&self, f: impl FnOnce(&mut FlowStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }
}

/// The shard's write gate (`docs/FLOW_CONTROL.md`, "The disk's queue"):
/// it keeps the disk's queue near `flow.disk_queue_target` while flow
/// control is on, and only counts otherwise.
pub(crate) fn write_gate(config: &ServeConfig) -> std::rc::Rc<tidegate_queue::WriteGate> {
    let f = &config.flow;
    let target = Some(f.disk_queue_target.get()).filter(|t| f.enabled && !t.is_zero());
    tidegate_queue::WriteGate::new(tidegate_queue::GateConfig {
        target,
        interval: f.control_interval.get(),
        syncs: usize::try_from(f.disk_syncs_max).unwrap_or(usize::MAX),
        sync_barriers: f.disk_sync_barriers,
    })
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
