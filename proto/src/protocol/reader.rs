//! [`FrameReader`]: one frame from the chunks of one stream, sans-IO.

use super::frame::{decode_header, FrameHeader, FRAME_HEADER_LEN};
use super::{ProtocolError, MAX_FRAME_BODY_BYTES};

/// Accumulates the chunks of one QUIC stream into its one frame.
///
/// The caller owns the I/O: it reads at most [`wanted`](Self::wanted)
/// bytes from the stream (quinn's `read_chunk(wanted, true)`), hands them
/// to [`push`](Self::push), and at the end of the stream calls
/// [`finish`](Self::finish).
///
/// Memory is bounded by the declared body length, which is checked
/// against `max_body` as soon as the 8 header bytes are in, before any of
/// the body is buffered. The body buffer then grows with the bytes that
/// actually arrive (doubling, capped at the declared length), so a header
/// that declares 32 MiB costs nothing until 32 MiB are sent.
///
/// # Example
///
/// ```
/// use tidegate_proto::protocol::{FrameReader, Request, MAX_FRAME_BODY_BYTES};
///
/// let mut wire = Vec::new();
/// Request::DescribeTopic { name: "orders" }.encode(&mut wire);
///
/// let mut reader = FrameReader::new(MAX_FRAME_BODY_BYTES);
/// for chunk in wire.chunks(3) {
///     reader.push(chunk)?;
/// }
/// let (header, body) = reader.finish()?; // the stream ended
/// assert_eq!(Request::decode(header, body)?, Request::DescribeTopic { name: "orders" });
/// # Ok::<(), tidegate_proto::protocol::ProtocolError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FrameReader {
    max_body: usize,
    header_buf: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    header: Option<FrameHeader>,
    body: Vec<u8>,
}

impl FrameReader {
    /// A reader that accepts bodies of at most `max_body` bytes (capped at
    /// [`MAX_FRAME_BODY_BYTES`]).
    pub fn new(max_body: usize) -> Self {
        Self {
            max_body: max_body.min(MAX_FRAME_BODY_BYTES),
            header_buf: [0; FRAME_HEADER_LEN],
            header_len: 0,
            header: None,
            body: Vec::new(),
        }
    }

    /// The body limit in force.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// How many more bytes the frame needs: the rest of the header, then
    /// the rest of the body; 0 once the frame is complete.
    pub fn wanted(&self) -> usize {
        match self.header {
            None => FRAME_HEADER_LEN - self.header_len,
            Some(header) => declared_len(header).saturating_sub(self.body.len()),
        }
    }

    /// Takes the next chunk of the stream.
    ///
    /// # Errors
    ///
    /// The header's errors from [`decode_header`] (bad magic as soon as two
    /// bytes are in; unsupported version and too-large body once eight
    /// are), and [`ProtocolError::BytesAfterFrame`] when `chunk` goes past
    /// the end of the frame (a stream carries one frame; nothing of such a
    /// chunk is taken). An error ends the stream's frame: answer it or
    /// close, then [`reset`](Self::reset) before reusing the reader.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ProtocolError> {
        let rest = match self.header {
            Some(_) => chunk,
            None => self.push_header(chunk)?,
        };
        let Some(header) = self.header else {
            return Ok(()); // header still incomplete, so `rest` is empty
        };
        let declared = declared_len(header);
        let missing = declared.saturating_sub(self.body.len());
        if rest.len() > missing {
            return Err(ProtocolError::BytesAfterFrame {
                count: rest.len() - missing,
            });
        }
        self.grow(rest.len(), declared);
        self.body.extend_from_slice(rest);
        Ok(())
    }

    /// Copies header bytes from `chunk`, decodes the header once complete,
    /// and returns what is left of `chunk`.
    fn push_header<'c>(&mut self, chunk: &'c [u8]) -> Result<&'c [u8], ProtocolError> {
        let n = chunk.len().min(FRAME_HEADER_LEN - self.header_len);
        let (head, rest) = chunk.split_at(n);
        let end = self.header_len + n;
        if let Some(dst) = self.header_buf.get_mut(self.header_len..end) {
            dst.copy_from_slice(head);
        }
        self.header_len = end;
        let have = self.header_buf.get(..end).unwrap_or_default();
        self.header = decode_header(have, self.max_body)?;
        Ok(rest)
    }

    /// Makes room for `extra` more body bytes without ever asking for more
    /// than `declared` in total.
    fn grow(&mut self, extra: usize, declared: usize) {
        let needed = self.body.len() + extra;
        if needed > self.body.capacity() {
            let target = needed
                .max(self.body.capacity().saturating_mul(2))
                .min(declared);
            self.body.reserve_exact(target - self.body.len());
        }
    }

    /// The header, once its 8 bytes are in and valid.
    pub fn header(&self) -> Option<FrameHeader> {
        self.header
    }

    /// True when the header and the whole declared body are in.
    pub fn is_complete(&self) -> bool {
        self.header.is_some() && self.wanted() == 0
    }

    /// The complete frame, or `None` while bytes are missing. The server
    /// may start on a request here, before the stream's end arrives.
    pub fn frame(&self) -> Option<(FrameHeader, &[u8])> {
        let header = self.header?;
        (self.wanted() == 0).then_some((header, self.body.as_slice()))
    }

    /// The frame, at the end of the stream.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::Truncated`] when the stream ended before the header
    /// or the declared body was complete.
    pub fn finish(&self) -> Result<(FrameHeader, &[u8]), ProtocolError> {
        let Some(header) = self.header else {
            return Err(ProtocolError::Truncated {
                field: "frame header",
                needed: FRAME_HEADER_LEN,
                available: self.header_len,
            });
        };
        if self.wanted() > 0 {
            return Err(ProtocolError::Truncated {
                field: "frame body",
                needed: declared_len(header),
                available: self.body.len(),
            });
        }
        Ok((header, self.body.as_slice()))
    }

    /// The complete frame with its body buffer, to hand on without a copy.
    pub fn into_parts(self) -> Option<(FrameHeader, Vec<u8>)> {
        let header = self.header?;
        (self.wanted() == 0).then_some((header, self.body))
    }

    /// Capacity of the body buffer, for tests of the allocation bound.
    #[cfg(test)]
    pub(crate) fn body_capacity(&self) -> usize {
        self.body.capacity()
    }

    /// Readies the reader for the next stream, keeping its body buffer's
    /// capacity.
    pub fn reset(&mut self) {
        self.header_len = 0;
        self.header = None;
        self.body.clear();
    }
}

/// The declared body length; it fits `usize` because `decode_header` checked
/// it against a `usize` limit.
fn declared_len(header: FrameHeader) -> usize {
    usize::try_from(header.body_len).unwrap_or(usize::MAX)
}
