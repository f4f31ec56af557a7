//! Human-friendly sizes and durations for the configuration, with the unit
//! always required: `64MiB`, `4KiB`, `1GB`, `512B`; `30s`, `250ms`, `5m`.
//!
//! A bare number is refused rather than guessed at: `segment_bytes = 64`
//! could mean bytes or mebibytes, and the wrong guess is a server that rolls
//! a segment every 64 bytes. Parsing is delegated to `parse-size` and
//! `humantime`; this module adds the unit requirement, the canonical
//! spelling and serde.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a size or duration did not parse. The message is meant to follow the
/// key's name: "storage.segment_bytes: `64` needs a unit, e.g. `64MiB`".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

/// A number of bytes, written with a unit in the configuration.
///
/// Binary units (`KiB`, `MiB`, `GiB`, `TiB`) are powers of 1024, decimal ones
/// (`KB`, `MB`, `GB`, `TB`) powers of 1000, `B` is bytes; units are not case
/// sensitive and the trailing `B` is required (`64M` is refused). Displays in
/// the shortest exact form, binary preferred: `64MiB`, `1GB`, `1500B`.
///
/// ```
/// use tidegate_core::config::Size;
/// let s: Size = "64MiB".parse().unwrap();
/// assert_eq!(s.bytes(), 64 << 20);
/// assert_eq!(s.to_string(), "64MiB");
/// assert!("64".parse::<Size>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(u64);

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

impl Size {
    /// `n` bytes.
    pub const fn from_bytes(n: u64) -> Self {
        Size(n)
    }

    /// `n` KiB.
    pub const fn kib(n: u64) -> Self {
        Size(n * KIB)
    }

    /// `n` MiB.
    pub const fn mib(n: u64) -> Self {
        Size(n * MIB)
    }

    /// `n` GiB.
    pub const fn gib(n: u64) -> Self {
        Size(n * GIB)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The size in bytes as a `usize`, saturating on 32-bit targets.
    pub fn bytes_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// Units tried for display, largest first within each system.
const BINARY_UNITS: [(u64, &str); 4] = [(1 << 40, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")];
const DECIMAL_UNITS: [(u64, &str); 4] = [
    (1_000_000_000_000, "TB"),
    (1_000_000_000, "GB"),
    (1_000_000, "MB"),
    (1_000, "KB"),
];

fn exact_in(bytes: u64, units: &[(u64, &'static str)]) -> Option<(u64, &'static str)> {
    units
        .iter()
        .find(|(factor, _)| bytes % factor == 0)
        .map(|&(factor, unit)| (bytes / factor, unit))
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0B");
        }
        let binary = exact_in(self.0, &BINARY_UNITS);
        let decimal = exact_in(self.0, &DECIMAL_UNITS);
        let (n, unit) = match (binary, decimal) {
            (Some(b), Some(d)) if d.0 < b.0 => d,
            (Some(b), _) => b,
            (None, Some(d)) => d,
            (None, None) => (self.0, "B"),
        };
        write!(f, "{n}{unit}")
    }
}

/// True when `input` is only a number: digits, sign, point, underscores.
fn is_bare_number(input: &str) -> bool {
    !input.is_empty()
        && input
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '+'))
}

impl FromStr for Size {
    type Err = UnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        if is_bare_number(trimmed) {
            return Err(UnitError(format!(
                "`{trimmed}` needs a unit, e.g. `{trimmed}MiB` (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            )));
        }
        let parser = parse_size::Config::new().with_byte_suffix(parse_size::ByteSuffix::Require);
        parser.parse_size(trimmed).map(Size).map_err(|e| {
            UnitError(format!(
                "`{trimmed}` is not a size ({e}); write a number and a unit, e.g. `64MiB`, `4KiB`, `1GB`, `512B`"
            ))
        })
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = Size;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size with a unit, e.g. \"64MiB\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
        Err(E::custom(format!("`{v}` needs a unit, e.g. `{v}MiB`")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
        Err(E::custom(format!("`{v}` needs a unit, e.g. `{v}MiB`")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Size, E> {
        Err(E::custom(format!("`{v}` needs a unit, e.g. `{v}MiB`")))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A length of time, written with a unit in the configuration: `250ms`,
/// `30s`, `5m`, `1h`, or a sum such as `1h 30m` (units of `humantime`).
/// Displays in humantime's canonical form, which parses back to the same
/// value.
///
/// ```
/// use tidegate_core::config::Duration;
/// let d: Duration = "90s".parse().unwrap();
/// assert_eq!(d.get(), std::time::Duration::from_secs(90));
/// assert_eq!(d.to_string(), "1m 30s");
/// assert!("30".parse::<Duration>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

impl Duration {
    /// Wraps a `std::time::Duration`.
    pub const fn new(d: std::time::Duration) -> Self {
        Duration(d)
    }

    /// `n` seconds.
    pub const fn secs(n: u64) -> Self {
        Duration(std::time::Duration::from_secs(n))
    }

    /// `n` milliseconds.
    pub const fn millis(n: u64) -> Self {
        Duration(std::time::Duration::from_millis(n))
    }

    /// The wrapped `std::time::Duration`.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    /// Whole milliseconds, saturating at `u64::MAX`.
    pub fn as_millis_u64(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl FromStr for Duration {
    type Err = UnitError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        if is_bare_number(trimmed) {
            return Err(UnitError(format!(
                "`{trimmed}` needs a unit, e.g. `{trimmed}s` (ms, s, m, h, d)"
            )));
        }
        humantime::parse_duration(trimmed)
            .map(Duration)
            .map_err(|e| {
                UnitError(format!(
                    "`{trimmed}` is not a duration ({e}); write e.g. `250ms`, `30s`, `5m`, `1h`"
                ))
            })
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration with a unit, e.g. \"30s\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(E::custom(format!("`{v}` needs a unit, e.g. `{v}s`")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(format!("`{v}` needs a unit, e.g. `{v}s`")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(format!("`{v}` needs a unit, e.g. `{v}s`")))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}
