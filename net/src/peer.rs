//! Who is on the other end of a connection: its address, the certificate
//! chain TLS verified, and what the application established about it.

use std::{
    cell::{Cell, RefCell},
    net::SocketAddr,
    sync::Arc,
};

use rustls::pki_types::CertificateDer;

/// The peer of one connection. Created when the connection is accepted,
/// shared (as `Rc<Peer>`) by every request of that connection, and dropped
/// with the connection and its last request.
#[derive(Debug)]
pub struct Peer {
    /// The client's UDP address when the connection was accepted.
    pub remote: SocketAddr,
    /// The client's certificate chain, leaf first, as verified by TLS (empty
    /// without mTLS).
    pub certificates: Vec<CertificateDer<'static>>,
    /// What the application established about this connection (its
    /// authenticated principal). Net never reads it.
    pub authenticated: RefCell<Option<Authenticated>>,
    /// Net keeps it: true while the connection keeps requests waiting for
    /// budget beyond its share of the admission round (a visit ended with
    /// requests still waiting), false once nothing of it waits. Flow
    /// control tells only such connections to back off
    /// (docs/FLOW_CONTROL.md).
    pub over_share: Cell<bool>,
}

impl Peer {
    /// A peer at `remote` that has shown no certificate (yet).
    pub fn new(remote: SocketAddr) -> Self {
        Peer {
            remote,
            certificates: Vec::new(),
            authenticated: RefCell::new(None),
            over_share: Cell::new(false),
        }
    }
}

/// A principal the application authenticated on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// Who it is.
    pub principal: Arc<str>,
    /// When the authentication stops being valid (milliseconds since the
    /// Unix epoch), if it expires.
    pub expires_at_ms: Option<u64>,
}
