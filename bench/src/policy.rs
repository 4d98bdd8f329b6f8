//! The benchmark policy, generated for N authorization rules, in both forms: xcluster's
//! plugin config and the equivalent native Envoy config (RBAC filter + `weighted_clusters`).
//!
//! Rule `i` of `n` allows the caller [`CALLER`] (sent in header [`CALLER_HEADER`], so both
//! forms run plaintext and authorize on the same header) to reach the destination's
//! ServiceAccount with one path condition and a method set. Kinds cycle regex, exact,
//! prefix counting back from the last rule, so the last rule is always a regex rule:
//!
//! | kind   | SMI `path_regex`            | RBAC `url_path`                        | methods   |
//! |--------|-----------------------------|----------------------------------------|-----------|
//! | regex  | `/r<i>/api/v[0-9]+/items/`  | `safe_regex /r<i>/api/v[0-9]+/items/.*` | GET, HEAD |
//! | exact  | `^/r<i>/exact$`             | `exact /r<i>/exact`                    | GET       |
//! | prefix | `/r<i>/prefix/`             | `prefix /r<i>/prefix/`                 | GET, POST |
//!
//! SMI path regexes are anchored at the start only, RBAC's `safe_regex` must match the
//! whole path, hence the trailing `.*`. Every rule has its own `/r<i>/` segment, so a
//! request for [`allowed_path`] matches the last rule and no other, and [`DENIED_PATH`]
//! matches none: both make RBAC evaluate every permission.

use serde_json::{json, Value};
use xcluster_filter::config::{
    AccessConfig, AccessMode, DestinationConfig, HealthCheckConfig, HttpMatchConfig,
    IdentityConfig, LbPolicy, LocalityConfig, OutlierDetectionConfig, PathNormalization,
    PluginConfig, ReplayConfig, RouteConfig, RouteGroupConfig, RouteMatchConfig, ServiceAccountRef,
    SlowStartConfig, TargetConfig, TrafficRuleConfig, TrafficTargetConfig, Unmatched,
    CONFIG_VERSION,
};

/// The request header that carries the caller identity in both arms.
pub const CALLER_HEADER: &str = "x-caller";

/// The allowed caller's identity (SPIFFE form of `bench/client`).
pub const CALLER: &str = "spiffe://cluster.local/ns/bench/sa/client";

/// The path arm (d)'s active health checks probe (the upstream answers every path 200).
pub const HEALTH_PATH: &str = "/healthz";

/// A path that no rule allows.
pub const DENIED_PATH: &str = "/nomatch/api/v2/items/42";

/// Envoy clusters of the destination's targets and their weights (the 75/15/10 split).
pub const TARGETS: [(&str, u32); 3] = [("c0", 75), ("c1", 15), ("c2", 10)];

/// Matches per HTTPRouteGroup (the generated groups are `bench/routes-<g>`).
pub const MATCHES_PER_GROUP: usize = 100;

/// The path condition kind of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A regex with a literal prefix.
    Regex,
    /// One exact path.
    Exact,
    /// A path prefix.
    Prefix,
}

/// One authorization rule, in the terms of both forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Position in the policy.
    pub index: usize,
    /// Path condition kind.
    pub kind: PathKind,
    /// Allowed methods.
    pub methods: &'static [&'static str],
}

impl Rule {
    /// The SMI HTTPRouteGroup `pathRegex` (anchored at the start only).
    pub fn path_regex(&self) -> String {
        let i = self.index;
        match self.kind {
            PathKind::Regex => format!("/r{i}/api/v[0-9]+/items/"),
            PathKind::Exact => format!("^/r{i}/exact$"),
            PathKind::Prefix => format!("/r{i}/prefix/"),
        }
    }

    /// The RBAC `url_path.path` string matcher with the same meaning.
    pub fn rbac_path(&self) -> Value {
        let i = self.index;
        match self.kind {
            PathKind::Regex => {
                json!({ "safe_regex": { "regex": format!("/r{i}/api/v[0-9]+/items/.*") } })
            }
            PathKind::Exact => json!({ "exact": format!("/r{i}/exact") }),
            PathKind::Prefix => json!({ "prefix": format!("/r{i}/prefix/") }),
        }
    }

    /// A request path this rule allows.
    pub fn sample_path(&self) -> String {
        let i = self.index;
        match self.kind {
            PathKind::Regex => format!("/r{i}/api/v2/items/42"),
            PathKind::Exact => format!("/r{i}/exact"),
            PathKind::Prefix => format!("/r{i}/prefix/page"),
        }
    }
}

/// The `n` rules of the policy (see the module docs for the cycle of kinds).
pub fn rules(n: usize) -> Vec<Rule> {
    (0..n)
        .map(|index| {
            let (kind, methods): (PathKind, &'static [&'static str]) = match (n - 1 - index) % 3 {
                0 => (PathKind::Regex, &["GET", "HEAD"]),
                1 => (PathKind::Exact, &["GET"]),
                _ => (PathKind::Prefix, &["GET", "POST"]),
            };
            Rule {
                index,
                kind,
                methods,
            }
        })
        .collect()
}

/// A GET path that matches the last of `n` rules and no other (`n` ≥ 1).
pub fn allowed_path(n: usize) -> String {
    rules(n)
        .last()
        .map_or_else(|| DENIED_PATH.to_string(), Rule::sample_path)
}

fn account(name: &str) -> ServiceAccountRef {
    ServiceAccountRef {
        namespace: "bench".into(),
        name: name.into(),
    }
}

/// xcluster's plugin config for `n` rules: access `enforce` with the caller identity from
/// [`CALLER_HEADER`], the rules as HTTPRouteGroup matches ([`MATCHES_PER_GROUP`] per
/// group), one TrafficTarget `bench/client` → `bench/server` covering every group, and one
/// route to a destination with the [`TARGETS`] split, as `xcluster-gen` writes it for
/// users: outlier detection, replay on failure and active health checks of
/// [`HEALTH_PATH`] (defaults), and the 30 s slow start.
/// With `n == 0` access is permissive and there are no groups.
pub fn xcluster_config(n: usize) -> PluginConfig {
    let rules = rules(n);
    let route_groups: Vec<RouteGroupConfig> = rules
        .chunks(MATCHES_PER_GROUP)
        .enumerate()
        .map(|(g, chunk)| RouteGroupConfig {
            name: format!("bench/routes-{g}"),
            matches: chunk
                .iter()
                .map(|r| HttpMatchConfig {
                    name: format!("rule-{}", r.index),
                    path_regex: Some(r.path_regex()),
                    methods: r.methods.iter().map(|m| m.to_string()).collect(),
                    headers: Vec::new(),
                })
                .collect(),
        })
        .collect();
    let traffic_targets = if route_groups.is_empty() {
        Vec::new()
    } else {
        vec![TrafficTargetConfig {
            name: "bench/client-to-server".into(),
            destination: account("server"),
            sources: vec![account("client")],
            rules: route_groups
                .iter()
                .map(|g| TrafficRuleConfig {
                    route_group: g.name.clone(),
                    matches: Vec::new(),
                })
                .collect(),
        }]
    };
    let targets = TARGETS
        .iter()
        .enumerate()
        .map(|(i, (cluster, weight))| TargetConfig {
            name: (*cluster).into(),
            cluster: format!("cluster-{i}"),
            cluster_key: None,
            envoy_cluster: (*cluster).into(),
            subset: None,
            weight: *weight,
            locality: LocalityConfig::default(),
            priority: None,
            service_account: account("server"),
            authority: None,
            path_prefix: None,
        })
        .collect();
    PluginConfig {
        version: CONFIG_VERSION,
        cluster_header: None,
        decision_header: None,
        // As `xcluster-gen` writes it: Envoy matches the route again itself.
        clear_route_cache: false,
        local: None,
        unmatched: Unmatched::Pass,
        path_normalization: PathNormalization::Reject,
        identity: IdentityConfig {
            trusted_header: Some(CALLER_HEADER.into()),
            trust_domains: Vec::new(),
        },
        access: AccessConfig {
            mode: if n == 0 {
                AccessMode::Permissive
            } else {
                AccessMode::Enforce
            },
            route_groups,
            traffic_targets,
        },
        routes: vec![RouteConfig {
            name: "bench".into(),
            route_match: RouteMatchConfig::default(),
            destination: "server".into(),
            replay: Some(ReplayConfig::default()),
        }],
        destinations: vec![DestinationConfig {
            name: "server".into(),
            hosts: Vec::new(),
            policy: LbPolicy::ActiveActive,
            sticky: None,
            outlier_detection: Some(OutlierDetectionConfig::default()),
            slow_start: Some(SlowStartConfig {
                window_ms: 30_000,
                min_weight_percent: 10,
            }),
            health_check: Some(HealthCheckConfig {
                path: HEALTH_PATH.into(),
                interval_ms: 5_000,
                timeout_ms: 1_000,
                healthy_threshold: 2,
                unhealthy_threshold: 3,
                expected_statuses: vec![200],
            }),
            targets,
        }],
    }
}

/// Removes replay and active health checks (and the slow start that comes with them)
/// from a config of [`xcluster_config`]: arm (e).
pub fn without_failover(config: &mut PluginConfig) {
    for route in &mut config.routes {
        route.replay = None;
    }
    for dest in &mut config.destinations {
        dest.health_check = None;
        dest.slow_start = None;
    }
}

/// The native RBAC http filter for `n` rules: one ALLOW policy whose principal is
/// [`CALLER_HEADER`] == [`CALLER`] and whose permissions are the rules (path and method).
pub fn rbac_filter(n: usize) -> Value {
    let permissions: Vec<Value> = rules(n)
        .iter()
        .map(|r| {
            let methods: Vec<Value> = r
                .methods
                .iter()
                .map(|m| json!({ "header": { "name": ":method", "string_match": { "exact": m } } }))
                .collect();
            json!({ "and_rules": { "rules": [
                { "url_path": { "path": r.rbac_path() } },
                { "or_rules": { "rules": methods } }
            ]}})
        })
        .collect();
    json!({
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {
                "action": "ALLOW",
                "policies": {
                    "client-to-server": {
                        "permissions": permissions,
                        "principals": [{ "header": {
                            "name": CALLER_HEADER,
                            "string_match": { "exact": CALLER }
                        }}]
                    }
                }
            }
        }
    })
}

/// The native route action: [`TARGETS`] as `weighted_clusters`.
pub fn weighted_route() -> Value {
    let clusters: Vec<Value> = TARGETS
        .iter()
        .map(|(name, weight)| json!({ "name": name, "weight": weight }))
        .collect();
    let replay = ReplayConfig::default();
    json!({
        "weighted_clusters": { "clusters": clusters },
        // What xcluster's replay does: further attempts of a failed request.
        "retry_policy": {
            "retry_on": "connect-failure,reset,retriable-status-codes",
            "retriable_status_codes": replay.statuses,
            "num_retries": replay.attempts
        }
    })
}

/// Envoy's passive outlier detection with xcluster's defaults, for the native arm's
/// clusters (the same outlier tracking the filter does).
pub fn native_outlier_detection() -> Value {
    let d = OutlierDetectionConfig::default();
    json!({
        "consecutive_5xx": d.consecutive_5xx,
        "consecutive_gateway_failure": d.consecutive_gateway_errors,
        "enforcing_consecutive_gateway_failure": 100,
        "base_ejection_time": format!("{}s", d.base_ejection_time_ms as f64 / 1000.0),
        "max_ejection_time": format!("{}s", d.max_ejection_time_ms as f64 / 1000.0),
        "max_ejection_percent": d.max_ejection_percent,
        "interval": "1s"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_cycle_and_the_last_rule_is_a_regex() {
        for n in [1, 2, 3, 10, 1000] {
            let r = rules(n);
            assert_eq!(r.len(), n);
            assert_eq!(r[n - 1].kind, PathKind::Regex, "n={n}");
        }
        let r = rules(10);
        let count = |k| r.iter().filter(|x| x.kind == k).count();
        assert_eq!(
            (
                count(PathKind::Regex),
                count(PathKind::Exact),
                count(PathKind::Prefix)
            ),
            (4, 3, 3)
        );
        assert_eq!(r[8].path_regex(), "^/r8/exact$");
        assert_eq!(r[7].path_regex(), "/r7/prefix/");
        assert_eq!(r[9].path_regex(), "/r9/api/v[0-9]+/items/");
    }

    #[test]
    fn the_allowed_path_matches_only_the_last_rule() {
        let n = 30;
        let path = allowed_path(n);
        assert_eq!(path, "/r29/api/v2/items/42");
        let hits: Vec<usize> = rules(n)
            .iter()
            .filter(|r| path.starts_with(&format!("/r{}/", r.index)))
            .map(|r| r.index)
            .collect();
        assert_eq!(hits, vec![29]);
        assert!(!rules(n)
            .iter()
            .any(|r| DENIED_PATH.starts_with(&format!("/r{}/", r.index))));
    }

    #[test]
    fn xcluster_config_groups_rules_and_compiles_in_the_filter() {
        let config = xcluster_config(250);
        let groups = &config.access.route_groups;
        assert_eq!(
            groups.iter().map(|g| g.matches.len()).collect::<Vec<_>>(),
            vec![100, 100, 50]
        );
        assert_eq!(config.access.mode, AccessMode::Enforce);
        assert_eq!(config.access.traffic_targets[0].rules.len(), 3);
        let weights: Vec<u32> = config.destinations[0]
            .targets
            .iter()
            .map(|t| t.weight)
            .collect();
        assert_eq!(weights, vec![75, 15, 10]);
        assert!(config.routes[0].replay.is_some());
        let dest = &config.destinations[0];
        assert_eq!(dest.health_check.as_ref().unwrap().path, HEALTH_PATH);
        assert!(dest.outlier_detection.is_some() && dest.slow_start.is_some());
        let json = serde_json::to_vec(&config).unwrap();
        let locality = Default::default();
        xcluster_filter::policy::Policy::from_json(&json, &locality).unwrap();
    }

    #[test]
    fn zero_rules_is_permissive() {
        let config = xcluster_config(0);
        assert_eq!(config.access.mode, AccessMode::Permissive);
        assert!(config.access.traffic_targets.is_empty());
    }

    #[test]
    fn rbac_permissions_mirror_the_rules() {
        let filter = rbac_filter(4);
        let policy = &filter["typed_config"]["rules"]["policies"]["client-to-server"];
        let perms = policy["permissions"].as_array().unwrap();
        assert_eq!(perms.len(), 4);
        assert_eq!(
            perms[3]["and_rules"]["rules"][0]["url_path"]["path"]["safe_regex"]["regex"],
            "/r3/api/v[0-9]+/items/.*"
        );
        assert_eq!(
            perms[2]["and_rules"]["rules"][0]["url_path"]["path"]["exact"],
            "/r2/exact"
        );
        assert_eq!(
            perms[1]["and_rules"]["rules"][0]["url_path"]["path"]["prefix"],
            "/r1/prefix/"
        );
        let methods = perms[1]["and_rules"]["rules"][1]["or_rules"]["rules"]
            .as_array()
            .unwrap();
        assert_eq!(methods.len(), 2);
        assert_eq!(
            policy["principals"][0]["header"]["string_match"]["exact"],
            CALLER
        );
    }

    #[test]
    fn weighted_route_is_75_15_10() {
        let route = weighted_route();
        let w: Vec<u64> = route["weighted_clusters"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["weight"].as_u64().unwrap())
            .collect();
        assert_eq!(w, vec![75, 15, 10]);
        assert_eq!(route["retry_policy"]["num_retries"], 2);
    }
}
