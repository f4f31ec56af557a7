//! Admin calls against the real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use tidegate_client::{Error, ErrorCode, TopicInfo};

#[tokio::test]
async fn create_list_describe_delete_a_topic() {
    let server = support::start();
    let client = support::connect(&server).await;

    client.create_topic("orders", 3).await.unwrap();
    let topics = client.list_topics().await.unwrap();
    assert!(
        topics.contains(&TopicInfo {
            name: "orders".into(),
            partitions: 3
        }),
        "{topics:?}"
    );

    let described = client.describe_topic("orders").await.unwrap();
    assert_eq!(described.name, "orders");
    let numbers: Vec<u32> = described.partitions.iter().map(|p| p.partition).collect();
    assert_eq!(numbers, [0, 1, 2]);
    assert!(described.partitions.iter().all(|p| p.latest == 0));

    client.delete_topic("orders").await.unwrap();
    let topics = client.list_topics().await.unwrap();
    assert!(topics.iter().all(|t| t.name != "orders"), "{topics:?}");
}

#[tokio::test]
async fn creating_an_existing_topic_is_topic_exists() {
    let server = support::start();
    let client = support::connect(&server).await;
    client.create_topic("dup", 1).await.unwrap();
    let err = client.create_topic("dup", 1).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TopicExists), "{err:?}");
}

#[tokio::test]
async fn unknown_topic_is_a_server_error_that_is_not_retriable() {
    let server = support::start();
    let client = support::connect(&server).await;
    let err = client.describe_topic("nope").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Server {
                code: ErrorCode::UnknownTopic,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retriable());

    let err = client.delete_topic("nope").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopic), "{err:?}");
}

#[tokio::test]
async fn a_bad_topic_name_is_refused_before_sending() {
    let server = support::start();
    let client = support::connect(&server).await;
    let err = client.create_topic("a/b", 1).await.unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
}
