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
    /// The server answered the request with an error.
    #[error("server error {code}: {message}")]
    Server {
        /// The server's error code.
        code: ErrorCode,
        /// The server's explanation, for humans (may be empty).
        message: String,
    },
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
    /// empty CA file, no usable system roots, or a server certificate that
    /// does not verify.
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
            Self::Tls(_)
            | Self::Protocol(_)
            | Self::InvalidRequest(_)
            | Self::Io(_)
            | Self::Closed => false,
        }
    }

    /// The server's error code, for [`Error::Server`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server { code, .. } => Some(*code),
            _ => None,
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
            Self::Connect { addr, source } => Self::Connect {
                addr: *addr,
                source: share_box(source),
            },
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
}
