//! `xcluster-gen istio`: what an Istio ingress or east-west gateway needs to run the
//! filter. Istio names its Envoy clusters itself (`outbound|PORT|SUBSET|HOST`,
//! `model.BuildSubsetKey`), so each target's `envoy_cluster` becomes the name of the
//! cluster Istio builds for its destination ([`istio_config`]) and the gateway's routes
//! map the filter's header to that destination:
//!
//! - the `WasmPlugin` (see [`super::wasmplugin`]) with that config;
//! - per destination a `VirtualService` bound to the gateway, one header match per target
//!   (`x-xcluster-cluster: exact outbound|…` → host, port, subset), for the hosts of
//!   its routes and any authority a target rewrites to; Envoy matches the routes again
//!   after the filter sets the header (and rewrites the authority), and Istio appends the
//!   routes of every VirtualService of a host on a gateway
//!   (`pilot/pkg/networking/core/gateway.go`);
//! - per Kubernetes service a `DestinationRule` with a subset per target: the target's own
//!   subset labels plus `topology.istio.io/cluster`, the label Istio gives every endpoint
//!   (`AugmentLabels`); it sits in the service's namespace without a traffic policy, so
//!   Istio merges its subsets into the service's own rule (`mergeDestinationRule`);
//! - per remote cluster gateway (FSM) a `ServiceEntry`, visible to the gateway only.
//!
//! The gateway settings the metrics need cannot be set by these resources; they lead the
//! output as comments ([`metrics_comment`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use xcluster_envoy::{istio_outbound_cluster, XCLUSTER_STAT_TAGS};
use xcluster_filter::config::{PluginConfig, DEFAULT_CLUSTER_HEADER};

use super::wasmplugin::{wasm_plugin, WasmPluginOptions};
use super::yaml;
use crate::kinds::CLUSTER_LABEL;
use crate::load::Error;
use crate::model::{Backend, EndpointKey, Model, Subset};

/// `networking.istio.io` version of the generated resources (served since Istio 1.22).
pub const NETWORKING_API: &str = "networking.istio.io/v1";

/// The mesh's DNS domain (Istio's default).
const DOMAIN: &str = "svc.cluster.local";

/// `xcluster-gen istio` settings.
#[derive(Debug, Clone)]
pub struct IstioOptions {
    /// The WasmPlugin; its namespace is the gateway workload's, where the VirtualServices
    /// and ServiceEntries go too.
    pub plugin: WasmPluginOptions,
    /// The `Gateway` the VirtualServices bind to, `NAMESPACE/NAME`.
    pub gateway: String,
}

/// The host an FSM cluster gateway gets in its `ServiceEntry`.
pub fn gateway_host(cluster: &str) -> String {
    format!("gateway.{cluster}.xcluster.internal")
}

/// An Istio destination (host, subset, port) and the Envoy cluster Istio builds for it.
struct Route {
    destination: Value,
    cluster: String,
}

/// The Istio side of the model: per target its destination, the DestinationRule subsets
/// and the gateway ServiceEntries they need.
struct Plan {
    routes: BTreeMap<(String, String), Route>,
    subsets: Subsets,
    gateways: BTreeMap<String, (String, u16)>,
}

impl Plan {
    fn new(model: &Model) -> Result<Self, Error> {
        let mut plan = Plan {
            routes: BTreeMap::new(),
            subsets: Subsets::default(),
            gateways: BTreeMap::new(),
        };
        for dest in &model.config.destinations {
            for t in &dest.targets {
                let id = (dest.name.clone(), t.name.clone());
                let (Some(key), Some(backend)) =
                    (model.target_keys.get(&id), model.backends.get(&id))
                else {
                    continue;
                };
                let unknown_port = |host: &str| {
                    Error::plain(format!(
                        "target {} of {}: the port of {host} is unknown, and Istio names the cluster \
                         outbound|PORT|SUBSET|HOST: give the Service (spec.ports) or the port \
                         of the route destination",
                        t.name, dest.name
                    ))
                };
                let route = match backend {
                    Backend::Service { port, subset } => {
                        let host = format!("{}.{}.{DOMAIN}", key.service, key.namespace);
                        let port = port.ok_or_else(|| unknown_port(&host))?;
                        let name = plan.subsets.add(key, subset.as_ref());
                        Route {
                            cluster: istio_outbound_cluster(port, Some(&name), &host),
                            destination: json!({ "host": host, "subset": name, "port": { "number": port } }),
                        }
                    }
                    Backend::Entry { host, port } => {
                        let port = port.ok_or_else(|| unknown_port(host))?;
                        Route {
                            cluster: istio_outbound_cluster(port, None, host),
                            destination: json!({ "host": host, "port": { "number": port } }),
                        }
                    }
                    Backend::Gateway => {
                        let address = model
                            .upstreams
                            .get(&t.envoy_cluster)
                            .and_then(|u| u.address.as_ref())
                            .ok_or_else(|| {
                                Error::plain(format!(
                                    "the gateway of cluster {} has no address: give its FSM \
                                     Cluster gatewayHost and gatewayPort, or the ServiceImport \
                                     endpoint's target",
                                    key.cluster
                                ))
                            })?;
                        plan.gateways
                            .insert(key.cluster.clone(), (address.host.clone(), address.port));
                        let host = gateway_host(&key.cluster);
                        Route {
                            cluster: istio_outbound_cluster(address.port, None, &host),
                            destination: json!({ "host": host, "port": { "number": address.port } }),
                        }
                    }
                };
                plan.routes.insert(id, route);
            }
        }
        Ok(plan)
    }

    /// The config with every target's `envoy_cluster` the cluster Istio builds for it.
    fn config(&self, model: &Model) -> Result<PluginConfig, Error> {
        let mut config = model.config.clone();
        for dest in &mut config.destinations {
            for t in &mut dest.targets {
                if let Some(r) = self.routes.get(&(dest.name.clone(), t.name.clone())) {
                    t.envoy_cluster = r.cluster.clone();
                }
            }
        }
        crate::validate(&config)?;
        Ok(config)
    }
}

/// The plugin config for Istio: targets name the clusters Istio builds
/// (`outbound|PORT|SUBSET|HOST`, [`documents`] says which), so the header the filter sets
/// is the cluster a request goes to, and the filter's replays reach it by that name.
pub fn istio_config(model: &Model) -> Result<PluginConfig, Error> {
    Plan::new(model)?.config(model)
}

/// Every resource, in apply order: the ServiceEntries and DestinationRules the routes
/// need, the VirtualServices, then the WasmPlugin that sets the header they match.
pub fn documents(model: &Model, opts: &IstioOptions) -> Result<Vec<Value>, Error> {
    let (gw_ns, gw_name) = opts
        .gateway
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| {
            Error::plain(format!(
                "--gateway {:?}: expected NAMESPACE/NAME",
                opts.gateway
            ))
        })?;
    let namespace = opts.plugin.namespace.as_str();
    let plan = Plan::new(model)?;
    let config = plan.config(model)?;
    let header = config
        .cluster_header
        .clone()
        .unwrap_or_else(|| DEFAULT_CLUSTER_HEADER.to_string());
    let mut services = Vec::new();
    let mut names = Names::default();
    for dest in &config.destinations {
        let mut http = Vec::new();
        let mut seen = BTreeSet::new();
        for t in &dest.targets {
            let Some(route) = plan.routes.get(&(dest.name.clone(), t.name.clone())) else {
                continue;
            };
            if !seen.insert(route.cluster.clone()) {
                continue;
            }
            http.push(json!({
                "name": t.name,
                "match": [{ "headers": { header.as_str(): { "exact": route.cluster } } }],
                "route": [{ "destination": route.destination }],
            }));
        }
        let mut hosts = route_hosts(model, &dest.name, &dest.hosts);
        // Envoy picks the route again under the authority the filter rewrote.
        for t in &dest.targets {
            if let Some(a) = &t.authority {
                if !hosts.contains(a) && !hosts.iter().any(|h| h == "*") {
                    hosts.push(a.clone());
                }
            }
        }
        if http.is_empty() || hosts.is_empty() {
            continue;
        }
        services.push(json!({
            "apiVersion": NETWORKING_API,
            "kind": "VirtualService",
            "metadata": { "name": names.unique(&format!("xcluster-{}", dest.name)), "namespace": namespace },
            "spec": { "hosts": hosts, "gateways": [format!("{gw_ns}/{gw_name}")], "http": http },
        }));
    }
    let mut docs: Vec<Value> = plan
        .gateways
        .iter()
        .map(|(cluster, (address, port))| service_entry(namespace, cluster, address, *port))
        .collect();
    docs.extend(plan.subsets.rules());
    docs.extend(services);
    docs.push(wasm_plugin(&config, &opts.plugin)?);
    Ok(docs)
}

/// The whole output: [`metrics_comment`], then every document of [`documents`].
pub fn render(model: &Model, opts: &IstioOptions) -> Result<String, Error> {
    let docs = documents(model, opts)?;
    let body: Vec<String> = docs.iter().map(yaml::to_yaml).collect();
    Ok(format!("{}{}", metrics_comment(), body.join("---\n")))
}

/// The gateway settings the filter's metrics need, as YAML comments. Istio keeps the
/// stats (its bootstrap's stats inclusion always has the prefix `wasm`, which
/// `wasmcustom.*` matches: `requiredEnvoyStatsMatcherInclusionPrefixes` in
/// `pkg/bootstrap/config.go`), but turns the encoded tags into labels only for the
/// `extraStatTags` of the proxy.
pub fn metrics_comment() -> String {
    let tags = XCLUSTER_STAT_TAGS.join(",");
    let quoted: Vec<String> = XCLUSTER_STAT_TAGS
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect();
    format!(
        "# Generated by xcluster-gen istio.\n\
         # Metrics: Istio keeps the filter's stats (wasmcustom.*) by default; to make their\n\
         # {tags} tags Prometheus labels, give the gateway's proxy these extra stat tags\n\
         # (read at proxy start: restart the gateway pods after setting them), either mesh-wide:\n\
         #   meshConfig: {{defaultConfig: {{extraStatTags: [{tags}]}}}}\n\
         # or as an annotation of the gateway's pods:\n\
         #   proxy.istio.io/config: '{{\"extraStatTags\": [{}]}}'\n",
        quoted.join(", ")
    )
}

/// The hosts of the routes to `dest` (their own, else the destination's); `*` when they
/// match every host. Names without a dot are left out: Istio would expand them in the
/// VirtualService's namespace, not the service's.
fn route_hosts(model: &Model, dest: &str, dest_hosts: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for route in model.config.routes.iter().filter(|r| r.destination == dest) {
        let hosts = if route.route_match.hosts.is_empty() {
            dest_hosts
        } else {
            &route.route_match.hosts
        };
        if hosts.is_empty() {
            out.push("*".to_string());
        }
        for h in hosts {
            if h.contains('.') || h == "*" {
                out.push(h.clone());
            }
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|h| seen.insert(h.clone()));
    if out.iter().any(|h| h == "*") {
        out = vec!["*".to_string()];
    }
    out
}

/// A `ServiceEntry` for the gateway of `cluster`, visible to the gateway's namespace only.
fn service_entry(namespace: &str, cluster: &str, address: &str, port: u16) -> Value {
    let resolution = if address.parse::<std::net::IpAddr>().is_ok() {
        "STATIC"
    } else {
        "DNS"
    };
    json!({
        "apiVersion": NETWORKING_API,
        "kind": "ServiceEntry",
        "metadata": { "name": dns_label(&format!("xcluster-gateway-{cluster}")), "namespace": namespace },
        "spec": {
            "hosts": [gateway_host(cluster)],
            "exportTo": ["."],
            "location": "MESH_EXTERNAL",
            "ports": [{ "number": port, "name": "http", "protocol": "HTTP" }],
            "resolution": resolution,
            "endpoints": [{ "address": address }],
        },
    })
}

/// The DestinationRule subsets the targets need, per service.
#[derive(Default)]
struct Subsets {
    /// `(namespace, service)` → subset name → subset.
    by_service: BTreeMap<(String, String), BTreeMap<String, Value>>,
    /// `(namespace, service, cluster, subset)` → the name given.
    given: BTreeMap<(String, String, String, String), String>,
}

impl Subsets {
    /// The name of the subset of `key`'s cluster (and `subset`'s pods), added on first use.
    fn add(&mut self, key: &EndpointKey, subset: Option<&Subset>) -> String {
        let own = subset.map(Subset::name).unwrap_or_default();
        let id = (
            key.namespace.clone(),
            key.service.clone(),
            key.cluster.clone(),
            own.clone(),
        );
        if let Some(name) = self.given.get(&id) {
            return name.clone();
        }
        let taken = self
            .by_service
            .entry((key.namespace.clone(), key.service.clone()))
            .or_default();
        let suffix = match subset {
            None => String::new(),
            Some(s) => format!("-{}", s.name.clone().unwrap_or_else(|| label_values(s))),
        };
        let base = dns_label(&format!("xc-{}{suffix}", key.cluster));
        let mut name = base.clone();
        let mut n = 1;
        while taken.contains_key(&name) {
            n += 1;
            name = dns_label(&format!("{base}-{n}"));
        }
        let mut labels: BTreeMap<String, String> =
            subset.map(|s| s.labels.clone()).unwrap_or_default();
        labels.insert(CLUSTER_LABEL.to_string(), key.cluster.clone());
        let mut doc = json!({ "name": name, "labels": labels });
        if let Some(tp) = subset.and_then(|s| s.traffic_policy.clone()) {
            doc["trafficPolicy"] = tp;
        }
        taken.insert(name.clone(), doc);
        self.given.insert(id, name.clone());
        name
    }

    /// One DestinationRule per service.
    fn rules(&self) -> Vec<Value> {
        self.by_service
            .iter()
            .map(|((namespace, service), subsets)| {
                json!({
                    "apiVersion": NETWORKING_API,
                    "kind": "DestinationRule",
                    "metadata": { "name": dns_label(&format!("xcluster-{service}")), "namespace": namespace },
                    "spec": {
                        "host": format!("{service}.{namespace}.{DOMAIN}"),
                        "subsets": subsets.values().cloned().collect::<Vec<_>>(),
                    },
                })
            })
            .collect()
    }
}

/// A subset without a name (Gloo labels) by its label values: `version=v1` → `v1`.
fn label_values(s: &Subset) -> String {
    s.labels.values().cloned().collect::<Vec<_>>().join("-")
}

/// Unique resource names.
#[derive(Default)]
struct Names(BTreeSet<String>);

impl Names {
    /// `base` as a DNS label, with `-2`, `-3`… when taken.
    fn unique(&mut self, base: &str) -> String {
        let base = dns_label(base);
        let mut name = base.clone();
        let mut n = 1;
        while !self.0.insert(name.clone()) {
            n += 1;
            name = dns_label(&format!("{base}-{n}"));
        }
        name
    }
}

/// `text` as an RFC 1123 label (what Istio requires of subset names, and a valid resource
/// name): lower case, `[a-z0-9-]`, at most 63 characters, alphanumeric at both ends.
pub fn dns_label(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let mut out: String = out.trim_matches('-').chars().take(63).collect();
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "xcluster".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(
            dns_label("xcluster-bookinfo/reviews"),
            "xcluster-bookinfo-reviews"
        );
        assert_eq!(
            dns_label("xc-Mgmt_Cluster-version=v1"),
            "xc-mgmt-cluster-version-v1"
        );
        assert_eq!(dns_label("--a..b--"), "a-b");
        assert_eq!(dns_label(&"x".repeat(80)).len(), 63);
        assert_eq!(dns_label(&format!("{}-y", "x".repeat(62))), "x".repeat(62));
        assert_eq!(dns_label("///"), "xcluster");
        let mut names = Names::default();
        assert_eq!(names.unique("a/b"), "a-b");
        assert_eq!(names.unique("a.b"), "a-b-2");
    }

    #[test]
    fn the_metrics_comment_names_every_tag() {
        let text = metrics_comment();
        assert!(
            text.contains("extraStatTags: [destination,target,reason,to]"),
            "{text}"
        );
        assert!(text.contains(r#"'{"extraStatTags": ["destination", "target", "reason", "to"]}'"#));
        assert!(text.lines().all(|l| l.starts_with('#')));
    }
}
