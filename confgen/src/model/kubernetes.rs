//! Kubernetes: the clusters a `Service` runs in, its ServiceAccount (from the `Deployment`
//! it selects), its address (from `EndpointSlice`s), and the targets for its instances.

use std::collections::BTreeSet;

use xcluster_filter::config::ServiceAccountRef;

use super::{envoy_cluster_name, Address, Builder, Draft, EndpointKey, GroupWeight, Subset};
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

    /// The clusters a Service named `namespace/service` is known in (from `Service`
    /// and `EndpointSlice` resources).
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
