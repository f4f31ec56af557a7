//! The connection to one server and the request/response exchange that
//! every call is built on, with reconnection after the connection is lost.
//!
//! A [`Client`] and its clones share one [`Shared`]: the QUIC endpoint,
//! where and how to connect, and the current connection. When a call finds
//! that connection closed, it reconnects before opening its stream. Only
//! one reconnect runs at a time (a tokio mutex): callers that find the
//! same dead connection queue behind it and take its outcome, the new
//! connection or its error, rather than each dialling again.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use tidegate_proto::protocol::{
    decode_header, AppErrorCode, Request, Response, FRAME_HEADER_LEN, MAX_FRAME_BODY_BYTES,
};

use crate::error::{Error, Result};
use crate::tls::Tls;

/// How long one connection attempt ([`Client::connect`], or a reconnect
/// after the connection was lost) waits for the QUIC and TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response the client reads: the protocol's frame ceiling.
pub const MAX_RESPONSE_BYTES: usize = FRAME_HEADER_LEN + MAX_FRAME_BODY_BYTES;

/// Keep-alive interval: well under the idle timeout, so a connection
/// waiting on a long-poll fetch (up to 60 s) stays open.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// A connection to a tidegate server, re-established when it is lost.
///
/// Cheap to clone: clones share the connection, and every call runs on its
/// own QUIC stream, so many calls can be in flight at once from many tasks.
/// Needs a tokio runtime (with the `time` and `net` drivers enabled).
///
/// # Reconnection
///
/// When the connection has been lost (the server restarted, the network
/// failed, the idle timeout passed), the next call dials the server again
/// before sending anything, one attempt of at most [`CONNECT_TIMEOUT`]
/// shared by every call waiting for it. If that attempt fails, the call
/// fails with a retriable [`Error::Connect`]; the next call tries again.
///
/// A call whose connection is lost while its request is in flight fails
/// with the retriable [`Error::Transport`]: the server may or may not have
/// acted on it. The [`Producer`](crate::Producer) retries such errors, so
/// a batch that was stored just before the connection dropped is stored
/// again: delivery across a reconnect is *at least once*.
///
/// [`close`](Client::close) ends this for good: a closed client does not
/// reconnect, and its calls fail with [`Error::Closed`].
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
    shared: Arc<Shared>,
}

/// What every clone of a [`Client`] shares.
#[derive(Debug)]
struct Shared {
    /// Owns the UDP socket; carries the client config (TLS, transport).
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    server_name: String,
    /// Held only to read or swap the state, never across an `.await`.
    state: Mutex<State>,
    /// Held for the whole of a reconnect attempt: the single flight.
    reconnect: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct State {
    conn: quinn::Connection,
    /// Reconnect attempts finished so far, successful or not. A caller
    /// that sees it move while it queued for the reconnect lock knows an
    /// attempt was made on its behalf.
    attempts: u64,
    /// The error of the last attempt, if it failed; shared with the
    /// callers that queued for it.
    last_error: Option<Error>,
    /// Set by [`Client::close`]; never cleared.
    closed: bool,
}

impl Client {
    /// Connects to the server at `addr`, verifying its certificate as `tls`
    /// says, within [`CONNECT_TIMEOUT`].
    ///
    /// This first connection is not retried: an error here usually means a
    /// wrong address or trust setting, which the caller should see at once.
    /// Reconnects after the connection is later lost happen by themselves
    /// (see [Reconnection](Client#reconnection)).
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
        // Send streams in the order they were written, not round-robin, so
        // pipelined requests usually complete at the server in that order
        // (not guaranteed: a lost packet can delay one).
        transport.send_fairness(false);
        config.transport_config(Arc::new(transport));

        let local: SocketAddr = match addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let runtime = quinn::default_runtime()
            .ok_or_else(|| Error::Io(std::io::Error::other("no tokio runtime")))?;
        let mut endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            udp_socket(local)?,
            runtime,
        )?;
        endpoint.set_default_client_config(config);
        let conn = dial(&endpoint, addr, tls.name()).await?;
        let state = State {
            conn,
            attempts: 0,
            last_error: None,
            closed: false,
        };
        let shared = Shared {
            endpoint,
            addr,
            server_name: tls.name().to_owned(),
            state: Mutex::new(state),
            reconnect: tokio::sync::Mutex::new(()),
        };
        Ok(Client {
            shared: Arc::new(shared),
        })
    }

    /// The server's address.
    pub fn server_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Closes the connection for good, for this client and all its clones:
    /// calls in flight are abandoned (they fail with [`Error::Closed`]), a
    /// reconnect under way is stopped, and later calls fail with
    /// [`Error::Closed`] without reconnecting. Waits briefly for the server
    /// to be told.
    pub async fn close(&self) {
        self.shared.lock().closed = true;
        // Closing the endpoint, not just the current connection, also ends
        // a handshake a reconnect has started, and refuses new ones.
        self.shared
            .endpoint
            .close(no_error_code(), b"client closed");
        self.shared.endpoint.wait_idle().await;
    }

    /// Sends one request on its own stream and returns the whole response
    /// frame (header and body), at most [`MAX_RESPONSE_BYTES`].
    pub(crate) async fn call(&self, request: &Request<'_>) -> Result<Vec<u8>> {
        let recv = self.start(request).await?;
        self.response(recv).await
    }

    /// Sends one request on its own stream and returns the stream its
    /// response comes on. Streams are opened, and (with `send_fairness`
    /// off) sent, in the order `start` is called; the server still takes
    /// each request when it has fully arrived, so a lost packet can reorder
    /// two of them (see `start_produce`).
    pub(crate) async fn start(&self, request: &Request<'_>) -> Result<quinn::RecvStream> {
        request
            .validate()
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        // A produce's batches go out from the caller's buffer, after the
        // fields before them: no copy of the batches into a frame.
        let mut head = Vec::new();
        let tail: &[u8] = match request {
            Request::Produce(produce) => {
                produce.encode_prefix(produce.batches.len(), &mut head);
                produce.batches
            }
            other => {
                other.encode(&mut head);
                &[]
            }
        };
        let sent = self.send_frame(&head, tail).await;
        self.closed_if_closing(sent)
    }

    /// Reads the whole response of a request sent with [`start`](Self::start),
    /// at most [`MAX_RESPONSE_BYTES`].
    pub(crate) async fn response(&self, mut recv: quinn::RecvStream) -> Result<Vec<u8>> {
        let read = recv
            .read_to_end(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                quinn::ReadToEndError::TooLong => {
                    Error::Protocol(format!("response over {MAX_RESPONSE_BYTES} bytes"))
                }
                quinn::ReadToEndError::Read(e) => Error::transport(e),
            });
        self.closed_if_closing(read)
    }

    /// A transport error on a client being closed is only the symptom of
    /// the close.
    fn closed_if_closing<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Err(Error::Transport(_)) if self.shared.lock().closed => Err(Error::Closed),
            other => other,
        }
    }

    /// Opens a stream, reconnecting first if the connection is lost, and
    /// writes the whole request on it: `head`, then `tail`.
    async fn send_frame(&self, head: &[u8], tail: &[u8]) -> Result<quinn::RecvStream> {
        let conn = self.shared.connection().await?;
        let (mut send, recv) = match conn.open_bi().await {
            Ok(streams) => streams,
            // The connection died since it was looked at. Nothing has been
            // sent, so one more try on a new connection is safe.
            Err(_) => self
                .shared
                .connection()
                .await?
                .open_bi()
                .await
                .map_err(Error::transport)?,
        };
        send.write_all(head).await.map_err(Error::transport)?;
        if !tail.is_empty() {
            send.write_all(tail).await.map_err(Error::transport)?;
        }
        send.finish().map_err(Error::transport)?;
        Ok(recv)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held; a poisoned state is whole.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current connection if it is open, else a new one.
    async fn connection(&self) -> Result<quinn::Connection> {
        let attempts_seen = {
            let state = self.lock();
            if state.closed {
                return Err(Error::Closed);
            }
            if state.conn.close_reason().is_none() {
                return Ok(state.conn.clone());
            }
            state.attempts
        };
        self.reconnect(attempts_seen).await
    }

    /// Dials the server once, unless another caller did so while this one
    /// queued (`attempts_seen` moved): then its outcome is taken, so that
    /// callers racing on a dead connection wait for one attempt, not one
    /// each in turn.
    async fn reconnect(&self, attempts_seen: u64) -> Result<quinn::Connection> {
        let _flight = self.reconnect.lock().await;
        {
            let mut state = self.lock();
            if state.closed {
                return Err(Error::Closed);
            }
            if state.conn.close_reason().is_none() {
                return Ok(state.conn.clone());
            }
            if state.attempts != attempts_seen {
                if let Some(e) = state.last_error.as_mut() {
                    return Err(e.share());
                }
            }
        }
        tracing::info!("connection to {} lost; reconnecting", self.addr);
        let dialled = dial(&self.endpoint, self.addr, &self.server_name).await;
        let mut state = self.lock();
        state.attempts += 1;
        if state.closed {
            if let Ok(conn) = &dialled {
                conn.close(no_error_code(), b"client closed");
            }
            return Err(Error::Closed);
        }
        match dialled {
            Ok(conn) => {
                tracing::info!("reconnected to {}", self.addr);
                state.conn = conn.clone();
                state.last_error = None;
                Ok(conn)
            }
            Err(mut e) => {
                tracing::warn!("reconnecting to {} failed: {e}", self.addr);
                state.last_error = Some(e.share());
                Err(e)
            }
        }
    }
}

/// One connection attempt, within [`CONNECT_TIMEOUT`].
async fn dial(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
) -> Result<quinn::Connection> {
    let connecting = endpoint
        .connect(addr, server_name)
        .map_err(|e| connect_error(addr, e))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(handshake_error(addr, e)),
        Err(elapsed) => Err(Error::Connect {
            addr,
            source: Box::new(elapsed),
        }),
    }
}

/// The application close code for a deliberate, error-free close.
fn no_error_code() -> quinn::VarInt {
    quinn::VarInt::from_u64(AppErrorCode::NoError.as_u64()).unwrap_or(quinn::VarInt::from_u32(0))
}

/// Bytes of UDP buffer the client's socket asks for in each direction (the
/// kernel caps it at `net.core.rmem_max` / `wmem_max`). The default of a
/// few hundred KiB overflows when a large fetch answer arrives in a burst:
/// the kernel drops datagrams and QUIC slows down to recover them.
pub const SOCKET_BUFFER_BYTES: usize = 8 << 20;

/// The client's UDP socket, bound to `local`, with larger buffers.
fn udp_socket(local: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer still works, only with more loss under
    // bursts.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    socket.bind(&local.into())?;
    Ok(socket.into())
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
