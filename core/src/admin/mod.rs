//! The admin HTTP server, on its own port (`admin_listen`): `/healthz`,
//! `/readyz` and Prometheus `/metrics` (`docs/METRICS.md`).
//!
//! It runs on its own std thread with a tokio current-thread runtime
//! (hyper 1 over hyper-util's tokio glue), never on a shard: a scrape
//! costs the shards nothing but the hub slots they already fill
//! ([`crate::metrics`]). It binds before the shards start, so a taken port
//! fails `tidegate serve` at once, and `/readyz` answers 503 while the
//! shards recover their partitions. Dropping the [`AdminServer`] stops it.

mod routes;

use std::{convert::Infallible, net::SocketAddr, sync::Arc, thread, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, header, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::{oneshot, Semaphore};

use crate::{access::Reload, metrics::MetricsHub, server::Shutdown};

/// Admin connections served at once; more are closed on accept.
pub const CONNECTIONS_MAX: usize = 64;
/// The longest one admin connection lives (keep-alive included).
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause after a failed accept (out of file descriptors), so the loop does
/// not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Why the admin server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("admin HTTP cannot listen on {addr} (admin_listen, --admin-listen)")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime or the thread could not be created.
    #[error("admin HTTP: starting its {what}")]
    Start {
        /// What was being created.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// A running admin server; dropping it stops it and waits for its thread.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

struct State {
    hub: Arc<MetricsHub>,
    shutdown: Shutdown,
    /// Holds the admin token's hash (`auth.admin_token_hash`).
    reload: Reload,
}

impl AdminServer {
    /// Binds `addr` and serves the hub's state until dropped. `/readyz`
    /// fails once `shutdown` is triggered. With `auth.admin_token_hash`
    /// set (as `reload` holds it), every path but `/healthz` and `/readyz`
    /// needs `Authorization: Bearer <token>`.
    ///
    /// # Errors
    ///
    /// [`AdminError::Bind`] when the address cannot be bound, and
    /// [`AdminError::Start`] when no thread or runtime can be made.
    pub fn start(
        addr: SocketAddr,
        hub: Arc<MetricsHub>,
        shutdown: Shutdown,
        reload: Reload,
    ) -> Result<AdminServer, AdminError> {
        let bind = |source| AdminError::Bind { addr, source };
        let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let local = listener.local_addr().map_err(bind)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| AdminError::Start {
                what: "tokio runtime",
                source,
            })?;
        let (stop, stopped) = oneshot::channel();
        let state = Arc::new(State {
            hub,
            shutdown,
            reload,
        });
        let thread = thread::Builder::new()
            .name("admin-http".into())
            .spawn(move || runtime.block_on(serve(listener, state, stopped)))
            .map_err(|source| AdminError::Start {
                what: "thread",
                source,
            })?;
        tracing::info!(addr = %local, "admin HTTP serving /healthz /readyz /metrics");
        Ok(AdminServer {
            addr: local,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address (its real port when the configuration said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the admin HTTP thread panicked");
            }
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "admin HTTP: registering the listener");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "admin HTTP accept");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Over the bound: the connection is closed unanswered.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&state, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
            drop(permit);
        });
    }
}

fn respond(state: &State, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let answer = if routes::is_probe(path) || state.reload.admin_token_ok(bearer) {
        routes::answer(
            request.method(),
            path,
            &state.hub,
            state.shutdown.is_triggered(),
        )
    } else {
        routes::unauthorized()
    };
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = answer.status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(answer.content_type),
    );
    response
}
