//! Wire types of the plugin configuration: exactly what the JSON says.
//!
//! Phase one of config parsing. Every struct rejects unknown fields; nothing here is
//! validated beyond its JSON shape. [`crate::policy::Policy::try_from`] compiles a
//! [`PluginConfig`] into the validated, indexed policy the data path uses.

use serde::{Deserialize, Serialize};

/// The only config schema version this filter understands.
pub const CONFIG_VERSION: u32 = 1;

/// Default name of the request header that carries the selected Envoy cluster to the
/// route's `cluster_header`.
pub const DEFAULT_CLUSTER_HEADER: &str = "x-xcluster-cluster";

/// The whole plugin configuration (Envoy `configuration` / Istio `pluginConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Schema version; must be [`CONFIG_VERSION`].
    pub version: u32,
    /// Request header the filter sets to the chosen Envoy cluster; the route reads it with
    /// `cluster_header`. Always stripped from incoming requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_header: Option<String>,
    /// Opt-in response header that explains each decision (for debugging). Stripped from
    /// incoming requests too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_header: Option<String>,
    /// Whether the filter asks the host to match the route again after setting the cluster
    /// header (the `clear_route_cache` foreign function). Default true. `false` leaves it
    /// to the host: Envoy clears the route cache itself when a filter of ABI 0.2.1 (this
    /// one) changes request headers; `xcluster-gen` writes `false` for the Envoy and Istio
    /// outputs it tests, which saves a host call per request (Envoy matches the route
    /// again once either way).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub clear_route_cache: bool,
    /// Where this gateway runs. Missing fields fall back to Envoy's node properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalConfig>,
    /// What to do with a request that matches no route.
    #[serde(default)]
    pub unmatched: Unmatched,
    /// What to do with a request whose path is not in normal form (see `docs/config.md`,
    /// Security): the filter never authorizes such a path.
    #[serde(default)]
    pub path_normalization: PathNormalization,
    /// How the caller's identity is learned.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// SMI access control: mode, HTTPRouteGroups and TrafficTargets.
    #[serde(default)]
    pub access: AccessConfig,
    /// Routes, tried in order; the first match wins.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Destinations (global services / virtual destinations) the routes point to.
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// The gateway's own cluster and locality.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Name of the cluster this gateway runs in (fallback: node metadata `CLUSTER_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Region (fallback: `node.locality.region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Zone (fallback: `node.locality.zone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Sub-zone (fallback: `node.locality.sub_zone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subzone: Option<String>,
}

/// Treatment of requests that match no route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    /// Leave the request untouched (after sanitizing).
    #[default]
    Pass,
    /// Answer 404 with a local reply.
    Deny,
}

/// Treatment of a path that is not in normal form (dot segments, `\`, escapes an upstream
/// would decode into another path).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathNormalization {
    /// Answer 400 to a request that a route would take (the safe default).
    #[default]
    Reject,
    /// Decide on the path an upstream would resolve, and forward that path.
    Normalize,
}

/// Identity source for authorization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// A request header that carries the caller identity, set by a trusted proxy in front
    /// of this gateway. When set, only this header is used (never the peer certificate);
    /// when absent, the mTLS peer certificate's URI SAN is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_header: Option<String>,
    /// Accepted SPIFFE trust domains; empty accepts any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domains: Vec<String>,
}

/// SMI access control settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// Enforcement mode.
    #[serde(default)]
    pub mode: AccessMode,
    /// HTTPRouteGroups, by unique name.
    #[serde(default)]
    pub route_groups: Vec<RouteGroupConfig>,
    /// TrafficTargets, by unique name.
    #[serde(default)]
    pub traffic_targets: Vec<TrafficTargetConfig>,
}

/// How authorization decisions are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessMode {
    /// Every caller may reach every target (SMI permissive traffic policy mode).
    #[default]
    Permissive,
    /// Default deny: only what a TrafficTarget allows.
    Enforce,
    /// Evaluate and report like `enforce`, but never deny.
    DryRun,
}

impl AccessMode {
    /// The mode as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permissive => "permissive",
            Self::Enforce => "enforce",
            Self::DryRun => "dry-run",
        }
    }
}

/// An SMI `HTTPRouteGroup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteGroupConfig {
    /// Unique name (the generator writes `namespace/name`).
    pub name: String,
    /// Named matches.
    pub matches: Vec<HttpMatchConfig>,
}

/// One match of an `HTTPRouteGroup`. All given conditions must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpMatchConfig {
    /// Name, unique within its group.
    pub name: String,
    /// Path regex, anchored at the start of the path only (SMI semantics): `/api` matches
    /// `/api/v1`. Absent matches every path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<String>,
    /// Methods (upper case); `*` or an empty list matches every method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Header name → value regex, matched against the whole value. A JSON object; kept
    /// as pairs in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "header_map")]
    pub headers: Vec<(String, String)>,
}

/// An SMI `TrafficTarget`: `sources` may call the `destination` ServiceAccount for the
/// requests that `rules` cover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficTargetConfig {
    /// Unique name (the generator writes `namespace/name`).
    pub name: String,
    /// The ServiceAccount being called.
    pub destination: ServiceAccountRef,
    /// The ServiceAccounts allowed to call.
    pub sources: Vec<ServiceAccountRef>,
    /// Route group rules; a request is covered when any rule covers it.
    pub rules: Vec<TrafficRuleConfig>,
}

/// A Kubernetes ServiceAccount, `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountRef {
    /// Namespace.
    pub namespace: String,
    /// ServiceAccount name.
    pub name: String,
}

/// A TrafficTarget rule: an HTTPRouteGroup and, optionally, some of its matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficRuleConfig {
    /// Name of a route group in `access.route_groups`.
    pub route_group: String,
    /// Names of matches in that group; empty means all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<String>,
}

/// A route: which requests go to which destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name, used in logs and metrics.
    pub name: String,
    /// Conditions; all given conditions must hold.
    #[serde(default, rename = "match")]
    pub route_match: RouteMatchConfig,
    /// Name of a destination in `destinations`.
    pub destination: String,
    /// Send a request that fails on its target to the next target, within the same
    /// downstream request. Off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayConfig>,
}

/// Same-request replay of a route: which requests, on which failures, how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// Most further targets one request is sent to. Default 2.
    #[serde(default = "default_replay_attempts")]
    pub attempts: u32,
    /// Methods replayed (upper case). Default `GET`, `HEAD`, `OPTIONS`: a method with side
    /// effects, such as `POST`, is replayed only when listed.
    #[serde(default = "default_replay_methods")]
    pub methods: Vec<String>,
    /// Response statuses that count as a failure of the target. Default 502, 503, 504,
    /// which include Envoy's own answers to a connect failure, a reset or a timeout.
    #[serde(default = "default_replay_statuses")]
    pub statuses: Vec<u32>,
    /// Time each replayed attempt may take, in milliseconds. Default 5000.
    #[serde(default = "default_replay_timeout_ms")]
    pub timeout_ms: u64,
    /// A request with a larger body is not replayed (the body is kept until the response).
    /// Default 65536.
    #[serde(default = "default_replay_max_body_bytes")]
    pub max_body_bytes: u32,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            attempts: default_replay_attempts(),
            methods: default_replay_methods(),
            statuses: default_replay_statuses(),
            timeout_ms: default_replay_timeout_ms(),
            max_body_bytes: default_replay_max_body_bytes(),
        }
    }
}

fn default_replay_attempts() -> u32 {
    2
}
fn default_replay_methods() -> Vec<String> {
    ["GET", "HEAD", "OPTIONS"].map(String::from).to_vec()
}
fn default_replay_statuses() -> Vec<u32> {
    vec![502, 503, 504]
}
fn default_replay_timeout_ms() -> u64 {
    5_000
}
fn default_replay_max_body_bytes() -> u32 {
    65_536
}

/// Route match conditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatchConfig {
    /// Hosts (`:authority` without port, case-insensitive). `*.example.com` matches any
    /// subdomain; `*` or an empty list matches every host. When empty, the destination's
    /// `hosts` are used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Path condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatchConfig>,
    /// Methods (upper case); empty matches every method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Header conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatchConfig>,
}

/// A path condition of a route: exactly one of the fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum PathMatchConfig {
    /// The path (before `?`) equals this.
    Exact(String),
    /// The path starts with this.
    Prefix(String),
    /// The path (before `?`) matches this regex entirely.
    Regex(String),
}

/// A header condition of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchConfig {
    /// Header name (case-insensitive).
    pub name: String,
    /// The value equals this. If neither `exact` nor `regex` is given, the header must
    /// be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The value matches this regex entirely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A destination: one logical service served by targets in several clusters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Unique name.
    pub name: String,
    /// Hosts this service is reached by; used by routes that name no hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Which targets may serve.
    #[serde(default)]
    pub policy: LbPolicy,
    /// Keep one user on one target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<StickyConfig>,
    /// Passive health checking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetectionConfig>,
    /// Active health checks of the targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
    /// A target that comes back (its ejection ended, or active health checks find it
    /// healthy again) takes traffic back gradually, and one failure meanwhile ejects it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStartConfig>,
    /// The instances of the service, one per cluster (or subset).
    pub targets: Vec<TargetConfig>,
}

/// Load-balancing policy of a destination (FSM `GlobalTrafficPolicy.lbType`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LbPolicy {
    /// Only targets in the local cluster serve; none healthy → 503.
    Locality,
    /// The best locality tier with a healthy target serves; lower tiers only when every
    /// target above is unavailable.
    FailOver,
    /// Every target serves, by weight (also explicit splits: trafficShift, TrafficSplit,
    /// VirtualService weights).
    #[default]
    ActiveActive,
}

/// The key a sticky split hashes; exactly one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum StickyConfig {
    /// A request header's value.
    Header(String),
    /// A cookie's value.
    Cookie(String),
}

/// Passive outlier detection, after Envoy's `outlier_detection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetectionConfig {
    /// Consecutive 5xx responses that eject a target (0 disables). Default 5.
    #[serde(default = "default_consecutive_5xx")]
    pub consecutive_5xx: u32,
    /// Consecutive gateway errors (502, 503, 504, upstream connect failures) that eject a
    /// target (0 disables). Default 5.
    #[serde(default = "default_consecutive_gateway_errors")]
    pub consecutive_gateway_errors: u32,
    /// Ejection time is this × the number of times the target was ejected. Default 30000.
    #[serde(default = "default_base_ejection_time_ms")]
    pub base_ejection_time_ms: u64,
    /// Upper bound of one ejection. Default 300000.
    #[serde(default = "default_max_ejection_time_ms")]
    pub max_ejection_time_ms: u64,
    /// At most this percentage of a destination's targets is ejected at once; at least
    /// one target can always be ejected. Default 10 (as Envoy).
    #[serde(default = "default_max_ejection_percent")]
    pub max_ejection_percent: u32,
}

fn default_consecutive_5xx() -> u32 {
    5
}
fn default_consecutive_gateway_errors() -> u32 {
    5
}
fn default_base_ejection_time_ms() -> u64 {
    30_000
}
fn default_max_ejection_time_ms() -> u64 {
    300_000
}
fn default_max_ejection_percent() -> u32 {
    10
}

impl Default for OutlierDetectionConfig {
    fn default() -> Self {
        Self {
            consecutive_5xx: default_consecutive_5xx(),
            consecutive_gateway_errors: default_consecutive_gateway_errors(),
            base_ejection_time_ms: default_base_ejection_time_ms(),
            max_ejection_time_ms: default_max_ejection_time_ms(),
            max_ejection_percent: default_max_ejection_percent(),
        }
    }
}

/// Active health checks of a destination's targets: one worker of the gateway probes each
/// target through its Envoy cluster (with its `path_prefix` and `authority`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// The path probed with `GET`.
    pub path: String,
    /// Time between probes of one target, in milliseconds (at least 1000). Default 5000.
    #[serde(default = "default_hc_interval_ms")]
    pub interval_ms: u64,
    /// Time a probe may take. Default 1000.
    #[serde(default = "default_hc_timeout_ms")]
    pub timeout_ms: u64,
    /// Good probes in a row that make an unhealthy target healthy. Default 2.
    #[serde(default = "default_hc_healthy_threshold")]
    pub healthy_threshold: u32,
    /// Failed probes in a row that make a target unhealthy. Default 3.
    #[serde(default = "default_hc_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
    /// Statuses of a good probe. Default 200.
    #[serde(default = "default_hc_expected_statuses")]
    pub expected_statuses: Vec<u32>,
}

fn default_hc_interval_ms() -> u64 {
    5_000
}
fn default_hc_timeout_ms() -> u64 {
    1_000
}
fn default_hc_healthy_threshold() -> u32 {
    2
}
fn default_hc_unhealthy_threshold() -> u32 {
    3
}
fn default_hc_expected_statuses() -> Vec<u32> {
    vec![200]
}

/// Probation of a returning target, after Envoy's `slow_start_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowStartConfig {
    /// How long probation lasts: the target's weight ramps up linearly over it.
    pub window_ms: u64,
    /// The weight a returning target starts at, in percent of its own. Default 10.
    #[serde(default = "default_min_weight_percent")]
    pub min_weight_percent: u32,
}

fn default_min_weight_percent() -> u32 {
    10
}

/// One instance of a destination's service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Unique name within the destination (for example `cluster-1` or `cluster-1/v2`).
    pub name: String,
    /// The Kubernetes cluster serving this target.
    pub cluster: String,
    /// FSM `clusterKey` `region/zone/group/cluster`, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_key: Option<String>,
    /// The Envoy cluster the request is routed to (the `cluster_header` value).
    pub envoy_cluster: String,
    /// Subset name or labels, informational (the Envoy cluster already encodes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Relative weight (≥ 0). Default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Locality of the target.
    #[serde(default)]
    pub locality: LocalityConfig,
    /// Explicit failover priority, lower first; overrides the locality tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// The ServiceAccount the target's workload runs as (authorization destination).
    pub service_account: ServiceAccountRef,
    /// Rewrite `:authority` to this when the target is chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Prepend this to `:path` when the target is chosen (FSM gateway paths such as
    /// `/cluster-1/httpbin-mesh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
}

fn default_weight() -> u32 {
    1
}

/// A locality, as Envoy's `region` / `zone` / `sub_zone`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalityConfig {
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Sub-zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subzone: Option<String>,
}

/// (De)serializes header pairs as a JSON object (a `Vec`, not a map type, keeps the
/// `.wasm` small and the document order).
mod header_map {
    use std::fmt;

    use serde::de::{MapAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Vec<(String, String)>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of header name to value regex")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(pairs)
            }
        }
        d.deserialize_map(Pairs)
    }
}
