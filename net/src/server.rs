//! The driver of one shard's QUIC endpoint on glommio.
//!
//! Two tasks on the shard's executor: the receive task owns the socket's
//! receives and feeds datagrams through a bounded local channel; the driver
//! task feeds them to quinn-proto, fires timers, hands complete requests to
//! the application and sends what quinn-proto wants sent. The receive stays
//! in its own task because dropping an in-flight receive that lost a race
//! against a timer cancels an io_uring receive that may already hold a
//! datagram.
//!
//! Sends use UDP GSO where the kernel has it (`udp.rs`): quinn-proto packs
//! up to 32 datagrams of a connection into one transmit and one `sendmsg`
//! carries them. Receives use UDP GRO the same way: one `recvmsg` takes a
//! run of datagrams and their segment size. No ECN.

use std::{
    cell::{Cell, RefCell},
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use event_listener::Event;
use futures::{future::select, pin_mut, FutureExt};
use glommio::{
    channels::local_channel::{self, LocalReceiver, LocalSender},
    net::UdpSocket,
    task::JoinHandle,
};
use quinn_proto::{
    crypto::rustls::QuicServerConfig, ConnectionHandle, DatagramEvent, Endpoint, EndpointConfig,
    Incoming, ServerConfig, StreamId, TransportConfig, VarInt,
};
use rustls::pki_types::CertificateDer;
use tidegate_proto::protocol::AppErrorCode;

use crate::{
    codes,
    connection::{Budget, ConnState, Lifecycle},
    door::{Admission, FrontDoor, Refusal},
    fair::{Backlog, Fair},
    udp, NetError, Peer, QuicSettings, ServerCrypto,
};

/// Largest datagram read from the socket.
const DATAGRAM_BYTES_MAX: usize = 65_535;
/// Datagrams received but not yet handled by the driver.
const RECEIVE_QUEUE: usize = 1024;
/// How long `shutdown` waits for responses to be acknowledged before it
/// closes the connections.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);
/// The code a handshake that ran out of time is closed with (sent as a
/// transport APPLICATION_ERROR, as the handshake is not done).
const HANDSHAKE_TIMEOUT_CODE: u32 = AppErrorCode::Cancelled.as_u64() as u32;

/// A connection of this endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub usize);

/// One complete request: the bytes a client sent on one stream, up to its
/// FIN. Answer it with [`QuicServer::respond`].
#[derive(Debug)]
pub struct RequestIn {
    /// The connection it came on.
    pub conn: ConnId,
    /// Its stream.
    pub stream: StreamId,
    /// The request bytes.
    pub data: Vec<u8>,
    /// Who sent it: shared by every request of the connection.
    pub peer: Rc<Peer>,
}

/// Counters of an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections open now.
    pub connections: usize,
    /// Connections accepted since start.
    pub accepted_total: u64,
    /// Connections refused, all reasons: over `max_connections` or
    /// shutting down, and the reasons below.
    pub refused_total: u64,
    /// Connections refused because their source IP held
    /// `max_connections_per_address`.
    pub refused_per_address_total: u64,
    /// Connections refused because `max_handshakes` were in flight.
    pub refused_handshakes_total: u64,
    /// Stateless Retry packets sent (handshakes beyond
    /// `retry_handshakes_per_s` from unvalidated addresses).
    pub retries_sent_total: u64,
    /// Connections accepted whose handshake has not ended, now.
    pub handshakes: usize,
    /// Connections closed because their handshake outlived
    /// `handshake_timeout`.
    pub handshake_timeouts_total: u64,
    /// Admitted requests given up on because they did not arrive whole
    /// within `request_timeout` (their streams reset).
    pub request_timeouts_total: u64,
    /// Datagrams received.
    pub datagrams_in_total: u64,
    /// Datagrams sent.
    pub datagrams_out_total: u64,
    /// Complete requests handed to the application.
    pub requests_total: u64,
    /// Datagrams received here for another shard's connection, forwarded.
    pub datagrams_forwarded_total: u64,
    /// Datagrams forwarded here by another shard.
    pub datagrams_injected_total: u64,
    /// Datagrams forwarded here but dropped because this endpoint's
    /// injection queue was full.
    pub datagrams_dropped_total: u64,
    /// Request bytes held now (reserved for requests being received, or
    /// waiting for their response).
    pub inflight_bytes: usize,
    /// Times a stream was left unread because the shard held its
    /// `max_inflight_bytes` (or other streams were already waiting for
    /// it): producers slowed by withheld QUIC credit. Each request that
    /// waits counts once.
    pub credit_stalls_total: u64,
    /// The admission window now: request bytes the endpoint may hold
    /// (`max_inflight_bytes`, or what `set_max_inflight_bytes` set).
    pub inflight_max_bytes: usize,
    /// Request bytes admitted into the window since start.
    pub admitted_bytes_total: u64,
    /// Requests admitted into the window since start.
    pub admitted_requests_total: u64,
    /// Of those, requests of connections that held nothing, admitted above
    /// the window (within `fair_quantum`) instead of waiting for the round.
    pub admitted_sparse_requests_total: u64,
}

struct Driver {
    endpoint: Endpoint,
    /// The open responses' writers, told when their stream closes.
    open: HashMap<(ConnectionHandle, StreamId), Rc<StreamSignal>>,
    server_config: Arc<ServerConfig>,
    conns: HashMap<ConnectionHandle, ConnState>,
    requests: VecDeque<RequestIn>,
    settings: QuicSettings,
    stats: ServerStats,
    budget: Budget,
    /// Who gets budget next among the connections whose requests wait.
    fair: Fair<ConnectionHandle>,
    door: FrontDoor,
    /// Datagrams another shard received for this shard's connections.
    injected: VecDeque<(SocketAddr, BytesMut)>,
    closing: bool,
    /// Datagrams quinn-proto may pack into one transmit (GSO); 1 without.
    gso_segments: usize,
}

struct Shared {
    driver: RefCell<Driver>,
    socket: UdpSocket,
    /// Wakes the driver: a response was queued, or shutdown began.
    wake: Event,
    /// Wakes `next_request` callers.
    requests_ready: Event,
    stopped: Cell<bool>,
    /// Where datagrams for another shard's connections go.
    forwarder: RefCell<Option<Forwarder>>,
}

/// Takes a datagram that belongs to another shard: (that shard, the
/// sender's address, the bytes).
pub type Forwarder = Box<dyn Fn(usize, SocketAddr, BytesMut)>;

/// One shard's QUIC endpoint. See the module documentation.
pub struct QuicServer {
    shared: Rc<Shared>,
    local_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl QuicServer {
    /// Binds `addr` (SO_REUSEPORT: every shard binds the same port) and
    /// starts serving on the current glommio executor.
    pub fn bind(
        addr: SocketAddr,
        crypto: Arc<QuicServerConfig>,
        settings: QuicSettings,
    ) -> Result<QuicServer, NetError> {
        let server_config = Arc::new(server_config(crypto, &settings)?);
        let socket = UdpSocket::bind(addr).map_err(|e| NetError::Socket {
            addr,
            source: e.into(),
        })?;
        let local_addr = socket.local_addr().map_err(|e| NetError::Socket {
            addr,
            source: e.into(),
        })?;
        let gso_segments = udp::max_segments(settings.gso, local_addr);
        if settings.gro {
            udp::enable_gro(&socket);
        }
        let (granted_receive, granted_send) = udp::set_buffers(
            &socket,
            settings.socket_receive_buffer,
            settings.socket_send_buffer,
        );
        // The kernel reports twice what it grants.
        if granted_receive / 2 < settings.socket_receive_buffer
            || granted_send / 2 < settings.socket_send_buffer
        {
            tracing::warn!(
                asked_receive = settings.socket_receive_buffer,
                granted_receive = granted_receive / 2,
                asked_send = settings.socket_send_buffer,
                granted_send = granted_send / 2,
                "UDP socket buffers capped by net.core.rmem_max / wmem_max: bursts may be \
                 dropped (see `tidegate tune check`)"
            );
        }
        let mut endpoint_config = match &settings.reset_key {
            Some(key) => {
                EndpointConfig::new(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key)))
            }
            None => EndpointConfig::default(),
        };
        let shard = settings.shard;
        endpoint_config.cid_generator(move || Box::new(crate::cid::ShardCids { shard }));
        let endpoint = Endpoint::new(
            Arc::new(endpoint_config),
            Some(server_config.clone()),
            true,
            None,
        );
        let shared = Rc::new(Shared {
            driver: RefCell::new(Driver {
                endpoint,
                server_config,
                conns: HashMap::new(),
                open: HashMap::new(),
                requests: VecDeque::new(),
                budget: Budget::new(settings.max_inflight_bytes, settings.sparse_overdraw),
                fair: Fair::new(settings.fair_quantum),
                door: FrontDoor::new(
                    settings.max_connections_per_address,
                    settings.max_handshakes,
                    settings.retry_handshakes_per_s,
                    Instant::now(),
                ),
                injected: VecDeque::new(),
                settings,
                stats: ServerStats::default(),
                closing: false,
                gso_segments,
            }),
            socket,
            wake: Event::new(),
            requests_ready: Event::new(),
            stopped: Cell::new(false),
            forwarder: RefCell::new(None),
        });
        let (tx, rx) = local_channel::new_bounded(RECEIVE_QUEUE);
        let tasks = vec![
            glommio::spawn_local(receive(shared.clone(), tx)).detach(),
            glommio::spawn_local(drive(shared.clone(), rx)).detach(),
        ];
        Ok(QuicServer {
            shared,
            local_addr,
            tasks,
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next complete request, or `None` once the server has stopped.
    pub async fn next_request(&self) -> Option<RequestIn> {
        loop {
            let ready = self.shared.requests_ready.listen();
            if let Some(r) = self.shared.driver.borrow_mut().requests.pop_front() {
                return Some(r);
            }
            if self.shared.stopped.get() {
                return None;
            }
            ready.await;
        }
    }

    /// Answers a request: the parts are written back to back on its stream,
    /// which is then finished. Dropped if the connection or stream is gone.
    pub fn respond(&self, conn: ConnId, stream: StreamId, parts: Vec<Bytes>) {
        respond(&self.shared, conn, stream, parts);
    }

    /// A handle that answers requests from other tasks of this executor.
    pub fn responder(&self) -> Responder {
        Responder {
            shared: self.shared.clone(),
        }
    }

    /// Sets where datagrams for other shards' connections go (see
    /// `cid.rs`); without one they are handled here, which fails them.
    pub fn set_forwarder(&self, forwarder: Forwarder) {
        *self.shared.forwarder.borrow_mut() = Some(forwarder);
    }

    /// A handle that feeds this endpoint datagrams another shard forwarded.
    pub fn injector(&self) -> Injector {
        Injector {
            shared: self.shared.clone(),
        }
    }

    /// Counters, and connections open now.
    pub fn stats(&self) -> ServerStats {
        let driver = self.shared.driver.borrow();
        ServerStats {
            connections: driver.conns.len(),
            inflight_bytes: driver.budget.used,
            credit_stalls_total: driver.budget.stalls,
            inflight_max_bytes: driver.budget.max,
            admitted_bytes_total: driver.budget.admitted_bytes,
            admitted_requests_total: driver.budget.admitted_requests,
            admitted_sparse_requests_total: driver.budget.admitted_sparse_requests,
            handshakes: driver.door.handshakes(),
            ..driver.stats
        }
    }

    /// Sets the admission window: the request bytes this endpoint holds at
    /// once (at least 1). Raising it admits waiting requests right away;
    /// lowering it drops nothing (admitted requests stay, new ones wait
    /// until the bytes held are back under it).
    pub fn set_max_inflight_bytes(&self, bytes: usize) {
        self.shared.driver.borrow_mut().budget.max = bytes.max(1);
        // The driver resumes waiting streams on its next pass.
        self.shared.wake.notify(usize::MAX);
    }

    /// Sets the round-robin weights by authenticated principal (see
    /// [`Peer::authenticated`]): a connection whose principal has weight
    /// `w` gets `w` quanta per round when requests wait for budget. Without
    /// a principal, or one not in the map, a connection has weight 1;
    /// weight 0 counts as 1. Admitted bytes are tracked for these
    /// principals ([`admitted_by_principal`](Self::admitted_by_principal)).
    pub fn set_weights(&self, weights: HashMap<Arc<str>, u32>) {
        self.shared.driver.borrow_mut().budget.set_weights(weights);
    }

    /// Request bytes admitted since start per principal of the weights
    /// map (see [`set_weights`](Self::set_weights)), sorted by principal;
    /// other principals are not tracked.
    pub fn admitted_by_principal(&self) -> Vec<(Arc<str>, u64)> {
        self.shared.driver.borrow().budget.admitted_by_principal()
    }

    /// Uses `crypto` (a reloaded certificate, say) for connections accepted
    /// from now on; established ones keep the one they began with.
    pub fn set_crypto(&self, crypto: ServerCrypto) {
        let mut driver = self.shared.driver.borrow_mut();
        // Same transport settings and Retry token key: a client holding a
        // Retry token from before still comes in.
        let mut config = ServerConfig::clone(&driver.server_config);
        config.crypto = crypto;
        let config = Arc::new(config);
        driver.endpoint.set_server_config(Some(config.clone()));
        driver.server_config = config;
    }

    /// Stops accepting connections, closes the open ones (after their
    /// pending responses had their chance to go out) and stops the tasks.
    pub async fn shutdown(mut self) {
        // New connections are refused from now on; the open ones get until
        // their responses are acknowledged (bounded), then are closed.
        self.shared.driver.borrow_mut().closing = true;
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        loop {
            let woken = self.shared.wake.listen();
            let pending = {
                let driver = self.shared.driver.borrow();
                driver
                    .conns
                    .values()
                    .any(ConnState::has_unfinished_responses)
            };
            if !pending || Instant::now() >= deadline {
                break;
            }
            let tick = glommio::timer::sleep(Duration::from_millis(5));
            let _ = select(std::pin::pin!(woken), std::pin::pin!(tick)).await;
        }
        {
            let mut driver = self.shared.driver.borrow_mut();
            let now = Instant::now();
            for state in driver.conns.values_mut() {
                let code = VarInt::from_u32(codes::SHUTTING_DOWN);
                state
                    .conn
                    .close(now, code, Bytes::from_static(b"shutting down"));
            }
        }
        self.shared.wake.notify(usize::MAX);
        // The driver exits once every connection is drained.
        if let Some(driver) = self.tasks.pop() {
            let _ = driver.await;
        }
        for task in self.tasks.drain(..) {
            task.cancel();
        }
        self.shared.stopped.set(true);
        self.shared.requests_ready.notify(usize::MAX);
    }
}

/// Hands a [`QuicServer`] datagrams that reached another shard's socket.
#[derive(Clone)]
pub struct Injector {
    shared: Rc<Shared>,
}

impl Injector {
    /// Queues a forwarded datagram for this endpoint, as if received here.
    pub fn inject(&self, from: SocketAddr, datagram: BytesMut) {
        {
            let mut driver = self.shared.driver.borrow_mut();
            if driver.injected.len() < RECEIVE_QUEUE {
                driver.stats.datagrams_injected_total += 1;
                driver.injected.push_back((from, datagram));
            } else {
                // Bounded like the socket's queue; QUIC recovers the loss.
                driver.stats.datagrams_dropped_total += 1;
            }
        }
        self.shared.wake.notify(usize::MAX);
    }
}

/// Answers requests of a [`QuicServer`] from any task on its executor.
#[derive(Clone)]
pub struct Responder {
    shared: Rc<Shared>,
}

impl Responder {
    /// Same as [`QuicServer::respond`].
    pub fn respond(&self, conn: ConnId, stream: StreamId, parts: Vec<Bytes>) {
        respond(&self.shared, conn, stream, parts);
    }

    /// Keeps the response to a request open, to be written frame by
    /// frame: see [`ResponseStream`]. `None` if the connection or stream
    /// is gone, or the request was answered already.
    pub fn open_stream(&self, conn: ConnId, stream: StreamId) -> Option<ResponseStream> {
        let mut guard = self.shared.driver.borrow_mut();
        let driver = &mut *guard;
        let handle = ConnectionHandle(conn.0);
        let state = driver.conns.get_mut(&handle)?;
        if !state.open_response(stream, &mut driver.budget) {
            return None;
        }
        let signal = Rc::new(StreamSignal::default());
        driver.open.insert((handle, stream), signal.clone());
        drop(guard);
        // The request's bytes left the budget: waiting requests may fit.
        self.shared.wake.notify(usize::MAX);
        Some(ResponseStream {
            shared: self.shared.clone(),
            handle,
            stream,
            signal,
            done: false,
        })
    }
}

/// Tells an open response's writer that its stream closed, or that what
/// it queued moved on.
#[derive(Debug, Default)]
struct StreamSignal {
    closed: Cell<bool>,
    event: Event,
    progress: Event,
}

impl StreamSignal {
    fn close(&self) {
        self.closed.set(true);
        self.event.notify(usize::MAX);
        self.progress.notify(usize::MAX);
    }
}

/// A response written frame by frame (a push stream), from
/// [`Responder::open_stream`]: [`send`](Self::send) writes parts and
/// leaves the stream open, [`finish`](Self::finish) ends it.
///
/// The stream closes when the client stops it (STOP_SENDING, as dropping
/// a quinn `RecvStream` does), when its connection is lost, or when the
/// server shuts down: [`closed`](Self::closed) resolves, and `send`
/// returns false from then on. Dropped unfinished, the stream is reset
/// (`cancelled`).
///
/// Memory: everything sent and not yet acknowledged by the client is held
/// by the connection; the writer bounds it (tidegate's push streams send
/// only within the client's credits), and can read it with
/// [`unsent_bytes`](Self::unsent_bytes).
pub struct ResponseStream {
    shared: Rc<Shared>,
    handle: ConnectionHandle,
    stream: StreamId,
    signal: Rc<StreamSignal>,
    /// Finished, or found closed: nothing to do on drop.
    done: bool,
}

impl ResponseStream {
    /// The stream's id.
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// Writes `parts` back to back on the stream, as flow control allows;
    /// false if the stream has closed (nothing is written).
    pub fn send(&self, parts: Vec<Bytes>) -> bool {
        self.write(parts, false)
    }

    /// Writes `parts`, then finishes the stream (its FIN ends the
    /// response).
    pub fn finish(mut self, parts: Vec<Bytes>) {
        self.done = true;
        self.write(parts, true);
    }

    /// True once the stream has closed (see the type's documentation).
    pub fn is_closed(&self) -> bool {
        self.signal.closed.get()
    }

    /// Resolves once the stream has closed. The future holds no borrow of
    /// the stream, so a task can wait on it while another writes.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + 'static {
        let signal = self.signal.clone();
        async move {
            loop {
                let listener = signal.event.listen();
                if signal.closed.get() {
                    return;
                }
                listener.await;
            }
        }
    }

    /// Resolves once at most `max` bytes sent on the stream wait for
    /// quinn-proto (see [`unsent_bytes`](Self::unsent_bytes)), or the
    /// stream has closed: a writer that waits on it before each frame
    /// holds about `max` plus one frame however slowly the client reads.
    pub async fn writable(&self, max: usize) {
        loop {
            let listener = self.signal.progress.listen();
            if self.is_closed() || self.unsent_bytes() <= max {
                return;
            }
            listener.await;
        }
    }

    /// Bytes sent on the stream that quinn-proto has not taken yet (held
    /// for lack of stream or connection credit).
    pub fn unsent_bytes(&self) -> usize {
        self.shared
            .driver
            .borrow()
            .conns
            .get(&self.handle)
            .map_or(0, |state| state.unsent_bytes(self.stream))
    }

    fn write(&self, parts: Vec<Bytes>, finish: bool) -> bool {
        let sent = {
            let mut driver = self.shared.driver.borrow_mut();
            let sent = driver
                .conns
                .get_mut(&self.handle)
                .is_some_and(|state| state.send(self.stream, parts, finish));
            if finish || !sent {
                // Finished or found closed: any waiter on it is told.
                if let Some(signal) = driver.open.remove(&(self.handle, self.stream)) {
                    signal.close();
                }
            }
            sent
        };
        self.shared.wake.notify(usize::MAX);
        sent
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        {
            let mut driver = self.shared.driver.borrow_mut();
            if let Some(signal) = driver.open.remove(&(self.handle, self.stream)) {
                signal.close();
            }
            if let Some(state) = driver.conns.get_mut(&self.handle) {
                state.reset_open(self.stream);
            }
        }
        self.shared.wake.notify(usize::MAX);
    }
}

fn respond(shared: &Shared, conn: ConnId, stream: StreamId, parts: Vec<Bytes>) {
    {
        let mut guard = shared.driver.borrow_mut();
        let driver = &mut *guard;
        let handle = ConnectionHandle(conn.0);
        if let Some(state) = driver.conns.get_mut(&handle) {
            state.respond(stream, parts, &mut driver.budget);
        }
    }
    shared.wake.notify(usize::MAX);
}

impl Drop for QuicServer {
    fn drop(&mut self) {
        for task in self.tasks.drain(..) {
            task.cancel();
        }
        self.shared.stopped.set(true);
        self.shared.requests_ready.notify(usize::MAX);
    }
}

fn server_config(
    crypto: Arc<QuicServerConfig>,
    settings: &QuicSettings,
) -> Result<ServerConfig, NetError> {
    let bad = |what: &str| NetError::Settings(format!("{what} is out of range"));
    if settings.max_connections_per_address == 0 {
        return Err(bad("max_connections_per_address"));
    }
    if settings.max_handshakes == 0 {
        return Err(bad("max_handshakes"));
    }
    if settings.handshake_timeout.is_zero() {
        return Err(bad("handshake_timeout"));
    }
    if settings.fair_quantum == 0 {
        return Err(bad("fair_quantum"));
    }
    let mut transport = TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(settings.max_concurrent_streams))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(
            VarInt::try_from(settings.stream_receive_window)
                .map_err(|_| bad("stream_receive_window"))?,
        )
        .receive_window(
            VarInt::try_from(settings.connection_receive_window)
                .map_err(|_| bad("connection_receive_window"))?,
        )
        .max_idle_timeout(Some(
            settings
                .idle_timeout
                .try_into()
                .map_err(|_| bad("idle_timeout"))?,
        ))
        .keep_alive_interval(Some(settings.keep_alive));
    let mut config = ServerConfig::with_crypto(crypto);
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// The receive task: datagrams from the socket into the driver's channel.
async fn receive(shared: Rc<Shared>, tx: LocalSender<(SocketAddr, BytesMut)>) {
    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
    let mut cmsg = udp::gro_cmsg_space();
    let mut arrived = Vec::new();
    loop {
        udp::receive(&shared.socket, &mut buf, &mut cmsg, &mut arrived).await;
        for datagram in arrived.drain(..) {
            if tx.send(datagram).await.is_err() {
                return;
            }
        }
        // A socket that never empties must not starve the driver and the
        // log's tasks on this executor.
        glommio::yield_if_needed().await;
    }
}

/// The driver task: see the module documentation.
async fn drive(shared: Rc<Shared>, rx: LocalReceiver<(SocketAddr, BytesMut)>) {
    let mut outgoing: Vec<udp::Transmit> = Vec::new();
    loop {
        let wake = shared.wake.listen();
        let deadline = {
            let mut driver = shared.driver.borrow_mut();
            driver.run_timers(Instant::now());
            driver.pump(&mut outgoing);
            if driver.closing && driver.conns.is_empty() {
                break;
            }
            driver.next_timeout()
        };
        if !outgoing.is_empty() {
            send_all(&shared, &mut outgoing).await;
            if !shared.driver.borrow().requests.is_empty() {
                shared.requests_ready.notify(usize::MAX);
            }
            continue;
        }
        if !shared.driver.borrow().requests.is_empty() {
            shared.requests_ready.notify(usize::MAX);
        }
        let has_injected = !shared.driver.borrow().injected.is_empty();
        let datagram = if has_injected {
            None // forwarded datagrams are waiting: no sleep
        } else {
            let recv = rx.recv().fuse();
            let timer = sleep_until(deadline).fuse();
            pin_mut!(recv, timer);
            let either = select(select(recv, timer), wake);
            match either.await {
                futures::future::Either::Left((futures::future::Either::Left((d, _)), _)) => d,
                _ => None,
            }
        };
        let mut arrived = Vec::new();
        if let Some(first) = datagram {
            arrived.push(first);
            // Take what else has arrived without waiting.
            while let Some(Some(more)) = rx.recv().now_or_never() {
                arrived.push(more);
            }
        }
        let forward = forward_foreign(&shared, &mut arrived);
        let mut driver = shared.driver.borrow_mut();
        driver.stats.datagrams_forwarded_total += forward;
        let injected: Vec<_> = driver.injected.drain(..).collect();
        for (from, data) in arrived.into_iter().chain(injected) {
            driver.on_datagram(from, data, &mut outgoing);
        }
    }
    shared.stopped.set(true);
    shared.requests_ready.notify(usize::MAX);
}

/// Sends datagrams whose connection ID names another shard to the
/// forwarder; returns how many it sent on. The rest stay in `arrived`.
fn forward_foreign(shared: &Shared, arrived: &mut Vec<(SocketAddr, BytesMut)>) -> u64 {
    let (shard, shards) = {
        let driver = shared.driver.borrow();
        (driver.settings.shard, driver.settings.shards)
    };
    let forwarder = shared.forwarder.borrow();
    let Some(forward) = forwarder.as_ref().filter(|_| shards > 1) else {
        return 0;
    };
    let mut sent = 0;
    arrived.retain_mut(|(from, data)| match crate::cid::shard_of_datagram(data) {
        Some(owner) if owner != shard && owner < shards => {
            forward(owner as usize, *from, std::mem::take(data));
            sent += 1;
            false
        }
        _ => true,
    });
    sent
}

async fn send_all(shared: &Shared, outgoing: &mut Vec<udp::Transmit>) {
    let mut count = 0;
    let mut gso_works = true;
    for t in outgoing.drain(..) {
        gso_works &= udp::send(&shared.socket, &t).await;
        count += t.datagrams() as u64;
    }
    let mut driver = shared.driver.borrow_mut();
    driver.stats.datagrams_out_total += count;
    if !gso_works && driver.gso_segments > 1 {
        tracing::warn!("the kernel refused a GSO send: one datagram per send from now on");
        driver.gso_segments = 1;
    }
}

/// Transmits at least this long are moved out of quinn-proto's buffer
/// rather than copied: a GSO batch is tens of KiB. Smaller ones (ACKs, a
/// datagram or two) are copied at their size, so the buffer, which
/// quinn-proto reserves at the full GSO size, is reused for the next.
const TAKE_TRANSMIT_BYTES: usize = 16 << 10;

/// What quinn-proto put in `buf` for `t`, owned; `buf` is left empty.
fn transmit(t: &quinn_proto::Transmit, buf: &mut Vec<u8>) -> udp::Transmit {
    buf.truncate(t.size);
    let data = if t.size >= TAKE_TRANSMIT_BYTES {
        std::mem::take(buf)
    } else {
        let data = buf.clone();
        buf.clear();
        data
    };
    udp::Transmit {
        to: t.destination,
        data,
        segment_size: t.segment_size,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await,
        None => futures::future::pending().await,
    }
}

impl Driver {
    fn on_datagram(&mut self, from: SocketAddr, data: BytesMut, outgoing: &mut Vec<udp::Transmit>) {
        self.stats.datagrams_in_total += 1;
        let now = Instant::now();
        let mut buf = Vec::new();
        match self.endpoint.handle(now, from, None, None, data, &mut buf) {
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some(state) = self.conns.get_mut(&handle) {
                    state.conn.handle_event(event);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                self.on_incoming(incoming, now, &mut buf, outgoing);
            }
            Some(DatagramEvent::Response(t)) => {
                outgoing.push(transmit(&t, &mut buf));
            }
            None => {}
        }
    }

    /// A new connection at the front door: every `Incoming` is consumed
    /// here (accepted, retried or refused), so quinn-proto keeps nothing
    /// for it.
    fn on_incoming(
        &mut self,
        incoming: Incoming,
        now: Instant,
        buf: &mut Vec<u8>,
        outgoing: &mut Vec<udp::Transmit>,
    ) {
        let remote = incoming.remote_address();
        let full = self.closing || self.conns.len() >= self.settings.max_connections;
        let validated = incoming.remote_address_validated();
        let refusal = match self.door.admit(now, remote.ip(), validated, full) {
            Admission::Accept => return self.accept(incoming, validated, now, buf, outgoing),
            Admission::Retry => match self.endpoint.retry(incoming, buf) {
                Ok(t) => {
                    self.stats.retries_sent_total += 1;
                    outgoing.push(transmit(&t, buf));
                    return;
                }
                // Not reachable (an unvalidated address may always be
                // retried), but if it were, the connection is refused.
                Err(e) => {
                    self.stats.refused_total += 1;
                    let t = self.endpoint.refuse(e.into_incoming(), buf);
                    outgoing.push(transmit(&t, buf));
                    return;
                }
            },
            Admission::Refuse(refusal) => refusal,
        };
        self.stats.refused_total += 1;
        match refusal {
            Refusal::Full => {}
            Refusal::PerAddress => self.stats.refused_per_address_total += 1,
            Refusal::Handshakes => self.stats.refused_handshakes_total += 1,
        }
        let t = self.endpoint.refuse(incoming, buf);
        outgoing.push(transmit(&t, buf));
    }

    fn accept(
        &mut self,
        incoming: Incoming,
        validated: bool,
        now: Instant,
        buf: &mut Vec<u8>,
        outgoing: &mut Vec<udp::Transmit>,
    ) {
        let remote = incoming.remote_address();
        let config = Some(self.server_config.clone());
        match self.endpoint.accept(incoming, now, buf, config) {
            Ok((handle, conn)) => {
                self.stats.accepted_total += 1;
                let holds_address = self.door.accepted(remote.ip(), validated);
                let max = self.settings.max_request_bytes;
                let peer = Rc::new(Peer::new(remote));
                let mut state = ConnState::new(conn, max, peer, now);
                state.holds_address = holds_address;
                self.conns.insert(handle, state);
            }
            Err(e) => {
                tracing::debug!(%remote, cause = %e.cause, "accept failed");
                if let Some(t) = e.response {
                    outgoing.push(transmit(&t, buf));
                }
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        let limit = self.settings.handshake_timeout;
        let request_timeout = self.settings.request_timeout;
        for state in self.conns.values_mut() {
            if state.conn.poll_timeout().is_some_and(|t| t <= now) {
                state.conn.handle_timeout(now);
            }
            self.stats.request_timeouts_total +=
                state.expire_stalled(now, request_timeout, &mut self.budget);
            let deadline = state.accepted_at.checked_add(limit);
            // A handshake that completed since the last pump is settled
            // there, not timed out here.
            let stalled = state.handshaking && state.conn.is_handshaking();
            if stalled && deadline.is_some_and(|d| now >= d) {
                // quinn-proto has no handshake deadline of its own: a
                // client that stalls mid-handshake would hold its slot
                // until the idle timeout.
                state.handshaking = false;
                self.door.handshake_ended();
                self.stats.handshake_timeouts_total += 1;
                let code = VarInt::from_u32(HANDSHAKE_TIMEOUT_CODE);
                state
                    .conn
                    .close(now, code, Bytes::from_static(b"handshake timeout"));
            }
        }
    }

    fn next_timeout(&mut self) -> Option<Instant> {
        let limit = self.settings.handshake_timeout;
        let request_timeout = self.settings.request_timeout;
        self.conns
            .values_mut()
            .filter_map(|s| {
                // A deadline past the clock's range is no deadline.
                let handshake = s
                    .handshaking
                    .then(|| s.accepted_at.checked_add(limit))
                    .flatten();
                let request = s.next_request_deadline(request_timeout);
                [s.conn.poll_timeout(), handshake, request]
                    .into_iter()
                    .flatten()
                    .min()
            })
            .min()
    }

    /// Moves everything along: endpoint events both ways, application
    /// events into requests, transmits into `outgoing`; forgets drained
    /// connections.
    fn pump(&mut self, outgoing: &mut Vec<udp::Transmit>) {
        let now = Instant::now();
        let mut finished = Vec::new();
        let mut completed = Vec::new();
        let handles: Vec<ConnectionHandle> = self.conns.keys().copied().collect();
        for handle in handles {
            let Some(state) = self.conns.get_mut(&handle) else {
                continue;
            };
            while let Some(event) = state.conn.poll_endpoint_events() {
                if let Some(reply) = self.endpoint.handle_event(handle, event) {
                    state.conn.handle_event(reply);
                }
            }
            // Before any request is handed over: the peer's certificates
            // are known once the handshake is done.
            if state.handshaking && !state.conn.is_handshaking() {
                state.handshaking = false;
                self.door.handshake_ended();
                // A completed handshake proves the address: from now on
                // the connection counts against it.
                if !state.conn.is_closed() && !state.holds_address {
                    self.door.hold(state.peer.remote.ip());
                    state.holds_address = true;
                }
                note_certificates(state);
            }
            if state.drive(&mut self.budget, &mut completed) == Lifecycle::Lost {
                tracing::debug!(conn = handle.0, "connection lost");
            }
            for stream in state.take_closed() {
                if let Some(signal) = self.open.remove(&(handle, stream)) {
                    signal.close();
                }
            }
            for stream in state.take_progressed() {
                if let Some(signal) = self.open.get(&(handle, stream)) {
                    signal.progress.notify(usize::MAX);
                }
            }
            if state.has_deferred() {
                self.fair.join(handle);
            }
            hand_over(
                handle,
                state,
                &mut completed,
                &mut self.requests,
                &mut self.stats,
            );
            take_transmits(state, now, self.gso_segments, outgoing);
            if state.conn.is_drained() {
                finished.push(handle);
            }
        }
        for handle in finished {
            if let Some(state) = self.conns.remove(&handle) {
                for stream in state.open_streams() {
                    if let Some(signal) = self.open.remove(&(handle, stream)) {
                        signal.close();
                    }
                }
                self.budget.release(state.held_bytes());
                self.budget.waiting = self.budget.waiting.saturating_sub(state.deferred_count());
                self.fair.leave(handle);
                if state.handshaking {
                    self.door.handshake_ended();
                }
                if state.holds_address {
                    self.door.closed(state.peer.remote.ip());
                }
            }
        }
        self.resume_deferred(outgoing, now);
    }

    /// Reads streams left unread for lack of budget, now that responses
    /// may have freed some: in deficit round robin over their connections
    /// (`fair.rs`), so a connection with many streams waiting gets the
    /// same share as one with a few.
    fn resume_deferred(&mut self, outgoing: &mut Vec<udp::Transmit>, now: Instant) {
        let mut backlog = Waiting {
            conns: &mut self.conns,
            budget: &mut self.budget,
            requests: &mut self.requests,
            stats: &mut self.stats,
            touched: Vec::new(),
        };
        self.fair.run(&mut backlog);
        let touched = std::mem::take(&mut backlog.touched);
        debug_assert!(
            self.budget.waiting == self.conns.values().map(ConnState::deferred_count).sum(),
            "streams waiting for budget miscounted"
        );
        // Reading a stream grants its client credit: tell it now.
        for handle in touched {
            if let Some(state) = self.conns.get_mut(&handle) {
                take_transmits(state, now, self.gso_segments, outgoing);
            }
        }
    }
}

/// The connections' waiting requests, as the round robin sees them.
struct Waiting<'a> {
    conns: &'a mut HashMap<ConnectionHandle, ConnState>,
    budget: &'a mut Budget,
    requests: &'a mut VecDeque<RequestIn>,
    stats: &'a mut ServerStats,
    /// Connections that admitted a request (each once).
    touched: Vec<ConnectionHandle>,
}

impl Backlog<ConnectionHandle> for Waiting<'_> {
    fn head_bytes(&self, k: &ConnectionHandle) -> Option<usize> {
        self.conns.get(k)?.head_deferred()
    }

    fn weight(&self, k: &ConnectionHandle) -> u32 {
        self.conns
            .get(k)
            .map_or(1, |state| self.budget.weight_of(&state.peer))
    }

    fn fits(&self, bytes: usize) -> bool {
        self.budget.fits(bytes)
    }

    fn admit(&mut self, k: &ConnectionHandle) {
        let Some(state) = self.conns.get_mut(k) else {
            return;
        };
        let mut completed = Vec::new();
        let admitted = state.admit_deferred(self.budget, &mut completed);
        debug_assert!(admitted, "the round robin admitted what did not fit");
        hand_over(*k, state, &mut completed, self.requests, self.stats);
        if !self.touched.contains(k) {
            self.touched.push(*k);
        }
    }

    fn over_share(&mut self, k: &ConnectionHandle, over: bool) {
        if let Some(state) = self.conns.get(k) {
            state.peer.over_share.set(over);
        }
    }
}

/// Queues a connection's completed requests for the application.
fn hand_over(
    handle: ConnectionHandle,
    state: &ConnState,
    completed: &mut Vec<(StreamId, Vec<u8>)>,
    requests: &mut VecDeque<RequestIn>,
    stats: &mut ServerStats,
) {
    for (stream, data) in completed.drain(..) {
        stats.requests_total += 1;
        requests.push_back(RequestIn {
            conn: ConnId(handle.0),
            stream,
            data,
            peer: state.peer.clone(),
        });
    }
}

/// Records the client's verified certificate chain in the connection's
/// peer, once its handshake is done and before any request shares it.
fn note_certificates(state: &mut ConnState) {
    let Some(identity) = state.conn.crypto_session().peer_identity() else {
        return;
    };
    let Ok(chain) = identity.downcast::<Vec<CertificateDer<'static>>>() else {
        return;
    };
    match Rc::get_mut(&mut state.peer) {
        Some(peer) => peer.certificates = *chain,
        // No request can hold the peer before the handshake is done (no
        // 0-RTT; quinn-proto drops 1-RTT packets until then).
        None => debug_assert!(false, "the peer was shared before its handshake ended"),
    }
}

/// Moves what quinn-proto wants sent for a connection into `outgoing`.
fn take_transmits(
    state: &mut ConnState,
    now: Instant,
    segments: usize,
    outgoing: &mut Vec<udp::Transmit>,
) {
    let mut buf = Vec::new();
    while let Some(t) = state.conn.poll_transmit(now, segments, &mut buf) {
        outgoing.push(transmit(&t, &mut buf));
    }
}
