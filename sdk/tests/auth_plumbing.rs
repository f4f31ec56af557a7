//! The client's side of authentication against a small in-process QUIC
//! server that speaks just enough of the protocol (Authenticate and
//! ListTopics) and records what arrives on which connection. The real
//! server's enforcement is tested end to end elsewhere; these check the
//! client's order of requests, reconnects and retries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tidegate_client::{Client, Credentials, Error, Tls};
use tidegate_proto::protocol::{
    decode_header, ErrorCode, ErrorResponse, Request, Response, ALPN, FRAME_HEADER_LEN,
    MAX_FRAME_BODY_BYTES,
};

/// How the fake server answers.
#[derive(Clone, Default)]
struct Policy {
    /// Tokens it accepts.
    tokens: Vec<String>,
    /// `expires_at_ms` of an accepted token, this far from now.
    expires_in: Option<Duration>,
    /// After answering one ListTopics, the connection's authentication
    /// lapses (as a JWT's would).
    lapse_after_one_list: bool,
    /// ListTopics is refused as not authorized.
    deny_list: bool,
}

/// What arrived: (connection number, "auth:<token>" or "list").
type Log = Arc<Mutex<Vec<(usize, String)>>>;

struct Fake {
    addr: SocketAddr,
    log: Log,
    conns: Arc<Mutex<Vec<quinn::Connection>>>,
    _endpoint: quinn::Endpoint,
}

impl Fake {
    fn start(policy: Policy) -> Fake {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = PrivateKeyDer::try_from(generated.key_pair.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(generated.cert.der().to_vec())],
                key,
            )
            .unwrap();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let config =
            quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls).unwrap()));
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let fake = Fake {
            addr: endpoint.local_addr().unwrap(),
            log: Log::default(),
            conns: Arc::default(),
            _endpoint: endpoint.clone(),
        };
        let (log, conns) = (fake.log.clone(), fake.conns.clone());
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let Ok(conn) = incoming.await else { continue };
                let number = {
                    let mut conns = conns.lock().unwrap();
                    conns.push(conn.clone());
                    conns.len() - 1
                };
                tokio::spawn(serve(conn, number, policy.clone(), log.clone()));
            }
        });
        fake
    }

    fn log(&self) -> Vec<(usize, String)> {
        self.log.lock().unwrap().clone()
    }

    /// Closes every connection, as a restarting server would.
    fn close_all(&self) {
        for conn in self.conns.lock().unwrap().iter() {
            conn.close(0u32.into(), b"restart");
        }
    }
}

/// One connection: requests one at a time, in the order they arrive.
async fn serve(conn: quinn::Connection, number: usize, policy: Policy, log: Log) {
    let mut authenticated = false;
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let Ok(frame) = recv.read_to_end(MAX_FRAME_BODY_BYTES).await else {
            return;
        };
        let header = decode_header(&frame, MAX_FRAME_BODY_BYTES)
            .unwrap()
            .unwrap();
        let request = Request::decode(header, &frame[FRAME_HEADER_LEN..]).unwrap();
        let refuse = |code, message| {
            Response::Error(ErrorResponse {
                request_kind: request.kind().request_code(),
                code,
                message,
            })
        };
        let response = match &request {
            Request::Authenticate { token } => {
                log.lock().unwrap().push((number, format!("auth:{token}")));
                if policy.tokens.iter().any(|t| t == token) {
                    authenticated = true;
                    Response::Authenticate {
                        principal: "svc-test",
                        expires_at_ms: policy.expires_in.map(|d| unix_ms() + d.as_millis() as u64),
                    }
                } else {
                    refuse(ErrorCode::NotAuthenticated, "unknown token")
                }
            }
            Request::ListTopics => {
                log.lock().unwrap().push((number, "list".to_owned()));
                if !authenticated {
                    refuse(ErrorCode::NotAuthenticated, "authentication lapsed")
                } else if policy.deny_list {
                    refuse(
                        ErrorCode::NotAuthorized,
                        "list_topics on cluster: read-only",
                    )
                } else {
                    authenticated = !policy.lapse_after_one_list;
                    Response::ListTopics(Vec::new())
                }
            }
            _ => refuse(ErrorCode::Internal, "not in this fake"),
        };
        let mut out = Vec::new();
        response.encode(&mut out);
        let _ = send.write_all(&out).await;
        let _ = send.finish();
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A token callback giving `jwt-0`, `jwt-1`, ...
fn numbered_tokens() -> (Credentials, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let credentials = Credentials::token_fn(move || {
        Ok(format!("jwt-{}", counter.fetch_add(1, Ordering::SeqCst)))
    });
    (credentials, calls)
}

fn accepting(tokens: &[&str]) -> Policy {
    Policy {
        tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
        ..Policy::default()
    }
}

fn entries(list: &[(usize, &str)]) -> Vec<(usize, String)> {
    list.iter().map(|(n, s)| (*n, (*s).to_owned())).collect()
}

#[tokio::test]
async fn connect_with_authenticates_before_any_other_request() {
    let fake = Fake::start(accepting(&["s3cr3t"]));
    let client = Client::connect_with(fake.addr, Tls::insecure_dev(), Credentials::token("s3cr3t"))
        .await
        .unwrap();
    assert_eq!(client.principal().as_deref(), Some("svc-test"));
    client.list_topics().await.unwrap();
    assert_eq!(fake.log(), entries(&[(0, "auth:s3cr3t"), (0, "list")]));
    client.close().await;
}

#[tokio::test]
async fn refused_token_fails_the_connect_with_not_authenticated() {
    let fake = Fake::start(accepting(&["good"]));
    let e = Client::connect_with(fake.addr, Tls::insecure_dev(), Credentials::token("bad"))
        .await
        .unwrap_err();
    match &e {
        Error::NotAuthenticated { message } => assert_eq!(message, "unknown token"),
        other => panic!("{other:?}"),
    }
    assert!(!e.is_retriable());
}

#[tokio::test]
async fn failing_token_callback_fails_the_connect_with_a_credentials_error() {
    let fake = Fake::start(accepting(&["good"]));
    let credentials = Credentials::token_fn(|| Err("no token file".into()));
    let e = Client::connect_with(fake.addr, Tls::insecure_dev(), credentials)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Credentials(_)), "{e:?}");
    assert!(fake.log().is_empty(), "nothing was presented");
}

#[tokio::test]
async fn reconnect_authenticates_with_a_fresh_token_before_queued_requests() {
    let fake = Fake::start(accepting(&["jwt-0", "jwt-1"]));
    let (credentials, calls) = numbered_tokens();
    let client = Client::connect_with(fake.addr, Tls::insecure_dev(), credentials)
        .await
        .unwrap();
    fake.close_all();
    // Calls racing on the dead connection: some may fail with a retriable
    // transport error before the client sees the close; each is retried.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                match client.list_topics().await {
                    Ok(_) => return,
                    Err(e) if e.is_retriable() => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            panic!("no reconnect");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let on_new: Vec<String> = fake
        .log()
        .into_iter()
        .filter(|(n, _)| *n == 1)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        on_new.first().map(String::as_str),
        Some("auth:jwt-1"),
        "{on_new:?}"
    );
    assert_eq!(
        on_new.iter().filter(|s| s.starts_with("auth:")).count(),
        1,
        "{on_new:?}"
    );
    assert_eq!(on_new.len(), 5, "{on_new:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    client.close().await;
}

#[tokio::test]
async fn lapsed_authentication_with_a_callback_is_renewed_and_the_call_sent_again() {
    let fake = Fake::start(Policy {
        lapse_after_one_list: true,
        ..accepting(&["jwt-0", "jwt-1"])
    });
    let (credentials, _) = numbered_tokens();
    let client = Client::connect_with(fake.addr, Tls::insecure_dev(), credentials)
        .await
        .unwrap();
    client.list_topics().await.unwrap();
    client.list_topics().await.unwrap();
    assert_eq!(
        fake.log(),
        entries(&[
            (0, "auth:jwt-0"),
            (0, "list"),
            (0, "list"),
            (0, "auth:jwt-1"),
            (0, "list")
        ])
    );
    client.close().await;
}

#[tokio::test]
async fn lapsed_authentication_with_a_static_token_is_reported_not_retried() {
    let fake = Fake::start(Policy {
        lapse_after_one_list: true,
        ..accepting(&["static"])
    });
    let client = Client::connect_with(fake.addr, Tls::insecure_dev(), Credentials::token("static"))
        .await
        .unwrap();
    client.list_topics().await.unwrap();
    let e = client.list_topics().await.unwrap_err();
    assert!(matches!(e, Error::NotAuthenticated { .. }), "{e:?}");
    assert_eq!(
        fake.log(),
        entries(&[(0, "auth:static"), (0, "list"), (0, "list")])
    );
    client.close().await;
}

#[tokio::test]
async fn expiring_authentication_is_renewed_on_the_same_connection() {
    let fake = Fake::start(Policy {
        expires_in: Some(Duration::from_millis(1_100)),
        ..accepting(&["jwt-0", "jwt-1", "jwt-2", "jwt-3"])
    });
    let (credentials, _) = numbered_tokens();
    let client = Client::connect_with(fake.addr, Tls::insecure_dev(), credentials)
        .await
        .unwrap();
    // The refresh is due after max(90% of 1.1 s, 1 s); the next call starts it.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    client.list_topics().await.unwrap();
    for _ in 0..100 {
        if fake.log().iter().any(|(_, s)| s == "auth:jwt-1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = fake.log();
    assert!(log.contains(&(0, "auth:jwt-1".to_owned())), "{log:?}");
    assert!(log.iter().all(|(n, _)| *n == 0), "one connection: {log:?}");
    client.close().await;
}

#[tokio::test]
async fn not_authorized_answer_names_the_operation_and_the_resource() {
    let fake = Fake::start(Policy {
        deny_list: true,
        ..accepting(&["t"])
    });
    let client = Client::connect_with(fake.addr, Tls::insecure_dev(), Credentials::token("t"))
        .await
        .unwrap();
    match client.list_topics().await.unwrap_err() {
        Error::NotAuthorized {
            operation,
            resource,
            message,
        } => {
            assert_eq!(
                (operation.as_str(), resource.as_str()),
                ("list_topics", "cluster")
            );
            assert_eq!(message, "list_topics on cluster: read-only");
        }
        other => panic!("{other:?}"),
    }
    client.close().await;
}

#[tokio::test]
async fn client_without_credentials_sends_no_authenticate() {
    let fake = Fake::start(Policy::default());
    let client = Client::connect(fake.addr, Tls::insecure_dev())
        .await
        .unwrap();
    assert_eq!(client.principal(), None);
    let e = client.list_topics().await.unwrap_err();
    assert!(matches!(e, Error::NotAuthenticated { .. }), "{e:?}");
    assert_eq!(fake.log(), entries(&[(0, "list")]));
    client.close().await;
}
