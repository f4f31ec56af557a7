//! The catalog's bytes: a magic with the format version, then the rkyv
//! archive of [`Catalog`].
//!
//! ```text
//! 0  8  magic "TGCATLG3" (the last byte is the format version)
//! 8  .. rkyv 0.8 archive of Catalog (little-endian, 32-bit relative
//!       pointers: rkyv's default format)
//! ```
//!
//! Version 1 (before subscriptions) is still read, as a catalog without
//! subscriptions, and version 2 (before message-id deduplication) as one
//! whose topics have no dedup window; either is written as version 3 at
//! the next change.
//!
//! The archive is validated with bytecheck before it is read, since it
//! comes from a disk, then the decoded catalog's own invariants are checked
//! (names, partition counts, unique ids below `next_id`).

use rkyv::rancor;
use rkyv::util::AlignedVec;

use std::collections::BTreeMap;

use super::{Catalog, CatalogError, SubscriptionMeta, TopicMeta};

const MAGIC: [u8; 8] = *b"TGCATLG3";
const MAGIC_V2: [u8; 8] = *b"TGCATLG2";
const MAGIC_V1: [u8; 8] = *b"TGCATLG1";

/// The catalog as format version 2 stored it.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct CatalogV2 {
    version: u64,
    next_id: u64,
    topics: BTreeMap<String, TopicMetaV2>,
    subscriptions: BTreeMap<String, SubscriptionMeta>,
}

/// A topic as format version 2 stored it: no dedup window.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct TopicMetaV2 {
    id: u64,
    name: String,
    partitions: u32,
    retention_ms: Option<u64>,
    retention_bytes: Option<u64>,
    segment_bytes: Option<u64>,
    message_ttl_ms: Option<u64>,
    created_ms: i64,
}

impl From<TopicMetaV2> for TopicMeta {
    fn from(t: TopicMetaV2) -> TopicMeta {
        TopicMeta {
            id: t.id,
            name: t.name,
            partitions: t.partitions,
            retention_ms: t.retention_ms,
            retention_bytes: t.retention_bytes,
            segment_bytes: t.segment_bytes,
            message_ttl_ms: t.message_ttl_ms,
            dedup_window_ms: None,
            created_ms: t.created_ms,
        }
    }
}

/// The catalog as format version 1 stored it.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct CatalogV1 {
    version: u64,
    next_id: u64,
    topics: BTreeMap<String, TopicMetaV1>,
}

/// A topic as format version 1 stored it: no message TTL.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct TopicMetaV1 {
    id: u64,
    name: String,
    partitions: u32,
    retention_ms: Option<u64>,
    retention_bytes: Option<u64>,
    segment_bytes: Option<u64>,
    created_ms: i64,
}

/// Each older layout reads as the next one: a version-1 catalog is a
/// version-2 catalog without subscriptions, whose topics have no TTL.
impl From<CatalogV1> for CatalogV2 {
    fn from(old: CatalogV1) -> CatalogV2 {
        let topics = old.topics.into_iter().map(|(name, t)| {
            let t = TopicMetaV2 {
                id: t.id,
                name: t.name,
                partitions: t.partitions,
                retention_ms: t.retention_ms,
                retention_bytes: t.retention_bytes,
                segment_bytes: t.segment_bytes,
                message_ttl_ms: None,
                created_ms: t.created_ms,
            };
            (name, t)
        });
        CatalogV2 {
            version: old.version,
            next_id: old.next_id,
            topics: topics.collect(),
            subscriptions: BTreeMap::new(),
        }
    }
}

impl From<CatalogV2> for Catalog {
    fn from(old: CatalogV2) -> Catalog {
        Catalog {
            version: old.version,
            next_id: old.next_id,
            topics: old.topics.into_iter().map(|(n, t)| (n, t.into())).collect(),
            subscriptions: old.subscriptions,
        }
    }
}

/// The format versions read.
enum Format {
    V1,
    V2,
    V3,
}

impl Catalog {
    /// Encodes the catalog as the catalog file's content.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CatalogError> {
        let archive = rkyv::to_bytes::<rancor::Error>(self).map_err(|e| CatalogError::Encode {
            reason: e.to_string(),
        })?;
        let mut bytes = Vec::with_capacity(MAGIC.len() + archive.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&archive);
        Ok(bytes)
    }

    /// Decodes what [`Catalog::to_bytes`] wrote. Any input gives a catalog
    /// or [`CatalogError::Decode`], never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Catalog, CatalogError> {
        let decode = |reason: String| CatalogError::Decode { reason };
        let (archive, format) = match bytes.split_first_chunk::<8>() {
            Some((magic, archive)) if *magic == MAGIC => (archive, Format::V3),
            Some((magic, archive)) if *magic == MAGIC_V2 => (archive, Format::V2),
            Some((magic, archive)) if *magic == MAGIC_V1 => (archive, Format::V1),
            Some((magic, _)) if magic[..7] == MAGIC[..7] => {
                return Err(decode(format!(
                    "unsupported catalog format version {}",
                    magic[7]
                )))
            }
            _ => return Err(decode("bad magic".into())),
        };
        // rkyv reads in place and needs its alignment; bytes from a file
        // have none to speak of.
        let mut aligned = AlignedVec::<16>::with_capacity(archive.len());
        aligned.extend_from_slice(archive);
        let invalid = |e: rancor::Error| decode(format!("invalid archive: {e}"));
        let catalog = match format {
            Format::V1 => {
                let old =
                    rkyv::from_bytes::<CatalogV1, rancor::Error>(&aligned).map_err(invalid)?;
                CatalogV2::from(old).into()
            }
            Format::V2 => rkyv::from_bytes::<CatalogV2, rancor::Error>(&aligned)
                .map_err(invalid)?
                .into(),
            Format::V3 => rkyv::from_bytes::<Catalog, rancor::Error>(&aligned).map_err(invalid)?,
        };
        catalog.check_invariants().map_err(decode)?;
        Ok(catalog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::TopicSettings;

    #[test]
    fn a_version_1_catalog_reads_as_one_without_subscriptions() {
        let mut current = Catalog::default();
        current
            .create_topic("orders", 3, TopicSettings::default(), 5)
            .unwrap_or_else(|e| panic!("{e}"));
        let topics = current.topics.values().map(|t| {
            let old = TopicMetaV1 {
                id: t.id,
                name: t.name.clone(),
                partitions: t.partitions,
                retention_ms: t.retention_ms,
                retention_bytes: t.retention_bytes,
                segment_bytes: t.segment_bytes,
                created_ms: t.created_ms,
            };
            (t.name.clone(), old)
        });
        let old = CatalogV1 {
            version: current.version,
            next_id: current.next_id,
            topics: topics.collect(),
        };
        let archive = rkyv::to_bytes::<rancor::Error>(&old).unwrap_or_else(|e| panic!("{e}"));
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&archive);
        assert_eq!(Catalog::from_bytes(&bytes), Ok(current.clone()));
        let written = current.to_bytes().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written[..8], MAGIC);
    }
}
