//! A throw-away certificate authority for mTLS tests: a server certificate for Envoy's
//! listener and client certificates carrying SPIFFE URI SANs (the caller identities).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// A certificate and its private key, PEM encoded.
#[derive(Debug, Clone)]
pub struct CertPair {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
}

/// A test CA.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// Result type of certificate operations.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

impl Pki {
    /// Generates a fresh CA.
    pub fn new() -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "xcluster e2e test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { ca })
    }

    /// The CA certificate (PEM), the trust anchor on both sides.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A server certificate for the DNS name `dns` (Envoy's listener).
    pub fn server_cert(&self, dns: &str) -> Result<CertPair> {
        self.server_cert_for(&[dns])
    }

    /// A server certificate for the DNS names `dns` (the first is also its common name).
    pub fn server_cert_for(&self, dns: &[&str]) -> Result<CertPair> {
        let mut params =
            CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())?;
        params
            .distinguished_name
            .push(DnType::CommonName, dns.first().copied().unwrap_or_default());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate whose only SAN is the URI `spiffe_id`
    /// (e.g. `spiffe://cluster.local/ns/curl/sa/curl`).
    pub fn client_cert(&self, spiffe_id: &str) -> Result<CertPair> {
        self.client_cert_with_uris(&[spiffe_id])
    }

    /// A client certificate whose SANs are the URIs `uris`, in this order.
    pub fn client_cert_with_uris(&self, uris: &[&str]) -> Result<CertPair> {
        let mut params = client_params(uris.first().copied().unwrap_or_default())?;
        for uri in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*uri).try_into()?));
        }
        self.issue(params)
    }

    /// A client certificate whose one URI SAN is `uri` as raw bytes, valid IA5String or
    /// not (a SubjectAltName extension written by hand: `SEQUENCE { [6] uri }`).
    pub fn client_cert_with_raw_uri(&self, uri: &[u8]) -> Result<CertPair> {
        let mut params = client_params("raw uri")?;
        let mut name = vec![0x86];
        name.extend(der_length(uri.len()));
        name.extend_from_slice(uri);
        let mut san = vec![0x30];
        san.extend(der_length(name.len()));
        san.extend(name);
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(&[2, 5, 29, 17], san));
        self.issue(params)
    }

    /// A rustls client config (ring provider) trusting this CA and presenting `client`.
    pub fn client_config(&self, client: &CertPair) -> Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone())?;
        let chain = CertificateDer::pem_slice_iter(client.cert_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes())?;
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)?;
        Ok(Arc::new(config))
    }

    fn issue(&self, params: CertificateParams) -> Result<CertPair> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca)?;
        Ok(CertPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A client certificate's parameters with common name `cn` and no SAN yet.
fn client_params(cn: &str) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

/// A DER length (short form below 128, else long form).
fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(der_length(5), [5]);
        assert_eq!(der_length(127), [127]);
        assert_eq!(der_length(128), [0x81, 128]);
        assert_eq!(der_length(300), [0x82, 1, 44]);
    }
}
