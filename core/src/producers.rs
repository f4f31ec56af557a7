//! Producer identities (docs/SEMANTICS.md §2): shard 0 hands out producer
//! ids, and epochs for named producers, kept in `<data_dir>/meta/producers`.
//!
//! Ids are reserved in blocks: the file records the end of the block in
//! use, and ids below it are handed out from memory. After a restart the
//! next block starts, so an id is never handed out twice, at the cost of
//! skipping the rest of a block. A named producer's entry is saved before
//! its new epoch is answered, so a crash cannot hand the same epoch out
//! twice.
//!
//! The file is the durable small-file framing around a magic and the rkyv
//! archive of [`Registry`], validated before it is read.

use std::{
    cell::RefCell,
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use rkyv::{rancor, util::AlignedVec};
use tidegate_proto::protocol::ErrorCode;
use tidegate_queue::{durable, LogError};

use crate::shard::Failure;

const MAGIC: [u8; 8] = *b"TGPRODR1";
/// Ids reserved per save of the registry.
const ID_BLOCK: i64 = 1024;
/// Most named producers the registry keeps: bounds the file and memory.
pub const NAMED_PRODUCERS_MAX: usize = 100_000;

/// What is stored.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct Registry {
    /// Every id below this may have been handed out.
    reserved: i64,
    /// Named producers: name → (id, epoch).
    named: BTreeMap<String, (i64, i16)>,
}

impl Registry {
    fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let archive = rkyv::to_bytes::<rancor::Error>(self).map_err(|e| e.to_string())?;
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&archive);
        Ok(bytes)
    }

    /// Decodes what `to_bytes` wrote; any input gives a registry or an
    /// error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Registry, String> {
        let archive = match bytes.split_first_chunk::<8>() {
            Some((magic, archive)) if *magic == MAGIC => archive,
            _ => return Err("bad magic".into()),
        };
        let mut aligned = AlignedVec::<16>::with_capacity(archive.len());
        aligned.extend_from_slice(archive);
        let registry = rkyv::from_bytes::<Registry, rancor::Error>(&aligned)
            .map_err(|e| format!("invalid archive: {e}"))?;
        let bad_entry = registry
            .named
            .values()
            .any(|&(id, epoch)| id < 0 || id >= registry.reserved || epoch < 0);
        if registry.reserved < 0 || bad_entry || registry.named.len() > NAMED_PRODUCERS_MAX {
            return Err("entries out of range".into());
        }
        Ok(registry)
    }
}

/// Shard 0's producer registry: loaded on first use, saved on each change.
pub(crate) struct Producers {
    path: PathBuf,
    /// `(registry as stored, next id to hand out)`, once loaded.
    state: RefCell<Option<(Registry, i64)>>,
    /// One InitProducer at a time: each may save the file.
    lock: futures::lock::Mutex<()>,
}

impl Producers {
    pub(crate) fn new(data_dir: &Path) -> Producers {
        Producers {
            path: data_dir.join("meta").join("producers"),
            state: RefCell::new(None),
            lock: futures::lock::Mutex::new(()),
        }
    }

    /// An identity: a fresh id with epoch 0 (`name` empty), or the name's
    /// id with its epoch raised by one.
    pub(crate) async fn init(&self, name: &str) -> Result<(i64, i16), Failure> {
        let _one_at_a_time = self.lock.lock().await;
        let loaded = self.state.borrow().clone();
        let (mut registry, mut next) = match loaded {
            Some(loaded) => loaded,
            None => {
                let registry = self.load().await?;
                let next = registry.reserved;
                (registry, next)
            }
        };
        let identity = if name.is_empty() {
            (take_id(&mut registry, &mut next), 0)
        } else {
            match registry.named.get(name).copied() {
                Some((id, epoch)) if epoch < i16::MAX => (id, epoch + 1),
                // A new name, or one whose epochs are used up (as Kafka
                // does): a new id.
                known => {
                    if known.is_none() && registry.named.len() >= NAMED_PRODUCERS_MAX {
                        return Err(Failure::new(
                            ErrorCode::InvalidRequest,
                            format!(
                                "the server keeps at most {NAMED_PRODUCERS_MAX} named producers"
                            ),
                        ));
                    }
                    (take_id(&mut registry, &mut next), 0)
                }
            }
        };
        if !name.is_empty() {
            registry.named.insert(name.to_owned(), identity);
        }
        let stored = self.state.borrow().as_ref().map(|(r, _)| r.clone());
        if stored.as_ref() != Some(&registry) {
            self.save(&registry).await?;
        }
        *self.state.borrow_mut() = Some((registry, next));
        Ok(identity)
    }

    async fn load(&self) -> Result<Registry, Failure> {
        match durable::read(&self.path).await {
            Ok(None) => Ok(Registry::default()),
            Ok(Some(bytes)) => Registry::from_bytes(&bytes).map_err(|reason| self.corrupt(&reason)),
            Err(LogError::Corrupt { reason, .. }) => Err(self.corrupt(&reason)),
            Err(e) => Err(Failure::from(&e)),
        }
    }

    async fn save(&self, registry: &Registry) -> Result<(), Failure> {
        let bytes = registry
            .to_bytes()
            .map_err(|e| Failure::new(ErrorCode::Internal, e))?;
        durable::write(&self.path, &bytes)
            .await
            .map_err(|e| Failure::from(&e))
    }

    fn corrupt(&self, reason: &str) -> Failure {
        tracing::error!(path = %self.path.display(), reason, "producer registry is damaged");
        Failure::new(
            ErrorCode::StorageFailed,
            format!(
                "producer registry {} is damaged: {reason}",
                self.path.display()
            ),
        )
    }
}

/// The next id, reserving a new block in `registry` when the current one
/// is used up.
fn take_id(registry: &mut Registry, next: &mut i64) -> i64 {
    if *next >= registry.reserved {
        registry.reserved = registry.reserved.saturating_add(ID_BLOCK);
    }
    let id = *next;
    *next += 1;
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_reserved_blocks_and_names_keep_theirs() {
        let mut registry = Registry::default();
        let mut next = 0;
        assert_eq!(take_id(&mut registry, &mut next), 0);
        assert_eq!(registry.reserved, ID_BLOCK);
        for expected in 1..ID_BLOCK {
            assert_eq!(take_id(&mut registry, &mut next), expected);
        }
        assert_eq!(take_id(&mut registry, &mut next), ID_BLOCK);
        assert_eq!(registry.reserved, 2 * ID_BLOCK);
    }

    #[test]
    fn the_registry_round_trips_and_bad_bytes_are_errors() {
        let mut registry = Registry {
            reserved: 2048,
            ..Registry::default()
        };
        registry.named.insert("orders-writer".into(), (5, 3));
        let bytes = registry.to_bytes().unwrap_or_default();
        assert_eq!(Registry::from_bytes(&bytes), Ok(registry.clone()));
        // Damage is the durable framing's CRC to catch; cut bytes must
        // still never panic nor read as the registry they were cut from.
        for len in 0..bytes.len() {
            assert_ne!(Registry::from_bytes(&bytes[..len]), Ok(registry.clone()));
        }
        assert!(Registry::from_bytes(&bytes[..8]).is_err());
        assert!(Registry::from_bytes(b"garbage!garbage!").is_err());
        // An entry at or past the reserved mark could be handed out again.
        registry.named.insert("late".into(), (4096, 0));
        let bytes = registry.to_bytes().unwrap_or_default();
        assert!(Registry::from_bytes(&bytes).is_err());
    }

    proptest::proptest! {
        /// The file comes from a disk: any content decodes or fails cleanly.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = Registry::from_bytes(&framed);
            let _ = Registry::from_bytes(&bytes);
        }
    }
}
