//! The merged service model: every resource folded into one plugin config, plus the
//! upstream (Envoy cluster) each target is reached through.
//!
//! Each source of destinations has its file, and adds destinations whose targets are
//! still drafts (a `Draft` per service instance, with the weight its group shares):
//!
//! | file | reads |
//! |---|---|
//! | `fsm.rs` | FSM `GlobalTrafficPolicy`, `ServiceImport`, `ServiceExport`, `Cluster` gateways |
//! | `smi_split.rs` | SMI `TrafficSplit` |
//! | `gloo.rs` | Gloo Mesh `TrafficPolicy` `trafficShift`, `VirtualDestination`, `RouteTable` |
//! | `istio.rs` | Istio `VirtualService`, `DestinationRule`, `ServiceEntry` |
//! | `kubernetes.rs` | `Service`, `Deployment`, `EndpointSlice`: instances, accounts, ports, addresses; a destination per `Service` no other source routes |
//! | `smi_access.rs` | SMI `TrafficTarget` + `HTTPRouteGroup` → the access config |
//! | `assembly.rs` | drafts → named, weighted targets; routes ordered; upstreams |
//! | `health_check.rs` | `--health-check`: active health checks of a destination |
//!
//! Conventions:
//! - A Kubernetes resource describes the local cluster unless it carries the label
//!   `topology.istio.io/cluster` (or `multicluster.kubernetes.io/source-cluster`).
//! - A target's ServiceAccount comes from the `Deployment` whose pod template the
//!   `Service` selects (`serviceAccountName`, else `default`), from FSM
//!   `serviceAccountName`, or is `<namespace>/default`.
//! - Envoy clusters are named `xc|<cluster>|<namespace>|<service>[|<subset>]`; targets
//!   reached through an FSM cluster gateway share `xc|<cluster>|gateway`. The Istio output
//!   renames them to Istio's own clusters from each target's [`Backend`].
//! - Every `Service` no other source claims is a destination of its own.

mod assembly;
mod fsm;
mod gloo;
mod health_check;
mod istio;
mod kubernetes;
mod smi_access;
mod smi_split;

use std::collections::{BTreeMap, BTreeSet};

use xcluster_envoy::UpstreamProtocol;
use xcluster_filter::config::{
    AccessMode, LocalConfig, LocalityConfig, PluginConfig, ServiceAccountRef,
};

use self::assembly::{DestinationDraft, RouteDraft};
pub use self::health_check::HealthCheckFlag;
use crate::kinds::fsm::ClusterSpec;
use crate::kinds::{labels_text, Res, Resources};
use crate::load::Error;

/// Generator settings from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Name of the cluster the gateway runs in.
    pub local_cluster: Option<String>,
    /// `(region, zone)` of the gateway.
    pub locality: Option<(String, String)>,
    /// Access mode; default enforce when some TrafficTarget allows HTTP traffic, else
    /// permissive.
    pub access_mode: Option<AccessMode>,
    /// Service instances `--endpoint` names: those in the local cluster join the services
    /// the inputs know, as if their `Service` were given.
    pub instances: Vec<Instance>,
    /// Active health checks `--health-check` sets on destinations.
    pub health_checks: Vec<HealthCheckFlag>,
    /// Whether the filter calls `clear_route_cache` itself (`--clear-route-cache`); by
    /// default it leaves matching the route again to Envoy.
    pub clear_route_cache: bool,
}

/// An instance of a Kubernetes service: `CLUSTER/NAMESPACE/SERVICE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service.
    pub service: String,
}

/// What identifies a target for `--endpoint CLUSTER/NAMESPACE/SERVICE[/SUBSET]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointKey {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service (or ServiceEntry host).
    pub service: String,
    /// Subset spellings that select this target: the Istio subset name and/or the labels
    /// as `key=value[,key=value]`. Empty: no subset.
    pub subset: Vec<String>,
}

/// A network address of an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Host name or IP.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The HTTP version the port speaks (see [`crate::kinds::port_protocol`]).
    pub protocol: UpstreamProtocol,
    /// Which resource (or flag) said so.
    pub source: String,
}

/// What a target is, in the terms Istio routes by (see [`Model::backends`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// An instance of a Kubernetes service (the target's cluster, namespace and service),
    /// optionally a subset of its pods.
    Service {
        /// The service port, when the input says it.
        port: Option<u16>,
        /// The subset.
        subset: Option<Subset>,
    },
    /// A `ServiceEntry` host.
    Entry {
        /// The host the route named.
        host: String,
        /// Its first port.
        port: Option<u16>,
    },
    /// Served through the gateway of the target's cluster (FSM), at the upstream's address.
    Gateway,
}

/// An Envoy cluster the targets are routed to.
#[derive(Debug, Clone, Default)]
pub struct Upstream {
    /// Address, when the input says it.
    pub address: Option<Address>,
    /// The targets reached through it.
    pub keys: BTreeSet<EndpointKey>,
}

/// The result: the plugin config and the upstreams it names.
#[derive(Debug, Clone)]
pub struct Model {
    /// The plugin config.
    pub config: PluginConfig,
    /// Envoy cluster name → upstream.
    pub upstreams: BTreeMap<String, Upstream>,
    /// Destination name → the resource that defined it.
    pub origins: BTreeMap<String, String>,
    /// (destination, target) → the instance the target is.
    pub target_keys: BTreeMap<(String, String), EndpointKey>,
    /// (destination, target) → what Istio would route it to.
    pub backends: BTreeMap<(String, String), Backend>,
    /// Non-fatal findings (skipped kinds, unknown ServiceAccounts).
    pub warnings: Vec<String>,
}

/// A target before naming and weight normalization.
#[derive(Debug, Clone)]
struct Draft {
    /// The instance it is.
    key: EndpointKey,
    /// Its subset's name (see [`Subset::name`]).
    subset: Option<String>,
    /// What Istio routes it to.
    backend: Backend,
    group: GroupWeight,
    service_account: ServiceAccountRef,
    cluster_key: Option<String>,
    envoy_cluster: String,
    locality: LocalityConfig,
    priority: Option<u32>,
    authority: Option<String>,
    path_prefix: Option<String>,
}

/// The weight a group of targets shares (one backend's instances across clusters):
/// each member gets `weight / size`, made an integer when the destination is assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GroupWeight {
    weight: u64,
    size: u64,
}

impl GroupWeight {
    /// A group of one target.
    fn single(weight: u64) -> Self {
        GroupWeight { weight, size: 1 }
    }
}

/// Which pods of a service a target is: an Istio `DestinationRule` subset (its name and
/// labels), or Gloo's labels alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subset {
    /// The `DestinationRule` subset name, if it has one.
    pub name: Option<String>,
    /// The pod labels.
    pub labels: BTreeMap<String, String>,
    /// The input `DestinationRule` subset's `trafficPolicy`, as written.
    pub traffic_policy: Option<serde_json::Value>,
}

impl Subset {
    /// The name in target and Envoy cluster names: its own, else its labels as
    /// `key=value[,key=value]`.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| labels_text(&self.labels))
    }

    /// The spellings `--endpoint` accepts for it: its name and/or its labels' text.
    fn spellings(&self) -> Vec<String> {
        let mut out: Vec<String> = self.name.iter().cloned().collect();
        if !self.labels.is_empty() {
            out.push(labels_text(&self.labels));
        }
        out
    }
}

/// The four names mesh clients use for a Kubernetes service.
pub fn service_hosts(namespace: &str, name: &str) -> Vec<String> {
    vec![
        name.to_string(),
        format!("{name}.{namespace}"),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}.svc.cluster.local"),
    ]
}

/// Envoy cluster name of a service instance.
pub fn envoy_cluster_name(
    cluster: &str,
    namespace: &str,
    service: &str,
    subset: Option<&str>,
) -> String {
    match subset {
        Some(s) => format!("xc|{cluster}|{namespace}|{service}|{s}"),
        None => format!("xc|{cluster}|{namespace}|{service}"),
    }
}

/// Envoy cluster name of a cluster's gateway.
pub fn gateway_cluster_name(cluster: &str) -> String {
    format!("xc|{cluster}|gateway")
}

/// Builds the model from the resources.
pub fn build(res: &Resources, opts: &Options) -> Result<Model, Error> {
    // The order decides which of two clashing resources an error blames.
    let mut b = Builder::new(res, opts);
    b.fsm()?;
    b.smi_splits()?;
    b.gloo_traffic_policies()?;
    b.virtual_destinations()?;
    b.route_tables()?;
    b.virtual_services()?;
    b.kubernetes_services()?;
    let access = b.access()?;
    b.finish(access)
}

/// The model under construction; each source file adds an `impl` block.
struct Builder<'a> {
    res: &'a Resources,
    /// The local cluster's name, when given or inferred.
    local: Option<String>,
    local_config: LocalConfig,
    destinations: Vec<DestinationDraft>,
    routes: Vec<RouteDraft>,
    /// Claimed service / host → the resource claiming it.
    claims: BTreeMap<String, String>,
    upstreams: BTreeMap<String, Upstream>,
    warnings: Vec<String>,
    access_mode: Option<AccessMode>,
    /// Local instances `--endpoint` declares: `(namespace, service)`.
    declared: BTreeSet<(String, String)>,
    /// `--health-check` flags.
    health_checks: Vec<HealthCheckFlag>,
    /// `--clear-route-cache`.
    clear_route_cache: bool,
}

impl<'a> Builder<'a> {
    fn new(res: &'a Resources, opts: &Options) -> Self {
        let local = match &opts.local_cluster {
            Some(c) => Some(c.clone()),
            None => gloo::infer_local_cluster(res),
        };
        let mut local_config = LocalConfig {
            cluster: local.clone(),
            ..LocalConfig::default()
        };
        if let Some((region, zone)) = &opts.locality {
            local_config.region = Some(region.clone());
            local_config.zone = Some(zone.clone());
        } else if let Some(c) = local
            .as_deref()
            .and_then(|l| res.clusters.iter().find(|c| c.name == l))
        {
            let locality = cluster_locality(c);
            local_config.region = locality.region;
            local_config.zone = locality.zone;
        }
        Builder {
            res,
            local_config,
            destinations: Vec::new(),
            routes: Vec::new(),
            claims: BTreeMap::new(),
            upstreams: BTreeMap::new(),
            warnings: res.warnings.clone(),
            access_mode: opts.access_mode,
            declared: opts
                .instances
                .iter()
                .filter(|i| local.as_deref() == Some(i.cluster.as_str()))
                .map(|i| (i.namespace.clone(), i.service.clone()))
                .collect(),
            health_checks: opts.health_checks.clone(),
            clear_route_cache: opts.clear_route_cache,
            local,
        }
    }

    /// The local cluster name, or an error at `path` of `res` asking for `--local-cluster`.
    fn local_name<T>(&self, res: &Res<T>, path: &str) -> Result<String, Error> {
        self.local.clone().ok_or_else(|| {
            res.error(
                path,
                "needs the local cluster's name: pass --local-cluster NAME",
            )
        })
    }

    /// The cluster a Kubernetes resource describes.
    fn cluster_of<T>(&self, res: &Res<T>) -> Result<String, Error> {
        match res.cluster_label() {
            Some(c) => Ok(c.to_string()),
            None => self.local_name(res, "metadata.labels"),
        }
    }

    /// Records that `res` sets the policy of `key` (a service or host); a second claim
    /// is an error naming both resources.
    fn claim<T>(&mut self, key: String, res: &Res<T>, path: &str) -> Result<(), Error> {
        if let Some(other) = self.claims.get(&key) {
            return Err(res.error(
                path,
                format!("{key} already has a policy from {other}; one policy per service"),
            ));
        }
        self.claims.insert(key, res.id());
        Ok(())
    }

    /// The locality of `cluster`: the gateway's for the local cluster, else from its
    /// FSM `Cluster`, else unknown.
    fn locality_of(&self, cluster: &str) -> LocalityConfig {
        if self.local.as_deref() == Some(cluster) {
            return LocalityConfig {
                region: self.local_config.region.clone(),
                zone: self.local_config.zone.clone(),
                subzone: None,
            };
        }
        match self.res.clusters.iter().find(|c| c.name == cluster) {
            Some(c) => cluster_locality(c),
            None => LocalityConfig::default(),
        }
    }
}

/// An FSM `Cluster`'s region and zone, `default` when it leaves them out.
fn cluster_locality(c: &Res<ClusterSpec>) -> LocalityConfig {
    LocalityConfig {
        region: Some(c.spec.region.clone().unwrap_or_else(|| "default".into())),
        zone: Some(c.spec.zone.clone().unwrap_or_else(|| "default".into())),
        subzone: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subset_is_named_by_its_own_name_else_its_labels() {
        let labels: BTreeMap<String, String> = [("version", "v2"), ("tier", "gold")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let named = Subset {
            name: Some("v2".into()),
            labels: labels.clone(),
            traffic_policy: None,
        };
        assert_eq!(named.name(), "v2");
        assert_eq!(named.spellings(), ["v2", "tier=gold,version=v2"]);
        let unnamed = Subset {
            name: None,
            labels,
            traffic_policy: None,
        };
        assert_eq!(unnamed.name(), "tier=gold,version=v2");
        assert_eq!(unnamed.spellings(), ["tier=gold,version=v2"]);
        let bare = Subset {
            name: Some("v1".into()),
            labels: BTreeMap::new(),
            traffic_policy: None,
        };
        assert_eq!(bare.spellings(), ["v1"]);
    }

    #[test]
    fn envoy_cluster_names() {
        assert_eq!(
            envoy_cluster_name("east", "bookinfo", "reviews", Some("v1")),
            "xc|east|bookinfo|reviews|v1"
        );
        assert_eq!(
            envoy_cluster_name("east", "bookinfo", "reviews", None),
            "xc|east|bookinfo|reviews"
        );
        assert_eq!(gateway_cluster_name("east"), "xc|east|gateway");
    }
}
