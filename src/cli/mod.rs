//! The client commands, `tidegate topic|produce|consume|group|sub`, on the SDK
//! (`tidegate-client`). Each runs on its own tokio current-thread runtime.
//!
//! kcat / nats CLI habits: data on stdout, progress and summaries on
//! stderr, `--format json` for scripts; exit code 0 ok, 1 error (the
//! message on stderr), 2 usage error (clap).

pub(crate) mod auth;
pub(crate) mod consume;
pub(crate) mod group;
pub(crate) mod produce;
pub(crate) mod sub;
pub(crate) mod topic;
pub(crate) mod tune;

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Args, ValueEnum};
use tidegate_client::{Client, Credentials, Error, ErrorCode, Tls};

/// Where the server is, how its certificate is verified, and how the
/// client proves who it is (a client certificate, a bearer token).
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
    /// Present this client certificate (PEM, with any intermediates) to a
    /// server that requires mutual TLS; needs --cert-key. (`--key` is
    /// `produce`'s message key.)
    #[arg(long, value_name = "FILE", requires = "cert_key", global = true)]
    cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", requires = "cert", global = true)]
    cert_key: Option<PathBuf>,
    /// Authenticate with this bearer token (a static token or a JWT). Prefer
    /// the environment variable: a command line is visible to other users
    /// of the host.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TIDEGATE_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<Credentials>,
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
        let mut tls = Tls::from_flags(self.ca.as_deref(), self.insecure);
        if let Some(host) = host {
            tls = tls.server_name(host);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.cert_key) {
            tls = tls.client_cert(cert, key);
        }
        let connected = match self.credentials() {
            Some(credentials) => Client::connect_with(addr, tls, credentials).await,
            None => Client::connect(addr, tls).await,
        };
        connected.map_err(|e| {
            let hint = connect_hint(&e, self.cert.is_some(), self.credentials().is_some());
            anyhow!("cannot connect to {}: {e}{hint}", self.server)
        })
    }

    /// The token to authenticate with; an empty one (say `TIDEGATE_TOKEN=`)
    /// counts as none.
    fn credentials(&self) -> Option<Credentials> {
        self.token.clone().filter(|token| !token.is_empty())
    }
}

/// What to try when connecting failed with `e`.
fn connect_hint(e: &Error, with_cert: bool, with_token: bool) -> &'static str {
    match e {
        Error::Tls(_) if with_cert => {
            "; check --cert and --cert-key (readable PEM, a key that fits the certificate) and that \
             the server accepts that certificate; --ca must verify the server's"
        }
        Error::Tls(_) => {
            "; for a development server pass --ca <data_dir>/tls/dev-cert.pem (or --insecure); \
             a server that requires client certificates needs --cert and --cert-key"
        }
        Error::Connect { .. } => {
            "; is `tidegate serve` running there? (set the address with --server or TIDEGATE_SERVER; \
             for a development server pass --ca <data_dir>/tls/dev-cert.pem)"
        }
        Error::NotAuthenticated { .. } if with_token => {
            "; the server refused the token of --token / TIDEGATE_TOKEN"
        }
        Error::NotAuthenticated { .. } => "; the server requires a token: pass --token or set TIDEGATE_TOKEN",
        _ => "",
    }
}

/// A time given on the command line (after `@`): ms since the Unix epoch,
/// or an RFC 3339 time (`2024-05-01T12:00:00Z`,
/// `2024-05-01T14:00:00.250+02:00`); milliseconds since the epoch either
/// way.
pub(crate) fn parse_time_ms(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("'{s}': out of range"));
    }
    let expected = || {
        format!(
            "'{s}': expected an RFC 3339 time (2024-05-01T12:00:00Z, \
             2024-05-01T14:00:00.250+02:00) or ms since the Unix epoch"
        )
    };
    let time = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| expected())?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).map_err(|_| expected())
}

/// A position in each partition: `earliest`, `latest`, an offset, or `@`
/// and a time ([`parse_time_ms`]). `consume --from` starts there;
/// `group reset-offsets --to` moves a group there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    Earliest,
    Latest,
    Offset(u64),
    /// Ms since the Unix epoch: the first message at or after it.
    Time(i64),
}

impl std::str::FromStr for Position {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "earliest" => Ok(Position::Earliest),
            "latest" => Ok(Position::Latest),
            _ => match s.strip_prefix('@') {
                Some(time) => parse_time_ms(time).map(Position::Time),
                None => s
                    .parse()
                    .map(Position::Offset)
                    .map_err(|_| format!("'{s}': expected earliest, latest, an offset or @TIME")),
            },
        }
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
    if let Some(hint) = auth_hint(&e) {
        return anyhow!("{what} '{topic}': {e}{hint}");
    }
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

/// A hint for an authentication or authorization refusal, `None` for any
/// other error. The error itself shows the operation and the resource
/// (`not authorized: produce on topic orders`).
pub(crate) fn auth_hint(e: &Error) -> Option<&'static str> {
    match e {
        Error::NotAuthorized { .. } => {
            Some("; the server does not grant this client's principal that permission")
        }
        Error::NotAuthenticated { .. } => Some(
            "; the connection is not authenticated: pass a valid token with --token or TIDEGATE_TOKEN",
        ),
        _ => None,
    }
}

/// True for a write error that means the reader went away (`| head`).
pub(crate) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::{parse_time_ms, Position};

    #[test]
    fn positions_parse_every_form() {
        assert_eq!("earliest".parse(), Ok(Position::Earliest));
        assert_eq!("latest".parse(), Ok(Position::Latest));
        assert_eq!("42".parse(), Ok(Position::Offset(42)));
        assert_eq!(
            "@1700000000000".parse(),
            Ok(Position::Time(1_700_000_000_000))
        );
        assert_eq!(
            "@2023-11-14T22:13:20Z".parse(),
            Ok(Position::Time(1_700_000_000_000))
        );
        for bad in ["soon", "-1", "@", "@x", "@2023-11-14"] {
            assert!(bad.parse::<Position>().is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_ms_or_rfc3339_with_fractions_and_offsets() {
        assert_eq!(parse_time_ms("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time_ms("-1000"), Ok(-1000));
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time_ms("1970-01-01T00:00:00.5Z"), Ok(500));
        assert_eq!(
            parse_time_ms("2023-11-14T23:13:20.250+01:00"),
            Ok(1_700_000_000_250)
        );
        assert_eq!(
            parse_time_ms("2023-11-14T17:43:20-04:30"),
            Ok(1_700_000_000_000)
        );
        for bad in [
            "",
            "soon",
            "2023-02-29T00:00:00Z",
            "2023-01-01T24:00:00Z",
            "2023-01-01T00:00:00",
            "2023-01-01",
            "99999999999999999999",
        ] {
            assert!(parse_time_ms(bad).is_err(), "{bad}");
        }
    }
}
