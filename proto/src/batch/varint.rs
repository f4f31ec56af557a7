//! Unsigned LEB128 varints, zigzag for signed values, and a bounds-checked
//! reader. Decoding is strict: at most 10 bytes, no bits above 64, and no
//! overlong (non-minimal) encodings, so every value has exactly one encoding.

/// Longest encoding of a `u64`.
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// Maps signed to unsigned so small magnitudes stay short: 0, -1, 1, -2 ...
/// become 0, 1, 2, 3 ...
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bytes [`put_uvarint`] writes for `v`.
pub(crate) fn uvarint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 still takes one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `v` as unsigned LEB128.
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded.
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

/// A cursor over a byte slice where every read is checked and returns
/// `None` instead of going out of bounds.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_at_end(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// The next `n` bytes, borrowed from the underlying slice.
    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// Everything not read yet; the reader ends up at the end.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        out
    }

    /// The next `n` bytes as a reader of their own; `self` moves past them.
    pub(crate) fn sub(&mut self, n: usize) -> Option<Reader<'a>> {
        self.bytes(n).map(Reader::new)
    }

    pub(crate) fn uvarint(&mut self) -> Result<u64, VarintError> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT_LEN {
            let b = self.u8().ok_or(VarintError::Truncated)?;
            let low = u64::from(b & 0x7f);
            // The 10th byte may only carry bit 63.
            if i == MAX_VARINT_LEN - 1 && low > 1 {
                return Err(VarintError::Overflow);
            }
            value |= low << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(VarintError::Overlong);
                }
                return Ok(value);
            }
        }
        Err(VarintError::Overflow)
    }

    pub(crate) fn varint(&mut self) -> Result<i64, VarintError> {
        self.uvarint().map(unzigzag)
    }
}

/// Why a varint did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    Truncated,
    Overflow,
    Overlong,
}

impl VarintError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Truncated => "varint runs past the end of the record",
            Self::Overflow => "varint does not fit in 64 bits",
            Self::Overlong => "varint is not minimally encoded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_uvarint(&mut out, v);
        out
    }

    #[test]
    fn uvarint_round_trips_at_every_length_boundary() {
        let mut values = vec![0, 1, u64::MAX];
        for shift in (7..64).step_by(7) {
            values.extend([(1u64 << shift) - 1, 1u64 << shift]);
        }
        for v in values {
            let bytes = encode(v);
            assert_eq!(bytes.len(), uvarint_len(v), "len of {v}");
            let mut r = Reader::new(&bytes);
            assert_eq!(r.uvarint(), Ok(v));
            assert!(r.is_at_end());
        }
    }

    #[test]
    fn known_encodings_match_leb128() {
        assert_eq!(encode(0), [0x00]);
        assert_eq!(encode(127), [0x7f]);
        assert_eq!(encode(128), [0x80, 0x01]);
        assert_eq!(encode(300), [0xac, 0x02]);
        assert_eq!(encode(u64::MAX).len(), 10);
    }

    #[test]
    fn zigzag_interleaves_signs() {
        let pairs = [(0i64, 0u64), (-1, 1), (1, 2), (-2, 3), (2, 4)];
        for (s, u) in pairs {
            assert_eq!(zigzag(s), u);
            assert_eq!(unzigzag(u), s);
        }
        for v in [i64::MIN, i64::MAX, -12345, 12345] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        assert_eq!(
            Reader::new(&[0x80, 0x00]).uvarint(),
            Err(VarintError::Overlong)
        );
        assert_eq!(
            Reader::new(&[0x81, 0x80, 0x00]).uvarint(),
            Err(VarintError::Overlong)
        );
    }

    #[test]
    fn varint_beyond_64_bits_is_rejected() {
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(Reader::new(&too_big).uvarint(), Err(VarintError::Overflow));
        assert_eq!(
            Reader::new(&[0xff; 11]).uvarint(),
            Err(VarintError::Overflow)
        );
    }

    #[test]
    fn truncated_varint_is_rejected() {
        assert_eq!(Reader::new(&[]).uvarint(), Err(VarintError::Truncated));
        assert_eq!(Reader::new(&[0x80]).uvarint(), Err(VarintError::Truncated));
    }

    #[test]
    fn reader_never_reads_past_the_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.bytes(4), None);
        assert_eq!(r.bytes(usize::MAX), None);
        assert_eq!(r.bytes(2), Some(&[1, 2][..]));
        assert_eq!(r.u8(), Some(3));
        assert_eq!(r.u8(), None);
    }
}
