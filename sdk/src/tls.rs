//! How the client verifies the server, and proves who it is with a client
//! certificate: the [`Tls`] settings and the rustls configuration built
//! from them (TLS 1.3 only, ring provider, ALPN `tidegate/1`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tidegate_proto::protocol::ALPN;

use crate::error::{Error, Result};

/// The server name used for SNI and certificate verification unless
/// [`Tls::server_name`] sets one. The client connects to an IP address, so
/// there is no host name to take; the development certificate that
/// `tidegate serve` generates is issued for `localhost`.
pub const DEFAULT_SERVER_NAME: &str = "localhost";

/// Which certificates the client trusts, the name it expects the server's
/// certificate to carry, and the certificate it presents itself, if any
/// (for a server that requires mutual TLS).
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
/// // Mutual TLS: also present a client certificate.
/// let mutual = Tls::ca_file("ca.pem").client_cert("client.pem", "client-key.pem");
/// ```
#[derive(Debug, Clone)]
pub struct Tls {
    trust: Trust,
    server_name: String,
    client_cert: Option<ClientCert>,
}

/// The certificate chain and key the client presents.
#[derive(Clone)]
enum ClientCert {
    /// PEM files, read when connecting.
    Files { cert: PathBuf, key: PathBuf },
    /// Already parsed; the key is shared, as `PrivateKeyDer` is not `Clone`.
    Der {
        chain: Vec<CertificateDer<'static>>,
        key: Arc<PrivateKeyDer<'static>>,
    },
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Files { cert, key } => f
                .debug_struct("Files")
                .field("cert", cert)
                .field("key", key)
                .finish(),
            Self::Der { chain, .. } => f
                .debug_struct("Der")
                .field("chain_len", &chain.len())
                .field("key", &"<redacted>")
                .finish(),
        }
    }
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

    /// Present this client certificate, for a server that requires mutual
    /// TLS: `cert_pem` holds the certificate and any intermediates (PEM
    /// `CERTIFICATE` blocks, the client's own first), `key_pem` its private
    /// key (PKCS#8, PKCS#1 or SEC1 PEM). The files are read when
    /// connecting; an unreadable file, no certificate, no key or a key
    /// that does not fit fails the connect with [`Error::Tls`].
    ///
    /// # Example
    ///
    /// ```
    /// use tidegate_client::Tls;
    ///
    /// let tls = Tls::ca_file("ca.pem").client_cert("/etc/tidegate/client.pem", "/etc/tidegate/client-key.pem");
    /// # let _ = tls;
    /// ```
    pub fn client_cert(
        mut self,
        cert_pem: impl Into<PathBuf>,
        key_pem: impl Into<PathBuf>,
    ) -> Self {
        self.client_cert = Some(ClientCert::Files {
            cert: cert_pem.into(),
            key: key_pem.into(),
        });
        self
    }

    /// Present this client certificate, already in memory: `chain` is the
    /// client's certificate followed by any intermediates (DER), `key` its
    /// private key. As [`client_cert`](Tls::client_cert), for certificates
    /// that do not live in files (a secrets manager, generated at start).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use tidegate_client::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    /// use tidegate_client::Tls;
    ///
    /// # fn run(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    /// let chain = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
    /// let key = PrivateKeyDer::from_pem_slice(key_pem)?;
    /// let tls = Tls::ca_file("ca.pem").client_cert_der(chain, key);
    /// # let _ = tls;
    /// # Ok(())
    /// # }
    /// ```
    pub fn client_cert_der(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client_cert = Some(ClientCert::Der {
            chain,
            key: Arc::new(key),
        });
        self
    }

    /// True when a client certificate is set.
    pub fn has_client_cert(&self) -> bool {
        self.client_cert.is_some()
    }

    fn new(trust: Trust) -> Self {
        Self {
            trust,
            server_name: DEFAULT_SERVER_NAME.to_owned(),
            client_cert: None,
        }
    }

    /// The rustls configuration: TLS 1.3 only, ALPN `tidegate/1`.
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::Tls(Box::new(e)))?;
        let builder = match &self.trust {
            Trust::CaFile(path) => builder.with_root_certificates(roots_from_file(path)?),
            Trust::SystemRoots => builder.with_root_certificates(system_roots()?),
            Trust::InsecureDev => {
                warn_insecure_once();
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
            }
        };
        let mut config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some(client_cert) => {
                let (chain, key) = client_cert.load()?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::tls(format!("unusable client certificate or key: {e}")))?
            }
        };
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

impl ClientCert {
    /// The chain and key, read from their files if need be.
    fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        match self {
            Self::Der { chain, key } => Ok((chain.clone(), key.clone_key())),
            Self::Files { cert, key } => Ok((chain_from_file(cert)?, key_from_file(key)?)),
        }
    }
}

fn chain_from_file(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).map_err(|e| {
        Error::tls(format!(
            "cannot read client certificate {}: {e}",
            path.display()
        ))
    })?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::tls(format!(
                "bad PEM in client certificate {}: {e}",
                path.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(Error::tls(format!(
            "no certificate in client certificate file {}",
            path.display()
        )));
    }
    Ok(chain)
}

fn key_from_file(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::tls(format!("cannot read client key {}: {e}", path.display())))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| Error::tls(format!("no usable private key in {}: {e}", path.display())))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate and its key, as PEM files in `dir`.
    fn write_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()])
            .unwrap_or_else(|e| panic!("rcgen: {e}"));
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert, generated.cert.pem()).unwrap_or_else(|e| panic!("write cert: {e}"));
        std::fs::write(&key, generated.key_pair.serialize_pem())
            .unwrap_or_else(|e| panic!("write key: {e}"));
        (cert, key)
    }

    fn tls_error(tls: &Tls) -> String {
        match tls.client_config() {
            Err(Error::Tls(e)) => e.to_string(),
            Err(other) => panic!("not a TLS error: {other:?}"),
            Ok(_) => panic!("configured"),
        }
    }

    #[test]
    fn client_cert_files_make_a_config_that_offers_them() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (cert, key) = write_cert(dir.path(), "client");
        let tls = Tls::insecure_dev().client_cert(&cert, &key);
        assert!(tls.has_client_cert());
        let config = tls
            .client_config()
            .unwrap_or_else(|e| panic!("config: {e}"));
        assert!(config.client_auth_cert_resolver.has_certs());
        let plain = Tls::insecure_dev()
            .client_config()
            .unwrap_or_else(|e| panic!("config: {e}"));
        assert!(!plain.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn client_cert_in_memory_makes_a_config_and_hides_the_key() {
        let generated = rcgen::generate_simple_self_signed(vec!["client".to_owned()])
            .unwrap_or_else(|e| panic!("rcgen: {e}"));
        let key = PrivateKeyDer::try_from(generated.key_pair.serialize_der())
            .unwrap_or_else(|e| panic!("key: {e}"));
        let tls = Tls::insecure_dev().client_cert_der(vec![generated.cert.der().clone()], key);
        let config = tls
            .client_config()
            .unwrap_or_else(|e| panic!("config: {e}"));
        assert!(config.client_auth_cert_resolver.has_certs());
        assert!(format!("{tls:?}").contains("<redacted>"));
    }

    #[test]
    fn unreadable_client_cert_or_key_is_a_tls_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (cert, key) = write_cert(dir.path(), "client");
        let missing = dir.path().join("missing.pem");

        let e = tls_error(&Tls::insecure_dev().client_cert(&missing, &key));
        assert!(
            e.contains("cannot read client certificate") && e.contains("missing.pem"),
            "{e}"
        );
        let e = tls_error(&Tls::insecure_dev().client_cert(&cert, &missing));
        assert!(
            e.contains("cannot read client key") && e.contains("missing.pem"),
            "{e}"
        );
    }

    #[test]
    fn client_cert_file_without_certificate_or_key_is_a_tls_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (cert, key) = write_cert(dir.path(), "client");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap_or_else(|e| panic!("write: {e}"));

        let e = tls_error(&Tls::insecure_dev().client_cert(&empty, &key));
        assert!(e.contains("no certificate"), "{e}");
        // A certificate where the key should be.
        let e = tls_error(&Tls::insecure_dev().client_cert(&cert, &cert));
        assert!(e.contains("no usable private key"), "{e}");
    }

    #[test]
    fn client_key_that_does_not_match_the_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (cert, _) = write_cert(dir.path(), "client");
        let (_, other_key) = write_cert(dir.path(), "other");
        let e = tls_error(&Tls::insecure_dev().client_cert(&cert, &other_key));
        assert!(e.contains("unusable client certificate or key"), "{e}");
    }
}
