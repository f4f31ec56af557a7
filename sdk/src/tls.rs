//! How the client verifies the server: the [`Tls`] settings and the rustls
//! configuration built from them (TLS 1.3 only, ring provider, ALPN
//! `tidegate/1`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tidegate_proto::protocol::ALPN;

use crate::error::{Error, Result};

/// The server name used for SNI and certificate verification unless
/// [`Tls::server_name`] sets one. The client connects to an IP address, so
/// there is no host name to take; the development certificate that
/// `tidegate serve` generates is issued for `localhost`.
pub const DEFAULT_SERVER_NAME: &str = "localhost";

/// Which certificates the client trusts, and the name it expects the
/// server's certificate to carry.
///
/// # Example
///
/// ```
/// use tidegate_client::Tls;
///
/// // The development CA that `tidegate serve` writes to its data dir.
/// let tls = Tls::ca_file("/var/lib/tidegate/tls/dev-cert.pem");
/// // A server with a publicly trusted certificate for its host name.
/// let public = Tls::system_roots().server_name("queue.example.com");
/// ```
#[derive(Debug, Clone)]
pub struct Tls {
    trust: Trust,
    server_name: String,
}

#[derive(Debug, Clone)]
enum Trust {
    CaFile(PathBuf),
    SystemRoots,
    InsecureDev,
}

impl Tls {
    /// Trust the CA certificates in this PEM file (one or more
    /// `CERTIFICATE` blocks), and only those. The file is read when
    /// connecting.
    pub fn ca_file(path: impl Into<PathBuf>) -> Self {
        Self::new(Trust::CaFile(path.into()))
    }

    /// Trust the operating system's certificate store (read through
    /// `rustls-native-certs` when connecting), so a private CA an operator
    /// installs on the host is trusted too.
    pub fn system_roots() -> Self {
        Self::new(Trust::SystemRoots)
    }

    /// Insecure, development only: trust any certificate the server
    /// presents. Anyone on the path can impersonate the server. A warning
    /// is logged (through `tracing`) the first time a client uses it.
    pub fn insecure_dev() -> Self {
        Self::new(Trust::InsecureDev)
    }

    /// The trust a command line asks for with `--ca FILE` / `--insecure`, as
    /// the `tidegate` CLI and `tidegate-loadgen` take them: the CA file if
    /// given, else any certificate if `insecure`, else the system roots.
    ///
    /// # Example
    ///
    /// ```
    /// use tidegate_client::Tls;
    ///
    /// let tls = Tls::from_flags(None, false); // the system roots
    /// # let _ = tls;
    /// ```
    pub fn from_flags(ca: Option<&std::path::Path>, insecure: bool) -> Self {
        match (ca, insecure) {
            (Some(ca), _) => Self::ca_file(ca),
            (None, true) => Self::insecure_dev(),
            (None, false) => Self::system_roots(),
        }
    }

    /// The name the server's certificate must carry (and the SNI sent),
    /// instead of [`DEFAULT_SERVER_NAME`].
    ///
    /// # Example
    ///
    /// ```
    /// use tidegate_client::Tls;
    ///
    /// let tls = Tls::ca_file("ca.pem").server_name("edge-7.internal");
    /// assert_eq!(tls.name(), "edge-7.internal");
    /// ```
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = name.into();
        self
    }

    /// The name the server's certificate must carry.
    pub fn name(&self) -> &str {
        &self.server_name
    }

    fn new(trust: Trust) -> Self {
        Self {
            trust,
            server_name: DEFAULT_SERVER_NAME.to_owned(),
        }
    }

    /// The rustls configuration: TLS 1.3 only, ALPN `tidegate/1`.
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::Tls(Box::new(e)))?;
        let mut config = match &self.trust {
            Trust::CaFile(path) => builder
                .with_root_certificates(roots_from_file(path)?)
                .with_no_client_auth(),
            Trust::SystemRoots => builder
                .with_root_certificates(system_roots()?)
                .with_no_client_auth(),
            Trust::InsecureDev => {
                warn_insecure_once();
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
                    .with_no_client_auth()
            }
        };
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

fn roots_from_file(path: &Path) -> Result<RootCertStore> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::tls(format!("cannot read CA file {}: {e}", path.display())))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert =
            cert.map_err(|e| Error::tls(format!("bad PEM in CA file {}: {e}", path.display())))?;
        roots.add(cert).map_err(|e| {
            Error::tls(format!(
                "bad certificate in CA file {}: {e}",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(Error::tls(format!(
            "no certificate in CA file {}",
            path.display()
        )));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(Error::tls(format!(
            "no usable certificate in the system store ({})",
            errors.join("; ")
        )));
    }
    Ok(roots)
}

fn warn_insecure_once() {
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "tidegate client: TLS certificate verification is OFF (Tls::insecure_dev); \
             development only, anyone on the path can impersonate the server"
        );
    });
}

/// Accepts any certificate, but still checks the handshake signature, so
/// the connection is a well-formed TLS 1.3 session (only unauthenticated).
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // TLS 1.2 is never offered.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
