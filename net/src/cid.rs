//! Connection IDs that name their shard, so a packet that reaches the wrong
//! shard can be sent on to the right one.
//!
//! Every shard binds the same port (SO_REUSEPORT) and the kernel picks a
//! socket by the packet's 4-tuple. While a client keeps its address, all its
//! packets reach the shard that accepted it; when the address changes (NAT
//! rebinding, migration) they may reach another shard, which does not know
//! the connection. The first byte of every connection ID this server issues
//! is its shard number (like QUIC-LB's plaintext server ID), so that shard
//! can forward such a packet to the owner over the rings.
//!
//! The rest of the ID is random. The shard byte tells an observer which
//! shard serves a connection and nothing else.

use quinn_proto::{ConnectionId, ConnectionIdGenerator};

/// Bytes of every connection ID this server issues.
pub const CID_LEN: usize = 8;

/// Issues [`CID_LEN`]-byte connection IDs starting with the shard number.
pub(crate) struct ShardCids {
    pub(crate) shard: u8,
}

impl ConnectionIdGenerator for ShardCids {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut id = [0u8; CID_LEN];
        id[0] = self.shard;
        rand::fill(&mut id[1..]);
        ConnectionId::new(&id)
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The shard a datagram's destination connection ID names, for packets
/// whose ID this server chose: short-header packets and long-header
/// Handshake packets. Initial and 0-RTT packets carry an ID the client
/// chose, so they name no shard (`None`), as does anything unparsable.
pub fn shard_of_datagram(datagram: &[u8]) -> Option<u8> {
    let first = *datagram.first()?;
    if first & 0x80 == 0 {
        // Short header: flags, then the destination connection ID.
        return datagram.get(1..1 + CID_LEN).map(|cid| cid[0]);
    }
    // Long header: flags, version (4), DCID length (1), DCID.
    const HANDSHAKE: u8 = 2;
    let packet_type = (first >> 4) & 0x3;
    let version = datagram.get(1..5)?;
    if packet_type != HANDSHAKE || version == [0, 0, 0, 0] {
        return None;
    }
    let dcid_len = *datagram.get(5)? as usize;
    if dcid_len != CID_LEN {
        return None;
    }
    datagram.get(6..6 + CID_LEN).map(|cid| cid[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_ids_carry_the_shard_and_random_bytes() {
        let mut g = ShardCids { shard: 3 };
        let (a, b) = (g.generate_cid(), g.generate_cid());
        assert_eq!((a.len(), a[0], b[0]), (CID_LEN, 3, 3));
        assert_ne!(a[1..], b[1..]);
    }

    #[test]
    fn short_and_handshake_packets_name_their_shard_initials_do_not() {
        let mut short = vec![0x40, 5, 1, 2, 3, 4, 5, 6, 7];
        short.extend_from_slice(&[0xAA; 30]);
        assert_eq!(shard_of_datagram(&short), Some(5));
        let mut handshake = vec![0xE0, 0, 0, 0, 1, 8, 9, 1, 2, 3, 4, 5, 6, 7, 8];
        handshake.extend_from_slice(&[0xAA; 30]);
        assert_eq!(shard_of_datagram(&handshake), Some(9));
        let mut initial = handshake.clone();
        initial[0] = 0xC0;
        assert_eq!(shard_of_datagram(&initial), None);
        let mut other_len = handshake.clone();
        other_len[5] = 20;
        assert_eq!(shard_of_datagram(&other_len), None);
        // Version negotiation (version 0) and truncated packets.
        let mut vn = handshake.clone();
        vn[1..5].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(shard_of_datagram(&vn), None);
        for len in 0..9 {
            let _ = shard_of_datagram(&short[..len]);
            let _ = shard_of_datagram(&handshake[..len]);
        }
        assert_eq!(shard_of_datagram(&[]), None);
    }
}
