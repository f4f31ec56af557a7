//! What every message carries so that the consumer side can verify and
//! time it: which producer sent it, its sequence number, and the time it
//! was meant to be sent.
//!
//! Layout (little endian): magic `u32`, producer `u32`, sequence `u64`,
//! stamp `u64` (nanoseconds since the run's epoch), then filler up to
//! `--msg-size`.

use thiserror::Error;

pub const HEADER_LEN: usize = 24;
const MAGIC: u32 = 0x4C47_5431; // "LGT1"

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub producer: u32,
    pub seq: u64,
    /// Nanoseconds since the run's epoch.
    pub stamp_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PayloadError {
    #[error("payload of {0} bytes, shorter than the {HEADER_LEN}-byte header")]
    Short(usize),
    #[error("payload without loadgen's magic")]
    Foreign,
}

/// Writes `stamp` into the first [`HEADER_LEN`] bytes of `buf`; the rest
/// of `buf` is left as it is (the filler is written once per producer).
pub fn write(buf: &mut [u8], stamp: Stamp) -> Result<(), PayloadError> {
    let len = buf.len();
    let header = buf.get_mut(..HEADER_LEN).ok_or(PayloadError::Short(len))?;
    header[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&stamp.producer.to_le_bytes());
    header[8..16].copy_from_slice(&stamp.seq.to_le_bytes());
    header[16..24].copy_from_slice(&stamp.stamp_ns.to_le_bytes());
    Ok(())
}

pub fn read(buf: &[u8]) -> Result<Stamp, PayloadError> {
    let header: &[u8; HEADER_LEN] = buf
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(PayloadError::Short(buf.len()))?;
    let [m0, m1, m2, m3, p0, p1, p2, p3, rest @ ..] = *header;
    if u32::from_le_bytes([m0, m1, m2, m3]) != MAGIC {
        return Err(PayloadError::Foreign);
    }
    let (seq, stamp) = rest.split_at(8);
    let u64_of = |b: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_le_bytes(a)
    };
    Ok(Stamp {
        producer: u32::from_le_bytes([p0, p1, p2, p3]),
        seq: u64_of(seq),
        stamp_ns: u64_of(stamp),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(producer: u32, seq: u64, stamp_ns: u64, extra in 0usize..64) {
            let mut buf = vec![0xAB; HEADER_LEN + extra];
            let stamp = Stamp { producer, seq, stamp_ns };
            write(&mut buf, stamp).unwrap();
            prop_assert_eq!(read(&buf).unwrap(), stamp);
            prop_assert!(buf[HEADER_LEN..].iter().all(|&b| b == 0xAB));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read(&bytes);
        }
    }

    #[test]
    fn short_and_foreign_are_typed() {
        assert_eq!(read(&[0; 10]), Err(PayloadError::Short(10)));
        assert_eq!(read(&[0; 30]), Err(PayloadError::Foreign));
        let mut small = [0u8; 8];
        assert_eq!(
            write(
                &mut small,
                Stamp {
                    producer: 0,
                    seq: 0,
                    stamp_ns: 0
                }
            ),
            Err(PayloadError::Short(8))
        );
    }
}
