//! Every stat the filter keeps, declared in one place (as Envoy's `ALL_RBAC_FILTER_STATS`),
//! and their flat layout for a policy: the adapter defines them in layout order once per
//! configure and bumps a stat by its index.
//!
//! Names are Prometheus-style families with Istio's tag encoding,
//! `xcluster_requests_total.destination=.=shop;.;target=.=west;.;`: Envoy's
//! `stats_config.stats_tags` with regexes `(<tag>=\.=(.*?);\.;)` (what Istio generates for
//! `extraStatTags`) turn the tags into labels, so `/stats/prometheus` shows
//! `xcluster_requests_total{destination="shop",target="west"}`.

use crate::policy::Policy;

/// Whether a stat only grows or is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    /// Incremented by one per event.
    Counter,
    /// Set to the current value.
    Gauge,
}

/// Declares a scope's stats: the enum, `ALL` in layout order, and each stat's kind, family
/// name and fixed tags.
macro_rules! stats {
    ($(#[$meta:meta])* pub enum $scope:ident {
        $($(#[$doc:meta])* $stat:ident => $kind:ident $family:literal $([$tag:literal = $value:literal])?,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $scope {
            $($(#[$doc])* $stat,)*
        }

        impl $scope {
            /// Every stat of the scope, in layout order.
            pub const ALL: &'static [Self] = &[$(Self::$stat,)*];

            /// Counter or gauge.
            pub fn kind(self) -> StatKind {
                match self {
                    $(Self::$stat => StatKind::$kind,)*
                }
            }

            /// The metric family (the Prometheus name).
            pub fn family(self) -> &'static str {
                match self {
                    $(Self::$stat => $family,)*
                }
            }

            /// The tag the stat always carries besides its scope's, if any.
            pub fn tag(self) -> Option<(&'static str, &'static str)> {
                match self {
                    $(Self::$stat => None$(.or(Some(($tag, $value))))?,)*
                }
            }
        }
    };
}

stats! {
    /// Stats of the whole plugin.
    pub enum GlobalStat {
        /// Requests that matched no route.
        Unmatched => Counter "xcluster_unmatched_total",
        /// Requests answered 500 because the filter could not decide (a host failure or
        /// a re-entered callback).
        InternalError => Counter "xcluster_internal_errors_total",
        /// 400: a path with a `.` or `..` segment that a route would take.
        RejectedDotSegment => Counter "xcluster_rejected_paths_total" ["reason" = "dot_segment"],
        /// 400: a path with an escape an upstream would decode into another path.
        RejectedEncodedCharacter => Counter "xcluster_rejected_paths_total" ["reason" = "encoded_character"],
        /// 400: a path with a `\`.
        RejectedBackslash => Counter "xcluster_rejected_paths_total" ["reason" = "backslash"],
    }
}

stats! {
    /// Stats of each destination (tag `destination`).
    pub enum DestinationStat {
        /// Denied: no acceptable caller identity.
        DeniedNoIdentity => Counter "xcluster_denied_total" ["reason" = "no_identity"],
        /// Denied: no TrafficTarget allows the caller this request.
        DeniedNotAllowed => Counter "xcluster_denied_total" ["reason" = "not_allowed"],
        /// Dry-run mode: would have been denied for want of an identity, forwarded.
        DryRunNoIdentity => Counter "xcluster_dry_run_denied_total" ["reason" = "no_identity"],
        /// Dry-run mode: no TrafficTarget would allow it, forwarded.
        DryRunNotAllowed => Counter "xcluster_dry_run_denied_total" ["reason" = "not_allowed"],
        /// No target available under the policy (503).
        NoHealthy => Counter "xcluster_no_healthy_target_total",
        /// Requests that failed on every target they were replayed to.
        ReplayFailures => Counter "xcluster_replay_failures_total",
        /// Targets ejected now, as this worker last saw the shared table.
        EjectedTargets => Gauge "xcluster_ejected_targets",
    }
}

stats! {
    /// Stats of each target (tags `destination`, `target`).
    pub enum TargetStat {
        /// Requests routed to the target.
        Routed => Counter "xcluster_requests_total",
        /// Times outlier detection ejected the target.
        Ejected => Counter "xcluster_ejections_total",
        /// Failed requests replayed to the target.
        Replayed => Counter "xcluster_replays_total",
        /// Health-check probes of the target that failed.
        HealthCheckFailed => Counter "xcluster_health_check_failures_total",
        /// Times health checks found the target unhealthy.
        BecameUnhealthy => Counter "xcluster_health_transitions_total" ["to" = "unhealthy"],
        /// Times health checks found the target healthy again.
        BecameHealthy => Counter "xcluster_health_transitions_total" ["to" = "healthy"],
    }
}

/// A stat's full name: `family` then each tag as Istio encodes it (`.k=.=v;.;`).
pub fn stat_name(family: &str, tags: &[(&str, &str)]) -> String {
    let mut name = String::from(family);
    for (key, value) in tags {
        if name.len() == family.len() {
            name.push('.');
        }
        name.push_str(key);
        name.push_str("=.=");
        name.push_str(value);
        name.push_str(";.;");
    }
    name
}

/// One stat of a policy: its kind and, for scoped stats, the destination and target
/// indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// A plugin-wide stat.
    Global(GlobalStat),
    /// A stat of destination `.1`.
    Destination(DestinationStat, u32),
    /// A stat of target `.2` of destination `.1`.
    Target(TargetStat, u32, u32),
}

/// The flat index of every stat of a policy: globals, then each destination's stats, then
/// each target's.
#[derive(Debug, Clone)]
pub struct StatLayout {
    /// Per destination, the index of its first target among all targets.
    first_target: Vec<u32>,
    targets: u32,
}

impl StatLayout {
    /// The layout of `policy`'s stats.
    pub fn new(policy: &Policy) -> Self {
        let mut first_target = Vec::with_capacity(policy.destinations.len());
        let mut targets = 0u32;
        for d in &policy.destinations {
            first_target.push(targets);
            targets += d.targets.len() as u32;
        }
        Self {
            first_target,
            targets,
        }
    }

    /// How many stats there are.
    pub fn len(&self) -> usize {
        self.target_base() + self.targets as usize * TargetStat::ALL.len()
    }

    /// Whether there are none (never: the globals always exist).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn target_base(&self) -> usize {
        GlobalStat::ALL.len() + self.first_target.len() * DestinationStat::ALL.len()
    }

    /// The index of `stat` in layout order.
    pub fn index(&self, stat: Stat) -> usize {
        match stat {
            Stat::Global(s) => s as usize,
            Stat::Destination(s, d) => {
                GlobalStat::ALL.len() + d as usize * DestinationStat::ALL.len() + s as usize
            }
            Stat::Target(s, d, t) => {
                let first = self.first_target.get(d as usize).copied().unwrap_or(0);
                self.target_base() + (first + t) as usize * TargetStat::ALL.len() + s as usize
            }
        }
    }

    /// Every stat's kind and full name, in layout order.
    pub fn names(&self, policy: &Policy) -> Vec<(StatKind, String)> {
        let mut names = Vec::with_capacity(self.len());
        for s in GlobalStat::ALL {
            names.push((s.kind(), stat_name(s.family(), s.tag().as_slice())));
        }
        for d in &policy.destinations {
            for s in DestinationStat::ALL {
                let mut tags = vec![("destination", d.name.as_str())];
                tags.extend(s.tag());
                names.push((s.kind(), stat_name(s.family(), &tags)));
            }
        }
        for d in &policy.destinations {
            for t in &d.targets {
                for s in TargetStat::ALL {
                    let mut tags = vec![
                        ("destination", d.name.as_str()),
                        ("target", t.name.as_str()),
                    ];
                    tags.extend(s.tag());
                    names.push((s.kind(), stat_name(s.family(), &tags)));
                }
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn policy() -> Policy {
        let target = |name: &str| {
            format!(
                r#"{{"name": "{name}", "cluster": "c", "envoy_cluster": "e",
                   "service_account": {{"namespace": "n", "name": "s"}}}}"#
            )
        };
        let json = format!(
            r#"{{"version": 1, "destinations": [
                {{"name": "a", "targets": [{}]}},
                {{"name": "b", "targets": [{}, {}, {}]}}]}}"#,
            target("x"),
            target("p"),
            target("q"),
            target("r")
        );
        Policy::from_json(json.as_bytes(), &Default::default()).unwrap()
    }

    #[test]
    fn every_stat_has_the_index_of_its_name() {
        let p = policy();
        let layout = StatLayout::new(&p);
        let names: Vec<String> = layout.names(&p).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names.len(), layout.len());
        let mut all = Vec::new();
        all.extend(GlobalStat::ALL.iter().map(|&s| Stat::Global(s)));
        for (d, dest) in p.destinations.iter().enumerate() {
            all.extend(
                DestinationStat::ALL
                    .iter()
                    .map(|&s| Stat::Destination(s, d as u32)),
            );
            for t in 0..dest.targets.len() {
                all.extend(
                    TargetStat::ALL
                        .iter()
                        .map(|&s| Stat::Target(s, d as u32, t as u32)),
                );
            }
        }
        let mut indexes: Vec<usize> = all.iter().map(|&s| layout.index(s)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        assert_eq!(indexes, (0..layout.len()).collect::<Vec<_>>());
        let at = |s| names[layout.index(s)].as_str();
        assert_eq!(
            at(Stat::Global(GlobalStat::Unmatched)),
            "xcluster_unmatched_total"
        );
        assert_eq!(
            at(Stat::Destination(DestinationStat::NoHealthy, 1)),
            "xcluster_no_healthy_target_total.destination=.=b;.;"
        );
        assert_eq!(
            at(Stat::Destination(DestinationStat::DeniedNotAllowed, 0)),
            "xcluster_denied_total.destination=.=a;.;reason=.=not_allowed;.;"
        );
        assert_eq!(
            at(Stat::Target(TargetStat::Ejected, 1, 2)),
            "xcluster_ejections_total.destination=.=b;.;target=.=r;.;"
        );
        assert_eq!(
            at(Stat::Target(TargetStat::Routed, 0, 0)),
            "xcluster_requests_total.destination=.=a;.;target=.=x;.;"
        );
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "every stat has its own name");
    }
}
