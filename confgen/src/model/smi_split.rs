//! SMI `TrafficSplit`: a destination whose backends share the traffic by weight. A split
//! with `matches` (`v1alpha3`+) applies to the requests its route groups match; the
//! others go to the root service.

use xcluster_filter::config::{
    DestinationConfig, HeaderMatchConfig, LbPolicy, PathMatchConfig, RouteConfig, RouteMatchConfig,
};

use super::istio::HostRef;
use super::{service_hosts, Builder};
use crate::kinds::{smi, Res};
use crate::load::Error;

impl Builder<'_> {
    /// A destination per `TrafficSplit`, for its root service, over its backends'
    /// instances.
    pub(super) fn smi_splits(&mut self) -> Result<(), Error> {
        let res = self.res;
        for ts in &res.traffic_splits {
            let (ns, name) = match self.resolve_host(&ts.spec.service, &ts.namespace) {
                Some(HostRef::Service { namespace, name }) => (namespace, name),
                _ => {
                    return Err(ts.error(
                        "spec.service",
                        format!(
                            "{:?} is not a service name (NAME or NAME.NAMESPACE.svc.cluster.local)",
                            ts.spec.service
                        ),
                    ))
                }
            };
            self.claim(format!("service {ns}/{name}"), ts, "spec.service")?;
            if ts.spec.backends.is_empty() {
                return Err(ts.error(
                    "spec.backends",
                    "no backends: the split has nothing to send to",
                ));
            }
            let mut millis = Vec::new();
            for (i, b) in ts.spec.backends.iter().enumerate() {
                let w = b.weight.millis().ok_or_else(|| {
                    ts.error(
                        &format!("spec.backends[{i}].weight"),
                        "not an integer or quantity such as 500m (or too large)",
                    )
                })?;
                millis.push(w);
            }
            let mut drafts = Vec::new();
            let weights = backend_weights(&millis);
            for (i, (b, weight)) in ts.spec.backends.iter().zip(weights).enumerate() {
                let path = format!("spec.backends[{i}].service");
                drafts.extend(self.instances(ts, &path, &ns, &b.service, None, weight)?);
            }
            let hosts = service_hosts(&ns, &name);
            let root = format!("{ns}/{name}");
            if ts.spec.matches.is_empty() {
                let dest = split_destination(root, hosts);
                self.add_destination(ts, dest, drafts, true)?;
                continue;
            }
            let split = format!("{root}/{}", ts.name);
            let matches = self.split_matches(ts)?;
            self.add_destination(
                ts,
                split_destination(split.clone(), hosts.clone()),
                drafts,
                false,
            )?;
            for (match_name, route_match) in matches {
                let route = RouteConfig {
                    name: format!("{split}#{match_name}"),
                    route_match,
                    destination: split.clone(),
                    replay: None,
                };
                self.add_route(&hosts, route);
            }
            // Requests the route groups do not match go to the root service.
            let path = "spec.service";
            let instances = self.instances(ts, path, &ns, &name, None, 1)?;
            self.add_destination(ts, split_destination(root, hosts), instances, true)?;
        }
        Ok(())
    }

    /// The route matches of a split's `matches`: one per match of each route group.
    fn split_matches(
        &self,
        ts: &Res<smi::TrafficSplitSpec>,
    ) -> Result<Vec<(String, RouteMatchConfig)>, Error> {
        let mut out = Vec::new();
        for (i, m) in ts.spec.matches.iter().enumerate() {
            let path = format!("spec.matches[{i}]");
            if m.kind != "HTTPRouteGroup" {
                return Err(ts.error(
                    &format!("{path}.kind"),
                    format!("{} matches are not supported; use HTTPRouteGroup", m.kind),
                ));
            }
            let group = self
                .res
                .route_groups
                .iter()
                .find(|g| g.namespace == ts.namespace && g.name == m.name)
                .ok_or_else(|| {
                    ts.error(
                        &format!("{path}.name"),
                        format!(
                            "names HTTPRouteGroup {}/{}, which is not in the input",
                            ts.namespace, m.name
                        ),
                    )
                })?;
            for hm in &group.spec.matches {
                out.push((format!("{}/{}", m.name, hm.name), route_match(hm)));
            }
        }
        Ok(out)
    }
}

/// An `ActiveActive` destination for a split or its root service.
fn split_destination(name: String, hosts: Vec<String>) -> DestinationConfig {
    DestinationConfig {
        name,
        hosts,
        policy: LbPolicy::ActiveActive,
        sticky: None,
        outlier_detection: None,
        slow_start: None,
        health_check: None,
        targets: Vec::new(),
    }
}

/// An HTTPRouteGroup match as a route condition: the path regex is anchored at the start
/// only (SMI), header regexes match whole values, `*` is every method.
fn route_match(m: &smi::HttpMatch) -> RouteMatchConfig {
    let methods = if m.methods.iter().any(|x| x == "*") {
        Vec::new()
    } else {
        m.methods.clone()
    };
    let headers = m
        .headers
        .as_ref()
        .map(smi::Headers::merged)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, regex)| HeaderMatchConfig {
            name: name.to_ascii_lowercase(),
            exact: None,
            regex: Some(regex),
        })
        .collect();
    RouteMatchConfig {
        hosts: Vec::new(),
        path: m
            .path_regex
            .as_ref()
            .map(|r| PathMatchConfig::Regex(format!("(?:{r}).*"))),
        methods,
        headers,
    }
}

/// Backend weights from their thousandths: whole units when every weight is whole
/// (`75`, not `75000`), else thousandths.
fn backend_weights(millis: &[u64]) -> Vec<u64> {
    let scale = if millis.iter().all(|w| w % 1000 == 0) {
        1000
    } else {
        1
    };
    millis.iter().map(|w| w / scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_weights_stay_whole_and_fractions_stay_thousandths() {
        assert_eq!(backend_weights(&[75_000, 25_000]), [75, 25]);
        assert_eq!(backend_weights(&[0, 1000]), [0, 1]);
        assert_eq!(backend_weights(&[500, 1000]), [500, 1000]);
    }

    #[test]
    fn route_group_matches_become_route_conditions() {
        let m: smi::HttpMatch = serde_json::from_str(
            r#"{"name": "ff", "pathRegex": "/api|/v2", "methods": ["GET"],
                "headers": {"User-Agent": ".*Firefox.*"}}"#,
        )
        .unwrap();
        let r = route_match(&m);
        assert_eq!(
            r.path,
            Some(PathMatchConfig::Regex("(?:/api|/v2).*".into()))
        );
        assert_eq!(r.methods, ["GET"]);
        assert_eq!(r.headers[0].name, "user-agent");
        assert_eq!(r.headers[0].regex.as_deref(), Some(".*Firefox.*"));
        let any: smi::HttpMatch =
            serde_json::from_str(r#"{"name": "all", "methods": ["*"]}"#).unwrap();
        let r = route_match(&any);
        assert!(r.methods.is_empty() && r.path.is_none() && r.headers.is_empty());
    }
}
