//! Assembly: drafts become the plugin config. Destinations and their routes are
//! collected, targets named and their weights made integers, upstreams registered.

use std::collections::{BTreeMap, BTreeSet};

use xcluster_filter::config::{
    AccessConfig, DestinationConfig, LocalConfig, PluginConfig, RouteConfig, RouteMatchConfig,
    TargetConfig, CONFIG_VERSION, DEFAULT_CLUSTER_HEADER,
};

use super::{Address, Builder, Draft, EndpointKey, Model};
use crate::kinds::Res;
use crate::load::Error;

impl<'a> Builder<'a> {
    /// Registers an upstream; two different addresses for one upstream are an error.
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
                Some(_) => {}
                None => up.address = Some(addr),
            }
        }
        Ok(())
    }

    pub(super) fn add_destination<T>(
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

    pub(super) fn finish(mut self, access: AccessConfig) -> Result<Model, Error> {
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
pub(super) fn specificity(hosts: &[String]) -> u8 {
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
