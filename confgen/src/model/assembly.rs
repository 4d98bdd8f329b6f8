//! Assembly: drafts become the plugin config. Destinations and their routes are
//! collected, targets named and their weights made integers, upstreams registered.

use std::collections::{BTreeMap, BTreeSet};

use xcluster_envoy::UpstreamProtocol;
use xcluster_filter::config::{
    AccessConfig, DestinationConfig, LocalConfig, PluginConfig, ReplayConfig, RouteConfig,
    RouteMatchConfig, SlowStartConfig, TargetConfig, CONFIG_VERSION, DEFAULT_CLUSTER_HEADER,
};

use super::{health_check, Address, Builder, Draft, EndpointKey, Model};
use crate::kinds::Res;
use crate::load::Error;

impl Builder<'_> {
    /// Registers an upstream; two different addresses for one upstream are an error. It
    /// speaks HTTP/2 when any port that reaches it does.
    pub(super) fn upstream(
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
                Some(old) => {
                    if addr.protocol == UpstreamProtocol::Http2 {
                        up.address = Some(Address {
                            protocol: UpstreamProtocol::Http2,
                            ..old.clone()
                        });
                    }
                }
                None => up.address = Some(addr),
            }
        }
        Ok(())
    }

    /// Adds a destination whose targets are `drafts`; with `catch_all`, also a route
    /// sending every request for its hosts to it. Destination names are unique.
    pub(super) fn add_destination<T>(
        &mut self,
        res: &Res<T>,
        mut config: DestinationConfig,
        drafts: Vec<Draft>,
        catch_all: bool,
    ) -> Result<(), Error> {
        if let Some(other) = self
            .destinations
            .iter()
            .find(|d| d.config.name == config.name)
        {
            return Err(res.error(
                "metadata.name",
                format!(
                    "destination name {} is already used by {}",
                    config.name, other.origin
                ),
            ));
        }
        config.hosts.dedup();
        if catch_all {
            let route = RouteConfig {
                name: config.name.clone(),
                route_match: RouteMatchConfig::default(),
                destination: config.name.clone(),
                replay: None,
            };
            self.add_route(&config.hosts, route);
        }
        self.destinations.push(DestinationDraft {
            config,
            targets: drafts,
            origin: res.id(),
        });
        Ok(())
    }

    /// Whether a destination named `name` has been added.
    pub(super) fn has_destination(&self, name: &str) -> bool {
        self.destinations.iter().any(|d| d.config.name == name)
    }

    /// Adds a route for `hosts` (the hosts its match names, or its destination's).
    pub(super) fn add_route(&mut self, hosts: &[String], route: RouteConfig) {
        self.routes.push(RouteDraft {
            specificity: Specificity::of(hosts),
            route,
        });
    }

    /// The model: each destination's drafts become named, weighted targets; routes are
    /// ordered and their names made unique.
    pub(super) fn finish(mut self, access: AccessConfig) -> Result<Model, Error> {
        let mut destinations = Vec::new();
        let mut origins = BTreeMap::new();
        let mut target_keys = BTreeMap::new();
        let mut backends = BTreeMap::new();
        for draft in std::mem::take(&mut self.destinations) {
            let DestinationDraft {
                config: mut dest,
                targets: drafts,
                origin,
            } = draft;
            if drafts.is_empty() {
                return Err(Error::plain(format!(
                    "{origin}: {} has no target",
                    dest.name
                )));
            }
            dest.targets = name_targets(&drafts)?;
            for (t, d) in dest.targets.iter().zip(&drafts) {
                let id = (dest.name.clone(), t.name.clone());
                target_keys.insert(id.clone(), d.key.clone());
                backends.insert(id, d.backend.clone());
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
        health_check::apply(&mut destinations, &self.health_checks)?;
        // A target that comes back after an ejection or failed health checks takes traffic
        // back over 30 s, and one failure meanwhile ejects it again: a flapping cluster
        // does not flap traffic.
        for dest in &mut destinations {
            if (dest.outlier_detection.is_some() || dest.health_check.is_some())
                && dest.slow_start.is_none()
                && dest.targets.len() > 1
            {
                dest.slow_start = Some(SlowStartConfig {
                    window_ms: 30_000,
                    min_weight_percent: 10,
                });
            }
        }
        let mut routes = ordered_routes(std::mem::take(&mut self.routes));
        // Failover that loses nothing: a route to several targets replays a failed
        // idempotent request on the next one (the filter's defaults).
        for route in &mut routes {
            let targets = destinations
                .iter()
                .find(|d| d.name == route.destination)
                .map_or(0, |d| d.targets.len());
            if targets > 1 && route.replay.is_none() {
                route.replay = Some(ReplayConfig::default());
            }
        }
        let local = (self.local_config != LocalConfig::default()).then_some(self.local_config);
        Ok(Model {
            config: PluginConfig {
                version: CONFIG_VERSION,
                cluster_header: Some(DEFAULT_CLUSTER_HEADER.to_string()),
                decision_header: None,
                clear_route_cache: self.clear_route_cache,
                local,
                unmatched: Default::default(),
                path_normalization: Default::default(),
                identity: Default::default(),
                access,
                routes,
                destinations,
            },
            upstreams: self.upstreams,
            origins,
            target_keys,
            backends,
            warnings: self.warnings,
        })
    }
}

/// A destination before assembly: its config (targets still empty), the drafts that
/// become its targets, and the resource that defined it.
pub(super) struct DestinationDraft {
    config: DestinationConfig,
    targets: Vec<Draft>,
    origin: String,
}

/// A route and how specific its hosts are.
pub(super) struct RouteDraft {
    specificity: Specificity,
    route: RouteConfig,
}

/// How specific a route's hosts are: routes are ordered by it, as Envoy orders virtual
/// hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    /// Some host is exact.
    Exact,
    /// The most specific host is a suffix wildcard (`*.example.com`).
    Suffix,
    /// Any host (`*`, or none given).
    Any,
}

impl Specificity {
    /// The most specific of `hosts`.
    fn of(hosts: &[String]) -> Self {
        hosts
            .iter()
            .map(|h| {
                if h == "*" {
                    Specificity::Any
                } else if h.starts_with("*.") {
                    Specificity::Suffix
                } else {
                    Specificity::Exact
                }
            })
            .min()
            .unwrap_or(Specificity::Any)
    }
}

/// The routes, most specific hosts first (stable otherwise); a name already taken gets
/// `#2`, `#3`, ….
fn ordered_routes(mut routes: Vec<RouteDraft>) -> Vec<RouteConfig> {
    routes.sort_by_key(|r| r.specificity);
    let mut seen = BTreeSet::new();
    routes
        .into_iter()
        .map(|RouteDraft { mut route, .. }| {
            let base = route.name.clone();
            let mut n = 1;
            while !seen.insert(route.name.clone()) {
                n += 1;
                route.name = format!("{base}#{n}");
            }
            route
        })
        .collect()
}

/// Greatest common divisor.
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
        .map(|d| (d.key.namespace.as_str(), d.key.service.as_str()))
        .collect();
    let lcm = drafts.iter().try_fold(1u64, |acc, d| {
        let size = d.group.size.max(1);
        (acc / gcd(acc, size)).checked_mul(size)
    });
    let mut out = Vec::new();
    for d in drafts {
        let mut name = d.key.cluster.clone();
        if services.len() > 1 {
            name = format!("{name}/{}", d.key.service);
        }
        if let Some(s) = &d.subset {
            name = format!("{name}/{s}");
        }
        let weight = lcm
            .and_then(|lcm| d.group.weight.checked_mul(lcm))
            .map(|w| w / d.group.size.max(1))
            .and_then(|w| u32::try_from(w).ok())
            .ok_or_else(|| {
                Error::plain(format!(
                    "target {name}: weight {} shared by {} is too large",
                    d.group.weight, d.group.size
                ))
            })?;
        if out.iter().any(|t: &TargetConfig| t.name == name) {
            return Err(Error::plain(format!(
                "target {name} appears twice in one destination"
            )));
        }
        out.push(TargetConfig {
            name,
            cluster: d.key.cluster.clone(),
            cluster_key: d.cluster_key.clone(),
            envoy_cluster: d.envoy_cluster.clone(),
            subset: d.subset.clone().filter(|_| !d.key.subset.is_empty()),
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

#[cfg(test)]
mod tests {
    use xcluster_filter::config::{LocalityConfig, ServiceAccountRef};

    use super::*;
    use crate::model::{Backend, GroupWeight};

    fn draft(cluster: &str, service: &str, subset: Option<&str>, group: GroupWeight) -> Draft {
        Draft {
            key: EndpointKey {
                cluster: cluster.into(),
                namespace: "ns".into(),
                service: service.into(),
                subset: subset.iter().map(|s| s.to_string()).collect(),
            },
            subset: subset.map(String::from),
            backend: Backend::Gateway,
            group,
            service_account: ServiceAccountRef {
                namespace: "ns".into(),
                name: "default".into(),
            },
            cluster_key: None,
            envoy_cluster: format!("xc|{cluster}|ns|{service}"),
            locality: LocalityConfig::default(),
            priority: None,
            authority: None,
            path_prefix: None,
        }
    }

    fn route(name: &str, hosts: &[&str]) -> RouteDraft {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        RouteDraft {
            specificity: Specificity::of(&hosts),
            route: RouteConfig {
                name: name.into(),
                route_match: RouteMatchConfig::default(),
                destination: name.into(),
                replay: None,
            },
        }
    }

    #[test]
    fn gcd_of_weights_and_group_sizes() {
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(7, 3), 1);
        assert_eq!(gcd(5, 0), 5);
        assert_eq!(gcd(0, 5), 5);
    }

    #[test]
    fn a_group_weight_is_spread_evenly_over_its_members() {
        // 75 over two clusters and 25 over three: scaled by lcm(2, 3) = 6.
        let east = GroupWeight {
            weight: 75,
            size: 2,
        };
        let west = GroupWeight {
            weight: 25,
            size: 3,
        };
        let drafts = [
            draft("a", "reviews", None, east),
            draft("b", "reviews", None, east),
            draft("c", "ratings", None, west),
            draft("d", "ratings", None, west),
            draft("e", "ratings", None, west),
        ];
        let targets = name_targets(&drafts).unwrap();
        let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
        assert_eq!(weights, [225, 225, 50, 50, 50]);
        // Two services: the service joins the cluster in the name.
        assert_eq!(targets[0].name, "a/reviews");
        assert_eq!(targets[4].name, "e/ratings");
    }

    #[test]
    fn targets_are_named_by_cluster_then_subset() {
        let one = GroupWeight::single(1);
        let drafts = [
            draft("east", "reviews", Some("v1"), one),
            draft("west", "reviews", None, one),
        ];
        let targets = name_targets(&drafts).unwrap();
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["east/v1", "west"]);
        assert_eq!(targets[0].subset.as_deref(), Some("v1"));
        assert_eq!(targets[1].subset, None);
    }

    #[test]
    fn duplicate_and_oversized_targets_are_errors() {
        let one = GroupWeight::single(1);
        let twice = [draft("east", "r", None, one), draft("east", "r", None, one)];
        let e = name_targets(&twice).unwrap_err().to_string();
        assert!(e.contains("target east appears twice"), "{e}");
        let huge = [draft("east", "r", None, GroupWeight::single(1 << 32))];
        let e = name_targets(&huge).unwrap_err().to_string();
        assert!(
            e.contains("target east: weight 4294967296 shared by 1 is too large"),
            "{e}"
        );
        // Regression: `group.weight * lcm` overflowed u64 (a panic in debug builds).
        let overflow = [
            draft(
                "a",
                "r",
                None,
                GroupWeight {
                    weight: u64::MAX,
                    size: 2,
                },
            ),
            draft("b", "r", None, GroupWeight { weight: 1, size: 3 }),
        ];
        let e = name_targets(&overflow).unwrap_err().to_string();
        assert!(e.contains("target a: weight"), "{e}");
    }

    #[test]
    fn routes_go_exact_then_suffix_then_any_with_unique_names() {
        let routes = ordered_routes(vec![
            route("any", &["*"]),
            route("none", &[]),
            route("suffix", &["*.example.com"]),
            route("exact", &["*", "a.example.com"]),
            route("exact", &["b.example.com"]),
            route("exact", &["c.example.com"]),
        ]);
        let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["exact", "exact#2", "exact#3", "suffix", "any", "none"]
        );
    }
}
