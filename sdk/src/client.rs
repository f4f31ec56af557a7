//! The connection to one server and the request/response exchange that
//! every call is built on.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use tidegate_proto::protocol::{
    decode_header, AppErrorCode, Request, Response, FRAME_HEADER_LEN, MAX_FRAME_BODY_BYTES,
};

use crate::error::{Error, Result};
use crate::tls::Tls;

/// How long [`Client::connect`] waits for the QUIC and TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response the client reads: the protocol's frame ceiling.
pub const MAX_RESPONSE_BYTES: usize = FRAME_HEADER_LEN + MAX_FRAME_BODY_BYTES;

/// Keep-alive interval: well under the idle timeout, so a connection
/// waiting on a long-poll fetch (up to 60 s) stays open.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// A connection to a tidegate server.
///
/// Cheap to clone: clones share the connection, and every call runs on its
/// own QUIC stream, so many calls can be in flight at once from many tasks.
/// Needs a tokio runtime (with the `time` and `net` drivers enabled).
///
/// # Example
///
/// ```no_run
/// use tidegate_client::{Client, Tls};
///
/// # async fn run() -> Result<(), tidegate_client::Error> {
/// let client = Client::connect(
///     "127.0.0.1:7441".parse().unwrap(),
///     Tls::ca_file("/var/lib/tidegate/tls/dev-cert.pem"),
/// )
/// .await?;
/// client.create_topic("orders", 4).await?;
/// client.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
}

impl Client {
    /// Connects to the server at `addr`, verifying its certificate as `tls`
    /// says, within [`CONNECT_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] when the trust settings cannot be loaded or the
    /// server's certificate does not verify; [`Error::Connect`] when the
    /// server cannot be reached or the handshake fails otherwise;
    /// [`Error::Io`] when no local UDP socket can be bound.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tidegate_client::{Client, Tls};
    ///
    /// # async fn run() -> Result<(), tidegate_client::Error> {
    /// // Development only: trusts any certificate (and logs a warning).
    /// let client = Client::connect("127.0.0.1:7441".parse().unwrap(), Tls::insecure_dev()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(addr: SocketAddr, tls: Tls) -> Result<Client> {
        let tls_config = tls.client_config()?;
        let quic = QuicClientConfig::try_from(tls_config).map_err(|e| Error::Tls(Box::new(e)))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        // The server never opens streams towards a client.
        transport.max_concurrent_bidi_streams(0u32.into());
        transport.max_concurrent_uni_streams(0u32.into());
        transport.keep_alive_interval(Some(KEEP_ALIVE));
        config.transport_config(Arc::new(transport));

        let local: SocketAddr = match addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let mut endpoint = quinn::Endpoint::client(local)?;
        endpoint.set_default_client_config(config);
        let connecting = endpoint
            .connect(addr, tls.name())
            .map_err(|e| connect_error(addr, e))?;
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(handshake_error(addr, e)),
            Err(elapsed) => {
                return Err(Error::Connect {
                    addr,
                    source: Box::new(elapsed),
                })
            }
        };
        Ok(Client { endpoint, conn })
    }

    /// The server's address.
    pub fn server_addr(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// Closes the connection, abandoning calls in flight (they fail with
    /// [`Error::Transport`]), and waits briefly for the server to be told.
    pub async fn close(&self) {
        let code = quinn::VarInt::from_u64(AppErrorCode::NoError.as_u64())
            .unwrap_or(quinn::VarInt::from_u32(0));
        self.conn.close(code, b"client closed");
        self.endpoint.wait_idle().await;
    }

    /// Sends one request on its own stream and returns the whole response
    /// frame (header and body), at most [`MAX_RESPONSE_BYTES`].
    pub(crate) async fn call(&self, request: &Request<'_>) -> Result<Vec<u8>> {
        request
            .validate()
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let mut frame = Vec::new();
        request.encode(&mut frame);
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(Error::transport)?;
        send.write_all(&frame).await.map_err(Error::transport)?;
        send.finish().map_err(Error::transport)?;
        recv.read_to_end(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                quinn::ReadToEndError::TooLong => {
                    Error::Protocol(format!("response over {MAX_RESPONSE_BYTES} bytes"))
                }
                quinn::ReadToEndError::Read(e) => Error::transport(e),
            })
    }
}

/// Decodes a whole response frame; a server error becomes [`Error::Server`].
pub(crate) fn decode_response(frame: &[u8]) -> Result<Response<'_>> {
    let bad = |e: tidegate_proto::protocol::ProtocolError| Error::Protocol(e.to_string());
    let header = decode_header(frame, MAX_FRAME_BODY_BYTES)
        .map_err(bad)?
        .ok_or_else(|| Error::Protocol(format!("response of {} bytes", frame.len())))?;
    let body = frame.get(FRAME_HEADER_LEN..).unwrap_or_default();
    match Response::decode(header, body).map_err(bad)? {
        Response::Error(e) => Err(Error::Server {
            code: e.code,
            message: e.message.to_owned(),
        }),
        response => Ok(response),
    }
}

/// The error for an answer of the wrong kind.
pub(crate) fn unexpected(expected: &str, got: &Response<'_>) -> Error {
    Error::Protocol(format!(
        "expected a {expected} response, got kind {:#04x}",
        got.kind_code()
    ))
}

fn connect_error(addr: SocketAddr, e: quinn::ConnectError) -> Error {
    match e {
        quinn::ConnectError::InvalidServerName(name) => {
            Error::tls(format!("invalid server name {name:?}"))
        }
        other => Error::Connect {
            addr,
            source: Box::new(other),
        },
    }
}

/// QUIC carries TLS alerts as transport error codes 0x100..=0x1ff.
fn handshake_error(addr: SocketAddr, e: quinn::ConnectionError) -> Error {
    let code = match &e {
        quinn::ConnectionError::TransportError(t) => Some(t.code),
        quinn::ConnectionError::ConnectionClosed(c) => Some(c.error_code),
        _ => None,
    };
    if code.is_some_and(|code| (0x100..=0x1ff).contains(&u64::from(code))) {
        return Error::Tls(Box::new(e));
    }
    Error::Connect {
        addr,
        source: Box::new(e),
    }
}
