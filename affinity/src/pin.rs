//! Thread pinning through `sched_setaffinity(2)` and reading the allowed
//! CPU set through `sched_getaffinity(2)`. The only syscalls of the crate.
//!
//! Masks are arrays of `unsigned long` sized for [`MAX_CPUS`] bits, rather
//! than libc's `cpu_set_t` (1024 bits), so hosts with more than 1024 CPUs
//! work; the kernel ignores bits beyond its own CPU count.

use libc::c_ulong;

use crate::cpulist::MAX_CPUS;
use crate::error::AffinityError;

/// Bits per mask word.
const WORD_BITS: usize = c_ulong::BITS as usize;

/// Words in a mask of [`MAX_CPUS`] bits.
const MASK_WORDS: usize = MAX_CPUS.div_ceil(WORD_BITS);

/// An affinity mask in the kernel's layout: bit `i % WORD_BITS` of word
/// `i / WORD_BITS` is CPU `i`.
type Mask = [c_ulong; MASK_WORDS];

/// Pins the calling thread to `cpu`: from now on the kernel runs it there
/// only. Each shard thread calls this first thing, before it allocates, so
/// its memory comes from the CPU's NUMA node under the default policy.
pub fn pin_current_thread(cpu: usize) -> Result<(), AffinityError> {
    if cpu >= MAX_CPUS {
        return Err(AffinityError::CpuOutOfRange { cpu, max: MAX_CPUS });
    }
    let mut mask: Mask = [0; MASK_WORDS];
    mask[cpu / WORD_BITS] |= 1 << (cpu % WORD_BITS);
    // SAFETY: pid 0 names the calling thread. The pointer is valid for
    // reads of `size_of_val(&mask)` bytes for the whole call and the kernel
    // only reads through it. A `cpu_set_t` is nothing but an array of
    // `unsigned long` bits, so a longer such array with its true length is
    // a valid argument (glibc and musl pass it straight to the syscall).
    let rc = unsafe {
        libc::sched_setaffinity(
            0,
            std::mem::size_of_val(&mask),
            mask.as_ptr().cast::<libc::cpu_set_t>(),
        )
    };
    if rc != 0 {
        return Err(AffinityError::Syscall {
            call: "sched_setaffinity",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The CPUs the calling thread may run on, ascending: the process's
/// affinity as narrowed by `taskset` or a container's cpuset.
///
/// Call it from the main thread before any thread is pinned; a pinned
/// thread gets its own single CPU back.
pub fn allowed_cpus() -> Result<Vec<usize>, AffinityError> {
    let mut mask: Mask = [0; MASK_WORDS];
    // SAFETY: pid 0 names the calling thread. The pointer is valid for
    // writes of `size_of_val(&mask)` bytes for the whole call and nothing
    // else aliases `mask`; the kernel writes at most that many bytes and
    // the wrapper zero-fills the rest of the given length. Any bit pattern
    // is a valid `c_ulong`.
    let rc = unsafe {
        libc::sched_getaffinity(
            0,
            std::mem::size_of_val(&mask),
            mask.as_mut_ptr().cast::<libc::cpu_set_t>(),
        )
    };
    if rc != 0 {
        return Err(AffinityError::Syscall {
            call: "sched_getaffinity",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(mask_to_cpus(&mask))
}

/// The CPU ids whose bits are set, ascending.
fn mask_to_cpus(mask: &Mask) -> Vec<usize> {
    (0..MAX_CPUS)
        .filter(|&cpu| mask[cpu / WORD_BITS] & (1 << (cpu % WORD_BITS)) != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn pinned_thread_reads_back_its_single_cpu() {
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        let cpu = *allowed.last().unwrap();
        // A spawned thread, so the test harness itself is never pinned.
        let after = std::thread::spawn(move || {
            pin_current_thread(cpu).unwrap();
            allowed_cpus().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(after, vec![cpu]);
        // The harness thread keeps its original mask.
        assert_eq!(allowed_cpus().unwrap(), allowed);
    }

    #[test]
    fn pinning_beyond_the_cap_is_a_typed_error() {
        assert!(matches!(
            pin_current_thread(MAX_CPUS),
            Err(AffinityError::CpuOutOfRange { cpu: MAX_CPUS, .. })
        ));
    }

    #[test]
    fn pinning_to_a_missing_cpu_reports_the_syscall() {
        let missing = MAX_CPUS - 1;
        if allowed_cpus().unwrap().contains(&missing) {
            return; // A 4096-CPU host: nothing to test here.
        }
        let result = std::thread::spawn(move || pin_current_thread(missing))
            .join()
            .unwrap();
        assert!(matches!(
            result,
            Err(AffinityError::Syscall {
                call: "sched_setaffinity",
                ..
            })
        ));
    }

    #[test]
    fn mask_bits_map_to_cpu_ids() {
        let mut mask: Mask = [0; MASK_WORDS];
        mask[0] = 0b101;
        mask[1] = 1;
        mask[MASK_WORDS - 1] = 1 << (WORD_BITS - 1);
        assert_eq!(mask_to_cpus(&mask), vec![0, 2, WORD_BITS, MAX_CPUS - 1]);
    }
}
