//! Errors of the QUIC layer.

use std::path::PathBuf;

/// Why the QUIC layer could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Binding or using the UDP socket failed.
    #[error("udp socket {addr}: {source}")]
    Socket {
        /// The address involved.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A certificate or key file could not be read or parsed.
    #[error("tls material {path}: {reason}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The certificate and key do not make a usable TLS configuration.
    #[error("tls configuration: {0}")]
    Tls(String),
    /// Generating the development certificate failed.
    #[error("generating the development certificate: {0}")]
    CertGeneration(String),
    /// A setting is out of range.
    #[error("quic settings: {0}")]
    Settings(String),
}
