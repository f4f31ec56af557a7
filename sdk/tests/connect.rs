//! Connecting with each TLS setting, against the real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use tidegate_client::{Client, Error, Tls};

#[tokio::test]
async fn connects_with_the_dev_ca_file() {
    let server = support::start();
    let client = Client::connect(server.addr, Tls::ca_file(server.ca_file()))
        .await
        .unwrap();
    assert_eq!(client.server_addr(), server.addr);
    client.list_topics().await.unwrap();
    client.close().await;
}

#[tokio::test]
async fn connects_with_insecure_dev() {
    let server = support::start();
    let client = Client::connect(server.addr, Tls::insecure_dev())
        .await
        .unwrap();
    client.list_topics().await.unwrap();
}

#[tokio::test]
async fn a_wrong_ca_fails_with_a_tls_error() {
    let server = support::start();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong_ca = dir.path().join("other-ca.pem");
    std::fs::write(&wrong_ca, other.cert.pem()).unwrap();

    let err = Client::connect(server.addr, Tls::ca_file(&wrong_ca))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    assert!(!err.is_retriable());
}

#[tokio::test]
async fn system_roots_do_not_trust_the_dev_certificate() {
    let server = support::start();
    let err = Client::connect(server.addr, Tls::system_roots())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
}

#[tokio::test]
async fn a_wrong_server_name_fails_with_a_tls_error() {
    let server = support::start();
    let tls = Tls::ca_file(server.ca_file()).server_name("not-the-server.example");
    let err = Client::connect(server.addr, tls).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
}

#[tokio::test]
async fn a_missing_ca_file_fails_before_connecting() {
    let addr = "127.0.0.1:9".parse().unwrap();
    let err = Client::connect(addr, Tls::ca_file("/nonexistent/ca.pem"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
