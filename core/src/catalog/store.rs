//! The catalog file: `<data_dir>/meta/catalog`.

use std::path::{Path, PathBuf};

use glommio::io::Directory;
use tidegate_queue::{durable, IoFailure, LogError};

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
        // Absolute: glommio opens paths with openat(-1, ..), which fails on
        // a relative one (EBADF).
        let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
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
        if let Some(meta_dir) = self.path.parent() {
            ensure_dir(meta_dir).await?;
        }
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

/// Creates `dir` if it is missing and makes its entry durable (fsync of the
/// parent), so a catalog saved into a new data directory survives a crash.
async fn ensure_dir(dir: &Path) -> Result<(), CatalogError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| storage_error("mkdir", dir, &e))?;
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    let handle = Directory::open(parent)
        .await
        .map_err(|e| storage_error("open", parent, &e.into()))?;
    let synced = handle.sync().await;
    let _ = handle.close().await;
    synced.map_err(|e| storage_error("fsync", parent, &e.into()))
}

fn storage_error(op: &'static str, path: &Path, err: &std::io::Error) -> CatalogError {
    let failure = IoFailure {
        op,
        path: path.to_path_buf(),
        errno: err.raw_os_error(),
        message: err.to_string(),
    };
    CatalogError::Storage(if failure.is_no_space() {
        LogError::NoSpace(failure)
    } else {
        LogError::Io(failure)
    })
}
