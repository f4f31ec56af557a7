//! Authentication and access rules end to end: the real binary with an
//! `[auth]` configuration, clients over real QUIC on loopback presenting
//! client certificates (mTLS) and tokens (static and JWT), ACL denials as
//! typed errors on a connection that keeps working, a reload by SIGHUP,
//! and the admin token.

mod support;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use support::*;
use tidegate_proto::protocol::{
    AckLevel, AckRequest, CommitOffsetsRequest, ErrorCode, FetchRequest, GroupHeartbeatRequest,
    OffsetCommit, ProduceRequest, ProduceTarget, PullRequest, Request, Response,
    SubscriptionConfig,
};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A CA and what it can sign.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Result<Ca> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ok(Ca {
            cert: params.self_signed(&key)?,
            key,
        })
    }

    /// A client certificate for `principal` (its DNS SAN); `expired` makes
    /// one whose validity ended in 2021.
    fn client(&self, principal: &str, expired: bool) -> Result<Identity> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![principal.to_string()])?;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![CertificateDer::from(cert.der().to_vec())], der))
    }
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn code_of(bytes: &[u8]) -> (ErrorCode, String) {
    match decode(bytes) {
        Response::Error(e) => (e.code, e.message.to_string()),
        _ => (ErrorCode::Ok, String::new()),
    }
}

async fn authenticate(client: &Client, token: &str) -> (ErrorCode, String) {
    let bytes = client.call(&Request::Authenticate { token }).await;
    match decode(&bytes) {
        Response::Authenticate { principal, .. } => (ErrorCode::Ok, principal.to_string()),
        Response::Error(e) => (e.code, e.message.to_string()),
        other => panic!("unexpected {other:?}"),
    }
}

async fn produce(client: &Client, topic: &str) -> (ErrorCode, String) {
    let batch = batch_of(&[b"v".to_vec()]);
    let request = Request::Produce(ProduceRequest {
        topic,
        target: ProduceTarget::Partition(0),
        ack: AckLevel::Durable,
        batches: &batch,
    });
    code_of(&client.call(&request).await)
}

async fn fetch(client: &Client, topic: &str) -> (ErrorCode, String) {
    let request = Request::Fetch(FetchRequest {
        topic,
        partition: 0,
        offset: 0,
        max_bytes: 1 << 20,
        max_wait_ms: 0,
    });
    code_of(&client.call(&request).await)
}

async fn create(client: &Client, topic: &str) -> (ErrorCode, String) {
    code_of(&client.create_topic(topic, 1).await)
}

const OK: ErrorCode = ErrorCode::Ok;

#[test]
fn mtls_admits_certificates_from_the_ca_and_refuses_the_rest() -> Result {
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("clients")?;
    let other = Ca::new("someone else")?;
    let ca_path = write(dir.path(), "ca.pem", &ca.cert.pem())?;
    let config = write(
        dir.path(),
        "tidegate.toml",
        &format!(
            r#"
            [auth]
            mode = "mtls"
            client_ca = "{}"
            [[auth.acl]]
            principals = ["svc-a"]
            topics = ["*"]
            operations = ["all"]
            "#,
            ca_path.display()
        ),
    )?;
    let server = start_config(&dir.path().join("data"), "0", &config);
    runtime().block_on(async {
        let good = connect_as(&server, Some(ca.client("svc-a", false)?)).await?;
        assert_eq!(create(&good, "orders").await.0, OK);
        assert_eq!(produce(&good, "orders").await.0, OK);
        // Known to the CA but in no rule: authenticated, not authorized.
        let stranger = connect_as(&server, Some(ca.client("svc-b", false)?)).await?;
        let (code, message) = produce(&stranger, "orders").await;
        assert_eq!(
            (code, message.as_str()),
            (ErrorCode::NotAuthorized, "produce on topic orders")
        );
        for (what, identity) in [
            ("another CA", Some(other.client("svc-a", false)?)),
            ("an expired certificate", Some(ca.client("svc-a", true)?)),
            ("no certificate", None),
        ] {
            let refused = connect_as(&server, identity).await;
            assert!(refused.is_err(), "{what} was admitted");
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

#[test]
fn tokens_static_and_jwt_authenticate_and_bad_ones_get_typed_errors() -> Result {
    let dir = tempfile::tempdir()?;
    let signer = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let stranger = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let public = write(dir.path(), "jwt.pem", &signer.public_key_pem())?;
    let config = write(
        dir.path(),
        "tidegate.toml",
        &format!(
            r#"
            [auth]
            mode = "token"
            [[auth.tokens]]
            principal = "svc-static"
            hash = "{}"
            [[auth.jwt_keys]]
            algorithm = "EdDSA"
            public_key = "{}"
            [[auth.acl]]
            principals = ["*"]
            topics = ["*"]
            operations = ["all"]
            "#,
            tidegate_auth::hash_token("static-secret"),
            public.display()
        ),
    )?;
    let server = start_config(&dir.path().join("data"), "0", &config);
    let now = now_secs();
    let jwt = |key: &KeyPair, claims: serde_json::Value| -> Result<String> {
        let key = EncodingKey::from_ed_pem(key.serialize_pem().as_bytes())?;
        Ok(encode(&Header::new(Algorithm::EdDSA), &claims, &key)?)
    };
    let good_jwt = jwt(
        &signer,
        json!({"sub": "alice", "aud": "tidegate", "exp": now + 600}),
    )?;
    let bad = [
        (
            "a wrong token",
            "static-secreT".to_string(),
            "unknown token",
        ),
        (
            "an expired JWT",
            jwt(
                &signer,
                json!({"sub": "alice", "aud": "tidegate", "exp": now - 3600}),
            )?,
            "expired",
        ),
        (
            "a JWT not valid yet",
            jwt(
                &signer,
                json!({"sub": "alice", "aud": "tidegate", "exp": now + 7200, "nbf": now + 3600}),
            )?,
            "not valid yet",
        ),
        (
            "a JWT signed by another key",
            jwt(
                &stranger,
                json!({"sub": "alice", "aud": "tidegate", "exp": now + 600}),
            )?,
            "signature",
        ),
    ];
    runtime().block_on(async {
        let client = connect(&server).await;
        // Before authenticating, nothing but Authenticate works.
        for (code, message) in [
            produce(&client, "orders").await,
            code_of(&client.call(&Request::ListTopics).await),
            create(&client, "orders").await,
        ] {
            assert_eq!(code, ErrorCode::NotAuthenticated, "{message}");
        }
        for (what, token, reason) in &bad {
            let (code, message) = authenticate(&client, token).await;
            assert_eq!(code, ErrorCode::NotAuthenticated, "{what}");
            assert!(message.contains(reason), "{what}: {message}");
            assert_eq!(
                produce(&client, "orders").await.0,
                ErrorCode::NotAuthenticated,
                "{what}"
            );
        }
        // The same connection, now with a good static token.
        assert_eq!(
            authenticate(&client, "static-secret").await,
            (OK, "svc-static".into())
        );
        assert_eq!(create(&client, "orders").await.0, OK);
        assert_eq!(produce(&client, "orders").await.0, OK);
        // A JWT on a second connection.
        let other = connect(&server).await;
        assert_eq!(authenticate(&other, &good_jwt).await, (OK, "alice".into()));
        assert_eq!(fetch(&other, "orders").await.0, OK);
    });
    Ok(())
}

#[test]
fn acls_deny_with_typed_errors_keep_the_connection_and_follow_a_reload() -> Result {
    let dir = tempfile::tempdir()?;
    let rules = |producer_may_consume: bool| {
        format!(
            r#"
            admin_listen = "127.0.0.1:0"
            [auth]
            mode = "token"
            admin_token_hash = "{admin}"
            [[auth.tokens]]
            principal = "producer"
            hash = "{producer}"
            [[auth.tokens]]
            principal = "operator"
            hash = "{operator}"
            [[auth.acl]]
            principals = ["producer"]
            topics = ["orders.*"]
            operations = {ops}
            [[auth.acl]]
            principals = ["operator"]
            topics = ["*"]
            operations = ["all"]
            "#,
            admin = tidegate_auth::hash_token("admin-secret"),
            producer = tidegate_auth::hash_token("producer-secret"),
            operator = tidegate_auth::hash_token("operator-secret"),
            ops = if producer_may_consume {
                r#"["produce", "consume"]"#
            } else {
                r#"["produce"]"#
            },
        )
    };
    let config = write(dir.path(), "tidegate.toml", &rules(false))?;
    let server = start_config(&dir.path().join("data"), "0-1", &config);
    runtime().block_on(async {
        let operator = connect(&server).await;
        assert_eq!(authenticate(&operator, "operator-secret").await.0, OK);
        for topic in ["orders.eu", "payments"] {
            assert_eq!(create(&operator, topic).await.0, OK);
        }
        let producer = connect(&server).await;
        assert_eq!(authenticate(&producer, "producer-secret").await.0, OK);
        assert_eq!(produce(&producer, "orders.eu").await.0, OK);
        let denied = [
            (
                fetch(&producer, "orders.eu").await,
                "consume on topic orders.eu",
            ),
            (
                produce(&producer, "payments").await,
                "produce on topic payments",
            ),
            (
                create(&producer, "orders.us").await,
                "admin on topic orders.us",
            ),
        ];
        for ((code, message), want) in denied {
            assert_eq!((code, message.as_str()), (ErrorCode::NotAuthorized, want));
        }
        // The connection keeps working for what is allowed.
        assert_eq!(produce(&producer, "orders.eu").await.0, OK);
        // ListTopics shows only what the principal may use.
        match decode(&producer.call(&Request::ListTopics).await) {
            Response::ListTopics(topics) => {
                let names: Vec<&str> = topics.iter().map(|t| t.name).collect();
                assert_eq!(names, ["orders.eu"]);
            }
            other => panic!("unexpected {other:?}"),
        }
        // A reload that allows consume takes effect without a restart, on
        // the same connection.
        std::fs::write(&config, rules(true))?;
        server.reload();
        server.wait_for_log("configuration reloaded", 1);
        assert_eq!(fetch(&producer, "orders.eu").await.0, OK);
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    // The admin listener: probes open, the rest behind the admin token.
    let admin = admin_addr(&server);
    assert_eq!(http_get(admin, "/healthz").0, 200);
    assert_eq!(http_get(admin, "/metrics").0, 401);
    let wrong = http_get_with(admin, "/metrics", "Authorization: Bearer nope\r\n");
    assert_eq!(wrong.0, 401);
    // Shards publish their counters once a second: wait for the denials.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) =
            http_get_with(admin, "/metrics", "Authorization: Bearer admin-secret\r\n");
        assert_eq!(status, 200);
        let counted = body.lines().any(|l| {
            l.starts_with("tidegate_auth_denied_total{") && l.contains("operation=\"consume\"")
        });
        if counted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "denials are not counted: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn subscriptions_and_groups_are_authorized_by_their_topics() -> Result {
    let dir = tempfile::tempdir()?;
    let config = format!(
        r#"
        [auth]
        mode = "token"
        [[auth.tokens]]
        principal = "worker"
        hash = "{worker}"
        [[auth.tokens]]
        principal = "lead"
        hash = "{lead}"
        [[auth.tokens]]
        principal = "operator"
        hash = "{operator}"
        [[auth.acl]]
        principals = ["worker"]
        topics = ["orders.*"]
        operations = ["consume"]
        [[auth.acl]]
        principals = ["lead"]
        topics = ["orders.*"]
        operations = ["admin", "consume"]
        [[auth.acl]]
        principals = ["operator"]
        topics = ["*"]
        operations = ["all"]
        "#,
        worker = tidegate_auth::hash_token("worker-secret"),
        lead = tidegate_auth::hash_token("lead-secret"),
        operator = tidegate_auth::hash_token("operator-secret"),
    );
    let config = write(dir.path(), "tidegate.toml", &config)?;
    let server = start_config(&dir.path().join("data"), "0-1", &config);
    let sub = |name: &'static str, topic: &'static str, dlq: &'static str| {
        Request::CreateSubscription(SubscriptionConfig {
            max_deliveries: if dlq.is_empty() { 0 } else { 3 },
            dead_letter_topic: dlq,
            ..SubscriptionConfig::new(name, topic)
        })
    };
    let pull = |name: &'static str| {
        Request::Pull(PullRequest {
            subscription: name,
            max_messages: 1,
            max_bytes: 1 << 20,
            max_wait_ms: 0,
        })
    };
    let heartbeat = |topic: &'static str| {
        Request::GroupHeartbeat(GroupHeartbeatRequest {
            group: "g",
            topic,
            member_id: "",
            owned: vec![],
            session_timeout_ms: 10_000,
            leave: false,
        })
    };
    let commit = |topic: &'static str| {
        Request::CommitOffsets(CommitOffsetsRequest {
            group: "g2",
            member_id: "",
            topic,
            offsets: vec![OffsetCommit {
                partition: 0,
                offset: 0,
                metadata: b"",
            }],
        })
    };
    runtime().block_on(async {
        let operator = connect(&server).await;
        assert_eq!(authenticate(&operator, "operator-secret").await.0, OK);
        for topic in ["orders.eu", "orders.dlq", "payments"] {
            assert_eq!(create(&operator, topic).await.0, OK);
        }
        assert_eq!(
            code_of(&operator.call(&sub("pay", "payments", "")).await).0,
            OK
        );
        let lead = connect(&server).await;
        assert_eq!(authenticate(&lead, "lead-secret").await.0, OK);
        // An admin of the topic makes its subscriptions, but may only send
        // dead letters where it may produce: the server writes them.
        let to_payments = code_of(&lead.call(&sub("eu", "orders.eu", "payments")).await);
        assert_eq!(
            to_payments,
            (ErrorCode::NotAuthorized, "produce on topic payments".into())
        );
        let to_own = code_of(&lead.call(&sub("eu", "orders.eu", "orders.dlq")).await);
        assert_eq!(
            to_own,
            (
                ErrorCode::NotAuthorized,
                "produce on topic orders.dlq".into()
            )
        );
        assert_eq!(code_of(&lead.call(&sub("eu", "orders.eu", "")).await).0, OK);

        let worker = connect(&server).await;
        assert_eq!(authenticate(&worker, "worker-secret").await.0, OK);
        let ack = Request::Ack(AckRequest {
            subscription: "pay",
            ack_ids: vec![[1; 16]],
        });
        let denied = [
            (sub("w", "orders.eu", ""), "admin on topic orders.eu"),
            (pull("pay"), "consume on topic payments"),
            (ack, "consume on topic payments"),
            (
                Request::DeleteSubscription { name: "eu" },
                "admin on topic orders.eu",
            ),
            (
                Request::DescribeSubscription { name: "pay" },
                "consume on topic payments",
            ),
            (heartbeat("payments"), "consume on topic payments"),
            (commit("payments"), "consume on topic payments"),
        ];
        for (request, want) in denied {
            let got = code_of(&worker.call(&request).await);
            assert_eq!(
                got,
                (ErrorCode::NotAuthorized, want.to_owned()),
                "{request:?}"
            );
        }
        // What its topics allow goes through on the same connection, and
        // it lists only the subscriptions of topics it sees.
        assert_eq!(code_of(&worker.call(&pull("eu")).await).0, OK);
        assert_eq!(code_of(&worker.call(&heartbeat("orders.eu")).await).0, OK);
        assert_eq!(code_of(&worker.call(&commit("orders.eu")).await).0, OK);
        match decode(&worker.call(&Request::ListSubscriptions { topic: "" }).await) {
            Response::ListSubscriptions(subs) => {
                let names: Vec<&str> = subs.iter().map(|s| s.name).collect();
                assert_eq!(names, ["eu"]);
            }
            other => panic!("unexpected {other:?}"),
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    server.stop();
    Ok(())
}

#[test]
fn a_bad_reload_keeps_the_running_rules() -> Result {
    let dir = tempfile::tempdir()?;
    let good = format!(
        r#"
        [auth]
        mode = "token"
        [[auth.tokens]]
        principal = "svc"
        hash = "{}"
        [[auth.acl]]
        principals = ["svc"]
        topics = ["*"]
        operations = ["all"]
        "#,
        tidegate_auth::hash_token("secret")
    );
    let config = write(dir.path(), "tidegate.toml", &good)?;
    let server = start_config(&dir.path().join("data"), "0", &config);
    std::fs::write(
        &config,
        good.replace("topics = [\"*\"]", "topics = [\"bad topic\"]"),
    )?;
    server.reload();
    server.wait_for_log("reload failed", 1);
    runtime().block_on(async {
        let client = connect(&server).await;
        assert_eq!(authenticate(&client, "secret").await.0, OK);
        assert_eq!(create(&client, "t").await.0, OK);
    });
    Ok(())
}

#[test]
fn anonymous_on_a_public_address_refuses_to_start() -> Result {
    let dir = tempfile::tempdir()?;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("TIDEGATE_CORES", "0")
        .env("TIDEGATE_SHARD__IO_MEMORY", "1MiB")
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("allow_anonymous_remote"), "{stderr}");
    Ok(())
}

#[test]
fn auth_commands_hash_generate_and_lint() -> Result {
    let run = |args: &[&str], stdin: &str| -> Result<(i32, String)> {
        use std::io::Write as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidegate"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        Ok((
            output.status.code().unwrap_or(-1),
            String::from_utf8(output.stdout)?,
        ))
    };
    let (code, hash) = run(&["auth", "hash-token"], "s3cret\n")?;
    assert_eq!(
        (code, hash.trim()),
        (0, tidegate_auth::hash_token("s3cret").as_str())
    );
    let (code, new) = run(&["auth", "new-token", "--principal", "svc"], "")?;
    assert_eq!(code, 0);
    assert!(
        new.contains("token: tg_") && new.contains("[[auth.tokens]]"),
        "{new}"
    );

    let dir = tempfile::tempdir()?;
    let config = write(
        dir.path(),
        "tidegate.toml",
        &format!(
            r#"
            [auth]
            mode = "token"
            [[auth.tokens]]
            principal = "svc"
            hash = "{}"
            [[auth.acl]]
            principals = ["svc", "scv"]
            topics = ["orders.*"]
            operations = ["produce"]
            "#,
            tidegate_auth::hash_token("t")
        ),
    )?;
    let path = config.display().to_string();
    let (code, out) = run(&["auth", "check", "--config", &path], "")?;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("`scv`"), "{out}");
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)?.replace("orders.*", "orders/*"),
    )?;
    let (code, out) = run(&["auth", "check", "--config", &path], "")?;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("error:") && out.contains("byte 6"), "{out}");
    Ok(())
}

/// The SDK against the real server: a static token, a JWT from a callback
/// renewed on the same connection as it nears its `exp`, typed denials, and
/// a client certificate.
#[test]
fn the_sdk_authenticates_renews_jwts_and_gets_typed_denials() -> Result {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use tidegate_client::{Ack, Credentials, Error, Target, Tls};

    let dir = tempfile::tempdir()?;
    let ca = Ca::new("clients")?;
    let ca_path = write(dir.path(), "ca.pem", &ca.cert.pem())?;
    let signer = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let public = write(dir.path(), "jwt.pem", &signer.public_key_pem())?;
    let config = write(
        dir.path(),
        "tidegate.toml",
        &format!(
            r#"
            [auth]
            mode = "mtls_or_token"
            client_ca = "{ca}"
            jwt_leeway_secs = 0
            [[auth.tokens]]
            principal = "operator"
            hash = "{operator}"
            [[auth.jwt_keys]]
            algorithm = "EdDSA"
            public_key = "{public}"
            [[auth.acl]]
            principals = ["operator"]
            topics = ["*"]
            operations = ["all"]
            [[auth.acl]]
            principals = ["alice", "svc-cert"]
            topics = ["orders.*"]
            operations = ["produce", "consume"]
            "#,
            ca = ca_path.display(),
            operator = tidegate_auth::hash_token("operator-secret"),
            public = public.display(),
        ),
    )?;
    let server = start_config(&dir.path().join("data"), "0", &config);
    let tls = || Tls::ca_file(server.data_dir.join("tls/dev-cert.pem"));
    let batch = batch_of(&[b"v".to_vec()]);
    let issued = Arc::new(AtomicU32::new(0));
    let pem = signer.serialize_pem();
    let mint = {
        let issued = issued.clone();
        move || -> std::result::Result<String, Box<dyn std::error::Error + Send + Sync>> {
            issued.fetch_add(1, Ordering::SeqCst);
            let claims = json!({"sub": "alice", "aud": "tidegate", "exp": now_secs() + 2});
            let key = EncodingKey::from_ed_pem(pem.as_bytes())?;
            Ok(encode(&Header::new(Algorithm::EdDSA), &claims, &key)?)
        }
    };
    runtime().block_on(async {
        let operator = tidegate_client::Client::connect_with(
            server.addr,
            tls(),
            Credentials::token("operator-secret"),
        )
        .await?;
        assert_eq!(operator.principal().as_deref(), Some("operator"));
        operator.create_topic("orders.eu", 1).await?;
        operator.create_topic("payments", 1).await?;

        let wrong = tidegate_client::Client::connect_with(
            server.addr,
            tls(),
            Credentials::token("operator-secreT"),
        )
        .await;
        assert!(
            matches!(wrong, Err(Error::NotAuthenticated { .. })),
            "{wrong:?}"
        );

        // A JWT that lives 2 s, produced with for 5 s: renewed on the way
        // (exp is checked to the second, with no leeway), never refused.
        let alice =
            tidegate_client::Client::connect_with(server.addr, tls(), Credentials::token_fn(mint))
                .await?;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < until {
            alice
                .produce_batch("orders.eu", Target::Partition(0), Ack::Durable, &batch)
                .await?;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(issued.load(Ordering::SeqCst) >= 3, "the token was renewed");
        match alice
            .produce_batch("payments", Target::Partition(0), Ack::Durable, &batch)
            .await
        {
            Err(Error::NotAuthorized {
                operation,
                resource,
                ..
            }) => assert_eq!(
                (operation.as_str(), resource.as_str()),
                ("produce", "topic payments")
            ),
            other => panic!("expected not authorized, got {other:?}"),
        }
        let topics: Vec<String> = alice
            .list_topics()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(topics, ["orders.eu"]);

        // A client certificate instead of a token.
        let (chain, key) = ca.client("svc-cert", false)?;
        let by_cert =
            tidegate_client::Client::connect(server.addr, tls().client_cert_der(chain, key))
                .await?;
        by_cert
            .produce_batch("orders.eu", Target::Partition(0), Ack::Durable, &batch)
            .await?;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

/// A token-mode server whose ACL lets `alice` (a JWT) and `operator` (a
/// static token) do everything on `orders.*`; JWTs are checked to the
/// second (no leeway). Returns the config path and the JWT signer.
fn jwt_server_config(dir: &Path) -> Result<(PathBuf, KeyPair)> {
    let signer = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let public = write(dir, "jwt.pem", &signer.public_key_pem())?;
    let config = write(
        dir,
        "tidegate.toml",
        &format!(
            r#"
            [auth]
            mode = "token"
            jwt_leeway_secs = 0
            [[auth.tokens]]
            principal = "operator"
            hash = "{operator}"
            [[auth.jwt_keys]]
            algorithm = "EdDSA"
            public_key = "{public}"
            [[auth.acl]]
            principals = ["alice", "operator"]
            topics = ["orders.*"]
            operations = ["all"]
            "#,
            operator = tidegate_auth::hash_token("operator-secret"),
            public = public.display(),
        ),
    )?;
    Ok((config, signer))
}

type Minted = std::sync::Arc<std::sync::atomic::AtomicU32>;

/// A token callback minting JWTs for `alice` that live `lifetime_s`, and
/// the count of tokens it minted.
fn minter(
    signer: &KeyPair,
    lifetime_s: u64,
) -> (
    impl Fn() -> std::result::Result<String, Box<dyn std::error::Error + Send + Sync>>
        + Send
        + Sync
        + 'static,
    Minted,
) {
    let minted = Minted::default();
    let pem = signer.serialize_pem();
    let count = minted.clone();
    let mint = move || -> std::result::Result<String, Box<dyn std::error::Error + Send + Sync>> {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let claims = json!({"sub": "alice", "aud": "tidegate", "exp": now_secs() + lifetime_s});
        let key = EncodingKey::from_ed_pem(pem.as_bytes())?;
        Ok(encode(&Header::new(Algorithm::EdDSA), &claims, &key)?)
    };
    (mint, minted)
}

#[test]
fn the_sdk_authenticates_again_after_a_server_restart_with_a_fresh_token() -> Result {
    use std::sync::atomic::Ordering;
    use tidegate_client::{Ack, Credentials, Target, Tls};

    let dir = tempfile::tempdir()?;
    let (config, signer) = jwt_server_config(dir.path())?;
    let data = dir.path().join("data");
    let server = start_config(&data, "0", &config);
    let addr = server.addr;
    let (mint, minted) = minter(&signer, 600);
    let batch = batch_of(&[b"v".to_vec()]);
    let rt = runtime();
    let client = rt.block_on(async {
        let tls = Tls::ca_file(data.join("tls/dev-cert.pem"));
        let client =
            tidegate_client::Client::connect_with(addr, tls, Credentials::token_fn(mint)).await?;
        client.create_topic("orders.eu", 1).await?;
        Ok::<_, Box<dyn std::error::Error>>(client)
    })?;
    assert_eq!(minted.load(Ordering::SeqCst), 1);
    assert!(server.stop().success());
    // Same data, same port: the client's reconnect finds it.
    let restarted = start_config_at(&data, "0", &config, addr);
    assert_eq!(restarted.addr, addr);
    rt.block_on(async {
        // A call that meets the old connection's close fails retriably
        // (sdk/tests/reconnect.rs); the next reconnects, authenticates with
        // a new token, and only then produces.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match client
                .produce_batch("orders.eu", Target::Partition(0), Ack::Durable, &batch)
                .await
            {
                Ok(_) => break,
                Err(e) if e.is_retriable() && attempts < 3 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    assert!(
        minted.load(Ordering::SeqCst) >= 2,
        "a fresh token on reconnect"
    );
    Ok(())
}

#[test]
fn the_sdk_reports_a_lapsed_static_jwt_and_a_failing_callback_as_typed_errors() -> Result {
    use tidegate_client::{Ack, Credentials, Error, Target, Tls};

    let dir = tempfile::tempdir()?;
    let (config, signer) = jwt_server_config(dir.path())?;
    let server = start_config(&dir.path().join("data"), "0", &config);
    let tls = || Tls::ca_file(server.data_dir.join("tls/dev-cert.pem"));
    let batch = batch_of(&[b"v".to_vec()]);
    runtime().block_on(async {
        let failing = tidegate_client::Client::connect_with(
            server.addr,
            tls(),
            Credentials::token_fn(|| Err("the token service is down".into())),
        )
        .await;
        assert!(matches!(failing, Err(Error::Credentials(_))), "{failing:?}");

        // Without credentials the SDK sends no Authenticate; the server
        // refuses the first request.
        let anonymous = tidegate_client::Client::connect(server.addr, tls()).await?;
        assert_eq!(anonymous.principal(), None);
        let refused = anonymous.list_topics().await;
        assert!(
            matches!(refused, Err(Error::NotAuthenticated { .. })),
            "{refused:?}"
        );

        // A JWT given as a fixed token cannot be renewed: once its exp
        // passes, the server refuses and the SDK says so (no retry loop).
        // Two seconds: exp is in whole seconds, so a 1 s token minted late
        // in a second could lapse before the topic is even created.
        let (mint, _) = minter(&signer, 2);
        let jwt = mint().map_err(|e| e.to_string())?;
        let client =
            tidegate_client::Client::connect_with(server.addr, tls(), Credentials::token(jwt))
                .await?;
        client.create_topic("orders.eu", 1).await?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let lapsed = loop {
            match client
                .produce_batch("orders.eu", Target::Partition(0), Ack::Durable, &batch)
                .await
            {
                Ok(_) => {
                    assert!(std::time::Instant::now() < deadline, "the JWT never lapsed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => break e,
            }
        };
        assert!(
            matches!(lapsed, Error::NotAuthenticated { .. }),
            "{lapsed:?}"
        );
        assert!(!lapsed.is_retriable());
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

#[test]
fn the_sdk_keeps_producing_with_one_second_jwts_from_a_callback() -> Result {
    use std::sync::atomic::Ordering;
    use tidegate_client::{Ack, Credentials, Target, Tls};

    let dir = tempfile::tempdir()?;
    let (config, signer) = jwt_server_config(dir.path())?;
    let server = start_config(&dir.path().join("data"), "0", &config);
    let (mint, minted) = minter(&signer, 1);
    let batch = batch_of(&[b"v".to_vec()]);
    runtime().block_on(async {
        let tls = Tls::ca_file(server.data_dir.join("tls/dev-cert.pem"));
        let client =
            tidegate_client::Client::connect_with(server.addr, tls, Credentials::token_fn(mint))
                .await?;
        client.create_topic("orders.eu", 1).await?;
        // Tokens lapse about every second, so some requests meet a lapsed
        // one before the renewal: the SDK authenticates again and resends,
        // and the caller sees no error.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(4);
        let mut sent = 0u32;
        while std::time::Instant::now() < until {
            client
                .produce_batch("orders.eu", Target::Partition(0), Ack::Durable, &batch)
                .await?;
            sent += 1;
        }
        assert!(sent > 10);
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    assert!(
        minted.load(Ordering::SeqCst) >= 4,
        "renewed every second or so"
    );
    Ok(())
}

#[test]
fn a_reloaded_certificate_serves_new_connections_and_open_ones_stay() -> Result {
    let dir = tempfile::tempdir()?;
    let make = || -> Result<(CertificateDer<'static>, String, String)> {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
        Ok((
            CertificateDer::from(certified.cert.der().to_vec()),
            certified.cert.pem(),
            certified.key_pair.serialize_pem(),
        ))
    };
    let (old, old_pem, old_key) = make()?;
    let (new, new_pem, new_key) = make()?;
    let cert = write(dir.path(), "cert.pem", &old_pem)?;
    let key = write(dir.path(), "key.pem", &old_key)?;
    let config = write(
        dir.path(),
        "tidegate.toml",
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )?;
    let server = start_config(&dir.path().join("data"), "0-1", &config);
    runtime().block_on(async {
        let before = connect_trusting(&server, old.clone(), None).await?;
        assert_eq!(create(&before, "t").await.0, OK);
        std::fs::write(&cert, &new_pem)?;
        std::fs::write(&key, &new_key)?;
        server.reload();
        // Every shard says when its endpoint took the new certificate.
        server.wait_for_log("TLS configuration reloaded", 2);
        let after = connect_trusting(&server, new, None).await?;
        assert_eq!(produce(&after, "t").await.0, OK);
        assert!(
            connect_trusting(&server, old, None).await.is_err(),
            "new connections get the new certificate"
        );
        // The connection made before the reload keeps working.
        assert_eq!(produce(&before, "t").await.0, OK);
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

#[test]
fn the_cli_authenticates_with_tidegate_token_and_prints_denials() -> Result {
    let dir = tempfile::tempdir()?;
    let config = write(
        dir.path(),
        "tidegate.toml",
        &format!(
            r#"
            [auth]
            mode = "token"
            [[auth.tokens]]
            principal = "svc"
            hash = "{}"
            [[auth.acl]]
            principals = ["svc"]
            topics = ["orders.*"]
            operations = ["admin", "produce"]
            "#,
            tidegate_auth::hash_token("cli-secret")
        ),
    )?;
    let server = start_config(&dir.path().join("data"), "0", &config);
    let ca = server.data_dir.join("tls/dev-cert.pem");
    let cli = |token: &str, args: &[&str], stdin: &str| -> Result<(i32, String)> {
        use std::io::Write as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidegate"))
            .args(args)
            .arg("--server")
            .arg(server.addr.to_string())
            .arg("--ca")
            .arg(&ca)
            .env("TIDEGATE_TOKEN", token)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.code().unwrap_or(-1), text))
    };
    let (code, text) = cli(
        "cli-secret",
        &["topic", "create", "orders.eu", "--partitions", "1"],
        "",
    )?;
    assert_eq!(code, 0, "{text}");
    let (code, text) = cli("cli-secret", &["produce", "orders.eu"], "a\nb\n")?;
    assert_eq!(code, 0, "{text}");
    let (code, text) = cli("wrong-secret", &["topic", "list"], "")?;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not authenticated"), "{text}");
    assert!(
        !text.contains("wrong-secret"),
        "the token is never printed: {text}"
    );
    let (code, text) = cli(
        "cli-secret",
        &["consume", "orders.eu", "--from", "earliest"],
        "",
    )?;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("not authorized") && text.contains("consume on topic orders.eu"),
        "{text}"
    );
    Ok(())
}
