//! Downstream TLS: the listener's certificate and the CA client certificates chain to.

use serde_json::{json, Value};

/// Where Envoy reads a certificate or key from (`envoy.config.core.v3.DataSource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// A file Envoy opens (`filename`).
    Filename(String),
    /// The PEM itself (`inline_string`).
    InlineString(String),
}

impl DataSource {
    fn render(&self) -> Value {
        match self {
            DataSource::Filename(path) => json!({ "filename": path }),
            DataSource::InlineString(pem) => json!({ "inline_string": pem }),
        }
    }
}

/// ALPN protocols a TLS listener offers, preferred first: HTTP/2 (gRPC needs it), then
/// HTTP/1.1.
pub const ALPN_PROTOCOLS: [&str; 2] = ["h2", "http/1.1"];

/// Downstream mTLS of a filter chain: a client certificate is required and must chain to
/// `trusted_ca` (the filter reads the caller's identity from its URI SAN). The listener
/// negotiates [`ALPN_PROTOCOLS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownstreamTls {
    /// Envoy's serving certificate chain (PEM).
    pub certificate_chain: DataSource,
    /// Its private key (PEM).
    pub private_key: DataSource,
    /// The CA that signs client certificates (PEM).
    pub trusted_ca: DataSource,
}

impl DownstreamTls {
    /// The `transport_socket` of a filter chain.
    pub fn render(&self) -> Value {
        json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": true,
                "common_tls_context": {
                    "alpn_protocols": ALPN_PROTOCOLS,
                    "tls_certificates": [{
                        "certificate_chain": self.certificate_chain.render(),
                        "private_key": self.private_key.render(),
                    }],
                    "validation_context": { "trusted_ca": self.trusted_ca.render() },
                }
            }
        })
    }
}
