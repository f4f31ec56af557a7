//! The catalog file: `<data_dir>/meta/catalog`.

use std::path::{Path, PathBuf};

use tidegate_queue::{durable, LogError};

use super::{Catalog, CatalogError};

/// Loads and saves the catalog of one data directory. Both run on a glommio
/// executor (the file is a DMA file on io_uring).
#[derive(Debug, Clone)]
pub struct CatalogStore {
    path: PathBuf,
}

impl CatalogStore {
    /// The store of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        CatalogStore {
            path: data_dir.join("meta").join("catalog"),
        }
    }

    /// The catalog file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the catalog. A missing file is an empty catalog (a new data
    /// directory); a damaged one is [`CatalogError::Corrupt`].
    pub async fn load(&self) -> Result<Catalog, CatalogError> {
        let content = match durable::read(&self.path).await {
            Ok(Some(content)) => content,
            Ok(None) => return Ok(Catalog::default()),
            Err(LogError::Corrupt { reason, .. }) => return Err(self.corrupt(reason)),
            Err(e) => return Err(CatalogError::Storage(e)),
        };
        Catalog::from_bytes(&content).map_err(|e| match e {
            CatalogError::Decode { reason } => self.corrupt(reason),
            other => other,
        })
    }

    /// Replaces the catalog file with `catalog`, durably and atomically: a
    /// crash leaves the old catalog or the new one.
    pub async fn save(&self, catalog: &Catalog) -> Result<(), CatalogError> {
        let bytes = catalog.to_bytes()?;
        // durable::write creates meta/ durably if it is missing.
        durable::write(&self.path, &bytes)
            .await
            .map_err(CatalogError::Storage)
    }

    fn corrupt(&self, reason: String) -> CatalogError {
        CatalogError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}
