//! The one error type of the client.

use std::net::SocketAddr;
use std::sync::Arc;

use tidegate_proto::protocol::ErrorCode;

/// A boxed source error, kept so `Error::source()` reaches the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a client call can fail with.
///
/// Match on the variant to tell whose fault it is, and ask
/// [`is_retriable`](Error::is_retriable) whether trying again may succeed.
///
/// # Example
///
/// ```no_run
/// use tidegate_client::{Client, Error, ErrorCode, Tls};
///
/// # async fn run() -> Result<(), Error> {
/// let client = Client::connect("127.0.0.1:7441".parse().unwrap(), Tls::system_roots()).await?;
/// match client.delete_topic("orders").await {
///     Ok(()) => println!("deleted"),
///     Err(Error::Server { code: ErrorCode::UnknownTopic, .. }) => println!("nothing to delete"),
///     Err(e) if e.is_retriable() => println!("try again later: {e}"),
///     Err(e) => return Err(e),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered the request with an error (other than the two
    /// below, which have their own variants).
    #[error("server error {code}: {message}")]
    Server {
        /// The server's error code.
        code: ErrorCode,
        /// The server's explanation, for humans (may be empty).
        message: String,
    },
    /// The server does not accept this connection's credentials
    /// ([`ErrorCode::NotAuthenticated`]): no token was given but the server
    /// requires one, the token was refused (the message says why: unknown,
    /// expired, not yet valid, bad signature, wrong audience), or the
    /// authentication lapsed and could not be renewed. Returned by
    /// [`Client::connect_with`](crate::Client::connect_with) (and by a
    /// reconnect) when the server refuses the token. Not retriable: the
    /// same token will be refused again.
    #[error("not authenticated: {}", message.strip_prefix("not authenticated: ").unwrap_or(message))]
    NotAuthenticated {
        /// The server's explanation.
        message: String,
    },
    /// The connection's principal may not do this
    /// ([`ErrorCode::NotAuthorized`]). The connection stays usable for what
    /// is allowed. Not retriable.
    ///
    /// `operation` and `resource` are read from the server's message,
    /// `<operation> on <resource>[: <more>]`, e.g. `produce` and
    /// `topic orders.eu`; both are empty when the message does not have
    /// that form, and `message` always holds all of it.
    #[error("not authorized: {message}")]
    NotAuthorized {
        /// What was refused, e.g. `produce` (empty if unknown).
        operation: String,
        /// What it was refused on, e.g. `topic orders.eu` (empty if
        /// unknown).
        resource: String,
        /// The server's whole message.
        message: String,
    },
    /// The [`Credentials::token_fn`](crate::Credentials::token_fn)
    /// callback failed (or panicked), so no token could be presented; the
    /// connection it was for is closed. Not retriable: a caller that knows
    /// the token source recovers by itself may try again.
    #[error("cannot get a token: {0}")]
    Credentials(#[source] BoxError),
    /// No QUIC connection could be made to the server (unreachable,
    /// refused, timed out, or the handshake failed for a reason other than
    /// TLS), either by [`Client::connect`](crate::Client::connect) or by a
    /// reconnect after the connection was lost. Retriable: the server may
    /// be restarting, and the next call dials again.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The server address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// TLS could not be set up or the handshake failed: an unreadable or
    /// empty CA file, no usable system roots, an unreadable client
    /// certificate or key, a server certificate that does not verify, or a
    /// server that refused the client certificate (or wanted one and got
    /// none). Not retriable.
    #[error("TLS: {0}")]
    Tls(#[source] BoxError),
    /// The connection or the request's stream failed after connecting
    /// (connection lost, closed by the server, stream reset).
    #[error("transport: {0}")]
    Transport(#[source] BoxError),
    /// The server's answer is not a valid response to the request.
    #[error("bad response from server: {0}")]
    Protocol(String),
    /// The request breaks a protocol rule and was not sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A local I/O error (binding the UDP socket).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The [`Client`](crate::Client) was closed
    /// ([`close`](crate::Client::close)), so the call was not sent or its
    /// answer was abandoned; or the [`Producer`](crate::Producer) stopped
    /// before this message was acknowledged (it was dropped without
    /// [`close`](crate::Producer::close), or its client was closed). A
    /// message in flight at that moment may or may not have been stored.
    #[error("closed: the client was closed or the producer stopped before the call completed")]
    Closed,
}

impl Error {
    /// True when the same request may succeed if tried again later: the
    /// server said so ([`ErrorCode::is_retriable`]: busy, timeout,
    /// shutting down, no space), or the connection failed or could not be
    /// made (the server may be restarting: the client reconnects on the
    /// next call).
    ///
    /// Retrying a produce after a [`Transport`](Error::Transport) error may
    /// append the batch twice: the first attempt may have been written
    /// before the connection was lost (at-least-once delivery).
    ///
    /// # Example
    ///
    /// ```
    /// use tidegate_client::{Error, ErrorCode};
    ///
    /// let busy = Error::Server { code: ErrorCode::Busy, message: String::new() };
    /// assert!(busy.is_retriable());
    /// let missing = Error::Server { code: ErrorCode::UnknownTopic, message: String::new() };
    /// assert!(!missing.is_retriable());
    /// ```
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Server { code, .. } => code.is_retriable(),
            Self::Connect { .. } | Self::Transport(_) => true,
            Self::NotAuthenticated { .. }
            | Self::NotAuthorized { .. }
            | Self::Credentials(_)
            | Self::Tls(_)
            | Self::Protocol(_)
            | Self::InvalidRequest(_)
            | Self::Io(_)
            | Self::Closed => false,
        }
    }

    /// The server's error code, for the errors the server answered with:
    /// [`Error::Server`], [`Error::NotAuthenticated`] and
    /// [`Error::NotAuthorized`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server { code, .. } => Some(*code),
            Self::NotAuthenticated { .. } => Some(ErrorCode::NotAuthenticated),
            Self::NotAuthorized { .. } => Some(ErrorCode::NotAuthorized),
            _ => None,
        }
    }

    /// The error for a server's answer of `code` with `message`: the
    /// authentication and authorization codes get their own variants.
    ///
    /// # Example
    ///
    /// ```
    /// use tidegate_client::{Error, ErrorCode};
    ///
    /// let e = Error::server(ErrorCode::NotAuthorized, "produce on topic orders.eu");
    /// match e {
    ///     Error::NotAuthorized { operation, resource, .. } => {
    ///         assert_eq!((operation.as_str(), resource.as_str()), ("produce", "topic orders.eu"));
    ///     }
    ///     other => panic!("{other}"),
    /// }
    /// ```
    pub fn server(code: ErrorCode, message: impl Into<String>) -> Self {
        let message = message.into();
        match code {
            ErrorCode::NotAuthenticated => Self::NotAuthenticated { message },
            ErrorCode::NotAuthorized => {
                let (operation, resource) = parse_not_authorized(&message)
                    .map(|(op, res)| (op.to_owned(), res.to_owned()))
                    .unwrap_or_default();
                Self::NotAuthorized {
                    operation,
                    resource,
                    message,
                }
            }
            code => Self::Server { code, message },
        }
    }

    pub(crate) fn transport(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Transport(Box::new(e))
    }

    /// A copy of this error for one more receiver (every receipt of a
    /// failed batch gets one). A boxed source moves into an `Arc` shared
    /// by `self` and the copy, so the cause chain survives.
    pub(crate) fn share(&mut self) -> Self {
        match self {
            Self::Server { code, message } => Self::Server {
                code: *code,
                message: message.clone(),
            },
            Self::NotAuthenticated { message } => Self::NotAuthenticated {
                message: message.clone(),
            },
            Self::NotAuthorized {
                operation,
                resource,
                message,
            } => Self::NotAuthorized {
                operation: operation.clone(),
                resource: resource.clone(),
                message: message.clone(),
            },
            Self::Connect { addr, source } => Self::Connect {
                addr: *addr,
                source: share_box(source),
            },
            Self::Credentials(source) => Self::Credentials(share_box(source)),
            Self::Tls(source) => Self::Tls(share_box(source)),
            Self::Transport(source) => Self::Transport(share_box(source)),
            Self::Protocol(message) => Self::Protocol(message.clone()),
            Self::InvalidRequest(message) => Self::InvalidRequest(message.clone()),
            Self::Io(e) => Self::Io(std::io::Error::new(e.kind(), e.to_string())),
            Self::Closed => Self::Closed,
        }
    }

    pub(crate) fn tls(message: impl Into<String>) -> Self {
        Self::Tls(message.into().into())
    }
}

/// `<operation> on <resource>` and an optional `: <more>`, as a
/// `not_authorized` message is documented to read; `None` for any other
/// text. Resource names (topics) cannot hold `": "`, so the first one ends
/// the resource.
fn parse_not_authorized(message: &str) -> Option<(&str, &str)> {
    let (operation, rest) = message.split_once(" on ")?;
    let resource = rest
        .split_once(": ")
        .map_or(rest, |(resource, _more)| resource);
    let word = |s: &str| !s.trim().is_empty() && s.trim() == s;
    if !word(operation) || operation.contains(':') || !word(resource) {
        return None;
    }
    Some((operation, resource))
}

/// Turns `source` into a [`Shared`] (once) and returns another handle to it.
fn share_box(source: &mut BoxError) -> BoxError {
    if source.downcast_ref::<Shared>().is_none() {
        let inner = std::mem::replace(source, Box::new(Shared(Arc::new(Error::Closed))));
        *source = Box::new(Shared(Arc::from(inner)));
    }
    match source.downcast_ref::<Shared>() {
        Some(shared) => Box::new(shared.clone()),
        None => unreachable!("replaced by a Shared just above"),
    }
}

/// One source error behind several [`Error`]s; displays as the original.
#[derive(Clone)]
struct Shared(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The client's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_copies_keep_the_variant_and_the_message() {
        let mut original = Error::transport(std::io::Error::other("link down"));
        let copy = original.share();
        let again = original.share();
        for e in [&original, &copy, &again] {
            assert!(matches!(e, Error::Transport(_)));
            assert_eq!(e.to_string(), "transport: link down");
        }
        let mut server = Error::Server {
            code: ErrorCode::UnknownTopic,
            message: "x".into(),
        };
        assert_eq!(server.share().code(), Some(ErrorCode::UnknownTopic));
    }

    #[test]
    fn not_authorized_message_gives_operation_and_resource() {
        let cases = [
            ("produce on topic orders.eu", "produce", "topic orders.eu"),
            (
                "fetch on topic orders: principal svc-billing has no grant",
                "fetch",
                "topic orders",
            ),
            ("create_topic on cluster", "create_topic", "cluster"),
        ];
        for (message, operation, resource) in cases {
            match Error::server(ErrorCode::NotAuthorized, message) {
                Error::NotAuthorized {
                    operation: op,
                    resource: res,
                    message: whole,
                } => {
                    assert_eq!((op.as_str(), res.as_str()), (operation, resource));
                    assert_eq!(whole, message);
                }
                other => panic!("{message:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn not_authorized_message_of_another_form_is_kept_whole() {
        for message in [
            "",
            "denied",
            " on topic x",
            "produce on ",
            "a: b on topic x",
        ] {
            match Error::server(ErrorCode::NotAuthorized, message) {
                Error::NotAuthorized {
                    operation,
                    resource,
                    message: whole,
                } => {
                    assert!(operation.is_empty() && resource.is_empty(), "{message:?}");
                    assert_eq!(whole, message);
                }
                other => panic!("{message:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn auth_errors_have_their_variants_codes_and_are_not_retriable() {
        let mut refused = Error::server(ErrorCode::NotAuthenticated, "token expired");
        assert!(
            matches!(&refused, Error::NotAuthenticated { message } if message == "token expired")
        );
        assert_eq!(refused.to_string(), "not authenticated: token expired");
        // The server's own prefix is not repeated.
        let unauthenticated = Error::server(
            ErrorCode::NotAuthenticated,
            "not authenticated: this server requires a token",
        );
        assert_eq!(
            unauthenticated.to_string(),
            "not authenticated: this server requires a token"
        );
        let denied = Error::server(ErrorCode::NotAuthorized, "produce on topic orders");
        assert_eq!(
            denied.to_string(),
            "not authorized: produce on topic orders"
        );
        for e in [&refused, &denied] {
            assert!(!e.is_retriable(), "{e}");
        }
        assert_eq!(refused.share().code(), Some(ErrorCode::NotAuthenticated));
        assert_eq!(denied.code(), Some(ErrorCode::NotAuthorized));
        assert!(matches!(
            Error::server(ErrorCode::UnknownTopic, "x"),
            Error::Server {
                code: ErrorCode::UnknownTopic,
                ..
            }
        ));
    }
}
