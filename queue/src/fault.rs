//! Faults injected under the log, so tests can put a failing disk beneath it.
//!
//! Every disk operation of the log goes through one narrow interface
//! (`disk.rs`); when a [`FaultPlan`] is configured, that interface counts
//! writes and syncs and fails the chosen ones. A plan built from a seed is
//! reproducible: the same seed fails the same operations the same way.

/// Which error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// ENOSPC: the disk is full.
    NoSpace,
    /// EIO: the device failed.
    Io,
}

impl FaultKind {
    pub(crate) fn errno(self) -> i32 {
        match self {
            FaultKind::NoSpace => libc::ENOSPC,
            FaultKind::Io => libc::EIO,
        }
    }
}

/// What to break, counted in operations since the log was opened (or since
/// the plan was injected with `Log::inject_faults`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Fail the n-th data write (0-based) and every later one while
    /// `sticky` is set.
    pub fail_write: Option<(u64, FaultKind)>,
    /// Fail the n-th fdatasync (0-based).
    pub fail_sync: Option<(u64, FaultKind)>,
    /// Tear the n-th data write: only its first `torn_blocks` blocks reach
    /// the disk, then it fails with EIO, as if power was lost mid-write.
    pub torn_write: Option<(u64, usize)>,
    /// Keep failing writes after the first injected write failure.
    pub sticky: bool,
}

impl FaultPlan {
    /// A reproducible plan drawn from `seed`: one of the three fault kinds,
    /// at an operation between 0 and `ops_max`.
    pub fn from_seed(seed: u64, ops_max: u64) -> Self {
        let mut rng = SplitMix64(seed);
        let at = rng.next() % ops_max.max(1);
        let kind = if rng.next() % 2 == 0 {
            FaultKind::NoSpace
        } else {
            FaultKind::Io
        };
        match rng.next() % 3 {
            0 => FaultPlan {
                fail_write: Some((at, kind)),
                ..FaultPlan::default()
            },
            1 => FaultPlan {
                fail_sync: Some((at, kind)),
                ..FaultPlan::default()
            },
            _ => FaultPlan {
                torn_write: Some((at, (rng.next() % 8) as usize)),
                ..FaultPlan::default()
            },
        }
    }
}

/// SplitMix64: a tiny, well-known generator, enough to pick fault points.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The live counters of a plan.
#[derive(Debug)]
pub(crate) struct FaultState {
    plan: FaultPlan,
    writes: u64,
    syncs: u64,
    write_failed: bool,
}

/// What the disk layer should do with one write.
pub(crate) enum WriteFault {
    None,
    Fail(FaultKind),
    Tear { blocks: usize },
}

impl FaultState {
    pub(crate) fn new(plan: FaultPlan) -> Self {
        FaultState {
            plan,
            writes: 0,
            syncs: 0,
            write_failed: false,
        }
    }

    pub(crate) fn on_write(&mut self) -> WriteFault {
        let n = self.writes;
        self.writes += 1;
        if self.plan.sticky && self.write_failed {
            if let Some((_, kind)) = self.plan.fail_write {
                return WriteFault::Fail(kind);
            }
        }
        if let Some((at, kind)) = self.plan.fail_write {
            if at == n {
                self.write_failed = true;
                return WriteFault::Fail(kind);
            }
        }
        if let Some((at, blocks)) = self.plan.torn_write {
            if at == n {
                return WriteFault::Tear { blocks };
            }
        }
        WriteFault::None
    }

    pub(crate) fn on_sync(&mut self) -> Option<FaultKind> {
        let n = self.syncs;
        self.syncs += 1;
        match self.plan.fail_sync {
            Some((at, kind)) if at == n => Some(kind),
            _ => None,
        }
    }

    /// Lets writes succeed again (the disk got space back).
    pub(crate) fn heal(&mut self) {
        self.plan.fail_write = None;
        self.plan.sticky = false;
        self.write_failed = false;
    }
}
