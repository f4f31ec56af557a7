//! The principal of a client certificate.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{CertError, CertificatePrincipal};

/// The principal named by a client certificate (DER, as verified by the
/// TLS handshake): its first subject alternative name (a DNS name, else a
/// URI, else an e-mail address) or its subject's common name.
///
/// # Errors
///
/// [`CertError::Parse`] for bytes that are not a certificate,
/// [`CertError::NoName`] when it has no name of the kind asked for.
pub fn principal_from_certificate(
    der: &[u8],
    source: CertificatePrincipal,
) -> Result<String, CertError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Parse(e.to_string()))?;
    match source {
        CertificatePrincipal::SubjectCn => cert
            .subject()
            .iter_common_name()
            .find_map(|cn| cn.as_str().ok())
            .filter(|cn| !cn.is_empty())
            .map(str::to_owned)
            .ok_or(CertError::NoName("subject common name")),
        CertificatePrincipal::San => {
            let san = cert
                .subject_alternative_name()
                .map_err(|e| CertError::Parse(e.to_string()))?
                .ok_or(CertError::NoName("subject alternative name"))?;
            let names = &san.value.general_names;
            let first = |want: fn(&GeneralName<'_>) -> Option<String>| names.iter().find_map(want);
            first(|n| match n {
                GeneralName::DNSName(d) => Some((*d).to_owned()),
                _ => None,
            })
            .or_else(|| {
                first(|n| match n {
                    GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
            })
            .or_else(|| {
                first(|n| match n {
                    GeneralName::RFC822Name(m) => Some((*m).to_owned()),
                    _ => None,
                })
            })
            .filter(|name| !name.is_empty())
            .ok_or(CertError::NoName(
                "DNS, URI or e-mail subject alternative name",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sans: Vec<String>, cn: Option<&str>) -> Result<Vec<u8>, rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(sans)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate()?;
        Ok(params.self_signed(&key)?.der().to_vec())
    }

    #[test]
    fn san_dns_then_subject_cn() -> Result<(), Box<dyn std::error::Error>> {
        let der = cert(vec!["svc-orders".into()], Some("Orders Service"))?;
        assert_eq!(
            principal_from_certificate(&der, CertificatePrincipal::San)?,
            "svc-orders"
        );
        assert_eq!(
            principal_from_certificate(&der, CertificatePrincipal::SubjectCn)?,
            "Orders Service"
        );
        Ok(())
    }

    #[test]
    fn missing_names_and_garbage_are_typed_errors() -> Result<(), Box<dyn std::error::Error>> {
        let der = cert(vec![], None)?;
        assert!(matches!(
            principal_from_certificate(&der, CertificatePrincipal::San),
            Err(CertError::NoName(_))
        ));
        assert!(matches!(
            principal_from_certificate(&der, CertificatePrincipal::SubjectCn),
            Err(CertError::NoName(_))
        ));
        assert!(matches!(
            principal_from_certificate(b"\x30\x03garbage", CertificatePrincipal::San),
            Err(CertError::Parse(_))
        ));
        assert!(matches!(
            principal_from_certificate(&der[..der.len() / 2], CertificatePrincipal::San),
            Err(CertError::Parse(_))
        ));
        Ok(())
    }
}
