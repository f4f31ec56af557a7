//! Connects to a server that requires a client certificate (mutual TLS)
//! and a bearer token, says who the server takes it for, and lists the
//! topics; a refused operation shows what was refused on what.
//!
//! Run it against a `tidegate serve` configured to require client
//! certificates and tokens (see `docs/CONFIG.md`), with:
//!
//! ```text
//! export TIDEGATE_CA=ca.pem                  # the CA that signed the server's certificate
//! export TIDEGATE_CLIENT_CERT=client.pem     # this client's certificate, signed by the server's client CA
//! export TIDEGATE_CLIENT_KEY=client-key.pem  # its private key
//! export TIDEGATE_TOKEN=...                  # a static token, or
//! export TIDEGATE_TOKEN_FILE=/run/secrets/tidegate.jwt   # a JWT file, read again on every (re)connect
//! cargo run -p tidegate-client --example authenticated
//! ```
//!
//! Every variable is optional: without the certificate variables no client
//! certificate is presented, without a token none is sent (a server that
//! requires one then refuses the connection with `not authenticated`), and
//! without `TIDEGATE_CA` the example trusts any server certificate, which
//! is for development only. `TIDEGATE_ADDR` sets the server (default
//! `127.0.0.1:7441`).

use std::error::Error as StdError;
use std::path::PathBuf;

use tidegate_client::{Client, Credentials, Error, Tls};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn StdError>> {
    let addr = std::env::var("TIDEGATE_ADDR").unwrap_or_else(|_| "127.0.0.1:7441".to_owned());
    let client = match credentials() {
        Some(credentials) => Client::connect_with(addr.parse()?, tls(), credentials).await,
        None => Client::connect(addr.parse()?, tls()).await,
    };
    let client = match client {
        Ok(client) => client,
        Err(Error::NotAuthenticated { message }) => {
            return Err(format!("the server refused the token: {message}").into())
        }
        Err(Error::Tls(e)) => {
            return Err(
                format!("TLS failed (server certificate, or our client certificate): {e}").into(),
            )
        }
        Err(e) => return Err(e.into()),
    };
    println!("authenticated as {:?}", client.principal());

    match client.list_topics().await {
        Ok(topics) => {
            for topic in topics {
                println!("{} ({} partitions)", topic.name, topic.partitions);
            }
        }
        Err(Error::NotAuthorized {
            operation,
            resource,
            message,
        }) => {
            if operation.is_empty() {
                println!("not allowed: {message}");
            } else {
                println!("not allowed to {operation} on {resource}");
            }
        }
        Err(e) => {
            client.close().await;
            return Err(e.into());
        }
    }
    client.close().await;
    Ok(())
}

/// Trust `TIDEGATE_CA` (else anything), and present the client certificate
/// of `TIDEGATE_CLIENT_CERT` / `TIDEGATE_CLIENT_KEY` if both are set.
fn tls() -> Tls {
    let tls = match std::env::var_os("TIDEGATE_CA") {
        Some(path) => Tls::ca_file(path),
        None => Tls::insecure_dev(),
    };
    match (
        std::env::var_os("TIDEGATE_CLIENT_CERT"),
        std::env::var_os("TIDEGATE_CLIENT_KEY"),
    ) {
        (Some(cert), Some(key)) => tls.client_cert(cert, key),
        _ => tls,
    }
}

/// A JWT read from `TIDEGATE_TOKEN_FILE` on every (re)connect and before
/// the last one expires, or the static `TIDEGATE_TOKEN`.
fn credentials() -> Option<Credentials> {
    if let Some(path) = std::env::var_os("TIDEGATE_TOKEN_FILE") {
        let path = PathBuf::from(path);
        return Some(Credentials::token_fn(move || {
            let jwt = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Ok(jwt.trim().to_owned())
        }));
    }
    std::env::var("TIDEGATE_TOKEN").ok().map(Credentials::token)
}
