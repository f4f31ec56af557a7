//! What message-id deduplication (docs/SEMANTICS.md §6) puts in records:
//! the id header a producer sets, and the duplicate marker the server
//! stores in place of a repeated message, which every reader skips.

use super::RecordView;

/// The header that names a message for deduplication.
pub const MESSAGE_ID_HEADER: &str = "tg-msg-id";
/// The one header of a duplicate marker: the original's offset, decimal.
pub const DUPLICATE_OF_HEADER: &str = "tg-dup-of";

/// The message id of a record, if it has one.
pub fn message_id<'a>(record: &RecordView<'a>) -> Option<&'a [u8]> {
    record
        .headers()
        .find(|(name, _)| *name == MESSAGE_ID_HEADER)
        .map(|(_, v)| v)
}

/// True for a duplicate marker: no key, no value, a `tg-dup-of` header.
/// A message that merely carries that header is not one.
pub fn is_marker(record: &RecordView<'_>) -> bool {
    record.key().is_none()
        && record.value().is_none()
        && record
            .headers()
            .any(|(name, _)| name == DUPLICATE_OF_HEADER)
}
