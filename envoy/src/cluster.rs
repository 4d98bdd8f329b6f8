//! Upstream clusters.

use std::time::Duration;

use serde_json::{json, Value};

use crate::SocketAddress;

/// The HTTP version Envoy speaks to a cluster's endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (Envoy's default).
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c on a plaintext connection): gRPC and other HTTP/2
    /// services, set as `typed_extension_protocol_options`
    /// `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`.
    Http2,
}

/// The `typed_extension_protocol_options` key of the upstream HTTP protocol options.
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// An upstream cluster with one endpoint (`envoy.config.cluster.v3.Cluster`): `STATIC` for
/// an IP address, `STRICT_DNS` for a name.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Name (what routes and the filter's `envoy_cluster` refer to).
    pub name: String,
    /// The endpoint.
    pub endpoint: SocketAddress,
    /// `connect_timeout`.
    pub connect_timeout: Duration,
    /// Envoy's own passive `outlier_detection`, as JSON.
    pub outlier_detection: Option<Value>,
    /// The HTTP version spoken to the endpoint.
    pub protocol: UpstreamProtocol,
}

impl Cluster {
    /// A cluster of `endpoint` with a 1 s connect timeout.
    pub fn new(name: impl Into<String>, endpoint: SocketAddress) -> Self {
        Self {
            name: name.into(),
            endpoint,
            connect_timeout: Duration::from_secs(1),
            outlier_detection: None,
            protocol: UpstreamProtocol::Http1,
        }
    }

    /// The discovery `type`: `STATIC` for an IP address, `STRICT_DNS` for a name.
    pub fn discovery_type(&self) -> &'static str {
        if self.endpoint.is_ip() {
            "STATIC"
        } else {
            "STRICT_DNS"
        }
    }

    /// The cluster as JSON.
    pub fn render(&self) -> Value {
        let mut cluster = json!({
            "name": self.name,
            "type": self.discovery_type(),
            "connect_timeout": duration(self.connect_timeout),
            "load_assignment": {
                "cluster_name": self.name,
                "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": self.endpoint.render() } }] }]
            }
        });
        if let Some(outlier) = &self.outlier_detection {
            cluster["outlier_detection"] = outlier.clone();
        }
        if self.protocol == UpstreamProtocol::Http2 {
            cluster["typed_extension_protocol_options"] = json!({
                HTTP_PROTOCOL_OPTIONS: {
                    "@type": format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"),
                    "explicit_http_config": { "http2_protocol_options": {} },
                }
            });
        }
        cluster
    }
}

/// The name Istio gives the Envoy cluster of a service port and subset:
/// `outbound|PORT|SUBSET|HOST` (`model.BuildSubsetKey`; the subset is empty without one).
pub fn istio_outbound_cluster(port: u16, subset: Option<&str>, host: &str) -> String {
    format!("outbound|{port}|{}|{host}", subset.unwrap_or_default())
}

/// A `google.protobuf.Duration` in its JSON form (`1s`, `0.250s`).
fn duration(d: Duration) -> String {
    match d.subsec_millis() {
        0 => format!("{}s", d.as_secs()),
        ms => format!("{}.{ms:03}s", d.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_names_clusters_by_port_subset_and_host() {
        assert_eq!(
            istio_outbound_cluster(9080, Some("v1"), "reviews.bookinfo.svc.cluster.local"),
            "outbound|9080|v1|reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(
            istio_outbound_cluster(443, None, "svc.cluster-b.remote"),
            "outbound|443||svc.cluster-b.remote"
        );
    }

    #[test]
    fn discovery_type_follows_the_address_kind() {
        let ip = Cluster::new("a", SocketAddress::new("10.0.0.1", 80));
        let v6 = Cluster::new("b", SocketAddress::new("::1", 80));
        let dns = Cluster::new("c", SocketAddress::new("gw.cluster-1.example", 15443));
        assert_eq!(ip.render()["type"], "STATIC");
        assert_eq!(v6.render()["type"], "STATIC");
        assert_eq!(dns.render()["type"], "STRICT_DNS");
    }

    #[test]
    fn renders_one_endpoint_and_optional_outlier_detection() {
        let mut c = Cluster::new("c0", SocketAddress::loopback(9));
        let doc = c.render();
        assert_eq!(doc["connect_timeout"], "1s");
        assert_eq!(doc["load_assignment"]["cluster_name"], "c0");
        assert_eq!(
            doc["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
            SocketAddress::loopback(9).render()
        );
        assert!(doc.get("outlier_detection").is_none());
        assert!(doc.get("typed_extension_protocol_options").is_none());
        c.outlier_detection = Some(json!({ "consecutive_5xx": 3 }));
        c.connect_timeout = Duration::from_millis(250);
        let doc = c.render();
        assert_eq!(doc["outlier_detection"]["consecutive_5xx"], 3);
        assert_eq!(doc["connect_timeout"], "0.250s");
    }

    #[test]
    fn http2_upstreams_get_explicit_protocol_options() {
        let mut c = Cluster::new("grpc", SocketAddress::loopback(9));
        c.protocol = UpstreamProtocol::Http2;
        let options = &c.render()["typed_extension_protocol_options"];
        assert_eq!(
            options[HTTP_PROTOCOL_OPTIONS],
            json!({
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} }
            })
        );
    }
}
