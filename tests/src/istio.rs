//! What Istio's control plane would give an ingress gateway for `xcluster-gen istio`'s
//! documents, rendered with [`xcluster_envoy`] for a real Envoy:
//!
//! - the `WasmPlugin`'s `pluginConfig`, as JSON, is the wasm filter's configuration
//!   (`pilot/pkg/model/extensions.go`: a `StringValue` of `protomarshal.ToJSON`);
//! - each `VirtualService` host is a virtual host (domain = the host, ports ignored:
//!   `ignore_port_in_host_matching`), the routes of every VirtualService of a host appended
//!   in document order (`pilot/pkg/networking/core/gateway.go`); each HTTP route's header
//!   match becomes an exact header matcher, its destination the cluster
//!   `outbound|PORT|SUBSET|HOST` with Istio's default retry policy
//!   (`pilot/pkg/networking/core/route/retry/retry.go`);
//! - each cluster's endpoint is the one workload endpoint of its host whose labels hold the
//!   `DestinationRule` subset's labels (Istio gives every endpoint
//!   `topology.istio.io/cluster`), or the `ServiceEntry`'s endpoint;
//! - the stats settings Istio's bootstrap has: its required inclusion prefixes
//!   (`pkg/bootstrap/config.go`, `tools/packaging/common/envoy_bootstrap.json`) and one tag
//!   per `extraStatTags` entry, the xcluster tags.
//!
//! Not modelled: mTLS between proxies, TLS origination, Istio's own filters and stats; the
//! connection manager has `xcluster-envoy`'s hardened settings, not Istio's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use xcluster_confgen::emit::istio::{render, IstioOptions};
use xcluster_confgen::emit::wasmplugin::WasmPluginOptions;
use xcluster_confgen::load::parse_documents;
use xcluster_confgen::model::Options;
use xcluster_envoy::{
    istio_outbound_cluster, Bootstrap, Cluster, DataSource, DownstreamTls, HeaderMatch,
    HttpConnectionManager, HttpFilter, Listener, Route, RouteAction, SocketAddress, StatsConfig,
    StatsTag, VirtualHost, WasmFilter, XCLUSTER_STAT_TAGS,
};

use crate::envoy::ServerTls;
use crate::fixture::Error;

/// Name of the gateway's listener.
pub const GATEWAY_LISTENER: &str = "gateway";

/// The prefixes Istio's bootstrap always keeps stats of (`reporter=`, the required
/// `requiredEnvoyStatsMatcherInclusionPrefixes`, `component`, `istio`).
pub const ISTIO_STATS_PREFIXES: [&str; 8] = [
    "reporter=",
    "cluster_manager",
    "listener_manager",
    "server",
    "cluster.xds-grpc",
    "wasm",
    "component",
    "istio",
];

/// A workload endpoint Istio knows: the host it serves (a service's FQDN or a
/// ServiceEntry host), its labels, and where the test serves it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Service FQDN or ServiceEntry host.
    pub host: String,
    /// Labels, `topology.istio.io/cluster` among them.
    pub labels: BTreeMap<String, String>,
    /// The test's server.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// An endpoint of `host` in cluster `cluster` with `labels` besides.
    pub fn new(host: &str, cluster: &str, labels: &[(&str, &str)], addr: SocketAddr) -> Self {
        let mut all: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.insert("topology.istio.io/cluster".into(), cluster.into());
        Self {
            host: host.into(),
            labels: all,
            addr,
        }
    }
}

/// `xcluster-gen istio` for `files` (relative to the repository root), as the command
/// prints it: `--local-cluster`, `--url oci://registry.example/xcluster:0.1.0`, the default
/// gateway and selector.
pub fn istio_output(files: &[&str], local_cluster: &str) -> Result<String, Error> {
    let root = crate::workspace_root();
    let files: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    let opts = Options {
        local_cluster: Some(local_cluster.into()),
        ..Options::default()
    };
    let model = xcluster_confgen::generate(&files, &opts)?;
    let istio = IstioOptions {
        plugin: WasmPluginOptions {
            url: "oci://registry.example/xcluster:0.1.0".into(),
            wasm: None,
            image: None,
            namespace: "istio-system".into(),
            selector: vec![("istio".into(), "ingressgateway".into())],
        },
        gateway: "istio-system/ingressgateway".into(),
    };
    Ok(render(&model, &istio)?)
}

/// The documents of an `xcluster-gen istio` output.
pub struct IstioDocs {
    docs: Vec<Value>,
}

fn of_kind<'a>(docs: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    docs.iter().filter(move |d| d["kind"] == kind)
}

fn text(v: &Value) -> Result<&str, Error> {
    v.as_str()
        .ok_or_else(|| format!("not a string: {v}").into())
}

impl IstioDocs {
    /// Parses the YAML stream.
    pub fn parse(yaml: &str) -> Result<Self, Error> {
        let docs = parse_documents("istio.yaml", yaml)?
            .iter()
            .map(|d| d.root.to_json())
            .collect();
        Ok(Self { docs })
    }

    /// The WasmPlugin's `pluginConfig` as the JSON text Istio hands the filter.
    pub fn plugin_config(&self) -> Result<String, Error> {
        let plugin = of_kind(&self.docs, "WasmPlugin")
            .next()
            .ok_or("no WasmPlugin")?;
        Ok(serde_json::to_string(&plugin["spec"]["pluginConfig"])?)
    }

    /// The labels of subset `subset` of `host`, from the DestinationRules.
    fn subset_labels(&self, host: &str, subset: &str) -> Result<BTreeMap<String, String>, Error> {
        let found = of_kind(&self.docs, "DestinationRule")
            .filter(|dr| dr["spec"]["host"] == host)
            .flat_map(|dr| dr["spec"]["subsets"].as_array().into_iter().flatten())
            .find(|s| s["name"] == subset)
            .ok_or_else(|| format!("no DestinationRule subset {subset} of {host}"))?;
        Ok(serde_json::from_value(found["labels"].clone())?)
    }

    /// The one endpoint of the cluster of `host`, `port` and `subset`: a test endpoint of
    /// the host with the subset's labels, else the ServiceEntry's.
    fn endpoint(
        &self,
        host: &str,
        port: u16,
        subset: Option<&str>,
        endpoints: &[Endpoint],
    ) -> Result<SocketAddress, Error> {
        let labels = match subset {
            Some(s) => self.subset_labels(host, s)?,
            None => BTreeMap::new(),
        };
        let matching: Vec<&Endpoint> = endpoints
            .iter()
            .filter(|e| e.host == host && labels.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
            .collect();
        match matching.as_slice() {
            [one] => return Ok(one.addr.into()),
            [] => {}
            _ => return Err(format!("several endpoints for {host} {subset:?}").into()),
        }
        let entry = of_kind(&self.docs, "ServiceEntry")
            .find(|se| {
                se["spec"]["hosts"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|x| x == host))
            })
            .ok_or_else(|| format!("no endpoint of {host} {subset:?}"))?;
        let address = text(&entry["spec"]["endpoints"][0]["address"])?;
        Ok(SocketAddress::new(address, port))
    }

    /// The bootstrap: one listener (downstream mTLS when `tls` is set) running the filter
    /// with the plugin's config before the routes Istio builds, and their clusters.
    pub fn bootstrap(
        &self,
        wasm: &Path,
        endpoints: &[Endpoint],
        tls: Option<&ServerTls>,
    ) -> Result<Value, Error> {
        let mut hosts: Vec<VirtualHost> = Vec::new();
        let mut clusters: BTreeMap<String, Cluster> = BTreeMap::new();
        for vs in of_kind(&self.docs, "VirtualService") {
            let mut routes = Vec::new();
            for http in vs["spec"]["http"].as_array().into_iter().flatten() {
                let destination = &http["route"][0]["destination"];
                let host = text(&destination["host"])?;
                let port = destination["port"]["number"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| format!("no port for {host}"))?;
                let subset = destination["subset"].as_str();
                let name = istio_outbound_cluster(port, subset, host);
                if !clusters.contains_key(&name) {
                    let endpoint = self.endpoint(host, port, subset, endpoints)?;
                    clusters.insert(name.clone(), Cluster::new(name.as_str(), endpoint));
                }
                let mut headers = Vec::new();
                for m in http["match"].as_array().into_iter().flatten() {
                    for (header, condition) in m["headers"].as_object().into_iter().flatten() {
                        let exact = text(&condition["exact"])?;
                        headers.push(HeaderMatch::Exact(header.clone(), exact.to_string()));
                    }
                }
                routes.push(Route {
                    name: http["name"].as_str().map(String::from),
                    headers,
                    ..Route::all(RouteAction::Other(json!({
                        "cluster": name,
                        "timeout": "0s",
                        "retry_policy": {
                            "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
                            "num_retries": 2,
                            "retry_host_predicate": [{
                                "name": "envoy.retry_host_predicates.previous_hosts",
                                "typed_config": { "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate" }
                            }],
                            "host_selection_retry_max_attempts": 5,
                            "retriable_status_codes": [503]
                        }
                    })))
                });
            }
            for host in vs["spec"]["hosts"].as_array().into_iter().flatten() {
                let host = text(host)?.to_ascii_lowercase();
                match hosts.iter_mut().find(|v| v.domains == [host.clone()]) {
                    Some(v) => v.routes.extend(routes.iter().cloned()),
                    None => hosts.push(VirtualHost {
                        name: host.clone(),
                        domains: vec![host],
                        routes: routes.clone(),
                    }),
                }
            }
        }
        let filter = WasmFilter::new("xcluster", wasm.to_string_lossy(), self.plugin_config()?);
        let mut http =
            HttpConnectionManager::new(GATEWAY_LISTENER, vec![HttpFilter::Wasm(filter)], vec![]);
        http.virtual_hosts = hosts;
        http.ignore_port_in_host_matching = true;
        http.access_log = true;
        let mut listener = Listener::new(GATEWAY_LISTENER, SocketAddress::loopback(0), http);
        listener.tls = tls.map(|tls| DownstreamTls {
            certificate_chain: DataSource::InlineString(tls.cert.cert_pem.clone()),
            private_key: DataSource::InlineString(tls.cert.key_pem.clone()),
            trusted_ca: DataSource::InlineString(tls.client_ca_pem.clone()),
        });
        Ok(Bootstrap {
            node: None,
            admin: Some(SocketAddress::loopback(0)),
            listeners: vec![listener],
            clusters: clusters.into_values().collect(),
            stats_config: Some(StatsConfig {
                stats_tags: XCLUSTER_STAT_TAGS
                    .iter()
                    .map(|t| StatsTag::istio(t))
                    .collect(),
                inclusion_prefixes: ISTIO_STATS_PREFIXES.map(String::from).to_vec(),
            }),
            lds_path: None,
        }
        .render())
    }
}
