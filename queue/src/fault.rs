//! Faults injected under the log, so tests can put a failing disk beneath it.
//!
//! Every disk operation of the log goes through one narrow interface
//! (`disk.rs`); a [`FaultPlan`] put under an open log with
//! `Log::inject_faults` makes that interface count writes and syncs from
//! then on and fail the chosen ones, the same way every run.

/// Which error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// ENOSPC: the disk is full.
    NoSpace,
    /// EIO: the device failed.
    Io,
    /// EMFILE: the process is out of file descriptors (opens only).
    TooManyFiles,
}

impl FaultKind {
    pub(crate) fn errno(self) -> i32 {
        match self {
            FaultKind::NoSpace => libc::ENOSPC,
            FaultKind::Io => libc::EIO,
            FaultKind::TooManyFiles => libc::EMFILE,
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
    /// Fail the n-th open of a file (0-based).
    pub fail_open: Option<(u64, FaultKind)>,
}

/// The live counters of a plan.
#[derive(Debug)]
pub(crate) struct FaultState {
    plan: FaultPlan,
    writes: u64,
    syncs: u64,
    opens: u64,
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
            opens: 0,
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

    pub(crate) fn on_open(&mut self) -> Option<FaultKind> {
        let n = self.opens;
        self.opens += 1;
        match self.plan.fail_open {
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
