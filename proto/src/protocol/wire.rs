//! Little-endian field readers and writers with every length checked
//! before slicing. All body encoding and decoding goes through here.

use super::limits::validate_topic_name_bytes;
use super::{ProtocolError, MAX_MESSAGE_BYTES};

/// Reads fields from the front of a body; never panics, never reads past
/// the end.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(body: &'a [u8]) -> Self {
        Self { rest: body }
    }

    /// The next `n` bytes.
    pub(crate) fn take(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> Result<&'a [u8], ProtocolError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or(ProtocolError::Truncated {
                field,
                needed: n,
                available: self.rest.len(),
            })?;
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], ProtocolError> {
        let available = self.rest.len();
        self.take(N, field)?
            .try_into()
            .map_err(|_| ProtocolError::Truncated {
                field,
                needed: N,
                available,
            })
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtocolError> {
        Ok(u8::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ProtocolError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtocolError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ProtocolError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, ProtocolError> {
        Ok(i64::from_le_bytes(self.array(field)?))
    }

    /// A `u16` length, then that many bytes.
    pub(crate) fn bytes16(&mut self, field: &'static str) -> Result<&'a [u8], ProtocolError> {
        let len = self.u16(field)?;
        self.take(len.into(), field)
    }

    /// A `u32` length no larger than `max`, then that many bytes. The length
    /// is checked against `max` and against the bytes left before slicing.
    pub(crate) fn bytes32(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], ProtocolError> {
        let len = self.u32(field)?;
        let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
        if len_usize > max {
            return Err(ProtocolError::OutOfRange {
                field,
                value: len.into(),
                min: 0,
                max: u64::try_from(max).unwrap_or(u64::MAX),
            });
        }
        self.take(len_usize, field)
    }

    /// A `u16`-length UTF-8 string of at most `max` bytes.
    pub(crate) fn str16(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a str, ProtocolError> {
        let bytes = self.bytes16(field)?;
        if bytes.len() > max {
            return Err(ProtocolError::OutOfRange {
                field,
                value: bytes.len() as u64,
                min: 0,
                max: max as u64,
            });
        }
        std::str::from_utf8(bytes).map_err(|_| ProtocolError::InvalidUtf8 { field })
    }

    /// A `u16`-length topic name, checked by the naming rule.
    pub(crate) fn topic(&mut self, field: &'static str) -> Result<&'a str, ProtocolError> {
        let bytes = self.bytes16(field)?;
        validate_topic_name_bytes(bytes)?;
        std::str::from_utf8(bytes).map_err(|_| ProtocolError::InvalidUtf8 { field })
    }

    /// A response message: at most [`MAX_MESSAGE_BYTES`] of UTF-8.
    pub(crate) fn message(&mut self) -> Result<&'a str, ProtocolError> {
        self.str16("message", MAX_MESSAGE_BYTES)
    }

    /// A presence byte (0 absent, 1 present), then a `u64` when present.
    pub(crate) fn opt_u64(&mut self, field: &'static str) -> Result<Option<u64>, ProtocolError> {
        match self.u8(field)? {
            0 => Ok(None),
            1 => Ok(Some(self.u64(field)?)),
            tag => Err(ProtocolError::InvalidTag { field, tag }),
        }
    }

    /// A `u32` element count no larger than `max`, also bounded by the bytes
    /// left (each element takes at least `min_element_bytes`), so a bogus
    /// count never reserves memory the body cannot fill.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        max: u32,
        min_element_bytes: usize,
    ) -> Result<usize, ProtocolError> {
        let count = self.u32(field)?;
        if count > max {
            return Err(ProtocolError::OutOfRange {
                field,
                value: count.into(),
                min: 0,
                max: max.into(),
            });
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let needed = count.saturating_mul(min_element_bytes);
        if needed > self.rest.len() {
            return Err(ProtocolError::Truncated {
                field,
                needed,
                available: self.rest.len(),
            });
        }
        Ok(count)
    }

    /// Succeeds when every byte was read.
    pub(crate) fn finish(self) -> Result<(), ProtocolError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::TrailingBytes {
                count: self.rest.len(),
            })
        }
    }
}

pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A `u16` length, then the bytes. Bytes beyond `u16::MAX` are cut so the
/// framing stays sound; the decoder then rejects the value with a typed
/// error (every `u16` field has a smaller limit or is a routing key).
pub(crate) fn put_bytes16(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    put_u16(out, len);
    out.extend_from_slice(bytes.get(..usize::from(len)).unwrap_or(bytes));
}

/// `len` as a `u32` length field.
///
/// # Panics
///
/// If `len` does not fit: a field of 4 GiB is a caller bug, never input.
pub(crate) fn len_u32(len: usize) -> u32 {
    match u32::try_from(len) {
        Ok(len) => len,
        Err(_) => panic!("length {len} does not fit a u32 length field"),
    }
}

/// A presence byte, then the value when present.
pub(crate) fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => put_u8(out, 0),
        Some(v) => {
            put_u8(out, 1);
            put_u64(out, v);
        }
    }
}

/// A response message, cut at a character boundary to
/// [`MAX_MESSAGE_BYTES`].
pub(crate) fn put_message(out: &mut Vec<u8>, message: &str) {
    put_bytes16(out, truncate_str(message, MAX_MESSAGE_BYTES).as_bytes());
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub(crate) fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}
