//! Gloo Mesh: `TrafficPolicy` `trafficShift` (v1alpha2), `VirtualDestination` and
//! `RouteTable` (v2).

use std::collections::{BTreeMap, BTreeSet};

use xcluster_filter::config::{
    DestinationConfig, HeaderMatchConfig, LbPolicy, OutlierDetectionConfig, PathMatchConfig,
    RouteConfig, RouteMatchConfig,
};

use super::{service_hosts, Builder, Draft, EndpointKey, GroupWeight, Subset};
use crate::kinds::{gloo, selects, Res, Resources};
use crate::load::Error;

impl Builder<'_> {
    /// A destination per service a `TrafficPolicy` selects, its `trafficShift`
    /// destinations as targets with their weights.
    pub(super) fn gloo_traffic_policies(&mut self) -> Result<(), Error> {
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
                        drafts.push(self.service_draft(
                            &k.cluster_name,
                            &k.namespace,
                            &k.name,
                            labels_subset(&k.subset),
                            GroupWeight::single(u64::from(d.weight)),
                        )?);
                    }
                    let dest = DestinationConfig {
                        name: format!("{}/{}", svc.namespace, svc.name),
                        hosts: service_hosts(&svc.namespace, &svc.name),
                        policy: LbPolicy::ActiveActive,
                        sticky: None,
                        outlier_detection: None,
                        slow_start: None,
                        health_check: None,
                        targets: Vec::new(),
                    };
                    self.add_destination(tp, dest, drafts, true)?;
                }
            }
        }
        Ok(())
    }

    /// Targets of a VirtualDestination: every selected Service instance, sharing `weight`.
    fn vd_drafts(
        &mut self,
        vd: &Res<gloo::VirtualDestinationSpec>,
        weight: u64,
    ) -> Result<Vec<Draft>, Error> {
        let res = self.res;
        let mut found = Vec::new();
        for sel in &vd.spec.services {
            for svc in &res.services {
                // The cluster last: an unlabelled Service the selector does not pick
                // needs no --local-cluster.
                let picked = (sel.labels.is_empty() || selects(&sel.labels, &svc.labels))
                    && sel.name.as_ref().is_none_or(|n| *n == svc.name)
                    && sel.namespace.as_ref().is_none_or(|n| *n == svc.namespace)
                    && !(sel.labels.is_empty() && sel.name.is_none());
                if !picked {
                    continue;
                }
                let cluster = self.cluster_of(svc)?;
                if sel.cluster.as_ref().is_some_and(|c| *c != cluster) {
                    continue;
                }
                let instance = EndpointKey {
                    cluster,
                    namespace: svc.namespace.clone(),
                    service: svc.name.clone(),
                    subset: Vec::new(),
                };
                if !found.contains(&instance) {
                    found.push(instance);
                }
            }
        }
        if found.is_empty() {
            return Err(vd.error(
                "spec.services",
                "selects no Service: give the Services it selects (labelled topology.istio.io/cluster when remote)",
            ));
        }
        let group = GroupWeight {
            weight,
            size: found.len() as u64,
        };
        found
            .iter()
            .map(|k| self.service_draft(&k.cluster, &k.namespace, &k.service, None, group))
            .collect()
    }

    /// A destination per `VirtualDestination`, for its hosts.
    pub(super) fn virtual_destinations(&mut self) -> Result<(), Error> {
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
                slow_start: None,
                health_check: None,
                targets: Vec::new(),
            };
            self.add_destination(vd, dest, drafts, true)?;
        }
        Ok(())
    }

    /// Routes per `RouteTable` entry: to the `VirtualDestination` it names alone, else to
    /// a destination of its own over its `forwardTo` destinations.
    pub(super) fn route_tables(&mut self) -> Result<(), Error> {
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
                    let is_vd = res
                        .virtual_destinations
                        .iter()
                        .any(|v| v.namespace == ns && v.name == d.reference.name);
                    if !is_vd {
                        return Err(rt.error(
                            &format!("{rpath}.forwardTo.destinations[0].ref"),
                            format!("VirtualDestination {name} is not in the input"),
                        ));
                    }
                    name
                } else {
                    let drafts = self.forward_to_drafts(rt, &rpath, fwd)?;
                    let dest = DestinationConfig {
                        name: route_name.clone(),
                        hosts: Vec::new(),
                        policy: LbPolicy::ActiveActive,
                        sticky: None,
                        outlier_detection: None,
                        slow_start: None,
                        health_check: None,
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
                    self.add_route(
                        &hosts,
                        RouteConfig {
                            name,
                            route_match,
                            destination: destination.clone(),
                            replay: None,
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Targets of a route's `forwardTo`: each destination (a Service, one cluster's or
    /// every cluster's, or a VirtualDestination's instances) with its weight.
    fn forward_to_drafts(
        &mut self,
        rt: &Res<gloo::RouteTableSpec>,
        rpath: &str,
        fwd: &gloo::ForwardTo,
    ) -> Result<Vec<Draft>, Error> {
        let res = self.res;
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
                    let subset = labels_subset(&d.subset);
                    match &d.reference.cluster {
                        Some(c) => drafts.push(self.service_draft(
                            c,
                            &ns,
                            &d.reference.name,
                            subset,
                            GroupWeight::single(weight),
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
        Ok(drafts)
    }
}

/// Gloo's subset: pod labels, none when empty.
fn labels_subset(labels: &BTreeMap<String, String>) -> Option<Subset> {
    (!labels.is_empty()).then(|| Subset {
        name: None,
        labels: labels.clone(),
        traffic_policy: None,
    })
}

/// The local cluster when the input implies it: the one `clusterName` every
/// `TrafficPolicy`'s `kubeServiceRefs` name.
pub(super) fn infer_local_cluster(res: &Resources) -> Option<String> {
    let clusters: BTreeSet<&str> = res
        .traffic_policies
        .iter()
        .flat_map(|tp| &tp.spec.destination_selector)
        .flat_map(|s| s.kube_service_refs.iter().flat_map(|r| &r.services))
        .filter_map(|s| s.cluster_name.as_deref())
        .collect();
    (clusters.len() == 1).then(|| clusters.into_iter().next().unwrap_or_default().to_string())
}

/// A RouteTable matcher as a route match; no hosts is any host.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::parse_documents;

    fn policy(cluster: &str) -> String {
        format!(
            "apiVersion: networking.mesh.gloo.solo.io/v1alpha2
kind: TrafficPolicy
metadata: {{name: p-{cluster}, namespace: gloo-mesh}}
spec:
  destinationSelector:
  - kubeServiceRefs:
      services: [{{name: reviews, namespace: bookinfo, clusterName: {cluster}}}]
"
        )
    }

    fn local_cluster_of(yaml: &str) -> Option<String> {
        let docs = parse_documents("in.yaml", yaml).unwrap();
        infer_local_cluster(&Resources::from_docs(&docs).unwrap())
    }

    #[test]
    fn the_local_cluster_is_the_one_traffic_policies_select_in() {
        let one = policy("mgmt");
        assert_eq!(local_cluster_of(&one).as_deref(), Some("mgmt"));
        let same = format!("{one}---\n{}", policy("mgmt").replace("p-mgmt", "q"));
        assert_eq!(local_cluster_of(&same).as_deref(), Some("mgmt"));
        let two = format!("{one}---\n{}", policy("remote"));
        assert_eq!(local_cluster_of(&two), None);
        assert_eq!(
            local_cluster_of("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"),
            None
        );
    }
}
