//! Every configuration key, and how environment variables name them.
//!
//! The list is what environment variables are checked against; a unit test
//! keeps it equal to the keys [`super::ServeConfig`] serializes.

/// How a key's value is written in an environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A TOML string: paths, addresses, sizes, durations, names.
    Text,
    /// A TOML integer.
    Integer,
    /// A TOML boolean (`true` / `false`).
    Bool,
}

/// Every key as its dotted path, with its kind.
pub const KEYS: &[(&str, KeyKind)] = &[
    ("data_dir", KeyKind::Text),
    ("listen", KeyKind::Text),
    ("admin_listen", KeyKind::Text),
    ("cores", KeyKind::Text),
    ("log_format", KeyKind::Text),
    ("shard.io_memory", KeyKind::Text),
    ("tls.cert", KeyKind::Text),
    ("tls.key", KeyKind::Text),
    ("storage.segment_bytes", KeyKind::Text),
    ("storage.prepare_segments", KeyKind::Text),
    ("storage.index_interval_bytes", KeyKind::Text),
    ("storage.write_chunk_bytes", KeyKind::Text),
    ("storage.write_concurrency", KeyKind::Integer),
    ("storage.pending_bytes_max", KeyKind::Text),
    ("storage.buffer_pool_bytes_max", KeyKind::Text),
    ("storage.read_cache_bytes", KeyKind::Text),
    ("storage.open_segments_max", KeyKind::Integer),
    ("storage.retention", KeyKind::Text),
    ("storage.retention_bytes", KeyKind::Text),
    ("storage.retention_check_interval", KeyKind::Text),
    ("quic.max_connections", KeyKind::Integer),
    ("quic.max_concurrent_streams", KeyKind::Integer),
    ("quic.stream_receive_window", KeyKind::Text),
    ("quic.connection_receive_window", KeyKind::Text),
    ("quic.gro", KeyKind::Bool),
    ("quic.gso", KeyKind::Bool),
    ("quic.idle_timeout", KeyKind::Text),
    ("quic.request_timeout", KeyKind::Text),
    ("quic.socket_receive_buffer", KeyKind::Text),
    ("quic.socket_send_buffer", KeyKind::Text),
    ("quic.keep_alive", KeyKind::Text),
    ("quic.max_connections_per_address", KeyKind::Integer),
    ("quic.max_handshakes", KeyKind::Integer),
    ("quic.handshake_timeout", KeyKind::Text),
    ("quic.retry_handshakes_per_s", KeyKind::Integer),
    ("limits.max_request_bytes", KeyKind::Text),
    ("limits.shard_inflight_bytes_max", KeyKind::Text),
    ("limits.shard_inflight_requests_max", KeyKind::Integer),
    ("flow.enabled", KeyKind::Bool),
    ("flow.latency_target", KeyKind::Text),
    ("flow.control_interval", KeyKind::Text),
    ("flow.disk_queue_target", KeyKind::Text),
    ("flow.disk_syncs_max", KeyKind::Integer),
    ("flow.disk_sync_barriers", KeyKind::Bool),
    ("flow.min_window", KeyKind::Text),
    ("flow.quantum", KeyKind::Text),
    ("flow.max_fetches", KeyKind::Integer),
    ("producers.max_per_partition", KeyKind::Integer),
    ("producers.expiry", KeyKind::Text),
    ("producers.reorder_wait", KeyKind::Text),
    ("subscriptions.window_max", KeyKind::Integer),
    ("subscriptions.outstanding_max", KeyKind::Integer),
    ("subscriptions.delayed_max", KeyKind::Integer),
    ("subscriptions.push_streams_max", KeyKind::Integer),
    ("groups.offsets_retention", KeyKind::Text),
    ("auth.mode", KeyKind::Text),
    ("auth.allow_anonymous_remote", KeyKind::Bool),
    ("auth.client_ca", KeyKind::Text),
    ("auth.certificate_principal", KeyKind::Text),
    ("auth.jwt_audience", KeyKind::Text),
    ("auth.jwt_issuer", KeyKind::Text),
    ("auth.jwt_principal_claim", KeyKind::Text),
    ("auth.jwt_leeway_secs", KeyKind::Integer),
    ("auth.admin_token_hash", KeyKind::Text),
];

/// Sections of the file, the `[name]` tables.
/// `[flow]` also has `weights`, and `[auth]` has lists (`tokens`, `jwt_keys`, `principals`, `groups`,
/// `acl`) that only the file sets.
const SECTIONS: &[&str] = &[
    "shard",
    "tls",
    "storage",
    "quic",
    "limits",
    "flow",
    "producers",
    "subscriptions",
    "auth",
];

/// `TIDEGATE_*` variables that are not configuration keys: the CLI's server
/// address and the log filter. They are left alone.
pub const IGNORED_ENV_VARS: &[&str] = &["TIDEGATE_SERVER", "TIDEGATE_LOG", "TIDEGATE_TOKEN"];

const ENV_PREFIX: &str = "TIDEGATE_";

/// The environment variable that sets `key`: `TIDEGATE_` and the dotted path
/// upper-cased with `__` for the dot (`storage.segment_bytes` →
/// `TIDEGATE_STORAGE__SEGMENT_BYTES`).
pub fn env_var_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// What an environment variable means to the configuration.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EnvMatch {
    /// It sets this key.
    Key(&'static str, KeyKind),
    /// It looks like a key but names none; the hint may help.
    Unknown { key: String, hint: String },
    /// Not a configuration variable (another tool's, or ignored).
    NotOurs,
}

/// Classifies `var`. A `TIDEGATE_*` name is taken as meant for the
/// configuration when it contains `__`, or names a section or top-level key,
/// or starts with one followed by `_` (a typo such as
/// `TIDEGATE_STORAGE_SEGMENT_BYTES`). Others, such as the benchmarks'
/// `TIDEGATE_BENCH_*`, are not ours to reject.
pub(crate) fn classify_env(var: &str) -> EnvMatch {
    let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
        return EnvMatch::NotOurs;
    };
    if IGNORED_ENV_VARS.contains(&var) {
        return EnvMatch::NotOurs;
    }
    let key = rest.to_ascii_lowercase().replace("__", ".");
    if let Some(&(path, kind)) = KEYS.iter().find(|(path, _)| *path == key) {
        return EnvMatch::Key(path, kind);
    }
    let top_level = KEYS.iter().map(|(p, _)| *p).filter(|p| !p.contains('.'));
    let lower = rest.to_ascii_lowercase();
    let looks_like_ours = rest.contains("__")
        || SECTIONS
            .iter()
            .copied()
            .chain(top_level)
            .any(|name| lower == name || lower.starts_with(&format!("{name}_")));
    if !looks_like_ours {
        return EnvMatch::NotOurs;
    }
    EnvMatch::Unknown {
        hint: env_hint(&key),
        key,
    }
}

/// Suggests the variable that was probably meant.
fn env_hint(key: &str) -> String {
    for section in SECTIONS {
        let Some(rest) = key.strip_prefix(section) else {
            continue;
        };
        if let Some(field) = rest.strip_prefix('_') {
            let path = format!("{section}.{field}");
            if KEYS.iter().any(|(p, _)| *p == path) {
                return format!(
                    "; use `__` between section and key: {}",
                    env_var_name(&path)
                );
            }
        }
        let prefix = format!("{section}.");
        let known: Vec<String> = KEYS
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| env_var_name(p))
            .collect();
        return format!("; [{section}] has {}", known.join(", "));
    }
    "; see docs/CONFIG.md for the variables".to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::PathBuf;

    use super::*;
    use crate::config::{Duration, ServeConfig, Size};

    /// Dotted paths of every leaf of a TOML table.
    fn leaves(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => leaves(t, &path, out),
                _ => out.push(path),
            }
        }
    }

    #[test]
    fn keys_list_every_field_of_the_config_with_its_kind() {
        let mut config = ServeConfig::default();
        config.tls.cert = Some(PathBuf::from("c.pem"));
        config.tls.key = Some(PathBuf::from("k.pem"));
        config.storage.retention = Some(Duration::secs(1));
        config.storage.retention_bytes = Some(Size::mib(1));
        config.auth.client_ca = Some(PathBuf::from("ca.pem"));
        config.auth.jwt_issuer = Some("issuer".into());
        config.auth.admin_token_hash = Some(tidegate_auth::hash_token("t"));
        let table = toml::Table::try_from(&config).unwrap();
        let mut found = Vec::new();
        leaves(&table, "", &mut found);
        found.sort();
        let mut listed: Vec<String> = KEYS.iter().map(|(p, _)| (*p).to_owned()).collect();
        listed.sort();
        assert_eq!(found, listed);
        for (path, kind) in KEYS {
            let (section, field) = path.split_once('.').unwrap_or(("", path));
            let value = if section.is_empty() {
                &table[field]
            } else {
                &table[section][field]
            };
            assert_eq!(value.is_integer(), *kind == KeyKind::Integer, "{path}");
            assert_eq!(value.is_bool(), *kind == KeyKind::Bool, "{path}");
        }
    }

    #[test]
    fn env_names_are_classified() {
        assert_eq!(
            classify_env("TIDEGATE_STORAGE__SEGMENT_BYTES"),
            EnvMatch::Key("storage.segment_bytes", KeyKind::Text)
        );
        assert_eq!(
            classify_env("TIDEGATE_DATA_DIR"),
            EnvMatch::Key("data_dir", KeyKind::Text)
        );
        assert_eq!(classify_env("TIDEGATE_SERVER"), EnvMatch::NotOurs);
        assert_eq!(classify_env("TIDEGATE_LOG"), EnvMatch::NotOurs);
        assert_eq!(classify_env("TIDEGATE_BENCH_IO_MEMORY"), EnvMatch::NotOurs);
        assert_eq!(classify_env("PATH"), EnvMatch::NotOurs);
        let EnvMatch::Unknown { key, hint } = classify_env("TIDEGATE_STORAGE_SEGMENT_BYTES") else {
            panic!("a single underscore after the section is a typo");
        };
        assert_eq!(key, "storage_segment_bytes");
        assert!(hint.contains("TIDEGATE_STORAGE__SEGMENT_BYTES"), "{hint}");
        assert!(matches!(
            classify_env("TIDEGATE_QUIC__MAX_CONN"),
            EnvMatch::Unknown { .. }
        ));
        assert!(matches!(
            classify_env("TIDEGATE_LISTEN_ADDR"),
            EnvMatch::Unknown { .. }
        ));
        assert!(matches!(
            classify_env("TIDEGATE_STORAGE"),
            EnvMatch::Unknown { .. }
        ));
    }
}
