//! The run's time line: one monotonic epoch that producers stamp messages
//! with and consumers read them against (same process, same clock), the end
//! of the warmup and the end of the run.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
    warm_ns: u64,
    end_ns: u64,
}

impl Clock {
    /// Starts now: measuring begins after `warmup`, sending stops
    /// `duration` later.
    pub fn start(warmup: Duration, duration: Duration) -> Clock {
        let warm_ns = nanos(warmup);
        Clock {
            epoch: Instant::now(),
            warm_ns,
            end_ns: warm_ns.saturating_add(nanos(duration)),
        }
    }

    /// Nanoseconds since the epoch.
    pub fn now_ns(&self) -> u64 {
        nanos(self.epoch.elapsed())
    }

    /// When the measured window starts.
    pub fn warm_ns(&self) -> u64 {
        self.warm_ns
    }

    /// When sending stops.
    pub fn end_ns(&self) -> u64 {
        self.end_ns
    }

    /// Blocks the thread until `at_ns` (returns at once if it has passed).
    pub fn sleep_until(&self, at_ns: u64) {
        let now = self.now_ns();
        if at_ns > now {
            std::thread::sleep(Duration::from_nanos(at_ns - now));
        }
    }

    /// The instant `at_ns` stands for.
    pub fn instant(&self, at_ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(at_ns)
    }

    /// Wall-clock milliseconds since the Unix epoch (record timestamps).
    pub fn wall_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
