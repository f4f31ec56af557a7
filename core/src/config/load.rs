//! Loading: the file, then `TIDEGATE_*` variables, then flags, over the
//! defaults and the data directory's `disk.toml` (see `disk.rs`).
//!
//! Done by hand over `toml` values rather than with a layering crate, for
//! the errors: the file is deserialized on its own first, so a bad value in
//! it is reported with its line and column; the layers above it are then
//! merged into its table and deserialized once more, and every key set by a
//! variable or a flag remembers which one set it, so an error names the
//! variable or the flag, not just the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::error::{ConfigError, Origin};
use super::keys::{classify_env, EnvMatch, KeyKind};
use super::{disk, validate, LogFormat, ServeConfig};

/// The `tidegate serve` flags that override configuration keys. Each beats
/// the environment and the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--data-dir DIR`: sets `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen ADDR`: sets `listen`.
    pub listen: Option<SocketAddr>,
    /// `--admin-listen ADDR`: sets `admin_listen`.
    pub admin_listen: Option<SocketAddr>,
    /// `--log-format text|json`: sets `log_format`.
    pub log_format: Option<LogFormat>,
}

/// The file's text, kept to locate keys in error messages.
pub(super) struct FileSource<'a> {
    pub(super) path: &'a Path,
    pub(super) text: String,
}

impl FileSource<'_> {
    /// The origin of a value at byte `span` of the file.
    pub(super) fn origin_at(&self, span: Option<Range<usize>>) -> Origin {
        let (line, column) = match span {
            Some(span) => {
                let (line, column) = line_column(&self.text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Origin::File {
            path: self.path.to_path_buf(),
            line,
            column,
        }
    }

    /// The origin of the value of dotted `key` in the file; the default
    /// when the file does not set it.
    pub(super) fn origin_of(&self, key: &str) -> Origin {
        match span_of(&self.text, key) {
            Some(span) => self.origin_at(Some(span)),
            None => Origin::Default,
        }
    }
}

impl ServeConfig {
    /// Loads the configuration: `file` (TOML, optional) over the defaults,
    /// then every `TIDEGATE_*` variable of `env`, then `overrides`; then
    /// `storage.write_chunk_bytes` / `write_concurrency`, where none of those
    /// set them, from `DATA_DIR/disk.toml` if `tidegate tune disk` wrote one.
    ///
    /// `env` is passed in (`std::env::vars()` in the binary, a map in
    /// tests). A `TIDEGATE_*` variable that looks like a key (it contains
    /// `__`, or is or starts with a section or top-level key name and `_`)
    /// but names none is an error; [`super::IGNORED_ENV_VARS`] and other
    /// names, such as the benchmarks' `TIDEGATE_BENCH_*`, are left alone.
    /// Values are then checked one by one and together, including
    /// [`tidegate_queue::LogConfig::validate`]; the first problem is
    /// returned, naming the key and where its value came from.
    pub fn load<I, K, V>(
        file: Option<&Path>,
        env: I,
        overrides: &Overrides,
    ) -> Result<ServeConfig, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let source = file.map(read_file).transpose()?;
        let mut table = match &source {
            Some(source) => parse_file(source)?,
            None => Table::new(),
        };
        let mut origins = BTreeMap::new();
        apply_env(&mut table, &mut origins, env)?;
        apply_overrides(&mut table, &mut origins, overrides)?;
        // After every explicit layer, so that only keys none of them set
        // are filled from the measurement, and before the checks, so that
        // its values are checked like any other.
        disk::merge(&mut table, &mut origins)?;
        let origin_of = |key: &str| match (origins.get(key), &source) {
            (Some(origin), _) => origin.clone(),
            (None, Some(source)) => source.origin_of(key),
            (None, None) => Origin::Default,
        };
        let config: ServeConfig =
            serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let origin = origin_of(&key);
                value_error(key, origin, e.into_inner().message())
            })?;
        if let Err((key, message)) = validate::check(&config) {
            return Err(ConfigError::Invalid {
                origin: origin_of(&key),
                key,
                message,
            });
        }
        Ok(config)
    }
}

fn read_file(path: &Path) -> Result<FileSource<'_>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(FileSource { path, text })
}

/// Checks the file on its own (so an error has a position) and returns its
/// table for merging.
fn parse_file(source: &FileSource<'_>) -> Result<Table, ConfigError> {
    let syntax = |e: toml::de::Error| ConfigError::Syntax {
        origin: source.origin_at(e.span()),
        message: e.message().to_owned(),
    };
    let deserializer = toml::Deserializer::parse(&source.text).map_err(syntax)?;
    serde_path_to_error::deserialize::<_, ServeConfig>(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let origin = source.origin_at(inner.span());
        value_error(key, origin, inner.message())
    })?;
    source.text.parse::<Table>().map_err(syntax)
}

/// Turns a deserialization message into an error about `key`. serde reports
/// an unknown field at its parent's path, so the field is taken from the
/// message.
pub(super) fn value_error(key: String, origin: Origin, message: &str) -> ConfigError {
    if let Some(field) = unknown_field(message) {
        let key = match key.as_str() {
            "" | "." => field.to_owned(),
            path if path == field || path.ends_with(&format!(".{field}")) => path.to_owned(),
            parent => format!("{parent}.{field}"),
        };
        let hint = message
            .split_once(", expected ")
            .map(|(_, expected)| format!("; expected {expected}"))
            .unwrap_or_default();
        return ConfigError::UnknownKey { key, origin, hint };
    }
    ConfigError::Invalid {
        key,
        origin,
        message: message.to_owned(),
    }
}

/// The field named by serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(field, _)| field)
}

fn apply_env<I, K, V>(
    table: &mut Table,
    origins: &mut BTreeMap<String, Origin>,
    env: I,
) -> Result<(), ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    // Sorted, so that with several bad variables the same one is reported
    // every time.
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
        .collect();
    vars.sort();
    for (var, raw) in vars {
        let (key, kind) = match classify_env(&var) {
            EnvMatch::NotOurs => continue,
            EnvMatch::Unknown { key, hint } => {
                return Err(ConfigError::UnknownKey {
                    key,
                    origin: Origin::Env { var },
                    hint,
                })
            }
            EnvMatch::Key(key, kind) => (key, kind),
        };
        let origin = Origin::Env { var };
        let value = env_value(&raw, kind).map_err(|message| ConfigError::Invalid {
            key: key.to_owned(),
            origin: origin.clone(),
            message,
        })?;
        set_path(table, key, value);
        origins.insert(key.to_owned(), origin);
    }
    Ok(())
}

/// An environment variable's text as the TOML value its key takes.
fn env_value(raw: &str, kind: KeyKind) -> Result<Value, String> {
    match kind {
        KeyKind::Text => Ok(Value::String(raw.to_owned())),
        KeyKind::Integer => raw
            .trim()
            .replace('_', "")
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("`{raw}` is not an integer")),
        KeyKind::Bool => match raw.trim() {
            "true" => Ok(Value::Boolean(true)),
            "false" => Ok(Value::Boolean(false)),
            _ => Err(format!("`{raw}` is not `true` or `false`")),
        },
    }
}

fn apply_overrides(
    table: &mut Table,
    origins: &mut BTreeMap<String, Origin>,
    overrides: &Overrides,
) -> Result<(), ConfigError> {
    if let Some(dir) = &overrides.data_dir {
        let origin = Origin::Flag { flag: "--data-dir" };
        let text = dir.to_str().ok_or_else(|| ConfigError::Invalid {
            key: "data_dir".into(),
            origin: origin.clone(),
            message: format!("`{}` is not valid UTF-8", dir.display()),
        })?;
        set_path(table, "data_dir", Value::String(text.to_owned()));
        origins.insert("data_dir".into(), origin);
    }
    let addresses = [
        ("listen", "--listen", overrides.listen),
        ("admin_listen", "--admin-listen", overrides.admin_listen),
    ];
    for (key, flag, addr) in addresses {
        if let Some(addr) = addr {
            set_path(table, key, Value::String(addr.to_string()));
            origins.insert(key.into(), Origin::Flag { flag });
        }
    }
    if let Some(format) = overrides.log_format {
        let text = match format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        set_path(table, "log_format", Value::String(text.to_owned()));
        origins.insert(
            "log_format".into(),
            Origin::Flag {
                flag: "--log-format",
            },
        );
    }
    Ok(())
}

/// Sets dotted `key` (at most one section deep) in `table`. A section that
/// is missing, or that the file wrote as something other than a table, is
/// replaced by a table; the file's own shape was checked already.
pub(super) fn set_path(table: &mut Table, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            table.insert(key.to_owned(), value);
        }
        Some((section, field)) => {
            let entry = table
                .entry(section.to_owned())
                .or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            if let Value::Table(inner) = entry {
                inner.insert(field.to_owned(), value);
            }
        }
    }
}

/// Byte span of the value of dotted `key` in TOML `text`.
fn span_of(text: &str, key: &str) -> Option<Range<usize>> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let value = table.get(part)?;
        if parts.peek().is_none() {
            return Some(value.span());
        }
        table = value.get_ref().as_table()?;
    }
    None
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}
