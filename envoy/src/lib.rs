//! Envoy bootstrap documents for xcluster gateways, built as typed Rust values and
//! rendered to `serde_json::Value` (Envoy reads JSON as YAML). `xcluster-gen envoy`, the
//! end-to-end tests, the demo and the benchmark all render their bootstraps here.
//!
//! ```
//! use xcluster_envoy::{
//!     Bootstrap, Cluster, HttpConnectionManager, Listener, SocketAddress, WasmFilter,
//! };
//!
//! let filter = WasmFilter::new("xcluster", "/etc/envoy/xcluster_filter.wasm", "{}");
//! let http = HttpConnectionManager::xcluster("gateway", filter, "x-xcluster-cluster");
//! let bootstrap = Bootstrap {
//!     admin: Some(SocketAddress::new("127.0.0.1", 9901)),
//!     listeners: vec![Listener::new("gateway", SocketAddress::new("0.0.0.0", 10000), http)],
//!     clusters: vec![Cluster::new("east", SocketAddress::new("east.example", 443))],
//!     ..Bootstrap::default()
//! };
//! let doc = bootstrap.render();
//! assert_eq!(doc["static_resources"]["clusters"][0]["type"], "STRICT_DNS");
//! ```
//!
//! One answer for what the renderers used to disagree on:
//! - the wasm `root_id` is the filter's name;
//! - the wasm `vm_id` is the listener's name: one VM, and one shared-data namespace (the
//!   outlier state the filter shares across workers), per listener;
//! - requests the filter did not route get `404` [`NO_CLUSTER_BODY`].
//!
//! Each setting has one home: the bootstrap ([`Bootstrap`], e.g. `stats_config`), the
//! listener ([`Listener`]), the HTTP connection manager ([`HttpConnectionManager`], e.g.
//! path normalization), a route ([`Route`], e.g. `retry_policy`), a cluster ([`Cluster`],
//! e.g. upstream HTTP/2) and downstream TLS ([`DownstreamTls`], e.g. ALPN).

mod bootstrap;
mod cluster;
mod http;
mod listener;
mod stats;
mod tls;

pub use bootstrap::{lds_file, Bootstrap, Locality, Node};
pub use cluster::{istio_outbound_cluster, Cluster, UpstreamProtocol};
pub use http::{
    HeaderMatch, HttpConnectionManager, HttpFilter, Route, RouteAction, VirtualHost, WasmFilter,
    MAX_REQUEST_HEADERS, MAX_REQUEST_HEADERS_KB,
};
pub use listener::{Listener, SocketAddress};
pub use stats::{StatsConfig, StatsTag, XCLUSTER_STAT_TAGS};
pub use tls::{DataSource, DownstreamTls, ALPN_PROTOCOLS};

/// Body of the fallback `404` for requests that carry no cluster header (the filter did
/// not route them).
pub const NO_CLUSTER_BODY: &str = "no cluster selected";
