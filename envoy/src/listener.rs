//! Listeners and socket addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::{json, Value};

use crate::{DownstreamTls, HttpConnectionManager};

/// A host (IP or DNS name) and port (`envoy.config.core.v3.SocketAddress`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketAddress {
    /// IP address or DNS name.
    pub address: String,
    /// Port (0: Envoy picks a free one).
    pub port_value: u16,
}

impl SocketAddress {
    /// `address:port_value`.
    pub fn new(address: impl Into<String>, port_value: u16) -> Self {
        Self {
            address: address.into(),
            port_value,
        }
    }

    /// `127.0.0.1:port_value`.
    pub fn loopback(port_value: u16) -> Self {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port_value)).into()
    }

    /// Whether the host is an IP address (else a DNS name).
    pub fn is_ip(&self) -> bool {
        self.address.parse::<IpAddr>().is_ok()
    }

    /// As an `envoy.config.core.v3.Address`.
    pub fn render(&self) -> Value {
        json!({ "socket_address": { "address": self.address, "port_value": self.port_value } })
    }
}

impl From<SocketAddr> for SocketAddress {
    fn from(addr: SocketAddr) -> Self {
        Self::new(addr.ip().to_string(), addr.port())
    }
}

/// A listener with one filter chain: the HTTP connection manager, behind downstream TLS
/// when set (`envoy.config.listener.v3.Listener`).
#[derive(Debug, Clone)]
pub struct Listener {
    /// Name; also the `vm_id` of its wasm filters (one VM per listener).
    pub name: String,
    /// Where it listens.
    pub address: SocketAddress,
    /// The HTTP connection manager of its filter chain.
    pub http: HttpConnectionManager,
    /// Downstream (m)TLS of its filter chain.
    pub tls: Option<DownstreamTls>,
}

impl Listener {
    /// A plaintext listener.
    pub fn new(
        name: impl Into<String>,
        address: SocketAddress,
        http: HttpConnectionManager,
    ) -> Self {
        Self {
            name: name.into(),
            address,
            http,
            tls: None,
        }
    }

    /// The listener as JSON.
    pub fn render(&self) -> Value {
        let mut chain = json!({ "filters": [self.http.render(&self.name)] });
        if let Some(tls) = &self.tls {
            chain["transport_socket"] = tls.render();
        }
        json!({
            "name": self.name,
            "address": self.address.render(),
            "filter_chains": [chain],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataSource, WasmFilter};

    fn listener() -> Listener {
        let filter = WasmFilter::new("xcluster", "/x.wasm", "{}");
        let http = HttpConnectionManager::xcluster("gw", filter, "x-c");
        Listener::new("gw", SocketAddress::loopback(0), http)
    }

    #[test]
    fn addresses_know_ips_from_names() {
        assert!(SocketAddress::new("::1", 1).is_ip());
        assert!(SocketAddress::loopback(8).is_ip());
        assert!(!SocketAddress::new("reviews.bookinfo", 1).is_ip());
        let addr: SocketAddress = "[::1]:80".parse::<SocketAddr>().unwrap().into();
        assert_eq!(addr, SocketAddress::new("::1", 80));
    }

    #[test]
    fn plaintext_listener_has_one_chain_without_transport_socket() {
        let doc = listener().render();
        assert_eq!(doc["name"], "gw");
        assert_eq!(doc["address"]["socket_address"]["port_value"], 0);
        let chains = doc["filter_chains"].as_array().unwrap();
        assert_eq!(chains.len(), 1);
        assert!(chains[0].get("transport_socket").is_none());
        assert_eq!(
            chains[0]["filters"][0]["name"],
            "envoy.filters.network.http_connection_manager"
        );
    }

    #[test]
    fn tls_listener_requires_client_certificates() {
        let mut l = listener();
        l.tls = Some(DownstreamTls {
            certificate_chain: DataSource::InlineString("CERT".into()),
            private_key: DataSource::InlineString("KEY".into()),
            trusted_ca: DataSource::Filename("/ca.pem".into()),
        });
        let socket = &l.render()["filter_chains"][0]["transport_socket"];
        assert_eq!(socket["name"], "envoy.transport_sockets.tls");
        let tls = &socket["typed_config"];
        assert_eq!(
            tls["@type"],
            "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
        );
        assert_eq!(tls["require_client_certificate"], true);
        let common = &tls["common_tls_context"];
        assert_eq!(common["alpn_protocols"], json!(["h2", "http/1.1"]));
        assert_eq!(
            common["tls_certificates"][0],
            json!({
                "certificate_chain": { "inline_string": "CERT" },
                "private_key": { "inline_string": "KEY" }
            })
        );
        assert_eq!(
            common["validation_context"]["trusted_ca"],
            json!({ "filename": "/ca.pem" })
        );
    }
}
