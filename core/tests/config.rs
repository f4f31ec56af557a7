//! `tidegate serve` configuration: defaults, file, environment, flags and
//! the errors an operator sees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tidegate_affinity::CoreSpec;
use tidegate_core::config::{
    ConfigError, Duration, LogFormat, Origin, Overrides, ServeConfig, Size,
};

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

/// Writes `text` to a config file in a fresh directory.
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tidegate.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    (dir, path)
}

fn load_text(text: &str) -> Result<ServeConfig, ConfigError> {
    let (_dir, path) = file(text);
    ServeConfig::load(Some(&path), &no_env(), &Overrides::default())
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const FULL: &str = r#"
data_dir = "/var/lib/tidegate"
listen = "0.0.0.0:7441"
admin_listen = "0.0.0.0:7442"
cores = "0-3,6"
log_format = "json"

[shard]
io_memory = "32MiB"

[tls]
cert = "/etc/tidegate/cert.pem"
key = "/etc/tidegate/key.pem"

[storage]
segment_bytes = "1GiB"
index_interval_bytes = "8KiB"
write_chunk_bytes = "512KiB"
write_concurrency = 4
pending_bytes_max = "128MiB"
buffer_pool_bytes_max = "16MiB"
open_segments_max = 16
retention = "7d"
retention_bytes = "100GB"
retention_check_interval = "1m"

[quic]
max_connections = 500
max_concurrent_streams = 16
stream_receive_window = "2MiB"
connection_receive_window = "32MiB"
idle_timeout = "1m"
keep_alive = "10s"

[limits]
max_request_bytes = "16MiB"
shard_inflight_bytes_max = "512MiB"
shard_inflight_requests_max = 8192
"#;

#[test]
fn defaults_apply_without_file_env_or_flags() {
    let c = ServeConfig::load(None, &no_env(), &Overrides::default()).unwrap();
    assert_eq!(c, ServeConfig::default());
    assert_eq!(c.data_dir, Path::new("./tidegate-data"));
    assert_eq!(c.listen, addr("127.0.0.1:7441"));
    assert_eq!(c.admin_listen, addr("127.0.0.1:7442"));
    assert_eq!(c.cores.spec(), &CoreSpec::All);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.shard.io_memory, Size::mib(1));
    assert_eq!((c.tls.cert.as_ref(), c.tls.key.as_ref()), (None, None));
    assert_eq!(c.storage.segment_bytes, Size::mib(256));
    assert_eq!(c.storage.index_interval_bytes, Size::kib(4));
    assert_eq!(c.storage.write_chunk_bytes, Size::kib(256));
    assert_eq!(c.storage.write_concurrency, 8);
    assert_eq!(c.storage.pending_bytes_max, Size::mib(64));
    assert_eq!(c.storage.buffer_pool_bytes_max, Size::mib(8));
    assert_eq!(
        (c.storage.retention, c.storage.retention_bytes),
        (None, None)
    );
    assert_eq!(c.storage.retention_check_interval, Duration::secs(30));
    assert_eq!(c.quic.max_connections, 10_000);
    assert_eq!(c.quic.max_concurrent_streams, 16);
    assert_eq!(c.quic.stream_receive_window, Size::mib(1));
    assert_eq!(c.quic.connection_receive_window, Size::mib(16));
    assert_eq!(c.quic.idle_timeout, Duration::secs(30));
    assert_eq!(c.quic.keep_alive, Duration::secs(5));
    assert_eq!(c.limits.max_request_bytes, Size::mib(32));
    assert_eq!(c.limits.shard_inflight_bytes_max, Size::mib(256));
    assert_eq!(c.limits.shard_inflight_requests_max, 4096);
}

#[test]
fn an_empty_file_gives_the_defaults() {
    assert_eq!(load_text("").unwrap(), ServeConfig::default());
}

#[test]
fn default_log_config_equals_the_queue_default() {
    let ours = ServeConfig::default().log_config();
    let queue = tidegate_queue::LogConfig::default();
    assert_eq!(ours.segment_bytes_max, queue.segment_bytes_max);
    assert_eq!(ours.index_interval_bytes, queue.index_interval_bytes);
    assert_eq!(ours.write_chunk_bytes, queue.write_chunk_bytes);
    assert_eq!(ours.write_concurrency, queue.write_concurrency);
    assert_eq!(ours.pending_bytes_max, queue.pending_bytes_max);
    assert_eq!(ours.buffer_pool_bytes_max, queue.buffer_pool_bytes_max);
    assert_eq!(ours.open_segments_max, queue.open_segments_max);
    assert_eq!(ours.retention_ms, queue.retention_ms);
    assert_eq!(ours.retention_bytes, queue.retention_bytes);
}

#[test]
fn a_full_file_sets_every_key() {
    let c = load_text(FULL).unwrap();
    assert_eq!(c.data_dir, Path::new("/var/lib/tidegate"));
    assert_eq!(c.listen, addr("0.0.0.0:7441"));
    assert_eq!(c.admin_listen, addr("0.0.0.0:7442"));
    assert_eq!(c.cores.spec(), &CoreSpec::List(vec![0, 1, 2, 3, 6]));
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.shard.io_memory, Size::mib(32));
    assert_eq!(
        c.tls.cert.as_deref(),
        Some(Path::new("/etc/tidegate/cert.pem"))
    );
    assert_eq!(
        c.tls.key.as_deref(),
        Some(Path::new("/etc/tidegate/key.pem"))
    );
    assert_eq!(c.storage.segment_bytes, Size::gib(1));
    assert_eq!(c.storage.index_interval_bytes, Size::kib(8));
    assert_eq!(c.storage.write_chunk_bytes, Size::kib(512));
    assert_eq!(c.storage.write_concurrency, 4);
    assert_eq!(c.storage.pending_bytes_max, Size::mib(128));
    assert_eq!(c.storage.buffer_pool_bytes_max, Size::mib(16));
    assert_eq!(c.storage.open_segments_max, 16);
    assert_eq!(c.storage.retention, Some(Duration::secs(7 * 86_400)));
    assert_eq!(
        c.storage.retention_bytes,
        Some(Size::from_bytes(100_000_000_000))
    );
    assert_eq!(c.storage.retention_check_interval, Duration::secs(60));
    assert_eq!(c.quic.max_connections, 500);
    assert_eq!(c.quic.max_concurrent_streams, 16);
    assert_eq!(c.quic.stream_receive_window, Size::mib(2));
    assert_eq!(c.quic.connection_receive_window, Size::mib(32));
    assert_eq!(c.quic.idle_timeout, Duration::secs(60));
    assert_eq!(c.quic.keep_alive, Duration::secs(10));
    assert_eq!(c.limits.max_request_bytes, Size::mib(16));
    assert_eq!(c.limits.shard_inflight_bytes_max, Size::mib(512));
    assert_eq!(c.limits.shard_inflight_requests_max, 8192);

    let log = c.log_config();
    assert_eq!(log.segment_bytes_max, 1 << 30);
    assert_eq!(log.write_chunk_bytes, 512 << 10);
    assert_eq!(log.write_concurrency, 4);
    assert_eq!(log.retention_ms, Some(7 * 86_400_000));
    assert_eq!(log.retention_bytes, Some(100_000_000_000));
    assert_eq!(log.open_segments_max, 16);
    log.validate().unwrap();
}

#[test]
fn subscription_bounds_come_from_the_file_into_every_window() {
    let c =
        load_text("[subscriptions]\nwindow_max = 1024\noutstanding_max = 10\ndelayed_max = 50\n")
            .unwrap();
    let w = c.window_defaults();
    assert_eq!(
        (w.window_max, w.outstanding_max, w.delayed_max),
        (1024, 10, 50)
    );
    w.validate().unwrap();
    let d = ServeConfig::default().window_defaults();
    assert_eq!(d, tidegate_core::subscription::WindowConfig::default());
}

#[test]
fn the_file_beats_the_default() {
    let c = load_text("[storage]\nsegment_bytes = \"512MiB\"\n").unwrap();
    assert_eq!(c.storage.segment_bytes, Size::mib(512));
    assert_eq!(
        c.storage.write_chunk_bytes,
        Size::kib(256),
        "untouched keys keep defaults"
    );
}

#[test]
fn the_environment_beats_the_file() {
    let (_dir, path) = file(
        "listen = \"0.0.0.0:1\"\n[storage]\nsegment_bytes = \"512MiB\"\nwrite_concurrency = 2\n",
    );
    let env = vars(&[
        ("TIDEGATE_STORAGE__SEGMENT_BYTES", "1GiB"),
        ("TIDEGATE_STORAGE__WRITE_CONCURRENCY", "16"),
        ("TIDEGATE_LISTEN", "0.0.0.0:7441"),
        ("TIDEGATE_DATA_DIR", "/srv/tidegate"),
    ]);
    let c = ServeConfig::load(Some(&path), &env, &Overrides::default()).unwrap();
    assert_eq!(c.storage.segment_bytes, Size::gib(1));
    assert_eq!(c.storage.write_concurrency, 16);
    assert_eq!(c.listen, addr("0.0.0.0:7441"));
    assert_eq!(c.data_dir, Path::new("/srv/tidegate"));
}

#[test]
fn the_write_gate_keys_come_from_the_environment() {
    let defaults = ServeConfig::load(None, &no_env(), &Overrides::default()).unwrap();
    assert!(!defaults.flow.disk_sync_barriers);
    let env = vars(&[
        ("TIDEGATE_FLOW__DISK_QUEUE_TARGET", "2ms"),
        ("TIDEGATE_FLOW__DISK_SYNCS_MAX", "8"),
        ("TIDEGATE_FLOW__DISK_SYNC_BARRIERS", "true"),
    ]);
    let c = ServeConfig::load(None, &env, &Overrides::default()).unwrap();
    assert_eq!(c.flow.disk_queue_target, Duration::millis(2));
    assert_eq!(c.flow.disk_syncs_max, 8);
    assert!(c.flow.disk_sync_barriers);
}

#[test]
fn a_flag_beats_the_environment_and_the_file() {
    let (_dir, path) =
        file("data_dir = \"/from/file\"\nlisten = \"0.0.0.0:1\"\nadmin_listen = \"0.0.0.0:2\"\n");
    let env = vars(&[
        ("TIDEGATE_DATA_DIR", "/from/env"),
        ("TIDEGATE_LISTEN", "0.0.0.0:3"),
        ("TIDEGATE_ADMIN_LISTEN", "0.0.0.0:4"),
        ("TIDEGATE_LOG_FORMAT", "text"),
    ]);
    let flags = Overrides {
        data_dir: Some(PathBuf::from("/from/flag")),
        listen: Some(addr("127.0.0.1:5")),
        admin_listen: Some(addr("127.0.0.1:6")),
        log_format: Some(LogFormat::Json),
    };
    let c = ServeConfig::load(Some(&path), &env, &flags).unwrap();
    assert_eq!(c.data_dir, Path::new("/from/flag"));
    assert_eq!(c.listen, addr("127.0.0.1:5"));
    assert_eq!(c.admin_listen, addr("127.0.0.1:6"));
    assert_eq!(c.log_format, LogFormat::Json);
    let only_listen = Overrides {
        listen: Some(addr("127.0.0.1:5")),
        ..Overrides::default()
    };
    let c = ServeConfig::load(Some(&path), &env, &only_listen).unwrap();
    assert_eq!(
        c.data_dir,
        Path::new("/from/env"),
        "no flag: the environment wins"
    );
}

#[test]
fn an_unknown_key_in_the_file_is_named_with_its_path_and_line() {
    let err = load_text("listen = \"127.0.0.1:7441\"\n\n[storage]\nsegment_byte = \"1GiB\"\n")
        .unwrap_err();
    let ConfigError::UnknownKey { key, origin, hint } = &err else {
        panic!("expected UnknownKey, got {err:?}");
    };
    assert_eq!(key, "storage.segment_byte");
    assert!(
        matches!(
            origin,
            Origin::File {
                line: Some(4),
                column: Some(1),
                ..
            }
        ),
        "{origin:?}"
    );
    assert!(hint.contains("segment_bytes"), "{hint}");
    let text = err.to_string();
    assert!(
        text.contains("tidegate.toml:4:1") && text.contains("storage.segment_byte"),
        "{text}"
    );
}

#[test]
fn an_unknown_top_level_key_or_section_is_named() {
    let err = load_text("lisen = \"127.0.0.1:7441\"\n").unwrap_err();
    assert_eq!(err.key(), Some("lisen"), "{err}");
    let err = load_text("[storag]\nsegment_bytes = \"1GiB\"\n").unwrap_err();
    assert_eq!(err.key(), Some("storag"), "{err}");
}

#[test]
fn an_unknown_config_variable_is_rejected_with_its_name() {
    let env = vars(&[("TIDEGATE_STORAGE__SEGMENT_BYTE", "1GiB")]);
    let err = ServeConfig::load(None, &env, &Overrides::default()).unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnknownKey { origin: Origin::Env { var }, .. } if var == "TIDEGATE_STORAGE__SEGMENT_BYTE"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("TIDEGATE_STORAGE__SEGMENT_BYTES"),
        "hint lists the real ones: {err}"
    );
    let typo = vars(&[("TIDEGATE_STORAGE_SEGMENT_BYTES", "1GiB")]);
    let err = ServeConfig::load(None, &typo, &Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("use `__`"), "{err}");
}

#[test]
fn cli_and_logging_variables_and_foreign_ones_are_ignored() {
    let env = vars(&[
        ("TIDEGATE_SERVER", "example:7441"),
        ("TIDEGATE_LOG", "debug"),
        ("TIDEGATE_BENCH_IO_MEMORY", "33554432"),
        ("HOME", "/root"),
    ]);
    let c = ServeConfig::load(None, &env, &Overrides::default()).unwrap();
    assert_eq!(c, ServeConfig::default());
}

#[test]
fn a_bare_number_size_is_rejected_saying_a_unit_is_needed() {
    let err = load_text("[storage]\nsegment_bytes = 64\n").unwrap_err();
    assert_eq!(err.key(), Some("storage.segment_bytes"));
    let text = err.to_string();
    assert!(
        text.contains("storage.segment_bytes: `64` needs a unit, e.g. `64MiB`"),
        "{text}"
    );
    assert!(text.contains(":2:17"), "points at the value: {text}");
    // A quoted number is no better.
    let err = load_text("[storage]\nsegment_bytes = \"64\"\n").unwrap_err();
    assert!(err.to_string().contains("needs a unit"), "{err}");
    // Nor through the environment, which names the variable.
    let env = vars(&[("TIDEGATE_SHARD__IO_MEMORY", "1048576")]);
    let err = ServeConfig::load(None, &env, &Overrides::default()).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Invalid { key, origin: Origin::Env { var }, message }
            if key == "shard.io_memory" && var == "TIDEGATE_SHARD__IO_MEMORY" && message.contains("needs a unit")),
        "{err:?}"
    );
}

#[test]
fn a_bad_duration_is_rejected_with_its_key() {
    let err = load_text("[quic]\nidle_timeout = \"30 parsecs\"\n").unwrap_err();
    assert_eq!(err.key(), Some("quic.idle_timeout"), "{err}");
    assert!(err.to_string().contains("not a duration"), "{err}");
    let err = load_text("[quic]\nidle_timeout = 30\n").unwrap_err();
    assert!(
        err.to_string().contains("`30` needs a unit, e.g. `30s`"),
        "{err}"
    );
}

#[test]
fn a_bad_integer_variable_names_the_variable() {
    let env = vars(&[("TIDEGATE_QUIC__MAX_CONNECTIONS", "lots")]);
    let err = ServeConfig::load(None, &env, &Overrides::default()).unwrap_err();
    assert!(
        err.to_string().contains("TIDEGATE_QUIC__MAX_CONNECTIONS"),
        "{err}"
    );
    assert_eq!(err.key(), Some("quic.max_connections"));
}

#[test]
fn tls_with_only_a_cert_or_only_a_key_is_rejected() {
    let err = load_text("[tls]\ncert = \"/etc/tidegate/cert.pem\"\n").unwrap_err();
    assert_eq!(err.key(), Some("tls.cert"), "{err}");
    assert!(
        err.to_string()
            .contains("tls.key is not; set both or neither"),
        "{err}"
    );
    assert!(
        matches!(err.origin(), Some(Origin::File { line: Some(2), .. })),
        "{err:?}"
    );
    let err = load_text("[tls]\nkey = \"/etc/tidegate/key.pem\"\n").unwrap_err();
    assert_eq!(err.key(), Some("tls.key"), "{err}");
    // Completed from the environment, it is fine.
    let (_dir, path) = file("[tls]\ncert = \"/etc/tidegate/cert.pem\"\n");
    let env = vars(&[("TIDEGATE_TLS__KEY", "/etc/tidegate/key.pem")]);
    ServeConfig::load(Some(&path), &env, &Overrides::default()).unwrap();
}

#[test]
fn cross_field_checks_name_the_key_to_change() {
    let cases = [
        (
            "[storage]\nwrite_chunk_bytes = \"100KiB\"\n",
            "storage.write_chunk_bytes",
            "power-of-two multiple of 4KiB",
        ),
        (
            "[storage]\nwrite_chunk_bytes = \"12KiB\"\n",
            "storage.write_chunk_bytes",
            "power-of-two",
        ),
        (
            "[storage]\nsegment_bytes = \"512KiB\"\n",
            "storage.segment_bytes",
            "outside [1MiB, 4GiB)",
        ),
        (
            "[storage]\nsegment_bytes = \"4GiB\"\n",
            "storage.segment_bytes",
            "outside",
        ),
        (
            "[storage]\nwrite_concurrency = 0\n",
            "storage.write_concurrency",
            "at least 1",
        ),
        (
            "[quic]\nkeep_alive = \"30s\"\n",
            "quic.keep_alive",
            "below quic.idle_timeout",
        ),
        (
            "[quic]\nstream_receive_window = \"32MiB\"\n",
            "quic.stream_receive_window",
            "exceeds",
        ),
        (
            "[limits]\nmax_request_bytes = \"1GiB\"\n",
            "limits.max_request_bytes",
            "never be admitted",
        ),
        (
            "[shard]\nio_memory = \"4KiB\"\n",
            "shard.io_memory",
            "minimum",
        ),
        (
            "[subscriptions]\nwindow_max = 100000\n",
            "subscriptions.window_max",
            "1..=65536",
        ),
        (
            "[subscriptions]\nwindow_max = 100\noutstanding_max = 200\n",
            "subscriptions.outstanding_max",
            "window_max",
        ),
        (
            "[subscriptions]\ndelayed_max = 0\n",
            "subscriptions.delayed_max",
            "1..=100000",
        ),
        (
            "[flow]\ndisk_queue_target = \"100ms\"\n",
            "flow.disk_queue_target",
            "below flow.control_interval",
        ),
        (
            "[flow]\ndisk_syncs_max = 0\n",
            "flow.disk_syncs_max",
            "at least 1",
        ),
        ("cores = \"4 cores\"\n", "cores", "CPU list"),
        ("log_format = \"xml\"\n", "log_format", "unknown variant"),
        ("listen = \"localhost\"\n", "listen", "socket address"),
    ];
    for (text, key, words) in cases {
        let err = load_text(text).unwrap_err();
        assert_eq!(err.key(), Some(key), "{text}: {err}");
        assert!(err.to_string().contains(words), "{text}: {err}");
        assert!(
            matches!(err.origin(), Some(Origin::File { line: Some(_), .. })),
            "{text}: {err:?}"
        );
    }
}

#[test]
fn a_cross_field_error_from_the_environment_names_the_variable() {
    let env = vars(&[("TIDEGATE_STORAGE__WRITE_CHUNK_BYTES", "100KiB")]);
    let err = ServeConfig::load(None, &env, &Overrides::default()).unwrap_err();
    assert!(
        matches!(err.origin(), Some(Origin::Env { var }) if var == "TIDEGATE_STORAGE__WRITE_CHUNK_BYTES"),
        "{err:?}"
    );
}

#[test]
fn invalid_toml_reports_the_position() {
    let err = load_text("[storage\nsegment_bytes = \"1GiB\"\n").unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Syntax {
                origin: Origin::File { line: Some(1), .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let err = ServeConfig::load(
        Some(Path::new("/nonexistent/tidegate.toml")),
        &no_env(),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string().contains("/nonexistent/tidegate.toml"),
        "{err}"
    );
}

#[test]
fn print_config_round_trips() {
    for config in [ServeConfig::default(), load_text(FULL).unwrap()] {
        let text = config.to_toml_string().unwrap();
        assert_eq!(load_text(&text).unwrap(), config, "{text}");
    }
}

#[test]
fn the_deploy_example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tidegate.toml");
    let c = ServeConfig::load(Some(&path), &no_env(), &Overrides::default()).unwrap();
    assert_eq!(c.data_dir, Path::new("/var/lib/tidegate"));
    assert_eq!(c.listen, addr("0.0.0.0:7441"));
}

#[test]
fn sizes_parse_binary_and_decimal_units() {
    let cases = [
        ("64MiB", 64 << 20),
        ("4KiB", 4096),
        ("1GB", 1_000_000_000),
        ("512B", 512),
        ("1gib", 1 << 30),
        ("1.5KiB", 1536),
    ];
    for (text, bytes) in cases {
        assert_eq!(text.parse::<Size>().unwrap().bytes(), bytes, "{text}");
    }
    for bad in ["", "64", "64M", "MiB", "-1MiB", "1 parsec"] {
        assert!(bad.parse::<Size>().is_err(), "{bad:?} should be rejected");
    }
    assert_eq!(Size::from_bytes(1_000_000_000).to_string(), "1GB");
    assert_eq!(Size::from_bytes(1536).to_string(), "1536B");
    assert_eq!(Size::mib(64).to_string(), "64MiB");
    assert_eq!(Size::from_bytes(0).to_string(), "0B");
}

#[test]
fn durations_parse_common_units() {
    let cases = [
        ("30s", 30_000),
        ("5m", 300_000),
        ("250ms", 250),
        ("1h", 3_600_000),
    ];
    for (text, ms) in cases {
        assert_eq!(
            text.parse::<Duration>().unwrap().as_millis_u64(),
            ms,
            "{text}"
        );
    }
    for bad in ["", "30", "30 parsecs", "s"] {
        assert!(
            bad.parse::<Duration>().is_err(),
            "{bad:?} should be rejected"
        );
    }
}

proptest! {
    #[test]
    fn size_display_parses_back_to_the_same_size(bytes in any::<u64>(), shift in 0u32..50) {
        for size in [Size::from_bytes(bytes), Size::from_bytes((bytes >> 20) << shift.min(40))] {
            let text = size.to_string();
            prop_assert_eq!(text.parse::<Size>().unwrap(), size, "{}", text);
        }
    }

    #[test]
    fn duration_display_parses_back_to_the_same_duration(secs in 0u64..(1 << 40), nanos in 0u32..1_000_000_000) {
        for d in [std::time::Duration::new(secs, nanos), std::time::Duration::from_secs(secs)] {
            let d = Duration::new(d);
            let text = d.to_string();
            prop_assert_eq!(text.parse::<Duration>().unwrap(), d, "{}", text);
        }
    }
}

#[test]
fn streams_that_could_starve_an_admitted_request_are_refused() {
    let env = HashMap::from([
        (
            "TIDEGATE_QUIC__MAX_CONCURRENT_STREAMS".to_string(),
            "32".to_string(),
        ),
        (
            "TIDEGATE_QUIC__STREAM_RECEIVE_WINDOW".to_string(),
            "1MiB".to_string(),
        ),
        (
            "TIDEGATE_QUIC__CONNECTION_RECEIVE_WINDOW".to_string(),
            "16MiB".to_string(),
        ),
    ]);
    let err = ServeConfig::load(None, &env, &Overrides::default()).unwrap_err();
    assert!(
        err.to_string().contains("quic.max_concurrent_streams"),
        "{err}"
    );
}
