//! Who may do what, on the request path: each request is checked on the
//! shard that received it, against that shard's own `Arc<Policy>`, with no
//! lock and no cross-shard call. A reload (SIGHUP) compiles a new policy
//! and TLS configuration off the shards, publishes them in [`Reload`] and
//! bumps its generation; each shard notices the new generation with one
//! atomic load per request and copies the new `Arc` once.

use std::{
    cell::{Cell, RefCell},
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use tidegate_auth::{AuthMode, Operation, Policy};
use tidegate_net::{Authenticated, ClientAuth, Peer, ServerCrypto, TlsMaterial};
use tidegate_proto::protocol::{ErrorCode, Request};

use crate::{config::ServeConfig, shard::Failure};

/// What a reload swaps: the compiled `[auth]` and the TLS configuration.
#[derive(Clone)]
pub(crate) struct Security {
    pub(crate) policy: Arc<Policy>,
    pub(crate) crypto: ServerCrypto,
}

/// Why the security configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// `[auth]` does not compile.
    #[error(transparent)]
    Policy(#[from] tidegate_auth::PolicyError),
    /// A certificate, key or CA file.
    #[error(transparent)]
    Net(#[from] tidegate_net::NetError),
    /// The server would be open to the network without authentication.
    #[error(
        "listen is {listen}, not loopback, and auth.mode is none: anyone who reaches it could \
         produce, consume and delete topics. Choose auth.mode (docs/SECURITY.md), or set \
         auth.allow_anonymous_remote = true to accept that"
    )]
    AnonymousRemote {
        /// The QUIC address.
        listen: SocketAddr,
    },
}

impl Security {
    /// Builds the policy and the TLS configuration `config` describes,
    /// reading every file it names. Also the TLS material, for the banner.
    pub(crate) fn build(config: &ServeConfig) -> Result<(Security, TlsMaterial), SecurityError> {
        let auth = &config.auth;
        if auth.mode == AuthMode::None && !config.listen.ip().is_loopback() {
            if !auth.allow_anonymous_remote {
                return Err(SecurityError::AnonymousRemote {
                    listen: config.listen,
                });
            }
            tracing::warn!(
                listen = %config.listen,
                "auth.mode is none on a non-loopback address: anyone who reaches it can do anything"
            );
        }
        let policy = Policy::from_config(auth)?;
        let tls = tidegate_net::load_or_generate(
            config.tls.cert.as_deref(),
            config.tls.key.as_deref(),
            &config.data_dir,
        )?;
        let roots = match (&auth.client_ca, auth.mode.uses_certificates()) {
            (Some(path), true) => tidegate_net::load_client_roots(path)?,
            _ => Vec::new(),
        };
        let client = match auth.mode {
            AuthMode::Mtls => ClientAuth::Required(roots),
            AuthMode::MtlsOrToken => ClientAuth::Optional(roots),
            AuthMode::None | AuthMode::Token => ClientAuth::None,
        };
        let crypto = tidegate_net::server_crypto(&tls, &client)?;
        Ok((
            Security {
                policy: Arc::new(policy),
                crypto,
            },
            tls,
        ))
    }
}

/// The security configuration every shard follows, replaced whole by
/// [`Reload::apply`]. Cheap to clone; safe from any thread (the binary's
/// signal thread calls it on SIGHUP).
#[derive(Clone, Default)]
pub struct Reload {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    generation: AtomicU64,
    current: Mutex<Option<Security>>,
}

impl Reload {
    /// A handle with nothing published yet (`run` publishes the starting
    /// configuration).
    pub fn new() -> Self {
        Reload::default()
    }

    /// Compiles `config`'s `[auth]` and TLS files and, when all of it is
    /// good, hands it to every shard: the policy applies from each shard's
    /// next request, the certificate to new connections (established ones
    /// keep theirs). On error nothing changes.
    ///
    /// # Errors
    ///
    /// [`SecurityError`] naming the bad setting or file.
    pub fn apply(&self, config: &ServeConfig) -> Result<(), SecurityError> {
        let (security, _) = Security::build(config)?;
        self.publish(security);
        Ok(())
    }

    pub(crate) fn publish(&self, security: Security) {
        let mut current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = Some(security);
        self.inner.generation.fetch_add(1, Ordering::Release);
    }

    /// Whether `presented` is the admin HTTP token (true when none is
    /// configured). Takes the lock: for the admin thread, not the shards.
    pub(crate) fn admin_token_ok(&self, presented: Option<&str>) -> bool {
        self.current()
            .is_none_or(|security| security.policy.admin_token_ok(presented))
    }

    fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    fn current(&self) -> Option<Security> {
        self.inner
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// A shard's view of [`Reload`]: its own copy of the policy, refreshed when
/// the generation moves.
pub(crate) struct Access {
    reload: Reload,
    seen: Cell<u64>,
    policy: RefCell<Arc<Policy>>,
    crypto: RefCell<Option<ServerCrypto>>,
    log: LogLimiter,
}

/// What a request may go on to do.
pub(crate) struct Allowed {
    /// The principal, when the policy is enforced.
    pub(crate) principal: Option<Arc<str>>,
    /// The policy it was checked against (ListTopics filters with it).
    pub(crate) policy: Arc<Policy>,
}

impl Access {
    pub(crate) fn new(reload: Reload) -> Access {
        let access = Access {
            reload,
            seen: Cell::new(u64::MAX),
            policy: RefCell::new(Arc::new(Policy::default())),
            crypto: RefCell::new(None),
            log: LogLimiter::new(),
        };
        access.refresh();
        access
    }

    /// The shard's policy, after taking a newer one if a reload published
    /// it (one atomic load when nothing changed).
    pub(crate) fn policy(&self) -> Arc<Policy> {
        self.refresh();
        self.policy.borrow().clone()
    }

    /// A TLS configuration published since the last call, for the shard's
    /// endpoint to use for new connections.
    pub(crate) fn take_new_crypto(&self) -> Option<ServerCrypto> {
        self.refresh();
        self.crypto.borrow_mut().take()
    }

    fn refresh(&self) {
        let generation = self.reload.generation();
        if generation == self.seen.get() {
            return;
        }
        if let Some(security) = self.reload.current() {
            *self.policy.borrow_mut() = security.policy;
            if self.seen.get() != u64::MAX {
                *self.crypto.borrow_mut() = Some(security.crypto);
            }
        }
        self.seen.set(generation);
    }

    /// Checks `request` from `peer`: authenticated (and not lapsed), and
    /// allowed by the rules for what it does to which topic. Authenticate
    /// itself is answered by [`Access::authenticate`].
    pub(crate) fn check(
        &self,
        peer: &Peer,
        request: &Request<'_>,
        now_ms: u64,
    ) -> Result<Allowed, Failure> {
        let policy = self.policy();
        if !policy.enforced() {
            return Ok(Allowed {
                principal: None,
                policy,
            });
        }
        let principal = self.principal(&policy, peer, now_ms)?;
        let target = match request {
            Request::CreateTopic(c) => Some((Operation::Admin, c.name)),
            Request::DeleteTopic { name } => Some((Operation::Admin, *name)),
            Request::Produce(p) => Some((Operation::Produce, p.topic)),
            Request::Fetch(f) => Some((Operation::Consume, f.topic)),
            Request::ListOffsets(l) => Some((Operation::Consume, l.topic)),
            // Groups are checked by the topic they consume.
            Request::GroupHeartbeat(h) => Some((Operation::Consume, h.topic)),
            Request::CommitOffsets(c) => Some((Operation::Consume, c.topic)),
            Request::FetchOffsets(f) => Some((Operation::Consume, f.topic)),
            // A subscription is made by an admin of its topic; the other
            // subscription requests name only the subscription, and are
            // checked against its topic once the catalog is read
            // (`Allowed::authorize`).
            Request::CreateSubscription(c) => Some((Operation::Admin, c.topic)),
            Request::DescribeTopic { name } => {
                if !policy.sees(&principal, name) {
                    return Err(self.denied(peer, &principal, "describe", name));
                }
                None
            }
            // Any principal may get a producer identity: it writes nothing
            // by itself, and each Produce is checked on its own.
            // Listed groups are filtered by what the principal sees; a
            // described group shows member ids and partition numbers only.
            Request::ListTopics
            | Request::Authenticate { .. }
            | Request::InitProducer { .. }
            | Request::ListGroups
            | Request::DescribeGroup { .. }
            | Request::DeleteSubscription { .. }
            | Request::ListSubscriptions { .. }
            | Request::DescribeSubscription { .. }
            | Request::Pull(_)
            | Request::StreamingPull(_)
            | Request::Ack(_)
            | Request::ModifyDeadline { .. } => None,
            // Credits reach only the connection's own push streams, each
            // authorized when it opened (and again before every frame).
            Request::PushCredit(_) => None,
        };
        if let Some((operation, topic)) = target {
            if let Err(denied) = policy.authorize(&principal, operation, topic) {
                return Err(self.denied(peer, &principal, operation.name(), &denied.topic));
            }
        }
        // The server writes a subscription's dead letters on its behalf:
        // whoever makes one must be allowed to produce to where they go.
        if let Request::CreateSubscription(c) = request {
            if !c.dead_letter_topic.is_empty() {
                let dlq = c.dead_letter_topic;
                if let Err(denied) = policy.authorize(&principal, Operation::Produce, dlq) {
                    let name = Operation::Produce.name();
                    return Err(self.denied(peer, &principal, name, &denied.topic));
                }
            }
        }
        Ok(Allowed {
            principal: Some(principal),
            policy,
        })
    }

    /// Answers an Authenticate: on success the connection is that
    /// principal from now on (until the token's expiry).
    pub(crate) fn authenticate(
        &self,
        peer: &Peer,
        token: &str,
        now_ms: u64,
    ) -> Result<Authenticated, Failure> {
        let policy = self.policy();
        if !policy.mode().uses_tokens() {
            return Err(Failure::new(
                ErrorCode::NotAuthenticated,
                format!(
                    "this server does not take tokens (auth.mode is {})",
                    mode_name(policy.mode())
                ),
            ));
        }
        match policy.authenticate(token, now_ms) {
            Ok(identity) => {
                let authenticated = Authenticated {
                    principal: identity.principal.into(),
                    expires_at_ms: identity.expires_at_ms,
                };
                *peer.authenticated.borrow_mut() = Some(authenticated.clone());
                Ok(authenticated)
            }
            Err(e) => {
                crate::metrics::count_auth_failure(e.reason());
                self.log.warn(|| {
                    tracing::warn!(remote = %peer.remote, reason = e.reason(), "token refused");
                });
                Err(Failure::new(
                    ErrorCode::NotAuthenticated,
                    format!("token refused: {e}"),
                ))
            }
        }
    }

    /// The connection's principal: the one it authenticated, else its
    /// client certificate's.
    fn principal(&self, policy: &Policy, peer: &Peer, now_ms: u64) -> Result<Arc<str>, Failure> {
        if let Some(who) = peer.authenticated.borrow().as_ref() {
            if who.expires_at_ms.is_some_and(|at| at <= now_ms) {
                crate::metrics::count_auth_failure("lapsed");
                return Err(Failure::new(
                    ErrorCode::NotAuthenticated,
                    "the token expired: authenticate again",
                ));
            }
            return Ok(who.principal.clone());
        }
        if let (true, Some(leaf)) = (policy.mode().uses_certificates(), peer.certificates.first()) {
            return match policy.certificate_identity(leaf) {
                Ok(identity) => {
                    let principal: Arc<str> = identity.principal.into();
                    *peer.authenticated.borrow_mut() = Some(Authenticated {
                        principal: principal.clone(),
                        expires_at_ms: None,
                    });
                    Ok(principal)
                }
                Err(e) => {
                    crate::metrics::count_auth_failure("certificate");
                    Err(Failure::new(ErrorCode::NotAuthenticated, e.to_string()))
                }
            };
        }
        crate::metrics::count_auth_failure("unauthenticated");
        let needed = match policy.mode() {
            AuthMode::Mtls => "a client certificate",
            _ => "a token: send Authenticate first",
        };
        Err(Failure::new(
            ErrorCode::NotAuthenticated,
            format!("not authenticated: this server requires {needed}"),
        ))
    }

    /// Checks a request whose topic only the catalog knows (a subscription
    /// names its topic): may `allowed`'s principal do `operation` on
    /// `topic`?
    pub(crate) fn authorize(
        &self,
        peer: &Peer,
        allowed: &Allowed,
        operation: Operation,
        topic: &str,
    ) -> Result<(), Failure> {
        let Some(principal) = allowed.principal.as_deref() else {
            return Ok(());
        };
        allowed
            .policy
            .authorize(principal, operation, topic)
            .map_err(|denied| self.denied(peer, principal, operation.name(), &denied.topic))
    }

    fn denied(&self, peer: &Peer, principal: &str, operation: &str, topic: &str) -> Failure {
        crate::metrics::count_auth_denied(operation);
        self.log.warn(|| {
            tracing::warn!(remote = %peer.remote, principal, operation, topic, "request denied");
        });
        Failure::new(
            ErrorCode::NotAuthorized,
            format!("{operation} on topic {topic}"),
        )
    }
}

fn mode_name(mode: AuthMode) -> &'static str {
    match mode {
        AuthMode::None => "none",
        AuthMode::Mtls => "mtls",
        AuthMode::Token => "token",
        AuthMode::MtlsOrToken => "mtls_or_token",
    }
}

/// At most [`LOG_PER_SECOND`] authentication log lines a second per shard,
/// so a client hammering with bad tokens cannot flood the log; what is left
/// out is counted and said once the second is over.
struct LogLimiter {
    window: Cell<Instant>,
    logged: Cell<u32>,
    suppressed: Cell<u64>,
}

const LOG_PER_SECOND: u32 = 10;

impl LogLimiter {
    fn new() -> Self {
        LogLimiter {
            window: Cell::new(Instant::now()),
            logged: Cell::new(0),
            suppressed: Cell::new(0),
        }
    }

    fn warn(&self, log: impl FnOnce()) {
        let now = Instant::now();
        if now.duration_since(self.window.get()) >= Duration::from_secs(1) {
            let suppressed = self.suppressed.replace(0);
            if suppressed > 0 {
                tracing::warn!(
                    suppressed,
                    "authentication log lines left out in the last second"
                );
            }
            self.window.set(now);
            self.logged.set(0);
        }
        if self.logged.get() < LOG_PER_SECOND {
            self.logged.set(self.logged.get() + 1);
            log();
        } else {
            self.suppressed.set(self.suppressed.get() + 1);
        }
    }
}
