//! `DATA_DIR/disk.toml`: the write size and concurrency `tidegate tune
//! disk` measured for the disk under the data directory.
//!
//! It sits between the defaults and the file in precedence: its values
//! fill `storage.write_chunk_bytes` and `storage.write_concurrency` only
//! where the config file, a `TIDEGATE_*` variable or a flag left them
//! unset, since an operator's explicit choice beats a measurement. It lives
//! in the data directory, not the config file, because it describes that
//! disk: moving the data moves (or drops) the measurement with it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::{Table, Value};

use super::error::{ConfigError, Origin};
use super::load::{set_path, value_error, FileSource};
use super::Size;

/// The file's name inside the data directory.
pub const DISK_FILE_NAME: &str = "disk.toml";

/// The file's shape, only to check it: unknown keys are errors, as in the
/// config file, so a typo does not silently leave a default in place.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Read through the TOML table; this only checks types.
struct DiskFile {
    #[serde(default)]
    disk: DiskSection,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
#[allow(dead_code)]
struct DiskSection {
    write_chunk_bytes: Option<Size>,
    write_concurrency: Option<u32>,
}

/// Each `[disk]` key and the configuration key it fills.
const FILLS: [(&str, &str); 2] = [
    ("write_chunk_bytes", "storage.write_chunk_bytes"),
    ("write_concurrency", "storage.write_concurrency"),
];

/// Fills the storage keys `table` (file, environment and flags merged)
/// leaves unset from `DATA_DIR/disk.toml`, if that file exists, recording
/// the file as their origin so a later check names it.
pub(super) fn merge(
    table: &mut Table,
    origins: &mut BTreeMap<String, Origin>,
) -> Result<(), ConfigError> {
    // A data_dir of the wrong type is reported by the deserialization that
    // follows; there is no disk.toml to look for until then.
    let data_dir = match table.get("data_dir") {
        None => PathBuf::from(crate::DEFAULT_DATA_DIR),
        Some(Value::String(dir)) => PathBuf::from(dir),
        Some(_) => return Ok(()),
    };
    let path = data_dir.join(DISK_FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let source = FileSource { path: &path, text };
    let disk = parse(&source)?;
    for (field, key) in FILLS {
        let Some(value) = disk.get(field) else {
            continue;
        };
        let explicit = key
            .split_once('.')
            .and_then(|(section, name)| table.get(section)?.as_table()?.get(name))
            .is_some();
        if explicit {
            tracing::info!(
                "{key}: the configured value wins over {} ({field} = {value})",
                path.display()
            );
            continue;
        }
        tracing::info!("{key} = {value}, from {}", path.display());
        origins.insert(key.to_owned(), source.origin_of(&format!("disk.{field}")));
        set_path(table, key, value.clone());
    }
    Ok(())
}

/// Checks the file and returns its `[disk]` table (empty without one).
fn parse(source: &FileSource<'_>) -> Result<Table, ConfigError> {
    let syntax = |e: toml::de::Error| ConfigError::Syntax {
        origin: source.origin_at(e.span()),
        message: e.message().to_owned(),
    };
    let deserializer = toml::Deserializer::parse(&source.text).map_err(syntax)?;
    serde_path_to_error::deserialize::<_, DiskFile>(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        value_error(key, source.origin_at(inner.span()), inner.message())
    })?;
    let mut root = source.text.parse::<Table>().map_err(syntax)?;
    Ok(match root.remove("disk") {
        Some(Value::Table(disk)) => disk,
        _ => Table::new(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use std::path::Path;

    use super::*;
    use crate::config::{Overrides, ServeConfig};

    fn data_dir(disk_toml: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DISK_FILE_NAME), disk_toml).unwrap();
        dir
    }

    fn load(
        dir: &Path,
        file: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<ServeConfig, ConfigError> {
        let config = dir.join("tidegate.toml");
        if let Some(text) = file {
            std::fs::write(&config, text).unwrap();
        }
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let overrides = Overrides {
            data_dir: Some(dir.to_path_buf()),
            ..Overrides::default()
        };
        ServeConfig::load(file.map(|_| config.as_path()), env, &overrides)
    }

    const PROBED: &str =
        "# measured\n[disk]\nwrite_chunk_bytes = \"1MiB\"\nwrite_concurrency = 2\n";

    #[test]
    fn disk_toml_config_values_are_used_when_nothing_explicit_sets_them() {
        let dir = data_dir(PROBED);
        let config = load(dir.path(), None, &[]).unwrap();
        assert_eq!(config.storage.write_chunk_bytes, Size::mib(1));
        assert_eq!(config.storage.write_concurrency, 2);
    }

    #[test]
    fn disk_toml_config_loses_to_the_file_and_the_environment() {
        let dir = data_dir(PROBED);
        let file = "[storage]\nwrite_chunk_bytes = \"128KiB\"\n";
        let config = load(dir.path(), Some(file), &[]).unwrap();
        assert_eq!(config.storage.write_chunk_bytes, Size::kib(128));
        assert_eq!(config.storage.write_concurrency, 2);

        let env = [("TIDEGATE_STORAGE__WRITE_CONCURRENCY", "16")];
        let config = load(dir.path(), None, &env).unwrap();
        assert_eq!(config.storage.write_chunk_bytes, Size::mib(1));
        assert_eq!(config.storage.write_concurrency, 16);
    }

    #[test]
    fn disk_toml_config_garbage_is_an_error_naming_the_file_and_key() {
        let dir = data_dir("[disk]\nwrite_chunk_bytes = \"lots\"\n");
        let err = load(dir.path(), None, &[]).unwrap_err();
        assert_eq!(err.key(), Some("disk.write_chunk_bytes"), "{err}");
        let Some(Origin::File { path, line, .. }) = err.origin() else {
            panic!("origin is not disk.toml: {err}");
        };
        assert_eq!(path, &dir.path().join(DISK_FILE_NAME));
        assert_eq!(*line, Some(2));

        let dir = data_dir("[disk]\nwrite_chunk_byte = \"1MiB\"\n");
        let err = load(dir.path(), None, &[]).unwrap_err();
        assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err}");
        assert_eq!(err.key(), Some("disk.write_chunk_byte"), "{err}");
    }

    #[test]
    fn disk_toml_config_values_are_checked_like_any_other() {
        let dir = data_dir("[disk]\nwrite_chunk_bytes = \"100KiB\"\n");
        let err = load(dir.path(), None, &[]).unwrap_err();
        assert_eq!(err.key(), Some("storage.write_chunk_bytes"), "{err}");
        assert!(err.to_string().contains(DISK_FILE_NAME), "{err}");
    }

    #[test]
    fn disk_toml_config_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        let config = load(dir.path(), None, &[]).unwrap();
        assert_eq!(config.storage, crate::config::StorageConfig::default());
    }
}
