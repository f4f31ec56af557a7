//! Linux CPU list syntax: `"0-3,8,10-11"`, as found in sysfs
//! (`/sys/devices/system/cpu/online`, `thread_siblings_list`, a node's
//! `cpulist`) and in tidegate's `cores` setting.
//!
//! The parser is strict: leading and trailing whitespace (sysfs files end
//! in a newline) is the only slack. Ids are capped at [`MAX_CPUS`] so a
//! hostile or corrupt input cannot make us allocate without bound, and
//! the kernel's stride form (`0-7:2/4`) is rejected because sysfs never
//! prints it.

use std::fmt::Write as _;

/// CPU ids must be below this bound (ids `0..MAX_CPUS`). It sizes the
/// affinity masks of [`crate::pin`] too.
pub const MAX_CPUS: usize = 4096;

/// The longest item text an error quotes; longer items are cut.
const ERROR_ITEM_CHARS_MAX: usize = 32;

/// Why a CPU list was rejected. Each variant names the bad part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpuListError {
    /// Two commas in a row, or a leading or trailing comma.
    #[error("empty item at position {index}")]
    EmptyItem {
        /// Zero-based index of the item among the comma-separated items.
        index: usize,
    },
    /// An item that is neither `N` nor `N-M` with decimal `N`, `M`.
    #[error("item {item:?} is not a CPU id or a range of CPU ids")]
    InvalidItem {
        /// The item, cut to 32 characters.
        item: String,
    },
    /// A range whose start is above its end, such as `5-3`.
    #[error("range {start}-{end} is reversed")]
    ReversedRange {
        /// The range start.
        start: usize,
        /// The range end.
        end: usize,
    },
    /// A CPU id at or above [`MAX_CPUS`] (or too large to represent).
    #[error("CPU id {item:?} is too large (ids must be below {max})")]
    TooLarge {
        /// The number, cut to 32 characters.
        item: String,
        /// [`MAX_CPUS`].
        max: usize,
    },
    /// A CPU named twice, alone or through overlapping ranges.
    #[error("CPU {cpu} is listed more than once")]
    Duplicate {
        /// The CPU.
        cpu: usize,
    },
}

/// Parses a CPU list into its CPU ids, ascending and unique.
///
/// An empty (or all-whitespace) input is the empty set: sysfs prints it for
/// a memory-only NUMA node. Callers for which empty is wrong check for it.
///
/// ```
/// use tidegate_affinity::parse_cpu_list;
/// assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Ok(vec![0, 1, 2, 3, 8, 10, 11]));
/// assert!(parse_cpu_list("3-1").is_err());
/// ```
pub fn parse_cpu_list(input: &str) -> Result<Vec<usize>, CpuListError> {
    let input = input.trim_ascii();
    if input.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = vec![false; MAX_CPUS];
    for (index, item) in input.split(',').enumerate() {
        let (start, end) = parse_item(item, index)?;
        // parse_item bounds both ends below MAX_CPUS.
        for (cpu, slot) in seen.iter_mut().enumerate().take(end + 1).skip(start) {
            if std::mem::replace(slot, true) {
                return Err(CpuListError::Duplicate { cpu });
            }
        }
    }
    Ok(seen
        .iter()
        .enumerate()
        .filter_map(|(cpu, &on)| on.then_some(cpu))
        .collect())
}

/// Parses one `N` or `N-M` item into an inclusive range.
fn parse_item(item: &str, index: usize) -> Result<(usize, usize), CpuListError> {
    if item.is_empty() {
        return Err(CpuListError::EmptyItem { index });
    }
    let (start, end) = match item.split_once('-') {
        Some((start, end)) => (parse_id(start, item)?, parse_id(end, item)?),
        None => {
            let id = parse_id(item, item)?;
            (id, id)
        }
    };
    if start > end {
        return Err(CpuListError::ReversedRange { start, end });
    }
    Ok((start, end))
}

/// Parses one decimal CPU id below [`MAX_CPUS`]; `item` is quoted in errors.
fn parse_id(digits: &str, item: &str) -> Result<usize, CpuListError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CpuListError::InvalidItem { item: cut(item) });
    }
    match digits.parse::<usize>() {
        Ok(id) if id < MAX_CPUS => Ok(id),
        _ => Err(CpuListError::TooLarge {
            item: cut(digits),
            max: MAX_CPUS,
        }),
    }
}

/// Cuts `text` to [`ERROR_ITEM_CHARS_MAX`] characters for an error message.
fn cut(text: &str) -> String {
    text.chars().take(ERROR_ITEM_CHARS_MAX).collect()
}

/// Formats CPU ids in the kernel's CPU list syntax: ascending, runs of two
/// or more as `N-M`. Duplicates are ignored; the empty set is `""`.
///
/// ```
/// use tidegate_affinity::format_cpu_list;
/// assert_eq!(format_cpu_list(&[11, 0, 1, 2, 3, 8, 10]), "0-3,8,10-11");
/// ```
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        // Writing to a String cannot fail.
        let _ = if start == end {
            write!(out, "{start}")
        } else {
            write!(out, "{start}-{end}")
        };
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_sysfs_forms() {
        assert_eq!(parse_cpu_list("0\n"), Ok(vec![0]));
        assert_eq!(parse_cpu_list("0-1\n"), Ok(vec![0, 1]));
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Ok(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("4095"), Ok(vec![4095]));
    }

    #[test]
    fn empty_input_is_the_empty_set() {
        assert_eq!(parse_cpu_list(""), Ok(vec![]));
        assert_eq!(parse_cpu_list("\n"), Ok(vec![]));
    }

    #[test]
    fn out_of_order_items_come_back_sorted() {
        assert_eq!(parse_cpu_list("8,0-1"), Ok(vec![0, 1, 8]));
    }

    #[test]
    fn truncated_input_is_rejected() {
        assert_eq!(
            parse_cpu_list("0-"),
            Err(CpuListError::InvalidItem { item: "0-".into() })
        );
        assert_eq!(
            parse_cpu_list("0,"),
            Err(CpuListError::EmptyItem { index: 1 })
        );
        assert_eq!(
            parse_cpu_list(",1"),
            Err(CpuListError::EmptyItem { index: 0 })
        );
        assert_eq!(
            parse_cpu_list("1,,2"),
            Err(CpuListError::EmptyItem { index: 1 })
        );
    }

    #[test]
    fn garbage_is_rejected_naming_the_item() {
        for bad in [
            "a", "0-a", "+1", "-1", "1 ,2", "0-7:2/4", "0x1", "1-2-3", "١",
        ] {
            assert!(
                matches!(parse_cpu_list(bad), Err(CpuListError::InvalidItem { .. })),
                "{bad:?} -> {:?}",
                parse_cpu_list(bad)
            );
        }
        assert_eq!(
            parse_cpu_list("0-3,x"),
            Err(CpuListError::InvalidItem { item: "x".into() })
        );
    }

    #[test]
    fn reversed_range_is_rejected() {
        assert_eq!(
            parse_cpu_list("5-3"),
            Err(CpuListError::ReversedRange { start: 5, end: 3 })
        );
    }

    #[test]
    fn ids_at_or_above_the_cap_are_rejected() {
        assert_eq!(
            parse_cpu_list("4096"),
            Err(CpuListError::TooLarge {
                item: "4096".into(),
                max: MAX_CPUS
            })
        );
        assert!(matches!(
            parse_cpu_list("0-99999999999999999999999999"),
            Err(CpuListError::TooLarge { .. })
        ));
    }

    #[test]
    fn oversized_input_errors_are_short() {
        let huge = "9".repeat(1 << 20);
        let err = parse_cpu_list(&huge).unwrap_err();
        assert!(err.to_string().len() < 120, "{err}");
        let garbage = "z".repeat(1 << 20);
        let err = parse_cpu_list(&garbage).unwrap_err();
        assert!(err.to_string().len() < 120, "{err}");
    }

    #[test]
    fn duplicates_and_overlaps_are_rejected() {
        assert_eq!(
            parse_cpu_list("1,1"),
            Err(CpuListError::Duplicate { cpu: 1 })
        );
        assert_eq!(
            parse_cpu_list("0-3,2-5"),
            Err(CpuListError::Duplicate { cpu: 2 })
        );
    }

    #[test]
    fn formats_runs_like_the_kernel() {
        assert_eq!(format_cpu_list(&[]), "");
        assert_eq!(format_cpu_list(&[0]), "0");
        assert_eq!(format_cpu_list(&[0, 1]), "0-1");
        assert_eq!(format_cpu_list(&[0, 2, 4, 5, 6, 9]), "0,2,4-6,9");
        assert_eq!(format_cpu_list(&[3, 3, 1]), "1,3");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(
            cpus in proptest::collection::btree_set(0..MAX_CPUS, 0..200)
        ) {
            let cpus: Vec<usize> = cpus.into_iter().collect();
            let text = format_cpu_list(&cpus);
            prop_assert_eq!(parse_cpu_list(&text), Ok(cpus));
        }

        #[test]
        fn parse_never_panics(input in "[0-9,\\- a-z]{0,40}") {
            let _ = parse_cpu_list(&input);
        }

        #[test]
        fn parse_then_format_is_canonical(
            cpus in proptest::collection::btree_set(0..64usize, 1..20)
        ) {
            // Any listing order of singletons parses to the same set and
            // formats canonically.
            let mut items: Vec<String> = cpus.iter().rev().map(|c| c.to_string()).collect();
            let half = items.len() / 2;
            items.rotate_left(half);
            let parsed = parse_cpu_list(&items.join(",")).unwrap();
            let expected: Vec<usize> = cpus.into_iter().collect();
            prop_assert_eq!(format_cpu_list(&parsed), format_cpu_list(&expected));
            prop_assert_eq!(parsed, expected);
        }
    }
}
