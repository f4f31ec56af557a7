//! Segment files: naming and the header each one starts with.
//!
//! A segment is `{base_offset:020}.log`: a 64-byte header, then record
//! batches back to back, exactly as producers sent them (with the base
//! offset patched in). Names sort by base offset.

use std::path::{Path, PathBuf};

/// Bytes of the segment header; the first batch starts here.
pub(crate) const HEADER_LEN: usize = 64;
const MAGIC: [u8; 8] = *b"TGSEGMNT";
const VERSION: u32 = 1;

pub(crate) fn log_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}

pub(crate) fn index_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}

/// The producer snapshot taken before the segment at `base_offset`.
pub(crate) fn producers_path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(format!("{base_offset:020}.producers"))
}

/// The base offset a segment file name stands for, if it is one.
pub(crate) fn parse_log_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Encodes the header of the segment starting at `base_offset`.
pub(crate) fn encode_header(base_offset: u64, created_ms: i64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&base_offset.to_le_bytes());
    h[24..32].copy_from_slice(&created_ms.to_le_bytes());
    let crc = crc32c::crc32c(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment header and returns its base offset.
pub(crate) fn decode_header(bytes: &[u8]) -> Result<u64, &'static str> {
    let h = bytes.get(..HEADER_LEN).ok_or("segment header truncated")?;
    if h[0..8] != MAGIC {
        return Err("bad segment magic");
    }
    let crc = u32::from_le_bytes([h[60], h[61], h[62], h[63]]);
    if crc != crc32c::crc32c(&h[..60]) {
        return Err("segment header checksum mismatch");
    }
    if u32::from_le_bytes([h[8], h[9], h[10], h[11]]) != VERSION {
        return Err("unsupported segment version");
    }
    let mut base = [0u8; 8];
    base.copy_from_slice(&h[16..24]);
    Ok(u64::from_le_bytes(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_detects_damage() {
        let h = encode_header(42, 7);
        assert_eq!(decode_header(&h), Ok(42));
        for i in 0..HEADER_LEN {
            let mut bad = h;
            bad[i] ^= 0x10;
            assert!(decode_header(&bad).is_err(), "byte {i}");
        }
        assert!(decode_header(&h[..10]).is_err());
        assert!(decode_header(&[0u8; HEADER_LEN]).is_err());
    }

    #[test]
    fn log_names_sort_by_base_offset_and_parse_back() {
        let dir = Path::new("/d");
        let a = log_path(dir, 9);
        let b = log_path(dir, 10);
        assert!(a < b);
        let name = b.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert_eq!(parse_log_name(name), Some(10));
        assert_eq!(parse_log_name("10.log"), None);
        assert_eq!(parse_log_name("0000000000000000000x.log"), None);
    }
}
