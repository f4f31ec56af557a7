//! CPU topology discovery, shard core choice, thread pinning and the
//! partition-to-shard map for tidegate's thread-per-core runtime.
//!
//! The crate is sans-IO where it can be: [`cpulist`], [`cores`],
//! [`placement`] is pure functions over parsed data. (Key → partition
//! hashing lives in `tidegate_proto::partitioner`: the SDK shares it.)
//! [`topology`] reads sysfs under an injectable root so tests run against
//! fixture trees, and [`pin`] is the only module that makes syscalls.
//!
//! A typical server start-up:
//!
//! 1. [`Topology::detect`] and [`pin::allowed_cpus`] (before pinning
//!    anything, from the main thread);
//! 2. [`CoreSpec`] parsed from the `cores` config value;
//! 3. [`choose_shard_cores`] gives one CPU per shard plus warnings to log;
//! 4. each shard thread calls [`pin_current_thread`] with its CPU;
//! 5. [`shard_for`] tells which shard owns a topic partition.
//!
//! `docs/PLACEMENT.md` documents the choices and the hashes byte by byte.

#![warn(missing_docs)]

pub mod cores;
pub mod cpulist;
pub mod error;
pub mod pin;
pub mod placement;
pub mod topology;

pub use cores::{choose_shard_cores, CoreChoice, CoreSpec, CoreWarning};
pub use cpulist::{format_cpu_list, parse_cpu_list, CpuListError, MAX_CPUS};
pub use error::AffinityError;
pub use pin::{allowed_cpus, pin_current_thread};
pub use placement::shard_for;
pub use topology::{Cpu, Topology};
