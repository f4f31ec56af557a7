//! The topic catalog: its operations, its file, and damaged files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use glommio::LocalExecutorBuilder;
use proptest::prelude::*;
use tidegate_core::catalog::{
    partition_dir, topic_dir, Catalog, CatalogError, CatalogStore, TopicSettings, PARTITIONS_MAX,
    TOPICS_MAX,
};

/// Runs `f` on a fresh glommio executor with a small I/O memory area (the
/// memlock limit is 8 MiB for non-root users and glommio charges it thrice).
fn run<F, T>(f: impl FnOnce() -> F + Send + 'static) -> T
where
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .spawn(f)
        .expect("executor starts")
        .join()
        .expect("executor finishes")
}

const NOW_MS: i64 = 1_764_000_000_000;

fn sample() -> Catalog {
    let mut c = Catalog::default();
    c.create_topic("orders", 4, TopicSettings::default(), NOW_MS)
        .unwrap();
    let settings = TopicSettings {
        retention_ms: Some(86_400_000),
        retention_bytes: Some(1 << 30),
        segment_bytes: Some(64 << 20),
        message_ttl_ms: Some(3_600_000),
        dedup_window_ms: None,
    };
    c.create_topic("audit.log_v2", 1, settings, NOW_MS + 1)
        .unwrap();
    c.create_topic("x", PARTITIONS_MAX, TopicSettings::default(), NOW_MS + 2)
        .unwrap();
    c.delete_topic("x").unwrap();
    c
}

#[test]
fn create_get_and_list_topics() {
    let mut c = Catalog::default();
    assert_eq!((c.version(), c.len()), (0, 0));
    let orders = c
        .create_topic("orders", 4, TopicSettings::default(), NOW_MS)
        .unwrap();
    assert_eq!(
        (orders.id, orders.partitions, orders.created_ms),
        (1, 4, NOW_MS)
    );
    assert_eq!(
        (
            orders.retention_ms,
            orders.retention_bytes,
            orders.segment_bytes
        ),
        (None, None, None)
    );
    let settings = TopicSettings {
        retention_ms: Some(60_000),
        retention_bytes: None,
        segment_bytes: Some(8 << 20),
        message_ttl_ms: Some(1_000),
        dedup_window_ms: None,
    };
    let audit = c.create_topic("audit", 1, settings, NOW_MS + 5).unwrap();
    assert_eq!(audit.message_ttl_ms, Some(1_000));
    assert_eq!(audit.id, 2);
    assert_eq!(
        (audit.retention_ms, audit.segment_bytes),
        (Some(60_000), Some(8 << 20))
    );
    assert_eq!(c.version(), 2);
    assert_eq!(c.get("orders"), Some(&orders));
    assert_eq!(c.get("nope"), None);
    let names: Vec<&str> = c.list().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["audit", "orders"], "listed by name");
}

#[test]
fn creating_an_existing_topic_fails_and_changes_nothing() {
    let mut c = sample();
    let before = c.clone();
    assert_eq!(
        c.create_topic("orders", 1, TopicSettings::default(), NOW_MS),
        Err(CatalogError::TopicExists {
            name: "orders".into()
        })
    );
    assert_eq!(c, before);
}

#[test]
fn topic_names_follow_the_kafka_rule() {
    let mut c = Catalog::default();
    for good in ["a", "A-z_0.9", "..a", "-", &"n".repeat(249)] {
        c.create_topic(good, 1, TopicSettings::default(), NOW_MS)
            .unwrap();
    }
    let version = c.version();
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "a b",
        "é",
        "../etc",
        "a\0",
        &"n".repeat(250),
    ] {
        let err = c
            .create_topic(bad, 1, TopicSettings::default(), NOW_MS)
            .unwrap_err();
        assert!(
            matches!(err, CatalogError::InvalidName { .. }),
            "{bad:?}: {err:?}"
        );
    }
    assert_eq!(c.version(), version, "failed creates change nothing");
}

#[test]
fn partition_counts_are_bounded() {
    let mut c = Catalog::default();
    for bad in [0, PARTITIONS_MAX + 1, u32::MAX] {
        assert_eq!(
            c.create_topic("t", bad, TopicSettings::default(), NOW_MS),
            Err(CatalogError::InvalidPartitions { partitions: bad })
        );
    }
    c.create_topic("t", PARTITIONS_MAX, TopicSettings::default(), NOW_MS)
        .unwrap();
}

#[test]
fn topic_settings_are_checked() {
    let mut c = Catalog::default();
    for settings in [
        TopicSettings {
            segment_bytes: Some(4096),
            ..TopicSettings::default()
        },
        TopicSettings {
            segment_bytes: Some(1 << 32),
            ..TopicSettings::default()
        },
        TopicSettings {
            retention_ms: Some(0),
            ..TopicSettings::default()
        },
        TopicSettings {
            retention_bytes: Some(0),
            ..TopicSettings::default()
        },
        TopicSettings {
            dedup_window_ms: Some(0),
            ..TopicSettings::default()
        },
        TopicSettings {
            dedup_window_ms: Some(tidegate_core::catalog::DEDUP_WINDOW_MAX_MS + 1),
            ..TopicSettings::default()
        },
    ] {
        let err = c.create_topic("t", 1, settings, NOW_MS).unwrap_err();
        assert!(
            matches!(err, CatalogError::InvalidSetting { .. }),
            "{settings:?}: {err:?}"
        );
    }
}

#[test]
fn deleting_an_unknown_topic_fails() {
    let mut c = sample();
    let before = c.clone();
    assert_eq!(
        c.delete_topic("nope"),
        Err(CatalogError::UnknownTopic {
            name: "nope".into()
        })
    );
    assert_eq!(c, before);
}

#[test]
fn a_recreated_topic_gets_a_new_id_and_new_directories() {
    let mut c = Catalog::default();
    let old = c
        .create_topic("orders", 2, TopicSettings::default(), NOW_MS)
        .unwrap();
    let deleted = c.delete_topic("orders").unwrap();
    assert_eq!(deleted, old);
    assert_eq!(c.get("orders"), None);
    let new = c
        .create_topic("orders", 2, TopicSettings::default(), NOW_MS + 1)
        .unwrap();
    assert!(new.id > old.id);
    assert_eq!(c.version(), 3, "create, delete, create");
    let data = Path::new("/var/lib/tidegate");
    assert_ne!(partition_dir(data, &old, 0), partition_dir(data, &new, 0));
}

#[test]
fn partition_directories_are_named_by_topic_id_and_partition() {
    let mut c = Catalog::default();
    c.create_topic("a", 1, TopicSettings::default(), NOW_MS)
        .unwrap();
    let t = c
        .create_topic("my-topic", 8, TopicSettings::default(), NOW_MS)
        .unwrap();
    let data = Path::new("/data");
    assert_eq!(
        topic_dir(data, &t),
        PathBuf::from("/data/topics/my-topic-2")
    );
    assert_eq!(
        partition_dir(data, &t, 7),
        PathBuf::from("/data/topics/my-topic-2/7")
    );
}

#[test]
fn a_full_catalog_fits_the_durable_file_limit() {
    let mut c = Catalog::default();
    for i in 0..TOPICS_MAX {
        let name = format!("{i:0>249}");
        c.create_topic(&name, PARTITIONS_MAX, TopicSettings::default(), NOW_MS)
            .unwrap();
    }
    assert_eq!(
        c.create_topic("one-more", 1, TopicSettings::default(), NOW_MS),
        Err(CatalogError::TooManyTopics { max: TOPICS_MAX })
    );
    let bytes = c.to_bytes().unwrap();
    assert!(
        bytes.len() < tidegate_queue::durable::MAX_CONTENT_BYTES,
        "{} bytes",
        bytes.len()
    );
    assert_eq!(Catalog::from_bytes(&bytes).unwrap(), c);
}

#[test]
fn bytes_round_trip() {
    let c = sample();
    assert_eq!(Catalog::from_bytes(&c.to_bytes().unwrap()).unwrap(), c);
    let empty = Catalog::default();
    assert_eq!(
        Catalog::from_bytes(&empty.to_bytes().unwrap()).unwrap(),
        empty
    );
}

#[test]
fn an_unknown_format_version_is_refused() {
    let mut bytes = sample().to_bytes().unwrap();
    bytes[7] = b'9';
    let err = Catalog::from_bytes(&bytes).unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");
}

#[test]
fn a_missing_catalog_file_is_an_empty_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let loaded = run(move || async move { CatalogStore::new(&data).load().await });
    assert_eq!(loaded.unwrap(), Catalog::default());
}

#[test]
fn save_then_load_round_trips_and_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let (first, second, path) = run(move || async move {
        let store = CatalogStore::new(&data);
        let mut c = sample();
        store.save(&c).await.unwrap();
        let first = store.load().await.unwrap();
        c.create_topic("later", 3, TopicSettings::default(), NOW_MS)
            .unwrap();
        store.save(&c).await.unwrap();
        let second = store.load().await.unwrap();
        (first, (second, c), store.path().to_path_buf())
    });
    assert_eq!(first, sample());
    assert_eq!(second.0, second.1);
    assert_eq!(path, dir.path().join("meta/catalog"));
}

/// Saves the sample catalog, damages the file with `damage`, loads it.
fn load_damaged(damage: impl FnOnce(&Path) + Send + 'static) -> Result<Catalog, CatalogError> {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    run(move || async move {
        let store = CatalogStore::new(&data);
        store.save(&sample()).await.unwrap();
        damage(store.path());
        store.load().await
    })
}

fn assert_corrupt(result: Result<Catalog, CatalogError>, what: &str) {
    match result {
        Err(CatalogError::Corrupt { path, reason }) => {
            assert!(path.ends_with("meta/catalog"), "{what}: {path:?}");
            assert!(!reason.is_empty());
        }
        other => panic!("{what}: expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_flipped_byte_is_a_corrupt_catalog() {
    for offset in [0u64, 9, 16, 24, 40, 60] {
        let result = load_damaged(move |path| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .unwrap();
            let mut byte = [0u8; 1];
            file.read_exact_at(&mut byte, offset).unwrap();
            file.write_all_at(&[byte[0] ^ 0x40], offset).unwrap();
        });
        assert_corrupt(result, &format!("flipped byte {offset}"));
    }
}

#[test]
fn a_truncated_file_is_a_corrupt_catalog() {
    for len in [60u64, 23, 1] {
        let result = load_damaged(move |path| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(len)
                .unwrap();
        });
        assert_corrupt(result, &format!("truncated to {len}"));
    }
}

#[test]
fn valid_framing_around_invalid_content_is_a_corrupt_catalog() {
    let mut bad_archive = b"TGCATLG1".to_vec();
    bad_archive.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
    let mut wrong_root = b"TGCATLG1".to_vec();
    wrong_root.extend_from_slice(&[0xff; 64]);
    let contents = [
        b"not a catalog at all".to_vec(),
        bad_archive,
        wrong_root,
        b"TGCATLG1".to_vec(),
        b"TGCATLG2".to_vec(),
        Vec::new(),
    ];
    for content in contents {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let what = format!("{} content bytes", content.len());
        let result = run(move || async move {
            let store = CatalogStore::new(&data);
            std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
            tidegate_queue::durable::write(store.path(), &content)
                .await
                .unwrap();
            store.load().await
        });
        assert_corrupt(result, &what);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Catalog::from_bytes(&bytes);
        for magic in [b"TGCATLG1", b"TGCATLG2"] {
            let mut framed = magic.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = Catalog::from_bytes(&framed);
        }
    }

    #[test]
    fn a_damaged_encoding_decodes_to_a_valid_catalog_or_an_error(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = sample().to_bytes().unwrap();
        for (index, mask) in flips {
            let i = index.index(bytes.len());
            bytes[i] ^= mask;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        if let Ok(decoded) = Catalog::from_bytes(&bytes) {
            // Whatever survives validation is a catalog the API could have built.
            let again = Catalog::from_bytes(&decoded.to_bytes().unwrap()).unwrap();
            prop_assert_eq!(again, decoded);
        }
    }
}

/// The catalog file's content for a known catalog, byte for byte. rkyv's
/// format depends on its features (endianness, alignment, pointer width),
/// which any crate of the build can switch on; a change here means files
/// written before no longer read, so bump the magic's version instead.
const GOLDEN_HEX: &[&str] = &[
    "54474341544c47330000000061ffffffffffffff646c71ffffffffff0000000000000000000000000000000000000000",
    "0000000000000000010000000000000061ffffffffffffff0200000000000000010000000000000060ea000000000000",
    "000000000000000000000000000000000100000000000000000010000000000000000000000000000000000000000000",
    "0000000000000000000000000000000001000000000000000200000000000000646c71ffffffffff0100000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "010000000000000060ea0000000000000100000000000000c0d401000000000001000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000200000000000000",
    "0000000073ffffffffffffff000000000000000000000000000000000000000000000000000000000000000000000000",
    "030000000000000073ffffffffffffff61ffffffffffffff6b203d20227622ff3075000002000000646c71ffffffffff",
    "01000000e803000060ea0000070000000100000000000000010000000000000000000000000000000100000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "01000000000000000300000000000000040000000000000070fbffff02000000d0fdffff01000000",
];

/// The same catalog, without the dedup window, as format version 2 wrote
/// it.
const GOLDEN_HEX_V2: &[&str] = &[
    "54474341544c47320000000061ffffffffffffff646c71ffffffffff0000000000000000000000000000000000000000",
    "0000000000000000010000000000000061ffffffffffffff0200000000000000010000000000000060ea000000000000",
    "000000000000000000000000000000000100000000000000000010000000000000000000000000000000000000000000",
    "01000000000000000200000000000000646c71ffffffffff010000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000010000000000000060ea000000000000",
    "010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000002000000000000000000000073ffffffffffffff0000000000000000000000000000000000000000",
    "00000000000000000000000000000000030000000000000073ffffffffffffff61ffffffffffffff6b203d20227622ff",
    "3075000002000000646c71ffffffffff01000000e803000060ea00000700000001000000000000000100000000000000",
    "000000000000000001000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000010000000000000003000000000000000400000000000000c0fbffff02000000",
    "d0fdffff01000000",
];

/// The same catalog as format version 1 (before subscriptions) wrote it.
const GOLDEN_HEX_V1: &[&str] = &[
    "54474341544c47310000000061ffffffffffffff00000000000000000000000000000000000000000000000000000000",
    "0000000000000000010000000000000061ffffffffffffff0200000000000000010000000000000060ea000000000000",
    "000000000000000000000000000000000100000000000000000010000000000001000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000010000000000000001000000000000000200000000000000",
    "28feffff01000000",
];

/// The golden files' catalog: topic "a" with settings, as version 1 has
/// it; version 2 adds a dead-letter topic and a subscription.
fn golden_catalog(version: u8) -> Catalog {
    let with_subscription = version >= 2;
    let mut c = Catalog::default();
    let settings = TopicSettings {
        retention_ms: Some(60_000),
        retention_bytes: None,
        segment_bytes: Some(1 << 20),
        message_ttl_ms: None,
        dedup_window_ms: None,
    };
    c.create_topic("a", 2, settings, 1).unwrap();
    if with_subscription {
        // Version 3 adds the dedup window.
        let ttl = TopicSettings {
            message_ttl_ms: Some(60_000),
            dedup_window_ms: (version >= 3).then_some(120_000),
            ..TopicSettings::default()
        };
        c.create_topic("dlq", 1, ttl, 1).unwrap();
        // Its layout is part of the format.
        let sub = tidegate_proto::protocol::SubscriptionConfig {
            filter: "k = \"v\"",
            max_deliveries: 2,
            dead_letter_topic: "dlq",
            dead_letter_expired: true,
            delivery_delay_ms: 7,
            ordering: true,
            ..tidegate_proto::protocol::SubscriptionConfig::new("s", "a")
        };
        c.create_subscription(&sub, 1).unwrap();
    }
    c
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn the_catalog_encoding_is_stable() {
    let c = golden_catalog(3);
    let hex: String = c
        .to_bytes()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, GOLDEN_HEX.concat());
    let golden = unhex(&GOLDEN_HEX.concat());
    assert_eq!(Catalog::from_bytes(&golden).unwrap(), c);
}

#[test]
fn a_version_1_catalog_file_still_loads() {
    let v1 = unhex(&GOLDEN_HEX_V1.concat());
    assert_eq!(Catalog::from_bytes(&v1).unwrap(), golden_catalog(1));
}

#[test]
fn a_version_2_catalog_file_still_loads() {
    let v2 = unhex(&GOLDEN_HEX_V2.concat());
    assert_eq!(Catalog::from_bytes(&v2).unwrap(), golden_catalog(2));
}
