//! Every stat the filter keeps, declared in one place (as Envoy's `ALL_RBAC_FILTER_STATS`),
//! and their flat layout for a policy: the adapter defines them in layout order once per
//! configure and bumps a stat by its index.

use crate::policy::Policy;

/// Declares a scope's stats: the enum, `ALL` in layout order, and each stat's name.
macro_rules! stats {
    ($(#[$meta:meta])* pub enum $scope:ident { $($(#[$doc:meta])* $stat:ident => $name:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $scope {
            $($(#[$doc])* $stat,)*
        }

        impl $scope {
            /// Every stat of the scope, in layout order.
            pub const ALL: &'static [Self] = &[$(Self::$stat,)*];

            /// The stat's name within its scope.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$stat => $name,)*
                }
            }
        }
    };
}

stats! {
    /// Stats of the whole plugin: `xcluster.<name>`.
    pub enum GlobalStat {
        /// Requests that matched no route.
        Unmatched => "unmatched",
        /// Requests answered 500 because the filter could not decide (a host failure or
        /// a re-entered callback).
        InternalError => "internal_error",
    }
}

stats! {
    /// Stats of each destination: `xcluster.dest.<destination>.<name>`.
    pub enum DestinationStat {
        /// Denied: no acceptable caller identity.
        DeniedNoIdentity => "denied.no_identity",
        /// Denied: no TrafficTarget allows the caller this request.
        DeniedNotAllowed => "denied.not_allowed",
        /// Dry-run mode: would have been denied, forwarded.
        DryRunDenied => "dry_run_denied",
        /// No target available under the policy (503).
        NoHealthy => "no_healthy",
    }
}

stats! {
    /// Stats of each target: `xcluster.dest.<destination>.<name>.<target>`.
    pub enum TargetStat {
        /// Requests routed to the target.
        Routed => "routed",
        /// Times outlier detection ejected the target.
        Ejected => "ejected",
    }
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

    /// Every stat's full name, in layout order.
    pub fn names(&self, policy: &Policy) -> Vec<String> {
        let mut names = Vec::with_capacity(self.len());
        for s in GlobalStat::ALL {
            names.push(format!("xcluster.{}", s.name()));
        }
        for d in &policy.destinations {
            for s in DestinationStat::ALL {
                names.push(format!("xcluster.dest.{}.{}", d.name, s.name()));
            }
        }
        for d in &policy.destinations {
            for t in &d.targets {
                for s in TargetStat::ALL {
                    names.push(format!("xcluster.dest.{}.{}.{}", d.name, s.name(), t.name));
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
        let names = layout.names(&p);
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
            "xcluster.unmatched"
        );
        assert_eq!(
            at(Stat::Destination(DestinationStat::NoHealthy, 1)),
            "xcluster.dest.b.no_healthy"
        );
        assert_eq!(
            at(Stat::Target(TargetStat::Ejected, 1, 2)),
            "xcluster.dest.b.ejected.r"
        );
        assert_eq!(
            at(Stat::Target(TargetStat::Routed, 0, 0)),
            "xcluster.dest.a.routed.x"
        );
    }
}
