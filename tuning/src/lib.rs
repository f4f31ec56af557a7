//! Host checks, safe fixes and the disk probe behind `tidegate tune`.
//! Filled in by the tuning issue.
