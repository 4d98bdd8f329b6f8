//! A throw-away certificate authority for mTLS tests: a server certificate for Envoy's
//! listener and client certificates carrying SPIFFE URI SANs (the caller identities).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
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
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, spiffe_id);
        params
            .subject_alt_names
            .push(SanType::URI(spiffe_id.try_into()?));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
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
