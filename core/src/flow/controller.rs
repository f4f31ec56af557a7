//! The control law of `docs/FLOW_CONTROL.md`, as a pure state machine:
//! produce latencies in, a window (bytes a shard admits) and a throttle
//! hint out, once per control interval. No clock and no I/O, so it is
//! tested against a simulated disk.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The controller's fixed settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The p90 produce latency the window is sized for.
    pub(crate) target: Duration,
    /// The window never goes below this.
    pub(crate) min_window: usize,
    /// Nor above this (the shard's memory bound).
    pub(crate) max_window: usize,
    /// How long one interval is (a stuck interval counts as this late).
    pub(crate) interval: Duration,
}

/// What one interval decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// The admission window from now on, in bytes.
    pub(crate) window: usize,
    /// The latency the decision was made on (p90 of the interval), if
    /// there was any to go by.
    pub(crate) latency: Option<Duration>,
    /// How long producers should wait before their next send.
    pub(crate) throttle: Duration,
}

/// Longest throttle hint (also what the SDK honours at most).
const THROTTLE_MAX: Duration = Duration::from_secs(1);
/// Latency histogram range: 1 µs to 60 s, 2 significant digits (a p90
/// within 1% is plenty for a controller).
const LATENCY_MAX_US: u64 = 60_000_000;

pub(crate) struct Controller {
    settings: Settings,
    /// Kept as a float so that small steps of a large window add up.
    window: f64,
    latencies: Histogram<u64>,
}

impl Controller {
    /// Starts at the smallest window and grows while the window limits
    /// and latency is under target (by up to sqrt(2) an interval): a shard
    /// that starts under overload builds no queue it must then drain,
    /// and a fast disk is found within a second or two.
    pub(crate) fn new(settings: Settings) -> Controller {
        let settings = Settings {
            min_window: settings.min_window.max(1),
            max_window: settings.max_window.max(settings.min_window.max(1)),
            ..settings
        };
        let latencies = Histogram::new_with_bounds(1, LATENCY_MAX_US, 2)
            .unwrap_or_else(|_| unreachable!("constant, valid histogram bounds"));
        Controller {
            window: settings.min_window as f64,
            settings,
            latencies,
        }
    }

    /// One produce request was answered after `latency` at this shard.
    pub(crate) fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_MAX_US);
        // Within the bounds by the clamp: saturating never drops a sample.
        self.latencies.saturating_record(us);
    }

    /// Ends an interval. `limited`: the window held a request back during
    /// it (a credit stall); with nothing answered, those requests were
    /// stuck behind it the whole interval.
    pub(crate) fn tick(&mut self, limited: bool) -> Decision {
        let s = self.settings;
        let latency = if self.latencies.is_empty() {
            // Nothing answered: if requests wait, the interval was all
            // queue; otherwise there was nothing to measure.
            limited.then_some(s.interval)
        } else {
            Some(Duration::from_micros(self.latencies.value_at_quantile(0.9)))
        };
        self.latencies.reset();
        let Some(latency) = latency else {
            return self.decision(None, Duration::ZERO);
        };
        let target = s.target.as_secs_f64();
        let measured = latency.as_secs_f64().max(1e-6);
        let ratio = (target / measured).clamp(0.5, 2.0);
        let over = latency > s.target;
        if over || limited {
            self.window *= ratio.sqrt();
        }
        self.window = self.window.clamp(s.min_window as f64, s.max_window as f64);
        let throttle = if over {
            (latency - s.target).min(THROTTLE_MAX)
        } else {
            Duration::ZERO
        };
        self.decision(Some(latency), throttle)
    }

    fn decision(&self, latency: Option<Duration>, throttle: Duration) -> Decision {
        Decision {
            window: self.window as usize,
            latency,
            throttle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;
    const MIN: usize = 128 << 10;

    fn settings() -> Settings {
        Settings {
            target: Duration::from_millis(5),
            min_window: MIN,
            max_window: 256 * MIB,
            interval: Duration::from_millis(100),
        }
    }

    /// A disk that writes `rate` bytes a second behind a fixed service
    /// time, offered more than it takes: each interval, the latency of a
    /// request is the base plus the time the window takes to drain
    /// (Little's law), and the window limits whenever the offer exceeds it.
    struct Disk {
        rate: f64,
        base: Duration,
    }

    impl Disk {
        fn latency(&self, window: usize) -> Duration {
            self.base + Duration::from_secs_f64(window as f64 / self.rate)
        }

        /// Runs `intervals` against `c` with producers always wanting more;
        /// the last decision.
        fn overload(&self, c: &mut Controller, intervals: usize) -> Decision {
            let mut decision = c.decision(None, Duration::ZERO);
            for _ in 0..intervals {
                let l = self.latency(decision.window);
                for _ in 0..50 {
                    c.record(l);
                }
                decision = c.tick(true);
            }
            decision
        }
    }

    fn near(value: Duration, target: Duration, tolerance: f64) -> bool {
        let (v, t) = (value.as_secs_f64(), target.as_secs_f64());
        (v - t).abs() <= t * tolerance
    }

    #[test]
    fn finds_the_capacity_and_holds_the_target() {
        let disk = Disk {
            rate: 100e6,
            base: Duration::from_micros(500),
        };
        let mut c = Controller::new(settings());
        let d = disk.overload(&mut c, 30);
        let latency = disk.latency(d.window);
        assert!(
            near(latency, Duration::from_millis(5), 0.1),
            "{latency:?} {d:?}"
        );
        // The window is the bandwidth-delay product: 100 MB/s x 4.5 ms.
        assert!((400_000..500_000).contains(&d.window), "{d:?}");
        // At the target, any hint is a small fraction of it.
        assert!(d.throttle < Duration::from_micros(500), "{d:?}");
    }

    #[test]
    fn follows_a_slower_and_a_ten_times_faster_disk_within_a_second() {
        let mut c = Controller::new(settings());
        let slow = Disk {
            rate: 50e6,
            base: Duration::from_micros(500),
        };
        let fast = Disk {
            rate: 500e6,
            base: Duration::from_micros(500),
        };
        slow.overload(&mut c, 30);
        // Ten intervals (1 s) after the disk got 10x faster, the latency is
        // back at the target and the window about 10x larger.
        let d = fast.overload(&mut c, 10);
        let latency = fast.latency(d.window);
        assert!(
            near(latency, Duration::from_millis(5), 0.15),
            "{latency:?} {d:?}"
        );
        // And 10x slower: within a second too (the window shrinks by up to
        // 1/sqrt(2) an interval).
        let mut c2 = Controller::new(settings());
        fast.overload(&mut c2, 30);
        let d = slow.overload(&mut c2, 10);
        assert!(near(slow.latency(d.window), Duration::from_millis(5), 0.15));
    }

    #[test]
    fn stays_within_its_bounds_and_throttles_when_the_disk_cannot_meet_the_target() {
        let mut c = Controller::new(settings());
        // An fdatasync alone takes 20 ms: no window meets 5 ms.
        let hopeless = Disk {
            rate: 100e6,
            base: Duration::from_millis(20),
        };
        let d = hopeless.overload(&mut c, 50);
        assert_eq!(d.window, MIN);
        assert!(d.throttle >= Duration::from_millis(15), "{d:?}");
        // A very fast disk: the window grows only to the memory bound.
        let mut c = Controller::new(settings());
        let instant = Disk {
            rate: 1e12,
            base: Duration::from_micros(100),
        };
        assert_eq!(instant.overload(&mut c, 50).window, 256 * MIB);
    }

    #[test]
    fn does_not_wind_up_while_producers_offer_less_than_the_window() {
        let disk = Disk {
            rate: 100e6,
            base: Duration::from_micros(500),
        };
        let mut c = Controller::new(settings());
        let settled = disk.overload(&mut c, 30);
        // Light load: fast answers, the window never limits.
        for _ in 0..100 {
            c.record(Duration::from_micros(600));
            assert_eq!(c.tick(false).window, settled.window);
        }
        // Idle: nothing measured, nothing changes.
        assert_eq!(c.tick(false).window, settled.window);
    }

    #[test]
    fn requests_stuck_behind_the_window_count_as_a_late_interval() {
        let mut c = Controller::new(settings());
        let d = c.tick(true);
        assert_eq!(d.latency, Some(Duration::from_millis(100)));
        assert!(d.window < 256 * MIB);
        assert!(d.throttle > Duration::ZERO);
    }
}
