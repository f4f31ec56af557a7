//! The ack id a subscriber gets with each delivery: opaque to clients,
//! 16 bytes on the wire.

use thiserror::Error;

/// Length of an encoded [`AckId`].
pub const ACK_ID_LEN: usize = 16;

/// Names one delivery: `attempt` tells a redelivery of the same offset
/// apart from the one a subscriber still holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AckId {
    pub partition: u32,
    pub offset: u64,
    /// 1 for the first delivery.
    pub attempt: u32,
}

/// Bytes a client sent back that cannot be an ack id we issued.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum AckIdError {
    #[error("an ack id is {ACK_ID_LEN} bytes, got {0}")]
    Length(usize),
    #[error("an ack id's attempt is at least 1")]
    ZeroAttempt,
}

impl AckId {
    /// Little-endian: partition (4 bytes), offset (8), attempt (4).
    pub fn to_bytes(self) -> [u8; ACK_ID_LEN] {
        let mut bytes = [0; ACK_ID_LEN];
        bytes[..4].copy_from_slice(&self.partition.to_le_bytes());
        bytes[4..12].copy_from_slice(&self.offset.to_le_bytes());
        bytes[12..].copy_from_slice(&self.attempt.to_le_bytes());
        bytes
    }

    /// Decodes what [`AckId::to_bytes`] wrote. Any input gives an id or an
    /// error, never a panic: the bytes come from clients.
    pub fn from_bytes(bytes: &[u8]) -> Result<AckId, AckIdError> {
        let Ok(&[p0, p1, p2, p3, o0, o1, o2, o3, o4, o5, o6, o7, a0, a1, a2, a3]) =
            <&[u8; ACK_ID_LEN]>::try_from(bytes)
        else {
            return Err(AckIdError::Length(bytes.len()));
        };
        let attempt = u32::from_le_bytes([a0, a1, a2, a3]);
        if attempt == 0 {
            return Err(AckIdError::ZeroAttempt);
        }
        Ok(AckId {
            partition: u32::from_le_bytes([p0, p1, p2, p3]),
            offset: u64::from_le_bytes([o0, o1, o2, o3, o4, o5, o6, o7]),
            attempt,
        })
    }
}
