//! How busy each CPU was over the measured window, from `/proc/stat`.
//!
//! On a box that loadgen shares with the server, a latency tail is often
//! queueing for a CPU the run keeps 80% busy; the report says how busy, so
//! that a figure is not read as the server's alone. Steal (time the
//! hypervisor gave the vCPU to someone else) is shown apart.

use crate::report::CpuBusy;

/// One CPU's counters (USER_HZ ticks since boot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticks {
    pub cpu: usize,
    /// Every state summed, guest time excluded (already in user and nice).
    pub total: u64,
    /// idle + iowait: nothing to run.
    pub idle: u64,
    pub steal: u64,
}

/// Reads every CPU's counters now; an unreadable or odd `/proc/stat`
/// gives none (the report then has no CPU figures, the run goes on).
pub fn read() -> Vec<Ticks> {
    std::fs::read_to_string("/proc/stat")
        .map(|text| parse(&text))
        .unwrap_or_default()
}

/// The `cpuN` lines of a `/proc/stat` (the `cpu` total line and lines it
/// cannot read are skipped).
pub fn parse(text: &str) -> Vec<Ticks> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Ticks> {
    let mut fields = line.split_ascii_whitespace();
    let cpu = fields.next()?.strip_prefix("cpu")?.parse().ok()?;
    let values: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    if values.len() < 8 {
        return None;
    }
    let total = values[..8].iter().fold(0u64, |a, v| a.saturating_add(*v));
    Some(Ticks {
        cpu,
        total,
        idle: values[3].saturating_add(values[4]),
        steal: values[7],
    })
}

/// Each CPU's share of the time between two readings, in percent; CPUs in
/// only one reading, or without ticks between them, are left out.
pub fn busy(before: &[Ticks], after: &[Ticks]) -> Vec<CpuBusy> {
    after
        .iter()
        .filter_map(|a| {
            let b = before.iter().find(|b| b.cpu == a.cpu)?;
            let total = a.total.checked_sub(b.total).filter(|t| *t > 0)? as f64;
            let idle = a.idle.saturating_sub(b.idle) as f64;
            let steal = a.steal.saturating_sub(b.steal) as f64;
            Some(CpuBusy {
                cpu: a.cpu,
                busy_pct: 100.0 * (total - idle - steal).max(0.0) / total,
                steal_pct: 100.0 * steal / total,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "\
cpu  2814830 97989 730602 6008105 1035577 0 74846 1747 0 0
cpu0 1387309 47111 386794 2706792 825121 0 25662 862 0 0
cpu1 1427521 50877 343807 3301312 210456 0 49183 885 0 0
intr 123 4 5
ctxt 99
";

    #[test]
    fn reads_each_cpu_line_and_skips_the_total_and_the_rest() {
        let t = parse(STAT);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].cpu, 0);
        assert_eq!(t[0].idle, 2706792 + 825121);
        assert_eq!(t[0].steal, 862);
        assert_eq!(
            t[1].total,
            1427521 + 50877 + 343807 + 3301312 + 210456 + 49183 + 885
        );
    }

    #[test]
    fn garbage_truncated_and_empty_lines_give_nothing() {
        for text in [
            "",
            "cpu0",
            "cpu0 1 2 3",
            "cpu0 1 2 3 4 5 6 x 8",
            "cpuX 1 2 3 4 5 6 7 8",
            "cpu0 1 2 3 4 5 6 7 99999999999999999999999",
            "\u{0}\u{ff}garbage",
        ] {
            assert!(parse(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn busy_is_the_share_neither_idle_nor_stolen() {
        let before = [Ticks {
            cpu: 1,
            total: 1_000,
            idle: 500,
            steal: 0,
        }];
        // 100 ticks: 20 idle, 10 stolen, 70 running.
        let after = [
            Ticks {
                cpu: 1,
                total: 1_100,
                idle: 520,
                steal: 10,
            },
            Ticks {
                cpu: 2,
                total: 50,
                idle: 0,
                steal: 0,
            },
        ];
        let b = busy(&before, &after);
        assert_eq!(b.len(), 1, "a CPU read only once is left out");
        assert_eq!(b[0].cpu, 1);
        assert!((b[0].busy_pct - 70.0).abs() < 1e-9, "{b:?}");
        assert!((b[0].steal_pct - 10.0).abs() < 1e-9, "{b:?}");
        // No ticks between the readings, or counters gone backwards.
        assert!(busy(&after, &after).is_empty());
        assert!(busy(&after, &before).is_empty());
    }

    #[test]
    fn this_machine_has_cpu_lines() {
        assert!(!read().is_empty());
    }
}
