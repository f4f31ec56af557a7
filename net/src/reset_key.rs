//! The endpoint's stateless reset key, kept in the data directory.
//!
//! A QUIC server hands each connection ID a stateless reset token derived
//! from this key. After a crash and restart, a client still sending on a
//! connection the new process does not know is answered with a stateless
//! reset, which it accepts only if the token matches: with the key kept
//! across restarts it does, and the client reconnects at once instead of
//! waiting out its idle timeout (quinn-proto's default key is random per
//! process).

use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::NetError;

/// Bytes of the key (an HMAC-SHA256 key).
pub const RESET_KEY_LEN: usize = 32;

/// The key in `<data_dir>/tls/quic-reset.key`, created with fresh random
/// bytes when missing or not a key (a new key only costs the resets of
/// connections made before it).
pub fn load_or_create_reset_key(data_dir: &Path) -> Result<[u8; RESET_KEY_LEN], NetError> {
    let dir = data_dir.join("tls");
    let path = dir.join("quic-reset.key");
    let io = |path: &Path, e: std::io::Error| NetError::TlsFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            if let Ok(key) = <[u8; RESET_KEY_LEN]>::try_from(bytes.as_slice()) {
                return Ok(key);
            }
            tracing::warn!(path = %path.display(), len = bytes.len(), "the stateless reset key is not 32 bytes: making a new one");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&path, e)),
    }
    let mut key = [0u8; RESET_KEY_LEN];
    rand::rng().fill_bytes(&mut key);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    // Written aside and renamed: a crash leaves the old key or the new.
    let aside = PathBuf::from(format!("{}.tmp", path.display()));
    crate::tls::write_private(&aside, &key).map_err(|e| io(&aside, e))?;
    std::fs::rename(&aside, &path).map_err(|e| io(&path, e))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = load_or_create_reset_key(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let again = load_or_create_reset_key(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, again);
        assert_ne!(first, [0u8; RESET_KEY_LEN]);
    }

    #[test]
    fn a_file_that_is_not_a_key_is_replaced() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("tls/quic-reset.key");
        std::fs::create_dir_all(dir.path().join("tls")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, b"short").unwrap_or_else(|e| panic!("{e}"));
        let key = load_or_create_reset_key(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored, key);
    }
}
