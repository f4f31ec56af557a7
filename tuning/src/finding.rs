//! One result of a check, and the summary of many.

use serde::Serialize;

/// How much a finding matters. Ordered: `Ok < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fine, or not applicable, or unknown on this host.
    Ok,
    /// Costs throughput or latency; tidegate runs.
    Warning,
    /// tidegate cannot run well, or at all.
    Critical,
}

impl Severity {
    /// The exit code of `tidegate tune check`: 0, 1 or 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Severity::Ok => 0,
            Severity::Warning => 1,
            Severity::Critical => 2,
        }
    }

    /// The lowercase name used in the table and the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One checked item of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable machine name, e.g. `net.core.rmem_max` or
    /// `disk.scheduler.nvme0n1`.
    pub id: String,
    /// What was checked, for people.
    pub what: String,
    /// The value found on the host (`unknown (...)` when unreadable).
    pub current: String,
    /// The value tidegate wants.
    pub recommended: String,
    /// How much the difference matters.
    pub severity: Severity,
    /// Why it matters for tidegate.
    pub why: String,
}

impl Finding {
    /// A finding from its parts.
    pub(crate) fn new(
        id: impl Into<String>,
        what: impl Into<String>,
        current: impl Into<String>,
        recommended: impl Into<String>,
        severity: Severity,
        why: impl Into<String>,
    ) -> Self {
        Finding {
            id: id.into(),
            what: what.into(),
            current: current.into(),
            recommended: recommended.into(),
            severity,
            why: why.into(),
        }
    }
}

/// Counts of findings per severity and the worst one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Findings that are fine.
    pub ok: usize,
    /// Findings that cost performance.
    pub warning: usize,
    /// Findings that stop tidegate from running well.
    pub critical: usize,
    /// The worst severity (`ok` when there are no findings).
    pub worst: Severity,
}

impl Summary {
    /// Summarises `findings`.
    pub fn of(findings: &[Finding]) -> Self {
        let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
        Summary {
            ok: count(Severity::Ok),
            warning: count(Severity::Warning),
            critical: count(Severity::Critical),
            worst: findings
                .iter()
                .map(|f| f.severity)
                .max()
                .unwrap_or(Severity::Ok),
        }
    }
}
