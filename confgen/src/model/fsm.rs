//! FSM: a destination per `GlobalTrafficPolicy` (Locality, FailOver, ActiveActive), then
//! one per `ServiceImport` without a policy. Remote targets are `ServiceImport` endpoints,
//! or a `ServiceExport` behind its `Cluster`'s gateway.

use std::collections::BTreeSet;

use xcluster_envoy::UpstreamProtocol;

use xcluster_filter::config::{
    DestinationConfig, LbPolicy, LocalityConfig, OutlierDetectionConfig, ServiceAccountRef,
};

use super::{
    gateway_cluster_name, service_hosts, Address, Backend, Builder, Draft, EndpointKey, GroupWeight,
};
use crate::kinds::fsm::{
    ClusterKey, GlobalTrafficPolicySpec, ImportEndpoint, ImportPort, ServiceImportSpec,
};
use crate::kinds::{port_protocol, Res};
use crate::load::Error;

impl Builder<'_> {
    /// A destination per service with a `GlobalTrafficPolicy`, then per imported service
    /// without one (Locality over every endpoint).
    pub(super) fn fsm(&mut self) -> Result<(), Error> {
        let res = self.res;
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

    /// Local instance (if the Service exists locally, or `--endpoint` declares it) plus
    /// `remote`; an import endpoint of the local cluster yields to the local instance.
    fn fsm_destination<T>(
        &mut self,
        res: &Res<T>,
        policy: LbPolicy,
        mut remote: Vec<Draft>,
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
                    GroupWeight::single(1),
                )?);
                remote.retain(|d| d.key.cluster != local);
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
            slow_start: None,
            health_check: None,
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
                    if out.iter().any(|d: &Draft| d.key.cluster == key.cluster) {
                        continue;
                    }
                    out.push(self.fsm_import_draft(import, &key, port, ep, 1)?);
                }
            }
        }
        Ok(out)
    }

    /// A target for a `ServiceImport` endpoint, reached through its cluster's gateway at
    /// the endpoint's address and path.
    fn fsm_import_draft(
        &mut self,
        import: &Res<ServiceImportSpec>,
        key: &ClusterKey,
        port: &ImportPort,
        ep: &ImportEndpoint,
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
            protocol: port_protocol(port.name.as_deref(), None, port.app_protocol.as_deref()),
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

    /// The ServiceAccount the `ServiceExport` of `namespace/name` in `cluster` names.
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
                    protocol: UpstreamProtocol::Http1,
                    source: c.id(),
                })
            });
        let instance = EndpointKey {
            cluster: key.cluster.clone(),
            namespace: res.namespace.clone(),
            service: res.name.clone(),
            subset: Vec::new(),
        };
        self.upstream(&envoy_cluster, instance.clone(), gateway)?;
        self.upstream(&envoy_cluster, instance.clone(), address)?;
        Ok(Draft {
            key: instance,
            subset: None,
            backend: Backend::Gateway,
            group: GroupWeight::single(weight),
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
        gtp: &Res<GlobalTrafficPolicySpec>,
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
                    return self.fsm_import_draft(import, key, port, ep, weight);
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
}
