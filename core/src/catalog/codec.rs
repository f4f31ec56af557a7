//! The catalog's bytes: a magic with the format version, then the rkyv
//! archive of [`Catalog`].
//!
//! ```text
//! 0  8  magic "TGCATLG1" (the last byte is the format version)
//! 8  .. rkyv 0.8 archive of Catalog (little-endian, 32-bit relative
//!       pointers: rkyv's default format)
//! ```
//!
//! The archive is validated with bytecheck before it is read, since it
//! comes from a disk, then the decoded catalog's own invariants are checked
//! (names, partition counts, unique ids below `next_id`).

use rkyv::rancor;
use rkyv::util::AlignedVec;

use super::{Catalog, CatalogError};

const MAGIC: [u8; 8] = *b"TGCATLG1";

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
        let archive = match bytes.split_first_chunk::<8>() {
            Some((magic, archive)) if *magic == MAGIC => archive,
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
        let catalog = rkyv::from_bytes::<Catalog, rancor::Error>(&aligned)
            .map_err(|e| decode(format!("invalid archive: {e}")))?;
        catalog.check_invariants().map_err(decode)?;
        Ok(catalog)
    }
}
