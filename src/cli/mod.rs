//! The client commands, `tidegate topic|produce|consume`, on the SDK
//! (`tidegate-client`). Each runs on its own tokio current-thread runtime.
//!
//! kcat / nats CLI habits: data on stdout, progress and summaries on
//! stderr, `--format json` for scripts; exit code 0 ok, 1 error (the
//! message on stderr), 2 usage error (clap).

pub(crate) mod consume;
pub(crate) mod produce;
pub(crate) mod topic;
pub(crate) mod tune;

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Args, ValueEnum};
use tidegate_client::{Client, Error, ErrorCode, Tls};

/// Where the server is and how its certificate is verified.
#[derive(Args, Debug, Clone)]
pub(crate) struct ConnectArgs {
    /// The server's QUIC address, HOST:PORT.
    #[arg(
        long,
        value_name = "ADDR",
        env = "TIDEGATE_SERVER",
        default_value = "127.0.0.1:7441",
        global = true
    )]
    server: String,
    /// Trust the CA certificates in this PEM file (e.g. the development
    /// certificate `<data_dir>/tls/dev-cert.pem`) instead of the system
    /// roots.
    #[arg(long, value_name = "FILE", global = true)]
    ca: Option<PathBuf>,
    /// Development only: trust any server certificate.
    #[arg(long, conflicts_with = "ca", global = true)]
    insecure: bool,
}

/// How data is printed on stdout.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Format {
    /// For people.
    #[default]
    Text,
    /// JSON, for scripts.
    Json,
}

impl ConnectArgs {
    /// Connects, with errors that say what to do.
    pub(crate) async fn connect(&self) -> anyhow::Result<Client> {
        let (addr, host) = resolve(&self.server)?;
        if self.ca.is_none() && self.insecure {
            eprintln!(
                "tidegate: warning: --insecure: the server's certificate is not verified \
                 (development only)"
            );
        }
        let tls = Tls::from_flags(self.ca.as_deref(), self.insecure);
        let tls = match host {
            Some(host) => tls.server_name(host),
            None => tls,
        };
        Client::connect(addr, tls).await.map_err(|e| {
            let hint = match &e {
                Error::Tls(_) => {
                    "; for a development server pass --ca <data_dir>/tls/dev-cert.pem (or --insecure)"
                }
                Error::Connect { .. } => {
                    "; is `tidegate serve` running there? (set the address with --server or TIDEGATE_SERVER; \
                     for a development server pass --ca <data_dir>/tls/dev-cert.pem)"
                }
                _ => "",
            };
            anyhow!("cannot connect to {}: {e}{hint}", self.server)
        })
    }
}

/// `HOST:PORT` to an address, and the host name to verify when it is not
/// an IP address.
fn resolve(server: &str) -> anyhow::Result<(SocketAddr, Option<String>)> {
    if let Ok(addr) = server.parse::<SocketAddr>() {
        return Ok((addr, None));
    }
    let addr = server
        .to_socket_addrs()
        .with_context(|| format!("--server {server}: expected HOST:PORT"))?
        .next()
        .ok_or_else(|| anyhow!("--server {server}: the name has no address"))?;
    let host = server
        .rsplit_once(':')
        .map_or(server, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    Ok((addr, Some(host.to_owned())))
}

/// Runs a command's future on a current-thread runtime.
pub(crate) fn block_on<F: Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(f)
}

/// A client error about `topic`, with a hint a person can act on.
pub(crate) fn topic_error(what: &str, topic: &str, e: Error) -> anyhow::Error {
    let hint = match e.code() {
        Some(ErrorCode::UnknownTopic) => {
            format!("; topic '{topic}' does not exist (`tidegate topic list` shows the topics)")
        }
        Some(ErrorCode::UnknownPartition) => format!(
            "; topic '{topic}' has no such partition (`tidegate topic describe {topic}` shows them)"
        ),
        _ => String::new(),
    };
    anyhow!("{what} '{topic}': {e}{hint}")
}

/// True for a write error that means the reader went away (`| head`).
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
