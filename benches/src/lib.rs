//! Shared helpers for the criterion benchmarks live in `benches/benches/`.
