//! The connection to one server and the request/response exchange that
//! every call is built on, with reconnection after the connection is lost.
//!
//! A [`Client`] and its clones share one [`Shared`]: the QUIC endpoint,
//! where and how to connect, and the current connection. When a call finds
//! that connection closed, it reconnects before opening its stream. Only
//! one reconnect runs at a time (a tokio mutex): callers that find the
//! same dead connection queue behind it and take its outcome, the new
//! connection or its error, rather than each dialling again.
//!
//! With [`Credentials`], a new connection is authenticated (an
//! Authenticate request, answered) inside that same single flight, before
//! it is published to callers: no request of theirs can reach the server
//! on an unauthenticated connection. The same lock serializes the later
//! re-authentications of a connection (before its token lapses, or after
//! a request was refused as `not_authenticated`).

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use quinn::crypto::rustls::QuicClientConfig;
use tidegate_proto::protocol::{
    decode_header, AppErrorCode, ErrorCode, Request, Response, FRAME_HEADER_LEN,
    MAX_FRAME_BODY_BYTES,
};

use crate::auth::{refresh_after, unix_now_ms, Credentials, REFRESH_RETRY};
use crate::error::{Error, Result};
use crate::tls::Tls;

/// How long one connection attempt ([`Client::connect`], or a reconnect
/// after the connection was lost) waits for the QUIC and TLS handshake;
/// with [`Credentials`], the Authenticate exchange that follows gets as
/// long again.
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
/// # Authentication
///
/// A client made with [`connect_with`](Client::connect_with) presents its
/// [`Credentials`] on every new connection, the first and each reconnect,
/// and waits for the server's answer before any other request goes out on
/// that connection; a refused token fails the connect (or the call that
/// reconnected) with [`Error::NotAuthenticated`]. The producer, consumer
/// and admin calls all share this. When the server says the
/// authentication expires, the client authenticates again on the same
/// connection, in the background, after 90% of the time left; with
/// [`Credentials::token_fn`], a call refused as `not_authenticated` anyway
/// (say the refresh failed) makes the client authenticate once more and
/// send the call once more. A client certificate, for servers that
/// require mutual TLS, is set on [`Tls`]
/// ([`client_cert`](Tls::client_cert)).
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
    /// What to authenticate new connections with, if anything.
    credentials: Option<Credentials>,
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
    /// Authentication of the current connection.
    auth: AuthState,
}

/// Where the current connection stands with its credentials.
#[derive(Debug, Default)]
struct AuthState {
    /// Successful Authenticates so far, on any connection. A call refused
    /// as `not_authenticated` that sees it move knows the connection was
    /// authenticated again since, and does not do it once more.
    generation: u64,
    /// Who the server says the connection is.
    principal: Option<String>,
    /// When to authenticate the current connection again; `None` without
    /// credentials or for a token that does not expire.
    refresh_at: Option<Instant>,
    /// A background refresh of the current connection is under way.
    refreshing: bool,
}

/// What a successful Authenticate says.
#[derive(Debug)]
struct Authenticated {
    principal: String,
    refresh_at: Option<Instant>,
}

impl AuthState {
    fn authenticated(&mut self, done: Option<Authenticated>) {
        let Some(done) = done else { return };
        self.generation += 1;
        self.principal = Some(done.principal);
        self.refresh_at = done.refresh_at;
    }
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
        Self::open(addr, tls, None).await
    }

    /// Connects as [`connect`](Client::connect) does, then authenticates
    /// with `credentials` before anything else, and again on every
    /// reconnect (see [Authentication](Client#authentication)).
    ///
    /// # Errors
    ///
    /// As [`connect`](Client::connect), and: [`Error::NotAuthenticated`]
    /// when the server refuses the token (the message says why);
    /// [`Error::Credentials`] when the [`Credentials::token_fn`] callback
    /// fails; [`Error::InvalidRequest`] for a token over 8 KiB;
    /// [`Error::Tls`] when the server refuses the client certificate.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tidegate_client::{Client, Credentials, Tls};
    ///
    /// # async fn run() -> Result<(), tidegate_client::Error> {
    /// let client = Client::connect_with(
    ///     "127.0.0.1:7441".parse().unwrap(),
    ///     Tls::ca_file("ca.pem").client_cert("client.pem", "client-key.pem"),
    ///     Credentials::token(std::env::var("TIDEGATE_TOKEN").unwrap_or_default()),
    /// )
    /// .await?;
    /// println!("authenticated as {:?}", client.principal());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(
        addr: SocketAddr,
        tls: Tls,
        credentials: Credentials,
    ) -> Result<Client> {
        Self::open(addr, tls, Some(credentials)).await
    }

    async fn open(addr: SocketAddr, tls: Tls, credentials: Option<Credentials>) -> Result<Client> {
        let tls_config = tls.client_config()?;
        let quic = QuicClientConfig::try_from(tls_config).map_err(|e| Error::Tls(Box::new(e)))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        // The server never opens streams towards a client.
        transport.max_concurrent_bidi_streams(0u32.into());
        transport.max_concurrent_uni_streams(0u32.into());
        transport.keep_alive_interval(Some(KEEP_ALIVE));
        // Requests go out whole, in the order they were written, not
        // interleaved: the server admits a connection's waiting requests
        // in stream order (docs/FLOW_CONTROL.md), and interleaved bodies
        // could fill the connection's receive window with later requests
        // while the one admitted waits for credit. In that order they
        // also usually complete at the server in order (not guaranteed:
        // a lost packet can delay one).
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
        let (conn, authenticated) =
            establish(&endpoint, addr, tls.name(), credentials.as_ref()).await?;
        let mut state = State {
            conn,
            attempts: 0,
            last_error: None,
            closed: false,
            auth: AuthState::default(),
        };
        state.auth.authenticated(authenticated);
        let shared = Shared {
            endpoint,
            addr,
            server_name: tls.name().to_owned(),
            credentials,
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

    /// Who the server says this client is, from its last answer to
    /// Authenticate; `None` for a client without [`Credentials`].
    pub fn principal(&self) -> Option<String> {
        self.shared.lock().auth.principal.clone()
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
    /// frame (header and body), at most [`MAX_RESPONSE_BYTES`]. A
    /// `not_authenticated` answer is an error here (and the request is
    /// sent once more after authenticating again, if the credentials can
    /// renew); other server errors are left in the frame for the caller.
    pub(crate) async fn call(&self, request: &Request<'_>) -> Result<Vec<u8>> {
        self.with_reauthentication(|| async {
            let recv = self.start(request).await?;
            let frame = self.response(recv).await?;
            if is_not_authenticated(&frame) {
                decode_response(&frame)?;
            }
            Ok(frame)
        })
        .await
    }

    /// Runs `attempt`; if it fails with [`Error::NotAuthenticated`] and the
    /// credentials can give a fresh token, authenticates the connection
    /// again (unless another call did since `attempt` started) and runs
    /// `attempt` once more. Once: a token the server keeps refusing is the
    /// caller's error, not a loop.
    pub(crate) async fn with_reauthentication<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let generation = self.shared.lock().auth.generation;
        match attempt().await {
            Err(Error::NotAuthenticated { message })
                if self
                    .shared
                    .credentials
                    .as_ref()
                    .is_some_and(Credentials::renews) =>
            {
                tracing::info!(
                    "request refused as not authenticated ({message}); authenticating again"
                );
                self.shared.reauthenticate(generation).await?;
                attempt().await
            }
            other => other,
        }
    }

    /// Sends one request on its own stream and returns the stream its
    /// response comes on. Streams are opened, and (with `send_fairness`
    /// off) sent, in the order `start` is called; the server still takes
    /// each request when it has fully arrived, so a lost packet can reorder
    /// two of them (see `start_produce`).
    pub(crate) async fn start(&self, request: &Request<'_>) -> Result<quinn::RecvStream> {
        self.start_on_connection(request)
            .await
            .map(|(_, recv)| recv)
    }

    /// [`start`](Self::start), also returning the connection the request
    /// went on (a push stream's credits must go on the same one).
    pub(crate) async fn start_on_connection(
        &self,
        request: &Request<'_>,
    ) -> Result<(quinn::Connection, quinn::RecvStream)> {
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
                quinn::ReadToEndError::Read(e) => read_error(e),
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
    async fn send_frame(
        &self,
        head: &[u8],
        tail: &[u8],
    ) -> Result<(quinn::Connection, quinn::RecvStream)> {
        let mut conn = self.connection().await?;
        let (send, recv) = match conn.open_bi().await {
            Ok(streams) => streams,
            // The connection died since it was looked at. Nothing has been
            // sent, so one more try on a new connection is safe.
            Err(_) => {
                conn = self.connection().await?;
                conn.open_bi().await.map_err(connection_error)?
            }
        };
        write_request(send, head, tail).await?;
        Ok((conn, recv))
    }

    /// Sends `request` on `conn` only (no reconnect: a request that
    /// belongs to that connection, such as a push stream's credits) and
    /// reads its whole response.
    pub(crate) async fn call_on(
        &self,
        conn: &quinn::Connection,
        request: &Request<'_>,
    ) -> Result<Vec<u8>> {
        request
            .validate()
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let mut head = Vec::new();
        request.encode(&mut head);
        let (send, recv) = conn.open_bi().await.map_err(connection_error)?;
        write_request(send, &head, &[]).await?;
        self.response(recv).await
    }

    /// The connection to send on, as [`Shared::connection`]; starts a
    /// background re-authentication when the current one is due.
    async fn connection(&self) -> Result<quinn::Connection> {
        let conn = self.shared.connection().await?;
        if self.shared.take_refresh_due(&conn, Instant::now()) {
            let shared = self.shared.clone();
            let due = conn.clone();
            tokio::spawn(async move { shared.refresh(due).await });
        }
        Ok(conn)
    }
}

/// Writes `head` then `tail` on `send` and finishes it.
async fn write_request(mut send: quinn::SendStream, head: &[u8], tail: &[u8]) -> Result<()> {
    send.write_all(head).await.map_err(write_error)?;
    if !tail.is_empty() {
        send.write_all(tail).await.map_err(write_error)?;
    }
    send.finish().map_err(Error::transport)
}

/// True when `frame` is an answer with the `not_authenticated` status (the
/// first field of every response body), without decoding the rest.
fn is_not_authenticated(frame: &[u8]) -> bool {
    let status = frame.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + 2);
    status == Some(&ErrorCode::NotAuthenticated.as_u16().to_le_bytes()[..])
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
        let dialled = establish(
            &self.endpoint,
            self.addr,
            &self.server_name,
            self.credentials.as_ref(),
        )
        .await;
        let mut state = self.lock();
        state.attempts += 1;
        if state.closed {
            if let Ok((conn, _)) = &dialled {
                conn.close(no_error_code(), b"client closed");
            }
            return Err(Error::Closed);
        }
        match dialled {
            Ok((conn, authenticated)) => {
                tracing::info!("reconnected to {}", self.addr);
                state.conn = conn.clone();
                state.last_error = None;
                state.auth.refreshing = false;
                state.auth.refresh_at = None;
                state.auth.authenticated(authenticated);
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

impl Shared {
    /// True, once, when `conn` is the current connection and its
    /// authentication is due for renewal at `now`; the caller then runs
    /// [`refresh`](Shared::refresh).
    fn take_refresh_due(&self, conn: &quinn::Connection, now: Instant) -> bool {
        let mut state = self.lock();
        let due = !state.auth.refreshing
            && state.auth.refresh_at.is_some_and(|at| now >= at)
            && state.conn.stable_id() == conn.stable_id();
        if due {
            state.auth.refreshing = true;
        }
        due
    }

    /// Authenticates `conn` again before its authentication lapses. A
    /// failure is only logged: the old authentication may still hold, and
    /// a call refused later re-authenticates by itself.
    async fn refresh(&self, conn: quinn::Connection) {
        let Some(credentials) = &self.credentials else {
            return;
        };
        let _flight = self.reconnect.lock().await;
        let current = self.lock().conn.stable_id() == conn.stable_id();
        let outcome = if current && conn.close_reason().is_none() {
            Some(authenticate(&conn, self.addr, credentials).await)
        } else {
            None
        };
        let mut state = self.lock();
        if state.conn.stable_id() != conn.stable_id() {
            return;
        }
        state.auth.refreshing = false;
        match outcome {
            Some(Ok(authenticated)) => state.auth.authenticated(Some(authenticated)),
            Some(Err(e)) => {
                tracing::warn!(
                    "authenticating again to {} failed: {e}; trying again in {REFRESH_RETRY:?}",
                    self.addr
                );
                state.auth.refresh_at = Some(Instant::now() + REFRESH_RETRY);
            }
            None => {}
        }
    }

    /// Authenticates the current connection again, unless that happened
    /// since `generation_seen` (then its outcome stands). A connection that
    /// died meanwhile is left to the reconnect, which authenticates.
    async fn reauthenticate(&self, generation_seen: u64) -> Result<()> {
        let Some(credentials) = &self.credentials else {
            return Ok(());
        };
        let _flight = self.reconnect.lock().await;
        let conn = {
            let state = self.lock();
            if state.closed {
                return Err(Error::Closed);
            }
            if state.auth.generation != generation_seen || state.conn.close_reason().is_some() {
                return Ok(());
            }
            state.conn.clone()
        };
        let authenticated = authenticate(&conn, self.addr, credentials).await?;
        let mut state = self.lock();
        if state.conn.stable_id() == conn.stable_id() {
            state.auth.authenticated(Some(authenticated));
        }
        Ok(())
    }
}

/// A new connection, authenticated with `credentials` if there are any.
/// A connection whose authentication fails is closed.
async fn establish(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
    credentials: Option<&Credentials>,
) -> Result<(quinn::Connection, Option<Authenticated>)> {
    let conn = dial(endpoint, addr, server_name).await?;
    let Some(credentials) = credentials else {
        return Ok((conn, None));
    };
    match authenticate(&conn, addr, credentials).await {
        Ok(authenticated) => Ok((conn, Some(authenticated))),
        Err(e) => {
            conn.close(no_error_code(), b"authentication failed");
            Err(e)
        }
    }
}

/// Presents a token from `credentials` on `conn`; a token from a callback
/// that is refused is replaced by a fresh one once: a short-lived token can
/// lapse between minting and arriving (JWT times are whole seconds, so a
/// "one-second" token minted late in a second lives a few milliseconds).
async fn authenticate(
    conn: &quinn::Connection,
    addr: SocketAddr,
    credentials: &Credentials,
) -> Result<Authenticated> {
    match present(conn, addr, credentials).await {
        Err(Error::NotAuthenticated { message }) if credentials.renews() => {
            tracing::debug!("token refused ({message}); presenting a fresh one");
            present(conn, addr, credentials).await
        }
        other => other,
    }
}

/// Presents a token from `credentials` on `conn` and waits for the answer,
/// within [`CONNECT_TIMEOUT`].
async fn present(
    conn: &quinn::Connection,
    addr: SocketAddr,
    credentials: &Credentials,
) -> Result<Authenticated> {
    let token = credentials.fetch().await?;
    let request = Request::Authenticate { token: &token };
    request
        .validate()
        .map_err(|e| Error::InvalidRequest(e.to_string()))?;
    let mut frame = Vec::new();
    request.encode(&mut frame);
    let exchange = async {
        let (send, mut recv) = conn.open_bi().await.map_err(connection_error)?;
        write_request(send, &frame, &[]).await?;
        recv.read_to_end(MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                quinn::ReadToEndError::TooLong => {
                    Error::Protocol(format!("response over {MAX_RESPONSE_BYTES} bytes"))
                }
                quinn::ReadToEndError::Read(e) => read_error(e),
            })
    };
    let answer = match tokio::time::timeout(CONNECT_TIMEOUT, exchange).await {
        Ok(answer) => answer?,
        Err(elapsed) => {
            return Err(Error::Connect {
                addr,
                source: Box::new(elapsed),
            })
        }
    };
    match decode_response(&answer)? {
        Response::Authenticate {
            principal,
            expires_at_ms,
        } => {
            let refresh_at = expires_at_ms
                .map(|expires_at_ms| Instant::now() + refresh_after(unix_now_ms(), expires_at_ms));
            tracing::debug!(
                "authenticated to {addr} as {principal:?}, expiring at {expires_at_ms:?} ms"
            );
            Ok(Authenticated {
                principal: principal.to_owned(),
                refresh_at,
            })
        }
        other => Err(unexpected("Authenticate", &other)),
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
        Response::Error(e) => Err(Error::server(e.code, e.message)),
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
fn is_tls_alert(e: &quinn::ConnectionError) -> bool {
    let code = match e {
        quinn::ConnectionError::TransportError(t) => Some(t.code),
        quinn::ConnectionError::ConnectionClosed(c) => Some(c.error_code),
        _ => None,
    };
    code.is_some_and(|code| (0x100..=0x1ff).contains(&u64::from(code)))
}

fn handshake_error(addr: SocketAddr, e: quinn::ConnectionError) -> Error {
    if is_tls_alert(&e) {
        return Error::Tls(Box::new(e));
    }
    Error::Connect {
        addr,
        source: Box::new(e),
    }
}

/// The error for an established connection that failed. A TLS alert means
/// the server refused the client certificate (or wanted one): it checks it
/// after the client's side of the handshake is done, so the refusal comes
/// as the connection closing, and trying again will not help.
fn connection_error(e: quinn::ConnectionError) -> Error {
    if is_tls_alert(&e) {
        return Error::Tls(Box::new(e));
    }
    Error::transport(e)
}

fn write_error(e: quinn::WriteError) -> Error {
    match e {
        quinn::WriteError::ConnectionLost(e) => connection_error(e),
        other => Error::transport(other),
    }
}

fn read_error(e: quinn::ReadError) -> Error {
    match e {
        quinn::ReadError::ConnectionLost(e) => connection_error(e),
        other => Error::transport(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_proto::protocol::ErrorResponse;

    fn error_frame(code: ErrorCode, message: &str) -> Vec<u8> {
        let mut frame = Vec::new();
        Response::Error(ErrorResponse {
            request_kind: 0x01,
            code,
            message,
        })
        .encode(&mut frame);
        frame
    }

    #[test]
    fn not_authenticated_answer_is_recognized_from_its_status() {
        assert!(is_not_authenticated(&error_frame(
            ErrorCode::NotAuthenticated,
            "token expired"
        )));
        assert!(!is_not_authenticated(&error_frame(
            ErrorCode::NotAuthorized,
            "fetch on topic orders"
        )));
        assert!(!is_not_authenticated(&[]));
    }

    #[test]
    fn server_auth_errors_decode_to_their_variants() {
        let frame = error_frame(
            ErrorCode::NotAuthorized,
            "produce on topic orders.eu: read-only",
        );
        match decode_response(&frame) {
            Err(Error::NotAuthorized {
                operation,
                resource,
                ..
            }) => assert_eq!(
                (operation.as_str(), resource.as_str()),
                ("produce", "topic orders.eu")
            ),
            other => panic!("{other:?}"),
        }
        let frame = error_frame(ErrorCode::NotAuthenticated, "unknown token");
        assert!(matches!(
            decode_response(&frame),
            Err(Error::NotAuthenticated { message }) if message == "unknown token"
        ));
    }

    #[test]
    fn tls_alert_closing_a_connection_is_a_tls_error_not_a_retriable_one() {
        // What the client sees when the server refuses its certificate.
        let alert = quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
            error_code: quinn::TransportErrorCode::crypto(116),
            frame_type: None,
            reason: bytes::Bytes::from_static(b"certificate required"),
        });
        let e = connection_error(alert);
        assert!(matches!(e, Error::Tls(_)), "{e:?}");
        assert!(!e.is_retriable());
        let lost = connection_error(quinn::ConnectionError::TimedOut);
        assert!(matches!(lost, Error::Transport(_)) && lost.is_retriable());
    }
}
