//! The merged service model: every resource folded into one plugin config, plus the
//! upstream (Envoy cluster) each target is reached through.
//!
//! Conventions:
//! - A Kubernetes resource describes the local cluster unless it carries the label
//!   `topology.istio.io/cluster` (or `multicluster.kubernetes.io/source-cluster`).
//! - A target's ServiceAccount comes from the `Deployment` whose pod template the
//!   `Service` selects (`serviceAccountName`, else `default`), from FSM
//!   `serviceAccountName`, or is `<namespace>/default`.
//! - Envoy clusters are named `xc|<cluster>|<namespace>|<service>[|<subset>]`; targets
//!   reached through an FSM cluster gateway share `xc|<cluster>|gateway`.

use std::collections::{BTreeMap, BTreeSet};

use xcluster_filter::config::{
    AccessConfig, AccessMode, DestinationConfig, HeaderMatchConfig, HttpMatchConfig, LbPolicy,
    LocalConfig, LocalityConfig, OutlierDetectionConfig, PathMatchConfig, PluginConfig,
    RouteConfig, RouteGroupConfig, RouteMatchConfig, ServiceAccountRef, TargetConfig,
    TrafficRuleConfig, TrafficTargetConfig, CONFIG_VERSION, DEFAULT_CLUSTER_HEADER,
};

use crate::kinds::fsm::ClusterKey;
use crate::kinds::{gloo, istio, labels_text, selects, Res, Resources};
use crate::load::Error;

/// Generator settings from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Name of the cluster the gateway runs in.
    pub local_cluster: Option<String>,
    /// `(region, zone)` of the gateway.
    pub locality: Option<(String, String)>,
    /// Access mode; default enforce when any TrafficTarget is given, else permissive.
    pub access_mode: Option<AccessMode>,
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
    /// Which resource (or flag) said so.
    pub source: String,
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
    /// Non-fatal findings (skipped kinds, unknown ServiceAccounts).
    pub warnings: Vec<String>,
}

/// A target before naming and weight normalization.
#[derive(Debug, Clone)]
struct Draft {
    cluster: String,
    namespace: String,
    service: String,
    subset: Option<String>,
    subset_keys: Vec<String>,
    /// Weight of the group this target belongs to, and the group's size.
    group_weight: u64,
    group_size: u64,
    service_account: ServiceAccountRef,
    cluster_key: Option<String>,
    envoy_cluster: String,
    locality: LocalityConfig,
    priority: Option<u32>,
    authority: Option<String>,
    path_prefix: Option<String>,
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

/// What an Istio destination host names.
enum HostRef<'a> {
    Service(String, String),
    Entry(&'a Res<istio::ServiceEntrySpec>),
}

/// Builds the model from the resources.
pub fn build(res: &Resources, opts: &Options) -> Result<Model, Error> {
    let mut b = Builder::new(res, opts)?;
    b.fsm()?;
    b.smi_splits()?;
    b.gloo_traffic_policies()?;
    b.virtual_destinations()?;
    b.route_tables()?;
    b.virtual_services()?;
    let access = b.access()?;
    b.finish(access)
}

struct Builder<'a> {
    res: &'a Resources,
    local: Option<String>,
    local_config: LocalConfig,
    destinations: Vec<(DestinationConfig, Vec<Draft>, String)>,
    /// (host specificity, route); sorted stably at the end.
    routes: Vec<(u8, RouteConfig)>,
    /// Claimed service / host → the resource claiming it.
    claims: BTreeMap<String, String>,
    upstreams: BTreeMap<String, Upstream>,
    warnings: Vec<String>,
    access_mode: Option<AccessMode>,
}

impl<'a> Builder<'a> {
    fn new(res: &'a Resources, opts: &Options) -> Result<Self, Error> {
        let local = match &opts.local_cluster {
            Some(c) => Some(c.clone()),
            None => infer_local_cluster(res),
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
            local_config.region = Some(c.spec.region.clone().unwrap_or_else(|| "default".into()));
            local_config.zone = Some(c.spec.zone.clone().unwrap_or_else(|| "default".into()));
        }
        Ok(Builder {
            res,
            local,
            local_config,
            destinations: Vec::new(),
            routes: Vec::new(),
            claims: BTreeMap::new(),
            upstreams: BTreeMap::new(),
            warnings: res.warnings.clone(),
            access_mode: opts.access_mode,
        })
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

    fn locality_of(&self, cluster: &str) -> LocalityConfig {
        if self.local.as_deref() == Some(cluster) {
            return LocalityConfig {
                region: self.local_config.region.clone(),
                zone: self.local_config.zone.clone(),
                subzone: None,
            };
        }
        match self.res.clusters.iter().find(|c| c.name == cluster) {
            Some(c) => LocalityConfig {
                region: Some(c.spec.region.clone().unwrap_or_else(|| "default".into())),
                zone: Some(c.spec.zone.clone().unwrap_or_else(|| "default".into())),
                subzone: None,
            },
            None => LocalityConfig::default(),
        }
    }

    /// The ServiceAccount of `namespace/service` in `cluster`, from the Deployment its
    /// Service selects; `None` when the input does not say.
    fn account_of(
        &self,
        cluster: &str,
        namespace: &str,
        service: &str,
    ) -> Result<Option<String>, Error> {
        for svc in &self.res.services {
            if svc.namespace != namespace || svc.name != service || self.cluster_of(svc)? != cluster
            {
                continue;
            }
            for dep in &self.res.deployments {
                if dep.namespace == namespace
                    && self.cluster_of(dep)? == cluster
                    && selects(&svc.spec.selector, &dep.spec.template.metadata.labels)
                {
                    return Ok(Some(dep.spec.template.spec.account().to_string()));
                }
            }
        }
        Ok(None)
    }

    /// The clusters a Service named `namespace/service` is known in (from `Service`
    /// and `EndpointSlice` resources).
    fn service_clusters(&self, namespace: &str, service: &str) -> Result<BTreeSet<String>, Error> {
        let mut out = BTreeSet::new();
        for svc in &self.res.services {
            if svc.namespace == namespace && svc.name == service {
                out.insert(self.cluster_of(svc)?);
            }
        }
        for slice in &self.res.endpoint_slices {
            if slice.namespace == namespace
                && slice
                    .labels
                    .get(crate::kinds::k8s::SERVICE_NAME_LABEL)
                    .map(String::as_str)
                    == Some(service)
            {
                out.insert(self.cluster_of(slice)?);
            }
        }
        Ok(out)
    }

    /// The address of a service instance from its EndpointSlices (first ready address,
    /// first port).
    fn slice_address(
        &self,
        cluster: &str,
        namespace: &str,
        service: &str,
    ) -> Result<Option<Address>, Error> {
        for slice in &self.res.endpoint_slices {
            if slice.namespace != namespace
                || slice
                    .labels
                    .get(crate::kinds::k8s::SERVICE_NAME_LABEL)
                    .map(String::as_str)
                    != Some(service)
                || self.cluster_of(slice)? != cluster
            {
                continue;
            }
            let port = slice.spec.ports.first().map(|p| p.port);
            let host = slice
                .spec
                .endpoints
                .iter()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
                .find_map(|e| e.addresses.first());
            if let (Some(host), Some(port)) = (host, port) {
                return Ok(Some(Address {
                    host: host.clone(),
                    port,
                    source: slice.id(),
                }));
            }
        }
        Ok(None)
    }

    /// Registers an upstream; two different addresses for one upstream are an error.
    fn upstream(
        &mut self,
        name: &str,
        key: EndpointKey,
        address: Option<Address>,
    ) -> Result<(), Error> {
        let up = self.upstreams.entry(name.to_string()).or_default();
        up.keys.insert(key);
        if let Some(addr) = address {
            match &up.address {
                Some(old) if (old.host.as_str(), old.port) != (addr.host.as_str(), addr.port) => {
                    return Err(Error::plain(format!(
                        "{name}: {}:{} from {} contradicts {}:{} from {}",
                        addr.host, addr.port, addr.source, old.host, old.port, old.source
                    )));
                }
                Some(_) => {}
                None => up.address = Some(addr),
            }
        }
        Ok(())
    }

    /// A target for an instance of a Kubernetes service running in `cluster`.
    #[allow(clippy::too_many_arguments)]
    fn service_draft(
        &mut self,
        cluster: &str,
        namespace: &str,
        service: &str,
        subset: Option<(Option<String>, BTreeMap<String, String>)>,
        group_weight: u64,
        group_size: u64,
        account: Option<String>,
    ) -> Result<Draft, Error> {
        let account = match account {
            Some(a) => a,
            None => self
                .account_of(cluster, namespace, service)?
                .unwrap_or_else(|| "default".to_string()),
        };
        let (subset_name, subset_keys) = match &subset {
            None => (None, Vec::new()),
            Some((name, labels)) => {
                let text = labels_text(labels);
                let mut keys: Vec<String> = name.iter().cloned().collect();
                if !labels.is_empty() {
                    keys.push(text.clone());
                }
                (Some(name.clone().unwrap_or(text)), keys)
            }
        };
        let envoy_cluster = envoy_cluster_name(cluster, namespace, service, subset_name.as_deref());
        let address = if subset.is_none() {
            self.slice_address(cluster, namespace, service)?
        } else {
            None
        };
        self.upstream(
            &envoy_cluster,
            EndpointKey {
                cluster: cluster.to_string(),
                namespace: namespace.to_string(),
                service: service.to_string(),
                subset: subset_keys.clone(),
            },
            address,
        )?;
        Ok(Draft {
            cluster: cluster.to_string(),
            namespace: namespace.to_string(),
            service: service.to_string(),
            subset: subset_name,
            subset_keys,
            group_weight,
            group_size,
            service_account: ServiceAccountRef {
                namespace: namespace.to_string(),
                name: account,
            },
            cluster_key: None,
            envoy_cluster,
            locality: self.locality_of(cluster),
            priority: None,
            authority: None,
            path_prefix: None,
        })
    }

    /// Targets for every instance of `namespace/service` (and subset), in the clusters
    /// the input knows it in, else in the local cluster. The group shares `weight`.
    fn instances<T>(
        &mut self,
        res: &Res<T>,
        path: &str,
        namespace: &str,
        service: &str,
        subset: Option<(Option<String>, BTreeMap<String, String>)>,
        weight: u64,
    ) -> Result<Vec<Draft>, Error> {
        let mut clusters = self.service_clusters(namespace, service)?;
        if clusters.is_empty() {
            clusters.insert(self.local_name(res, path)?);
        }
        let size = clusters.len() as u64;
        clusters
            .iter()
            .map(|c| self.service_draft(c, namespace, service, subset.clone(), weight, size, None))
            .collect()
    }

    fn add_destination<T>(
        &mut self,
        res: &Res<T>,
        mut dest: DestinationConfig,
        drafts: Vec<Draft>,
        catch_all: bool,
    ) -> Result<(), Error> {
        if let Some((_, _, other)) = self
            .destinations
            .iter()
            .find(|(d, _, _)| d.name == dest.name)
        {
            return Err(res.error(
                "metadata.name",
                format!("destination name {} is already used by {other}", dest.name),
            ));
        }
        dest.hosts.dedup();
        if catch_all {
            let route = RouteConfig {
                name: dest.name.clone(),
                route_match: RouteMatchConfig::default(),
                destination: dest.name.clone(),
            };
            self.routes.push((specificity(&dest.hosts), route));
        }
        self.destinations.push((dest, drafts, res.id()));
        Ok(())
    }

    // ---- FSM ----------------------------------------------------------------------

    fn fsm(&mut self) -> Result<(), Error> {
        let res = self.res;
        // Services with a GlobalTrafficPolicy, then imported services without one.
        let mut done = BTreeSet::new();
        for gtp in &res.global_policies {
            self.claim(
                format!("service {}/{}", gtp.namespace, gtp.name),
                gtp,
                "metadata.name",
            )?;
            let policy = match gtp.spec.lb_type.as_deref().unwrap_or("Locality") {
                "Locality" => LbPolicy::Locality,
                "FailOver" => LbPolicy::FailOver,
                "ActiveActive" => LbPolicy::ActiveActive,
                other => {
                    return Err(gtp.error(
                        "spec.lbType",
                        format!("lbType {other:?} is not Locality, FailOver or ActiveActive"),
                    ))
                }
            };
            let mut remote = Vec::new();
            for (i, t) in gtp.spec.targets.iter().enumerate() {
                let path = format!("spec.targets[{i}].clusterKey");
                let key = ClusterKey::parse(&t.cluster_key).map_err(|m| gtp.error(&path, m))?;
                let weight = u64::from(t.weight.unwrap_or(1));
                remote.push(self.fsm_remote(gtp, &path, &key, weight)?);
            }
            if policy == LbPolicy::Locality && remote.is_empty() {
                remote = self.fsm_imports(&gtp.namespace, &gtp.name)?;
            }
            self.fsm_destination(gtp, policy, remote)?;
            done.insert((gtp.namespace.clone(), gtp.name.clone()));
        }
        for import in &res.service_imports {
            if done.insert((import.namespace.clone(), import.name.clone())) {
                self.claim(
                    format!("service {}/{}", import.namespace, import.name),
                    import,
                    "metadata.name",
                )?;
                let remote = self.fsm_imports(&import.namespace, &import.name)?;
                self.fsm_destination(import, LbPolicy::Locality, remote)?;
            }
        }
        Ok(())
    }

    /// Local instance (if the Service exists locally) plus `remote`.
    fn fsm_destination<T>(
        &mut self,
        res: &Res<T>,
        policy: LbPolicy,
        remote: Vec<Draft>,
    ) -> Result<(), Error> {
        let mut drafts = Vec::new();
        if let Some(local) = self.local.clone() {
            if self
                .service_clusters(&res.namespace, &res.name)?
                .contains(&local)
            {
                drafts.push(self.service_draft(
                    &local,
                    &res.namespace,
                    &res.name,
                    None,
                    1,
                    1,
                    None,
                )?);
            }
        }
        drafts.extend(remote);
        if drafts.is_empty() {
            return Err(res.error(
                "metadata.name",
                "no instance of the service: no local Service and no ServiceImport endpoint",
            ));
        }
        let dest = DestinationConfig {
            name: format!("{}/{}", res.namespace, res.name),
            hosts: service_hosts(&res.namespace, &res.name),
            policy,
            sticky: None,
            outlier_detection: Some(OutlierDetectionConfig::default()),
            targets: Vec::new(),
        };
        self.add_destination(res, dest, drafts, true)?;
        Ok(())
    }

    /// Every endpoint of the ServiceImport `namespace/name`.
    fn fsm_imports(&mut self, namespace: &str, name: &str) -> Result<Vec<Draft>, Error> {
        let res = self.res;
        let mut out = Vec::new();
        for import in res
            .service_imports
            .iter()
            .filter(|i| i.namespace == namespace && i.name == name)
        {
            for (p, port) in import.spec.ports.iter().enumerate() {
                for (e, ep) in port.endpoints.iter().enumerate() {
                    let path = format!("spec.ports[{p}].endpoints[{e}].clusterKey");
                    let key =
                        ClusterKey::parse(&ep.cluster_key).map_err(|m| import.error(&path, m))?;
                    if out.iter().any(|d: &Draft| d.cluster == key.cluster) {
                        continue;
                    }
                    out.push(self.fsm_import_draft(import, &key, ep, 1)?);
                }
            }
        }
        Ok(out)
    }

    fn fsm_import_draft(
        &mut self,
        import: &Res<crate::kinds::fsm::ServiceImportSpec>,
        key: &ClusterKey,
        ep: &crate::kinds::fsm::ImportEndpoint,
        weight: u64,
    ) -> Result<Draft, Error> {
        let host = ep
            .target
            .ip
            .clone()
            .or_else(|| ep.target.host.clone())
            .unwrap_or_default();
        let address = (!host.is_empty()).then(|| Address {
            host,
            port: ep.target.port,
            source: import.id(),
        });
        let account = match import.spec.service_account_name.as_deref() {
            Some(sa) if sa != "*" && !sa.is_empty() => Some(sa.to_string()),
            _ => self.fsm_export_account(&key.cluster, &import.namespace, &import.name),
        };
        self.gateway_draft(
            import,
            key,
            weight,
            address,
            ep.target.path.clone(),
            account,
        )
    }

    fn fsm_export_account(&self, cluster: &str, namespace: &str, name: &str) -> Option<String> {
        self.res
            .service_exports
            .iter()
            .filter(|x| {
                x.namespace == namespace && x.name == name && x.cluster_label() == Some(cluster)
            })
            .find_map(|x| {
                x.spec
                    .service_account_name
                    .clone()
                    .filter(|s| s != "*" && !s.is_empty())
            })
    }

    /// A target reached through the gateway of the cluster `key` names.
    fn gateway_draft<T>(
        &mut self,
        res: &Res<T>,
        key: &ClusterKey,
        weight: u64,
        address: Option<Address>,
        path_prefix: Option<String>,
        account: Option<String>,
    ) -> Result<Draft, Error> {
        let envoy_cluster = gateway_cluster_name(&key.cluster);
        let account = account.unwrap_or_else(|| {
            self.warnings.push(format!(
                "{}: ServiceAccount of {}/{} in {} unknown; using default",
                res.id(),
                res.namespace,
                res.name,
                key.cluster
            ));
            "default".to_string()
        });
        let gateway = self
            .res
            .clusters
            .iter()
            .find(|c| c.name == key.cluster)
            .and_then(|c| {
                Some(Address {
                    host: c.spec.gateway_host.clone()?,
                    port: c.spec.gateway_port?,
                    source: c.id(),
                })
            });
        let ekey = EndpointKey {
            cluster: key.cluster.clone(),
            namespace: res.namespace.clone(),
            service: res.name.clone(),
            subset: Vec::new(),
        };
        self.upstream(&envoy_cluster, ekey.clone(), gateway)?;
        self.upstream(&envoy_cluster, ekey, address)?;
        Ok(Draft {
            cluster: key.cluster.clone(),
            namespace: res.namespace.clone(),
            service: res.name.clone(),
            subset: None,
            subset_keys: Vec::new(),
            group_weight: weight,
            group_size: 1,
            service_account: ServiceAccountRef {
                namespace: res.namespace.clone(),
                name: account,
            },
            cluster_key: Some(key.text()),
            envoy_cluster,
            locality: LocalityConfig {
                region: Some(key.region.clone()),
                zone: Some(key.zone.clone()),
                subzone: None,
            },
            priority: None,
            authority: None,
            path_prefix,
        })
    }

    /// A GlobalTrafficPolicy target: a ServiceImport endpoint, else a ServiceExport of
    /// that cluster behind its `Cluster` gateway.
    fn fsm_remote(
        &mut self,
        gtp: &Res<crate::kinds::fsm::GlobalTrafficPolicySpec>,
        path: &str,
        key: &ClusterKey,
        weight: u64,
    ) -> Result<Draft, Error> {
        let res = self.res;
        for import in res
            .service_imports
            .iter()
            .filter(|i| i.namespace == gtp.namespace && i.name == gtp.name)
        {
            for port in &import.spec.ports {
                if let Some(ep) = port.endpoints.iter().find(|e| e.cluster_key == key.text()) {
                    return self.fsm_import_draft(import, key, ep, weight);
                }
            }
        }
        let export = res.service_exports.iter().find(|x| {
            x.namespace == gtp.namespace
                && x.name == gtp.name
                && x.cluster_label() == Some(key.cluster.as_str())
        });
        let gateway = res.clusters.iter().find(|c| c.name == key.cluster);
        match (export, gateway) {
            (Some(export), Some(_)) => {
                let prefix = export.spec.rules.iter().find_map(|r| r.path.clone());
                let account = export
                    .spec
                    .service_account_name
                    .clone()
                    .filter(|s| s != "*" && !s.is_empty());
                self.gateway_draft(gtp, key, weight, None, prefix, account)
            }
            _ => Err(gtp.error(
                path,
                format!(
                    "cluster {} serves no {}/{}: no ServiceImport endpoint with this clusterKey, \
                     and no ServiceExport labelled with the cluster plus its Cluster gateway",
                    key.cluster, gtp.namespace, gtp.name
                ),
            )),
        }
    }

    // ---- SMI TrafficSplit ------------------------------------------------------------

    fn smi_splits(&mut self) -> Result<(), Error> {
        let res = self.res;
        for ts in &res.traffic_splits {
            if !ts.spec.matches.is_empty() {
                return Err(ts.error(
                    "spec.matches",
                    "splits limited to route group matches are not supported; remove matches",
                ));
            }
            let (ns, name) = match self.resolve_host(&ts.spec.service, &ts.namespace) {
                Some(HostRef::Service(ns, name)) => (ns, name),
                _ => {
                    return Err(ts.error(
                        "spec.service",
                        format!("{:?} is not a service name", ts.spec.service),
                    ))
                }
            };
            self.claim(format!("service {ns}/{name}"), ts, "spec.service")?;
            let mut weights = Vec::new();
            for (i, b) in ts.spec.backends.iter().enumerate() {
                let w = b.weight.millis().ok_or_else(|| {
                    ts.error(
                        &format!("spec.backends[{i}].weight"),
                        "not an integer or quantity such as 500m",
                    )
                })?;
                weights.push(w);
            }
            let scale = if weights.iter().all(|w| w % 1000 == 0) {
                1000
            } else {
                1
            };
            let mut drafts = Vec::new();
            for (i, b) in ts.spec.backends.iter().enumerate() {
                let path = format!("spec.backends[{i}].service");
                drafts.extend(self.instances(
                    ts,
                    &path,
                    &ns,
                    &b.service,
                    None,
                    weights[i] / scale,
                )?);
            }
            let dest = DestinationConfig {
                name: format!("{ns}/{name}"),
                hosts: service_hosts(&ns, &name),
                policy: LbPolicy::ActiveActive,
                sticky: None,
                outlier_detection: None,
                targets: Vec::new(),
            };
            self.add_destination(ts, dest, drafts, true)?;
        }
        Ok(())
    }

    // ---- Gloo ------------------------------------------------------------------------

    fn gloo_traffic_policies(&mut self) -> Result<(), Error> {
        let res = self.res;
        for tp in &res.traffic_policies {
            if !tp.spec.http_request_matchers.is_empty() {
                return Err(tp.error(
                    "spec.httpRequestMatchers",
                    "request matchers are not supported; the policy must apply to all requests",
                ));
            }
            let Some(shift) = &tp.spec.traffic_shift else {
                self.warnings
                    .push(format!("{}: no trafficShift; skipped", tp.id()));
                continue;
            };
            for (s, sel) in tp.spec.destination_selector.iter().enumerate() {
                if sel.kube_service_matcher.is_some() {
                    return Err(tp.error(
                        &format!("spec.destinationSelector[{s}].kubeServiceMatcher"),
                        "label matchers are not supported; use kubeServiceRefs",
                    ));
                }
                let services = sel.kube_service_refs.iter().flat_map(|r| &r.services);
                for (r, svc) in services.enumerate() {
                    let path =
                        format!("spec.destinationSelector[{s}].kubeServiceRefs.services[{r}]");
                    self.claim(format!("service {}/{}", svc.namespace, svc.name), tp, &path)?;
                    let mut drafts = Vec::new();
                    for (i, d) in shift.destinations.iter().enumerate() {
                        let dpath = format!("spec.trafficShift.destinations[{i}]");
                        let Some(k) = &d.kube_service else {
                            return Err(
                                tp.error(&dpath, "only kubeService destinations are supported")
                            );
                        };
                        let subset = (!k.subset.is_empty()).then(|| (None, k.subset.clone()));
                        drafts.push(self.service_draft(
                            &k.cluster_name,
                            &k.namespace,
                            &k.name,
                            subset,
                            u64::from(d.weight),
                            1,
                            None,
                        )?);
                    }
                    let dest = DestinationConfig {
                        name: format!("{}/{}", svc.namespace, svc.name),
                        hosts: service_hosts(&svc.namespace, &svc.name),
                        policy: LbPolicy::ActiveActive,
                        sticky: None,
                        outlier_detection: None,
                        targets: Vec::new(),
                    };
                    self.add_destination(tp, dest, drafts, true)?;
                }
            }
        }
        Ok(())
    }

    /// Targets of a VirtualDestination: every selected Service instance.
    fn vd_drafts(
        &mut self,
        vd: &Res<gloo::VirtualDestinationSpec>,
        weight: u64,
    ) -> Result<Vec<Draft>, Error> {
        let res = self.res;
        let mut found = Vec::new();
        for sel in &vd.spec.services {
            for svc in &res.services {
                let cluster = self.cluster_of(svc)?;
                let ok = (sel.labels.is_empty() || selects(&sel.labels, &svc.labels))
                    && sel.name.as_ref().is_none_or(|n| *n == svc.name)
                    && sel.namespace.as_ref().is_none_or(|n| *n == svc.namespace)
                    && sel.cluster.as_ref().is_none_or(|c| *c == cluster)
                    && !(sel.labels.is_empty() && sel.name.is_none());
                let item = (cluster, svc.namespace.clone(), svc.name.clone());
                if ok && !found.contains(&item) {
                    found.push(item);
                }
            }
        }
        if found.is_empty() {
            return Err(vd.error(
                "spec.services",
                "selects no Service: give the Services it selects (labelled topology.istio.io/cluster when remote)",
            ));
        }
        let size = found.len() as u64;
        found
            .iter()
            .map(|(c, ns, name)| self.service_draft(c, ns, name, None, weight, size, None))
            .collect()
    }

    fn virtual_destinations(&mut self) -> Result<(), Error> {
        let res = self.res;
        for vd in &res.virtual_destinations {
            for (h, host) in vd.spec.hosts.iter().enumerate() {
                self.claim(format!("host {host}"), vd, &format!("spec.hosts[{h}]"))?;
            }
            let drafts = self.vd_drafts(vd, 1)?;
            let dest = DestinationConfig {
                name: format!("{}/{}", vd.namespace, vd.name),
                hosts: vd.spec.hosts.clone(),
                policy: LbPolicy::ActiveActive,
                sticky: None,
                outlier_detection: Some(OutlierDetectionConfig::default()),
                targets: Vec::new(),
            };
            self.add_destination(vd, dest, drafts, true)?;
        }
        Ok(())
    }

    fn route_tables(&mut self) -> Result<(), Error> {
        let res = self.res;
        for rt in &res.route_tables {
            for (i, route) in rt.spec.http.iter().enumerate() {
                let rpath = format!("spec.http[{i}]");
                let Some(fwd) = &route.forward_to else {
                    self.warnings
                        .push(format!("{}: {rpath} has no forwardTo; skipped", rt.id()));
                    continue;
                };
                let route_name = format!(
                    "{}/{}/{}",
                    rt.namespace,
                    rt.name,
                    route.name.clone().unwrap_or_else(|| i.to_string())
                );
                let single_vd = match fwd.destinations.as_slice() {
                    [d] if d.kind.as_deref() == Some("VIRTUAL_DESTINATION") => Some(d),
                    _ => None,
                };
                let destination = if let Some(d) = single_vd {
                    let ns = d
                        .reference
                        .namespace
                        .clone()
                        .unwrap_or_else(|| rt.namespace.clone());
                    let name = format!("{ns}/{}", d.reference.name);
                    if !self
                        .destinations
                        .iter()
                        .any(|(dest, _, _)| dest.name == name)
                    {
                        return Err(rt.error(
                            &format!("{rpath}.forwardTo.destinations[0].ref"),
                            format!("VirtualDestination {name} is not in the input"),
                        ));
                    }
                    name
                } else {
                    let mut drafts = Vec::new();
                    for (j, d) in fwd.destinations.iter().enumerate() {
                        let dpath = format!("{rpath}.forwardTo.destinations[{j}]");
                        let ns = d
                            .reference
                            .namespace
                            .clone()
                            .unwrap_or_else(|| rt.namespace.clone());
                        let weight = u64::from(d.weight.unwrap_or(1));
                        match d.kind.as_deref().unwrap_or("SERVICE") {
                            "VIRTUAL_DESTINATION" => {
                                let vd = res
                                    .virtual_destinations
                                    .iter()
                                    .find(|v| v.namespace == ns && v.name == d.reference.name)
                                    .ok_or_else(|| {
                                        rt.error(
                                            &dpath,
                                            format!(
                                                "VirtualDestination {ns}/{} is not in the input",
                                                d.reference.name
                                            ),
                                        )
                                    })?;
                                drafts.extend(self.vd_drafts(vd, weight)?);
                            }
                            "SERVICE" => {
                                let subset =
                                    (!d.subset.is_empty()).then(|| (None, d.subset.clone()));
                                match &d.reference.cluster {
                                    Some(c) => drafts.push(self.service_draft(
                                        c,
                                        &ns,
                                        &d.reference.name,
                                        subset,
                                        weight,
                                        1,
                                        None,
                                    )?),
                                    None => drafts.extend(self.instances(
                                        rt,
                                        &dpath,
                                        &ns,
                                        &d.reference.name,
                                        subset,
                                        weight,
                                    )?),
                                }
                            }
                            other => {
                                return Err(rt.error(
                                    &format!("{dpath}.kind"),
                                    format!("kind {other:?} is not supported"),
                                ))
                            }
                        }
                    }
                    let dest = DestinationConfig {
                        name: route_name.clone(),
                        hosts: Vec::new(),
                        policy: LbPolicy::ActiveActive,
                        sticky: None,
                        outlier_detection: None,
                        targets: Vec::new(),
                    };
                    self.add_destination(rt, dest, drafts, false)?;
                    route_name.clone()
                };
                let hosts: Vec<String> = rt.spec.hosts.clone();
                let matchers = if route.matchers.is_empty() {
                    vec![gloo::HttpMatcher::default()]
                } else {
                    route.matchers.clone()
                };
                for (m, matcher) in matchers.iter().enumerate() {
                    let mpath = format!("{rpath}.matchers[{m}]");
                    let route_match = gloo_match(rt, &mpath, matcher, &hosts)?;
                    let name = if matchers.len() > 1 {
                        format!("{route_name}#{m}")
                    } else {
                        route_name.clone()
                    };
                    self.routes.push((
                        specificity(&hosts),
                        RouteConfig {
                            name,
                            route_match,
                            destination: destination.clone(),
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    // ---- Istio -----------------------------------------------------------------------

    fn resolve_host(&self, host: &str, namespace: &str) -> Option<HostRef<'a>> {
        if let Some(se) = self
            .res
            .service_entries
            .iter()
            .find(|se| se.spec.hosts.iter().any(|h| h == host))
        {
            return Some(HostRef::Entry(se));
        }
        let parts: Vec<&str> = host.split('.').collect();
        match parts.as_slice() {
            [name] => Some(HostRef::Service(namespace.to_string(), name.to_string())),
            [name, ns] | [name, ns, "svc"] | [name, ns, "svc", "cluster", "local"] => {
                Some(HostRef::Service(ns.to_string(), name.to_string()))
            }
            _ => None,
        }
    }

    fn destination_rule(&self, host: &HostRef<'_>) -> Option<&'a Res<istio::DestinationRuleSpec>> {
        self.res.destination_rules.iter().find(|dr| {
            match (self.resolve_host(&dr.spec.host, &dr.namespace), host) {
                (Some(HostRef::Service(a, b)), HostRef::Service(c, d)) => a == *c && b == *d,
                (Some(HostRef::Entry(x)), HostRef::Entry(y)) => std::ptr::eq(x, *y),
                _ => false,
            }
        })
    }

    fn virtual_services(&mut self) -> Result<(), Error> {
        let res = self.res;
        for vs in &res.virtual_services {
            let mut hosts = Vec::new();
            for (h, host) in vs.spec.hosts.iter().enumerate() {
                let key = match self.resolve_host(host, &vs.namespace) {
                    Some(HostRef::Service(ns, name)) => {
                        hosts.extend(service_hosts(&ns, &name));
                        format!("service {ns}/{name}")
                    }
                    _ => {
                        hosts.push(host.clone());
                        format!("host {host}")
                    }
                };
                self.claim(key, vs, &format!("spec.hosts[{h}]"))?;
            }
            let several = vs.spec.http.len() > 1;
            for (i, http) in vs.spec.http.iter().enumerate() {
                let rpath = format!("spec.http[{i}]");
                let base = format!("{}/{}", vs.namespace, vs.name);
                let name = if several {
                    format!(
                        "{base}/{}",
                        http.name.clone().unwrap_or_else(|| i.to_string())
                    )
                } else {
                    base
                };
                let dest = self.vs_destination(vs, &rpath, http, &name, &hosts)?;
                let matches = if http.matches.is_empty() {
                    vec![istio::HttpMatchRequest::default()]
                } else {
                    http.matches.clone()
                };
                for (m, mat) in matches.iter().enumerate() {
                    let route_match = istio_match(vs, &format!("{rpath}.match[{m}]"), mat)?;
                    let rname = if matches.len() > 1 {
                        format!("{name}#{m}")
                    } else {
                        name.clone()
                    };
                    self.routes.push((
                        specificity(&hosts),
                        RouteConfig {
                            name: rname,
                            route_match,
                            destination: dest.clone(),
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    fn vs_destination(
        &mut self,
        vs: &Res<istio::VirtualServiceSpec>,
        rpath: &str,
        http: &istio::HttpRoute,
        name: &str,
        hosts: &[String],
    ) -> Result<String, Error> {
        if http.route.is_empty() {
            return Err(vs.error(
                rpath,
                "no route destinations (redirects and direct responses are not supported)",
            ));
        }
        if http.rewrite.as_ref().is_some_and(|r| r.uri.is_some()) {
            return Err(vs.error(
                &format!("{rpath}.rewrite.uri"),
                "path rewrites are not supported",
            ));
        }
        let authority = http.rewrite.as_ref().and_then(|r| r.authority.clone());
        if http.route.len() > 1 {
            let total: u64 = http
                .route
                .iter()
                .map(|r| u64::from(r.weight.unwrap_or(0)))
                .sum();
            if total != 100 {
                return Err(vs.error(
                    &format!("{rpath}.route"),
                    format!("weights sum to {total}; Istio requires 100"),
                ));
            }
        }
        let mut drafts = Vec::new();
        let mut policy = LbPolicy::ActiveActive;
        let mut outlier = None;
        for (j, rd) in http.route.iter().enumerate() {
            let dpath = format!("{rpath}.route[{j}].destination");
            let weight = u64::from(rd.weight.unwrap_or(100));
            let target = self
                .resolve_host(&rd.destination.host, &vs.namespace)
                .ok_or_else(|| {
                    vs.error(
                        &format!("{dpath}.host"),
                        format!(
                            "{:?} is neither a Kubernetes service name nor a ServiceEntry host",
                            rd.destination.host
                        ),
                    )
                })?;
            let dr = self.destination_rule(&target);
            let subset = match &rd.destination.subset {
                None => None,
                Some(s) => {
                    let found = dr.and_then(|dr| dr.spec.subsets.iter().find(|x| &x.name == s));
                    match found {
                        Some(x) => Some((Some(x.name.clone()), x.labels.clone())),
                        None => {
                            return Err(vs.error(
                                &format!("{dpath}.subset"),
                                format!(
                                    "subset {s:?} is not defined by a DestinationRule for {}",
                                    rd.destination.host
                                ),
                            ))
                        }
                    }
                }
            };
            if let Some(tp) = dr.and_then(|dr| dr.spec.traffic_policy.as_ref()) {
                if let (Some(od), None) = (&tp.outlier_detection, &outlier) {
                    outlier = Some(outlier_config(dr, od)?);
                }
                let lb = tp
                    .load_balancer
                    .as_ref()
                    .and_then(|l| l.locality_lb_setting.as_ref());
                if let Some(lb) = lb.filter(|l| l.enabled != Some(false)) {
                    if http.route.len() == 1 && tp.outlier_detection.is_some() {
                        policy = LbPolicy::FailOver;
                    }
                    if !lb.distribute.is_empty() || !lb.failover_priority.is_empty() {
                        self.warnings.push(format!(
                            "{}: localityLbSetting distribute / failoverPriority ignored",
                            dr.map(|d| d.id()).unwrap_or_default()
                        ));
                    }
                }
            }
            let mut group = match target {
                HostRef::Service(ns, svc) => {
                    self.instances(vs, &format!("{dpath}.host"), &ns, &svc, subset, weight)?
                }
                HostRef::Entry(se) => self.entry_drafts(se, weight)?,
            };
            if policy == LbPolicy::FailOver {
                if let Some(lb) = dr
                    .and_then(|d| d.spec.traffic_policy.as_ref())
                    .and_then(|t| t.load_balancer.as_ref())
                    .and_then(|l| l.locality_lb_setting.as_ref())
                {
                    self.apply_failover(&mut group, &lb.failover);
                }
            }
            drafts.extend(group);
        }
        for d in &mut drafts {
            d.authority = authority.clone();
        }
        let dest = DestinationConfig {
            name: name.to_string(),
            hosts: hosts.to_vec(),
            policy,
            sticky: None,
            outlier_detection: outlier,
            targets: Vec::new(),
        };
        self.add_destination(vs, dest, drafts, false)?;
        Ok(name.to_string())
    }

    /// Istio region failover: targets in the `to` region of the local region's entry
    /// come right after the local region (priority 3), other regions after them (4).
    fn apply_failover(&self, drafts: &mut [Draft], failover: &[istio::Failover]) {
        let Some(region) = self.local_config.region.as_deref() else {
            return;
        };
        let Some(to) = failover
            .iter()
            .find(|f| f.from == region)
            .map(|f| f.to.as_str())
        else {
            return;
        };
        for d in drafts.iter_mut() {
            match d.locality.region.as_deref() {
                Some(r) if r == region => {}
                Some(r) if r == to => d.priority = Some(3),
                _ => d.priority = Some(4),
            }
        }
    }

    /// The target of a ServiceEntry: its cluster label or, failing that, its host.
    fn entry_drafts(
        &mut self,
        se: &Res<istio::ServiceEntrySpec>,
        weight: u64,
    ) -> Result<Vec<Draft>, Error> {
        let host = se.spec.hosts.first().cloned().unwrap_or_default();
        let cluster = se
            .cluster_label()
            .map_or_else(|| host.clone(), str::to_string);
        let port = se.spec.ports.first();
        let address = se.spec.endpoints.first().and_then(|ep| {
            let p = port.and_then(|p| {
                p.name
                    .as_ref()
                    .and_then(|n| ep.ports.get(n).copied())
                    .or(Some(p.number))
            })?;
            Some(Address {
                host: ep.address.clone(),
                port: p,
                source: se.id(),
            })
        });
        let envoy_cluster = envoy_cluster_name(&cluster, &se.namespace, &host, None);
        self.upstream(
            &envoy_cluster,
            EndpointKey {
                cluster: cluster.clone(),
                namespace: se.namespace.clone(),
                service: host.clone(),
                subset: Vec::new(),
            },
            address,
        )?;
        Ok(vec![Draft {
            cluster: cluster.clone(),
            namespace: se.namespace.clone(),
            service: host,
            subset: None,
            subset_keys: Vec::new(),
            group_weight: weight,
            group_size: 1,
            service_account: ServiceAccountRef {
                namespace: se.namespace.clone(),
                name: "default".into(),
            },
            cluster_key: None,
            envoy_cluster,
            locality: self.locality_of(&cluster),
            priority: None,
            authority: None,
            path_prefix: None,
        }])
    }

    // ---- SMI access ------------------------------------------------------------------

    fn access(&mut self) -> Result<AccessConfig, Error> {
        let res = self.res;
        let mut route_groups = Vec::new();
        for g in &res.route_groups {
            let matches = g
                .spec
                .matches
                .iter()
                .map(|m| HttpMatchConfig {
                    name: m.name.clone(),
                    path_regex: m.path_regex.clone(),
                    methods: m.methods.clone(),
                    headers: m
                        .headers
                        .as_ref()
                        .map(|h| h.merged().into_iter().collect())
                        .unwrap_or_default(),
                })
                .collect();
            route_groups.push(RouteGroupConfig {
                name: format!("{}/{}", g.namespace, g.name),
                matches,
            });
        }
        let mut traffic_targets = Vec::new();
        for tt in &res.traffic_targets {
            let (rules_path, rules) = tt.spec.all_rules();
            let mut out_rules = Vec::new();
            for (i, rule) in rules.iter().enumerate() {
                let rpath = format!("{rules_path}[{i}]");
                if rule.kind != "HTTPRouteGroup" {
                    self.warnings.push(format!(
                        "{}: {rpath}: {} rules are not HTTP; skipped",
                        tt.id(),
                        rule.kind
                    ));
                    continue;
                }
                let group = res
                    .route_groups
                    .iter()
                    .find(|g| g.namespace == tt.namespace && g.name == rule.name);
                let Some(group) = group else {
                    return Err(tt.error(
                        &format!("{rpath}.name"),
                        format!(
                            "names HTTPRouteGroup {}/{}, which is not in the input",
                            tt.namespace, rule.name
                        ),
                    ));
                };
                for (k, m) in rule.matches.iter().enumerate() {
                    if !group.spec.matches.iter().any(|x| &x.name == m) {
                        return Err(tt.error(
                            &format!("{rpath}.matches[{k}]"),
                            format!("{} has no match named {m:?}", group.id()),
                        ));
                    }
                }
                out_rules.push(TrafficRuleConfig {
                    route_group: format!("{}/{}", group.namespace, group.name),
                    matches: rule.matches.clone(),
                });
            }
            let account = |r: &crate::kinds::smi::IdentityRef| ServiceAccountRef {
                namespace: r.namespace.clone().unwrap_or_else(|| tt.namespace.clone()),
                name: r.name.clone(),
            };
            if out_rules.is_empty() || tt.spec.sources.is_empty() {
                self.warnings.push(format!(
                    "{}: no HTTP rules or no sources; it allows nothing and is skipped",
                    tt.id()
                ));
                continue;
            }
            traffic_targets.push(TrafficTargetConfig {
                name: format!("{}/{}", tt.namespace, tt.name),
                destination: account(&tt.spec.destination),
                sources: tt.spec.sources.iter().map(account).collect(),
                rules: out_rules,
            });
        }
        let mode = self
            .access_mode
            .unwrap_or(if res.traffic_targets.is_empty() {
                AccessMode::Permissive
            } else {
                AccessMode::Enforce
            });
        Ok(AccessConfig {
            mode,
            route_groups,
            traffic_targets,
        })
    }

    // ---- assembly ----------------------------------------------------------------------

    fn finish(mut self, access: AccessConfig) -> Result<Model, Error> {
        let mut destinations = Vec::new();
        let mut origins = BTreeMap::new();
        let mut target_keys = BTreeMap::new();
        for (mut dest, drafts, origin) in std::mem::take(&mut self.destinations) {
            dest.targets = name_targets(&drafts)?;
            for (t, d) in dest.targets.iter().zip(&drafts) {
                let key = EndpointKey {
                    cluster: d.cluster.clone(),
                    namespace: d.namespace.clone(),
                    service: d.service.clone(),
                    subset: d.subset_keys.clone(),
                };
                target_keys.insert((dest.name.clone(), t.name.clone()), key);
            }
            if dest.targets.iter().all(|t| t.weight == 0) {
                return Err(Error::plain(format!(
                    "{origin}: every weight of {} is zero; no target could serve",
                    dest.name
                )));
            }
            origins.insert(dest.name.clone(), origin);
            destinations.push(dest);
        }
        let mut routes = std::mem::take(&mut self.routes);
        routes.sort_by_key(|(s, _)| *s);
        let mut seen = BTreeSet::new();
        let routes = routes
            .into_iter()
            .map(|(_, mut r)| {
                let base = r.name.clone();
                let mut n = 1;
                while !seen.insert(r.name.clone()) {
                    n += 1;
                    r.name = format!("{base}#{n}");
                }
                r
            })
            .collect();
        let local = (self.local_config != LocalConfig::default()).then_some(self.local_config);
        Ok(Model {
            config: PluginConfig {
                version: CONFIG_VERSION,
                cluster_header: Some(DEFAULT_CLUSTER_HEADER.to_string()),
                decision_header: None,
                local,
                unmatched: Default::default(),
                identity: Default::default(),
                access,
                routes,
                destinations,
            },
            upstreams: self.upstreams,
            origins,
            target_keys,
            warnings: self.warnings,
        })
    }
}

/// 0: exact hosts, 1: suffix wildcards, 2: any host (Envoy's virtual host order).
fn specificity(hosts: &[String]) -> u8 {
    hosts
        .iter()
        .map(|h| {
            if h == "*" {
                2
            } else if h.starts_with("*.") {
                1
            } else {
                0
            }
        })
        .min()
        .unwrap_or(2)
}

fn infer_local_cluster(res: &Resources) -> Option<String> {
    let clusters: BTreeSet<&str> = res
        .traffic_policies
        .iter()
        .flat_map(|tp| &tp.spec.destination_selector)
        .flat_map(|s| s.kube_service_refs.iter().flat_map(|r| &r.services))
        .filter_map(|s| s.cluster_name.as_deref())
        .collect();
    (clusters.len() == 1).then(|| clusters.into_iter().next().unwrap_or_default().to_string())
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Names targets (`cluster`, plus `/service` when the destination spans several
/// services, plus `/subset`) and spreads each group's weight over its members.
fn name_targets(drafts: &[Draft]) -> Result<Vec<TargetConfig>, Error> {
    let services: BTreeSet<(&str, &str)> = drafts
        .iter()
        .map(|d| (d.namespace.as_str(), d.service.as_str()))
        .collect();
    let lcm = drafts.iter().fold(1u64, |acc, d| {
        acc / gcd(acc, d.group_size.max(1)) * d.group_size.max(1)
    });
    let mut out = Vec::new();
    for d in drafts {
        let mut name = d.cluster.clone();
        if services.len() > 1 {
            name = format!("{name}/{}", d.service);
        }
        if let Some(s) = &d.subset {
            name = format!("{name}/{s}");
        }
        let weight = d.group_weight * lcm / d.group_size.max(1);
        let weight = u32::try_from(weight)
            .map_err(|_| Error::plain(format!("target {name}: weight {weight} is too large")))?;
        if out.iter().any(|t: &TargetConfig| t.name == name) {
            return Err(Error::plain(format!(
                "target {name} appears twice in one destination"
            )));
        }
        out.push(TargetConfig {
            name,
            cluster: d.cluster.clone(),
            cluster_key: d.cluster_key.clone(),
            envoy_cluster: d.envoy_cluster.clone(),
            subset: d.subset.clone().filter(|_| !d.subset_keys.is_empty()),
            weight,
            locality: d.locality.clone(),
            priority: d.priority,
            service_account: d.service_account.clone(),
            authority: d.authority.clone(),
            path_prefix: d.path_prefix.clone(),
        });
    }
    Ok(out)
}

fn outlier_config(
    dr: Option<&Res<istio::DestinationRuleSpec>>,
    od: &istio::OutlierDetection,
) -> Result<OutlierDetectionConfig, Error> {
    let mut out = OutlierDetectionConfig::default();
    if let Some(n) = od.consecutive_5xx_errors {
        out.consecutive_5xx = n;
    }
    if let Some(n) = od.consecutive_gateway_errors {
        out.consecutive_gateway_errors = n;
    }
    if let Some(t) = &od.base_ejection_time {
        out.base_ejection_time_ms = istio::duration_ms(t).ok_or_else(|| match dr {
            Some(dr) => dr.error(
                "spec.trafficPolicy.outlierDetection.baseEjectionTime",
                format!("{t:?} is not a duration such as 30s"),
            ),
            None => Error::plain(format!("{t:?} is not a duration")),
        })?;
        out.max_ejection_time_ms = out.max_ejection_time_ms.max(out.base_ejection_time_ms);
    }
    if let Some(p) = od.max_ejection_percent {
        out.max_ejection_percent = p;
    }
    Ok(out)
}

fn gloo_match<T>(
    rt: &Res<T>,
    path: &str,
    m: &gloo::HttpMatcher,
    hosts: &[String],
) -> Result<RouteMatchConfig, Error> {
    let path_match = match &m.uri {
        None => None,
        Some(u) => Some(match (&u.exact, &u.prefix, &u.regex) {
            (Some(e), None, None) => PathMatchConfig::Exact(e.clone()),
            (None, Some(p), None) => PathMatchConfig::Prefix(p.clone()),
            (None, None, Some(r)) => PathMatchConfig::Regex(r.clone()),
            _ => {
                return Err(rt.error(
                    &format!("{path}.uri"),
                    "give exactly one of exact, prefix, regex",
                ))
            }
        }),
    };
    let headers = m
        .headers
        .iter()
        .map(|h| HeaderMatchConfig {
            name: h.name.to_ascii_lowercase(),
            exact: h.value.clone().filter(|_| !h.regex),
            regex: h.value.clone().filter(|_| h.regex),
        })
        .collect();
    Ok(RouteMatchConfig {
        hosts: if hosts.is_empty() {
            vec!["*".to_string()]
        } else {
            hosts.to_vec()
        },
        path: path_match,
        methods: m.method.iter().map(|x| x.to_ascii_uppercase()).collect(),
        headers,
    })
}

fn istio_match<T>(
    vs: &Res<T>,
    path: &str,
    m: &istio::HttpMatchRequest,
) -> Result<RouteMatchConfig, Error> {
    let one = |p: &str, s: &istio::StringMatch| -> Result<PathMatchConfig, Error> {
        match (&s.exact, &s.prefix, &s.regex) {
            (Some(e), None, None) => Ok(PathMatchConfig::Exact(e.clone())),
            (None, Some(x), None) => Ok(PathMatchConfig::Prefix(x.clone())),
            (None, None, Some(r)) => Ok(PathMatchConfig::Regex(r.clone())),
            _ => Err(vs.error(p, "give exactly one of exact, prefix, regex")),
        }
    };
    let path_match = m
        .uri
        .as_ref()
        .map(|u| one(&format!("{path}.uri"), u))
        .transpose()?;
    let mut headers = Vec::new();
    for (name, sm) in &m.headers {
        let hpath = format!("{path}.headers.{name}");
        let (exact, regex) = match one(&hpath, sm)? {
            PathMatchConfig::Exact(e) => (Some(e), None),
            PathMatchConfig::Prefix(p) => (None, Some(format!("{}.*", escape_regex(&p)))),
            PathMatchConfig::Regex(r) => (None, Some(r)),
        };
        headers.push(HeaderMatchConfig {
            name: name.to_ascii_lowercase(),
            exact,
            regex,
        });
    }
    let methods = match &m.method {
        None => Vec::new(),
        Some(sm) => match one(&format!("{path}.method"), sm)? {
            PathMatchConfig::Exact(e) => vec![e.to_ascii_uppercase()],
            _ => {
                return Err(vs.error(
                    &format!("{path}.method"),
                    "only exact method matches are supported",
                ))
            }
        },
    };
    Ok(RouteMatchConfig {
        hosts: Vec::new(),
        path: path_match,
        methods,
        headers,
    })
}

fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
