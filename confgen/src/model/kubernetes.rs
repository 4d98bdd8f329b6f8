//! Kubernetes: the clusters a `Service` runs in, its ServiceAccount (from the `Deployment`
//! it selects), its port, its address (from `EndpointSlice`s), the targets for its
//! instances, and a destination for every `Service` no other source routes.

use std::collections::BTreeSet;

use xcluster_filter::config::{DestinationConfig, LbPolicy, ServiceAccountRef};

use super::{
    envoy_cluster_name, service_hosts, Address, Backend, Builder, Draft, EndpointKey, GroupWeight,
    Subset,
};
use crate::kinds::{k8s, port_protocol, selects, Res};
use crate::load::Error;

impl Builder<'_> {
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

    /// The clusters a Service named `namespace/service` is known in: from `Service` and
    /// `EndpointSlice` resources, and the local cluster when `--endpoint` declares a local
    /// instance.
    pub(super) fn service_clusters(
        &self,
        namespace: &str,
        service: &str,
    ) -> Result<BTreeSet<String>, Error> {
        let mut out = BTreeSet::new();
        for svc in &self.res.services {
            if svc.namespace == namespace && svc.name == service {
                out.insert(self.cluster_of(svc)?);
            }
        }
        for slice in &self.res.endpoint_slices {
            if is_slice_of(slice, namespace, service) {
                out.insert(self.cluster_of(slice)?);
            }
        }
        if self
            .declared
            .contains(&(namespace.to_string(), service.to_string()))
        {
            out.extend(self.local.clone());
        }
        Ok(out)
    }

    /// The HTTP port of `namespace/service`: its `Service` in `cluster`, else in any
    /// cluster (a service has the same ports everywhere).
    fn service_port(&self, cluster: &str, namespace: &str, service: &str) -> Option<u16> {
        let mut ports = self
            .res
            .services
            .iter()
            .filter(|s| s.namespace == namespace && s.name == service)
            .map(|s| {
                let here = s.cluster_label().or(self.local.as_deref()) == Some(cluster);
                (!here, s.spec.http_port())
            })
            .filter(|(_, p)| p.is_some())
            .collect::<Vec<_>>();
        ports.sort_by_key(|(elsewhere, _)| *elsewhere);
        ports.first().and_then(|(_, p)| *p)
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
            if !is_slice_of(slice, namespace, service) || self.cluster_of(slice)? != cluster {
                continue;
            }
            let port = slice.spec.ports.first();
            let host = slice
                .spec
                .endpoints
                .iter()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
                .find_map(|e| e.addresses.first());
            if let (Some(host), Some(port)) = (host, port) {
                return Ok(Some(Address {
                    host: host.clone(),
                    port: port.port,
                    protocol: port_protocol(
                        port.name.as_deref(),
                        None,
                        port.app_protocol.as_deref(),
                    ),
                    source: slice.id(),
                }));
            }
        }
        Ok(None)
    }

    /// A target for an instance of a Kubernetes service running in `cluster`.
    pub(super) fn service_draft(
        &mut self,
        cluster: &str,
        namespace: &str,
        service: &str,
        subset: Option<Subset>,
        group: GroupWeight,
    ) -> Result<Draft, Error> {
        let account = self
            .account_of(cluster, namespace, service)?
            .unwrap_or_else(|| "default".to_string());
        let subset_name = subset.as_ref().map(Subset::name);
        let key = EndpointKey {
            cluster: cluster.to_string(),
            namespace: namespace.to_string(),
            service: service.to_string(),
            subset: subset.as_ref().map(Subset::spellings).unwrap_or_default(),
        };
        let envoy_cluster = envoy_cluster_name(cluster, namespace, service, subset_name.as_deref());
        let address = if subset.is_none() {
            self.slice_address(cluster, namespace, service)?
        } else {
            None
        };
        self.upstream(&envoy_cluster, key.clone(), address)?;
        Ok(Draft {
            key,
            subset: subset_name,
            backend: Backend::Service {
                port: self.service_port(cluster, namespace, service),
                subset,
            },
            group,
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
    pub(super) fn instances<T>(
        &mut self,
        res: &Res<T>,
        path: &str,
        namespace: &str,
        service: &str,
        subset: Option<Subset>,
        weight: u64,
    ) -> Result<Vec<Draft>, Error> {
        let mut clusters = self.service_clusters(namespace, service)?;
        if clusters.is_empty() {
            clusters.insert(self.local_name(res, path)?);
        }
        let group = GroupWeight {
            weight,
            size: clusters.len() as u64,
        };
        clusters
            .iter()
            .map(|c| self.service_draft(c, namespace, service, subset.clone(), group))
            .collect()
    }

    /// A destination per `Service` that no other source routes (no policy, split,
    /// VirtualService or import claims it): its four host names, every instance the input
    /// knows, `ActiveActive` (as Istio spreads a service over its clusters).
    pub(super) fn kubernetes_services(&mut self) -> Result<(), Error> {
        let res = self.res;
        let mut seen = BTreeSet::new();
        for svc in &res.services {
            let (namespace, name) = (svc.namespace.as_str(), svc.name.as_str());
            if !seen.insert((namespace, name))
                || self
                    .claims
                    .contains_key(&format!("service {namespace}/{name}"))
            {
                continue;
            }
            let dest_name = format!("{namespace}/{name}");
            let unlabelled = res
                .services
                .iter()
                .any(|s| s.namespace == namespace && s.name == name && s.cluster_label().is_none());
            if unlabelled && self.local.is_none() {
                self.warnings.push(format!(
                    "{}: describes the local cluster, whose name is unknown: pass \
                     --local-cluster NAME to route to it; skipped",
                    svc.id()
                ));
                continue;
            }
            if self.has_destination(&dest_name) {
                self.warnings.push(format!(
                    "{}: the destination name {dest_name} is taken; its hosts are not routed",
                    svc.id()
                ));
                continue;
            }
            let drafts = self.instances(svc, "metadata.labels", namespace, name, None, 1)?;
            let dest = DestinationConfig {
                name: dest_name,
                hosts: service_hosts(namespace, name),
                policy: LbPolicy::ActiveActive,
                sticky: None,
                outlier_detection: None,
                slow_start: None,
                health_check: None,
                targets: Vec::new(),
            };
            self.add_destination(svc, dest, drafts, true)?;
        }
        Ok(())
    }
}

/// Whether `slice` holds endpoints of the Service `namespace/service`.
fn is_slice_of(slice: &Res<k8s::EndpointSlice>, namespace: &str, service: &str) -> bool {
    slice.namespace == namespace
        && slice
            .labels
            .get(k8s::SERVICE_NAME_LABEL)
            .map(String::as_str)
            == Some(service)
}
