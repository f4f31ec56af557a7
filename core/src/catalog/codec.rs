//! The catalog's bytes: a magic with the format version, then the rkyv
//! archive of [`Catalog`].
//!
//! ```text
//! 0  8  magic "TGCATLG2" (the last byte is the format version)
//! 8  .. rkyv 0.8 archive of Catalog (little-endian, 32-bit relative
//!       pointers: rkyv's default format)
//! ```
//!
//! Version 1 (before subscriptions) is still read, as a catalog without
//! subscriptions; it is written as version 2 at the next change.
//!
//! The archive is validated with bytecheck before it is read, since it
//! comes from a disk, then the decoded catalog's own invariants are checked
//! (names, partition counts, unique ids below `next_id`).

use rkyv::rancor;
use rkyv::util::AlignedVec;

use std::collections::BTreeMap;

use super::{Catalog, CatalogError, TopicMeta};

const MAGIC: [u8; 8] = *b"TGCATLG2";
const MAGIC_V1: [u8; 8] = *b"TGCATLG1";

/// The catalog as format version 1 stored it.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct CatalogV1 {
    version: u64,
    next_id: u64,
    topics: BTreeMap<String, TopicMeta>,
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
        let (archive, v1) = match bytes.split_first_chunk::<8>() {
            Some((magic, archive)) if *magic == MAGIC => (archive, false),
            Some((magic, archive)) if *magic == MAGIC_V1 => (archive, true),
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
        let catalog = if v1 {
            let old = rkyv::from_bytes::<CatalogV1, rancor::Error>(&aligned).map_err(invalid)?;
            Catalog {
                version: old.version,
                next_id: old.next_id,
                topics: old.topics,
                subscriptions: BTreeMap::new(),
            }
        } else {
            rkyv::from_bytes::<Catalog, rancor::Error>(&aligned).map_err(invalid)?
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
        let old = CatalogV1 {
            version: current.version,
            next_id: current.next_id,
            topics: current.topics.clone(),
        };
        let archive = rkyv::to_bytes::<rancor::Error>(&old).unwrap_or_else(|e| panic!("{e}"));
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&archive);
        assert_eq!(Catalog::from_bytes(&bytes), Ok(current.clone()));
        let written = current.to_bytes().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written[..8], MAGIC);
    }
}
