//! Starting, running and stopping the gateway: one pinned glommio executor
//! per shard core, each with its own QUIC endpoint on the shared port
//! (SO_REUSEPORT), the partitions it owns, and its ends of the mesh.
//!
//! Start: shard 0 binds first (so a port of 0 becomes a real port the
//! others bind too); then every shard connects the mesh, loads the catalog
//! and opens the partitions it owns; `on_started` runs once all serve.
//! Stop ([`Shutdown::trigger`], SIGTERM in the binary): each shard stops
//! taking requests, lets the ones in flight finish and their responses go
//! out, closes its connections, then closes its logs (fdatasync, index
//! checkpoint), and `run` returns.

use std::{
    future::Future,
    net::SocketAddr,
    num::NonZeroUsize,
    path::PathBuf,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    thread,
    time::Duration,
};

use glommio::{LocalExecutorBuilder, Placement};
use tidegate_net::{QuicServer, QuicSettings};
use tidegate_proto::protocol::Kind;

use crate::{
    access::{Access, Reload, Security, SecurityError},
    admin::{AdminError, AdminServer},
    catalog::CatalogStore,
    config::ServeConfig,
    flow::Flow,
    handler,
    mesh::{self, MeshEnds},
    metrics::{MetricsHub, Publisher},
    router::Router,
    shard::Shard,
};

/// How often a shard looks at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(20);
/// How long a shard waits for requests in flight when stopping.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A handle that stops a running server; cheap to clone, safe from any
/// thread (a signal handler thread, a test).
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A handle not yet triggered.
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// Starts a graceful stop.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once `trigger` was called.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a started server looks like from outside.
#[derive(Debug, Clone)]
pub struct Started {
    /// The QUIC address every shard serves (its port is real even when the
    /// configuration said 0).
    pub listen: SocketAddr,
    /// The CPU each shard is pinned to, by shard.
    pub shard_cores: Vec<usize>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The server certificate (PEM) clients must trust.
    pub cert_path: PathBuf,
    /// True when that certificate is a development one generated now.
    pub cert_generated: bool,
    /// The admin HTTP address (`/healthz`, `/readyz`, `/metrics`), its
    /// port real even when the configuration said 0.
    pub admin_listen: SocketAddr,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TLS or the socket.
    #[error(transparent)]
    Net(#[from] tidegate_net::NetError),
    /// CPU topology or core choice.
    #[error(transparent)]
    Affinity(#[from] tidegate_affinity::AffinityError),
    /// The admin HTTP server could not start (its port is taken ...).
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Certificates, the client CA or the `[auth]` section.
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// A shard failed to start or failed while running.
    #[error("shard {shard}: {message}")]
    Shard {
        /// Which shard.
        shard: usize,
        /// What went wrong.
        message: String,
    },
}

/// Runs the server until `shutdown` is triggered and every shard has
/// drained. `on_started` is called once, when every shard serves.
pub fn run(
    config: &ServeConfig,
    shutdown: Shutdown,
    on_started: impl FnOnce(&Started),
) -> Result<(), ServeError> {
    run_with_reload(config, shutdown, Reload::new(), on_started)
}

/// [`run`], with a handle through which the `[auth]` section and the TLS
/// files are reloaded while it runs ([`Reload::apply`], on SIGHUP in the
/// binary).
pub fn run_with_reload(
    config: &ServeConfig,
    shutdown: Shutdown,
    reload: Reload,
    on_started: impl FnOnce(&Started),
) -> Result<(), ServeError> {
    // The data directory is made absolute once, so logs and the banner name
    // the real place. (The relative-path trap of glommio is handled where
    // files are opened, in queue/src/disk.rs.)
    let mut config = config.clone();
    config.data_dir =
        std::path::absolute(&config.data_dir).map_err(|source| ServeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
    let config = &config;
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    // Certificates, client CA and `[auth]`, compiled once here and again
    // on every reload; each shard takes its copy from `reload`.
    let (security, tls) = Security::build(config)?;
    if tls.generated {
        tracing::info!(cert = %tls.cert_path.display(), "generated a self-signed development certificate");
    }
    if config.auth.admin_token_hash.is_none() && !config.admin_listen.ip().is_loopback() {
        tracing::warn!(
            admin_listen = %config.admin_listen,
            "the admin listener is not on loopback and auth.admin_token_hash is not set: \
             anyone who reaches it can read /metrics"
        );
    }
    let crypto = security.crypto.clone();
    reload.publish(security);
    // Kept across restarts, so that clients of the process before a crash
    // are reset at once rather than after their idle timeout.
    let reset_key = tidegate_net::load_or_create_reset_key(&config.data_dir)?;
    let cores = shard_cores(config)?;
    let shards = NonZeroUsize::new(cores.len()).ok_or_else(|| ServeError::Shard {
        shard: 0,
        message: "no CPU to run a shard on".into(),
    })?;
    if shards.get() > usize::from(u8::MAX) {
        return Err(ServeError::Shard {
            shard: 0,
            message: format!(
                "{} shards: connection IDs name their shard in one byte, so at most 255",
                shards
            ),
        });
    }
    // Bound before the shards start: a taken port fails at once, and
    // /readyz says 503 while partitions recover. Stops when `run` returns.
    let metrics = MetricsHub::new(shards.get());
    let admin = AdminServer::start(
        config.admin_listen,
        metrics.clone(),
        shutdown.clone(),
        reload.clone(),
    )?;
    let (tx, rx) = mpsc::channel::<(usize, Result<SocketAddr, String>)>();
    let mut threads = Vec::with_capacity(cores.len());
    let mut listen = config.listen;
    for (id, (ends, cpu)) in mesh::build(shards.get())
        .into_iter()
        .zip(&cores)
        .enumerate()
    {
        let shard = ShardStart {
            id,
            shards,
            cpu: *cpu,
            listen,
            config: config.clone(),
            crypto: crypto.clone(),
            reload: reload.clone(),
            ends: Some(ends),
            shutdown: shutdown.clone(),
            started: tx.clone(),
            metrics: metrics.clone(),
            reset_key,
        };
        threads.push(spawn_shard(shard)?);
        if id == 0 {
            // The others bind the port shard 0 got.
            match rx.recv() {
                Ok((_, Ok(addr))) => listen = addr,
                Ok((shard, Err(message))) => {
                    return fail(&shutdown, threads, ServeError::Shard { shard, message })
                }
                Err(_) => return fail(&shutdown, threads, lost(0)),
            }
        }
    }
    // Every shard, shard 0 included, says when it serves.
    for _ in 0..shards.get() {
        match rx.recv() {
            Ok((_, Ok(_))) => {}
            Ok((shard, Err(message))) => {
                return fail(&shutdown, threads, ServeError::Shard { shard, message })
            }
            Err(_) => return fail(&shutdown, threads, lost(1)),
        }
    }
    on_started(&Started {
        listen,
        shard_cores: cores,
        data_dir: config.data_dir.clone(),
        cert_path: tls.cert_path.clone(),
        cert_generated: tls.generated,
        admin_listen: admin.local_addr(),
    });
    join(threads)
}

fn lost(shard: usize) -> ServeError {
    ServeError::Shard {
        shard,
        message: "stopped before it started serving".into(),
    }
}

fn fail(
    shutdown: &Shutdown,
    threads: Vec<thread::JoinHandle<Result<(), String>>>,
    error: ServeError,
) -> Result<(), ServeError> {
    shutdown.trigger();
    let _ = join(threads);
    Err(error)
}

fn join(threads: Vec<thread::JoinHandle<Result<(), String>>>) -> Result<(), ServeError> {
    let mut first = Ok(());
    for (shard, t) in threads.into_iter().enumerate() {
        let result = match t.join() {
            Ok(r) => r,
            Err(_) => Err("shard thread panicked".to_string()),
        };
        if let (Err(message), Ok(())) = (result, &first) {
            first = Err(ServeError::Shard { shard, message });
        }
    }
    first
}

/// The CPUs shards run on, from `cores` in the configuration.
fn shard_cores(config: &ServeConfig) -> Result<Vec<usize>, ServeError> {
    let topology = tidegate_affinity::Topology::detect()?;
    let allowed = tidegate_affinity::pin::allowed_cpus()?;
    let choice =
        tidegate_affinity::cores::choose_shard_cores(&topology, config.cores.spec(), &allowed)?;
    for warning in &choice.warnings {
        tracing::warn!(%warning, "shard cores");
    }
    Ok(choice.cores)
}

struct ShardStart {
    id: usize,
    shards: NonZeroUsize,
    cpu: usize,
    listen: SocketAddr,
    config: ServeConfig,
    crypto: tidegate_net::ServerCrypto,
    /// Where reloaded TLS and `[auth]` come from.
    reload: Reload,
    ends: Option<MeshEnds>,
    shutdown: Shutdown,
    started: mpsc::Sender<(usize, Result<SocketAddr, String>)>,
    /// Where this shard publishes its metrics snapshots.
    metrics: Arc<MetricsHub>,
    /// The stateless reset key every shard shares, kept across restarts.
    reset_key: [u8; tidegate_net::RESET_KEY_LEN],
}

fn spawn_shard(start: ShardStart) -> Result<thread::JoinHandle<Result<(), String>>, ServeError> {
    let id = start.id;
    let builder = LocalExecutorBuilder::new(Placement::Fixed(start.cpu))
        .name(&format!("shard-{id}"))
        .io_memory(start.config.shard.io_memory.bytes_usize());
    let handle = builder
        .spawn(move || shard_main(start))
        .map_err(|e| ServeError::Shard {
            shard: id,
            message: format!("starting its executor: {e}"),
        })?;
    thread::Builder::new()
        .name(format!("shard-{id}-join"))
        .spawn(move || {
            handle
                .join()
                .map_err(|e| format!("executor: {e}"))
                .and_then(|r| r)
        })
        .map_err(|e| ServeError::Shard {
            shard: id,
            message: format!("starting its thread: {e}"),
        })
}

async fn shard_main(mut start: ShardStart) -> Result<(), String> {
    let id = start.id;
    let settings = quic_settings(&start.config, id, start.shards.get(), start.reset_key);
    let quic = match QuicServer::bind(start.listen, start.crypto.clone(), settings) {
        Ok(q) => q,
        Err(e) => {
            start.shutdown.trigger();
            let _ = start.started.send((id, Err(e.to_string())));
            // Peers wait in `connect` for this shard's ends of the mesh:
            // connect them anyway so they can see the shutdown and stop.
            if id != 0 {
                if let Some(ends) = start.ends.take() {
                    drop(ends.connect().await);
                }
            }
            return Err(e.to_string());
        }
    };
    if id == 0 {
        let _ = start.started.send((id, Ok(quic.local_addr())));
    }
    // Fair-share weights of the admission window, by principal.
    let weights = start.config.flow.weights.iter();
    quic.set_weights(
        weights
            .map(|(p, w)| (Arc::<str>::from(p.as_str()), *w))
            .collect(),
    );
    let Some(ends) = start.ends.take() else {
        return Err("mesh ends missing".into());
    };
    let (mesh, inbound) = ends.connect().await;
    {
        // Packets of this shard's connections that reach another shard come
        // back over the mesh, and the other way round (net/src/cid.rs).
        let mesh = mesh.clone();
        quic.set_forwarder(Box::new(move |to, from, data| {
            let _ = mesh.try_send(to, mesh::Envelope::Datagram { from, data });
        }));
    }
    let shard = match open_shard(&start).await {
        Ok(s) => s,
        Err(e) => {
            // The other shards must not wait on this one: stop them too.
            start.shutdown.trigger();
            let _ = start.started.send((id, Err(e.clone())));
            return Err(e);
        }
    };
    let router = Rc::new(Router {
        shard: shard.clone(),
        mesh: mesh.clone(),
        access: Access::new(start.reload.clone()),
        flow: Flow::new(&start.config),
        pushes: crate::handler::push::Pushes::new(start.config.subscriptions.push_streams_max),
    });
    for peer in inbound {
        let r = router.clone();
        let serve = mesh::serve_inbound(
            mesh.clone(),
            peer,
            move |op| {
                let r = r.clone();
                async move { r.run_here(op).await }
            },
            {
                let injector = quic.injector();
                move |from, data| injector.inject(from, data)
            },
        );
        glommio::spawn_local(serve).detach();
    }
    glommio::spawn_local(retention(
        router.clone(),
        start.config.clone(),
        start.shutdown.clone(),
    ))
    .detach();
    let publisher = Publisher::new(id, start.metrics.clone());
    publisher.publish(&router, &quic, true);
    let _ = start.started.send((id, Ok(quic.local_addr())));
    tracing::info!(shard = id, cpu = start.cpu, addr = %quic.local_addr(), "shard serving");
    // Metrics publish once a second and flow control adjusts the window
    // every interval, alongside serving (the endpoint cannot move into a
    // spawned task); both stop with it, and metrics publish once more.
    {
        let running = || !start.shutdown.is_triggered();
        let ticking = publisher.every_interval(&router, &quic, running);
        let controlling = router.flow.run(&quic, running);
        let (ticking, controlling) = (std::pin::pin!(ticking), std::pin::pin!(controlling));
        let background = futures::future::select(ticking, controlling);
        let serving = serve(&quic, router.clone(), &start);
        serve_to_the_end(serving, background).await;
    }
    publisher.publish(&router, &quic, false);
    quic.shutdown().await;
    shard.subscriptions.clear();
    shard.partitions.close_all().await;
    router.mesh.goodbye().await;
    tracing::info!(shard = id, "shard stopped");
    Ok(())
}

/// Loads the catalog and opens the partitions this shard owns.
async fn open_shard(start: &ShardStart) -> Result<Rc<Shard>, String> {
    let data_dir = start.config.data_dir.clone();
    let catalog = CatalogStore::new(&data_dir)
        .load()
        .await
        .map_err(|e| format!("loading the topic catalog: {e}"))?;
    let shard = Rc::new(Shard::new(
        start.id,
        start.shards,
        data_dir,
        start.config.log_config(),
        crate::flow::write_gate(&start.config),
        start.config.window_defaults(),
        Rc::new(catalog.clone()),
    ));
    shard
        .apply_catalog(Rc::new(catalog))
        .await
        .map_err(|f| format!("opening partitions: {}", f.message))?;
    Ok(shard)
}

/// Takes requests until shutdown, each in its own task, at most
/// `shard_inflight_requests_max` at once; then waits for those in flight.
async fn serve(quic: &QuicServer, router: Rc<Router>, start: &ShardStart) {
    let max_inflight = start.config.limits.shard_inflight_requests_max.max(1) as u64;
    let inflight = Rc::new(glommio::sync::Semaphore::new(max_inflight));
    // Fetches have their own slots, so readers of old data cannot take
    // every request slot from producers (docs/FLOW_CONTROL.md).
    let max_fetches = u64::from(start.config.flow.max_fetches.max(1));
    let fetches = Rc::new(glommio::sync::Semaphore::new(max_fetches));
    let max_body = start.config.limits.max_request_bytes.bytes_usize();
    loop {
        let next = std::pin::pin!(quic.next_request());
        let stop = std::pin::pin!(wait_for_shutdown_or_reload(&start.shutdown, &router.access));
        let request = match futures::future::select(next, stop).await {
            futures::future::Either::Left((Some(r), _)) => r,
            futures::future::Either::Right((Wake::Reload(crypto), _)) => {
                // New connections get the reloaded certificate; open
                // ones keep theirs.
                quic.set_crypto(crypto);
                tracing::info!(shard = router.shard.id, "TLS configuration reloaded");
                continue;
            }
            _ => break,
        };
        // A push stream lives as long as its subscriber: it takes no
        // request slot (its bound is `subscriptions.push_streams_max`).
        if request.data.get(3) == Some(&Kind::StreamingPull.request_code()) {
            let push = handler::push::stream(router.clone(), request, quic.responder(), max_body);
            glommio::spawn_local(push).detach();
            continue;
        }
        let is_fetch = request.data.get(3) == Some(&Kind::Fetch.request_code());
        // A fetch waits for its slot in its own task, so produce requests
        // behind it in this loop are not held up.
        let permit = if is_fetch {
            None
        } else {
            match inflight.clone().acquire_static_permit(1).await {
                Ok(permit) => Some(permit),
                Err(_) => break,
            }
        };
        let response = {
            let router = router.clone();
            let fetches = fetches.clone();
            async move {
                let fetch_permit = match permit {
                    Some(_) => None,
                    None => fetches.acquire_static_permit(1).await.ok(),
                };
                let parts = handler::handle(&router, &request.peer, &request.data, max_body).await;
                drop((permit, fetch_permit));
                (request.conn, request.stream, parts)
            }
        };
        let responder = quic.responder();
        glommio::spawn_local(async move {
            let (conn, stream, parts) = response.await;
            responder.respond(conn, stream, parts);
        })
        .detach();
    }
    // Let the requests in flight finish (bounded), then stop; long polls
    // answer at once with what they have.
    router.shard.stop_waits();
    let all = async {
        let _ = inflight.acquire(max_inflight).await;
        let _ = fetches.acquire(max_fetches).await;
    };
    let timeout = std::pin::pin!(glommio::timer::sleep(DRAIN_TIMEOUT));
    let _ = futures::future::select(std::pin::pin!(all), timeout).await;
}

/// Runs `serving` to its end with `background` beside it. The background
/// loops stop on their next tick after shutdown, which can come before
/// serving has drained its requests in flight (a long poll forwarded to
/// another shard waits for that shard's answer): the drain must still run
/// to its end, or the connection would close under those requests.
async fn serve_to_the_end(serving: impl Future<Output = ()>, background: impl Future) {
    let serving = std::pin::pin!(serving);
    let background = std::pin::pin!(background);
    if let futures::future::Either::Right((_, serving)) =
        futures::future::select(serving, background).await
    {
        serving.await;
    }
}

/// Why the serve loop stopped waiting for a request.
enum Wake {
    Shutdown,
    Reload(tidegate_net::ServerCrypto),
}

async fn wait_for_shutdown_or_reload(shutdown: &Shutdown, access: &Access) -> Wake {
    loop {
        if shutdown.is_triggered() {
            return Wake::Shutdown;
        }
        if let Some(crypto) = access.take_new_crypto() {
            return Wake::Reload(crypto);
        }
        glommio::timer::sleep(SHUTDOWN_POLL).await;
    }
}

/// Deletes old segments of the shard's partitions, every
/// `retention_check_interval`.
/// Log retention, and the expiry of empty groups' committed offsets,
/// every `storage.retention_check_interval`.
async fn retention(router: Rc<Router>, config: ServeConfig, shutdown: Shutdown) {
    let every = config.storage.retention_check_interval.get();
    let offsets_retention_ms = config.groups.offsets_retention.as_millis_u64();
    while !shutdown.is_triggered() {
        glommio::timer::sleep(every).await;
        let now = crate::router::now_ms();
        for ((topic, partition), log) in router.shard.partitions.all() {
            if let Err(e) = log.enforce_retention(now).await {
                tracing::warn!(topic, partition, error = %e, "retention");
            }
        }
        crate::groups::expiry::expire_offsets(&router, now, offsets_retention_ms).await;
    }
}

fn quic_settings(
    config: &ServeConfig,
    shard: usize,
    shards: usize,
    reset_key: [u8; tidegate_net::RESET_KEY_LEN],
) -> QuicSettings {
    let q = &config.quic;
    QuicSettings {
        // max_connections is server-wide: each shard takes its share.
        max_connections: (q.max_connections as usize / shards).max(1),
        max_concurrent_streams: q.max_concurrent_streams,
        stream_receive_window: q.stream_receive_window.bytes(),
        connection_receive_window: q.connection_receive_window.bytes(),
        idle_timeout: q.idle_timeout.get(),
        keep_alive: q.keep_alive.get(),
        max_request_bytes: config.limits.max_request_bytes.bytes_usize(),
        request_timeout: q.request_timeout.get(),
        max_inflight_bytes: config.limits.shard_inflight_bytes_max.bytes_usize(),
        // Connection IDs carry the shard in one byte (checked at start).
        shard: shard as u8,
        shards: shards as u8,
        gso: q.gso,
        gro: q.gro,
        socket_receive_buffer: q.socket_receive_buffer.bytes_usize(),
        socket_send_buffer: q.socket_send_buffer.bytes_usize(),
        // Server-wide like max_connections, but rounded up: a bound of 1
        // per address must not become 0 per shard.
        max_connections_per_address: (q.max_connections_per_address as usize).div_ceil(shards),
        max_handshakes: (q.max_handshakes as usize).div_ceil(shards),
        handshake_timeout: q.handshake_timeout.get(),
        // A rate per shard: each shard's bucket fills on its own.
        retry_handshakes_per_s: q.retry_handshakes_per_s,
        fair_quantum: config.flow.quantum.bytes_usize(),
        // One quantum, shared by the producers that hold nothing; static
        // limits stay static.
        sparse_overdraw: if config.flow.enabled {
            config.flow.quantum.bytes_usize()
        } else {
            0
        },
        reset_key: Some(reset_key),
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};

    use super::*;

    #[test]
    fn serving_drains_to_its_end_after_the_background_loops_stop() {
        let (drained, drain) = futures::channel::oneshot::channel::<()>();
        let serving = async move {
            let _ = drain.await;
        };
        // The background loops are already done, as after a shutdown tick.
        let mut run = std::pin::pin!(serve_to_the_end(serving, std::future::ready(())));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(run.as_mut().poll(&mut cx).is_pending(), "stopped mid-drain");
        assert!(drained.send(()).is_ok());
        assert_eq!(run.as_mut().poll(&mut cx), Poll::Ready(()));
    }
}
