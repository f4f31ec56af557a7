//! The synchronisation primitives the rings are built on.
//!
//! The model-checking switch is `--cfg tidegate_loom`, not `--cfg loom`:
//! third-party crates (event-listener) read `cfg(loom)` too and fail to
//! build without their own loom dependency.
//!
//! Normal builds use `std`. A test build with `--cfg tidegate_loom` uses loom's
//! model-checked versions instead, so `loom::model` can explore every
//! interleaving of the ring's atomics and slot accesses. The loom branch also
//! requires `cfg(test)`: loom is only a dev-dependency of this crate, so the
//! plain library must stay on `std` even when `RUSTFLAGS="--cfg tidegate_loom"` is set.

#[cfg(all(tidegate_loom, test))]
pub(crate) use loom::{
    cell::UnsafeCell,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
};

#[cfg(not(all(tidegate_loom, test)))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicUsize, Ordering},
    Arc,
};

/// `std::cell::UnsafeCell` with loom's closure-based access API, so the ring
/// code reads the same under both configurations.
#[cfg(not(all(tidegate_loom, test)))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(all(tidegate_loom, test)))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a shared raw pointer to the contents.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a mutable raw pointer to the contents.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
