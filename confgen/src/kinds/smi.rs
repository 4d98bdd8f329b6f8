//! SMI: `access.smi-spec.io` `TrafficTarget`, `specs.smi-spec.io` `HTTPRouteGroup`,
//! `split.smi-spec.io` `TrafficSplit`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `TrafficTarget.spec`. `v1alpha2`/`v1alpha3` write `rules` under `spec`; `v1alpha1`
/// wrote `specs`, with the fields at the top level.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTargetSpec {
    /// The ServiceAccount being called (`v1alpha1`/`v1alpha2` may add a `port`).
    pub destination: IdentityRef,
    /// Who may call.
    #[serde(default)]
    pub sources: Vec<IdentityRef>,
    /// Route group rules (`v1alpha2`+).
    #[serde(default)]
    pub rules: Vec<TrafficRule>,
    /// Route group rules (`v1alpha1`).
    #[serde(default)]
    pub specs: Vec<TrafficRule>,
}

impl TrafficTargetSpec {
    /// The rules, whichever field the version used, with the field name for errors.
    pub fn all_rules(&self) -> (&'static str, &[TrafficRule]) {
        if self.rules.is_empty() {
            ("specs", &self.specs)
        } else {
            ("rules", &self.rules)
        }
    }
}

/// A `ServiceAccount` reference.
#[derive(Debug, Clone, Deserialize)]
pub struct IdentityRef {
    /// `ServiceAccount` (`v1alpha4`'s `IdentityBinding` is not supported).
    #[serde(default = "service_account_kind")]
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (default: the TrafficTarget's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The destination's port (`v1alpha1`/`v1alpha2`).
    #[serde(default)]
    pub port: Option<u16>,
}

fn service_account_kind() -> String {
    "ServiceAccount".to_string()
}

/// A rule: a route group and some of its matches (all when empty).
#[derive(Debug, Clone, Deserialize)]
pub struct TrafficRule {
    /// `HTTPRouteGroup` (other kinds are skipped).
    pub kind: String,
    /// Route group name, in the TrafficTarget's namespace.
    pub name: String,
    /// Match names.
    #[serde(default)]
    pub matches: Vec<String>,
}

/// `HTTPRouteGroup.spec` (`v1alpha3`+), or the group itself (`v1alpha1`/`v1alpha2`, whose
/// `matches` are top-level).
#[derive(Debug, Clone, Deserialize)]
pub struct HttpRouteGroupSpec {
    /// Named matches.
    #[serde(default)]
    pub matches: Vec<HttpMatch>,
}

/// One `HTTPRouteGroup` match.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatch {
    /// Name.
    pub name: String,
    /// Path regex, anchored at the start.
    #[serde(default)]
    pub path_regex: Option<String>,
    /// Methods; `*` = any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Header regexes (whole values): a map, or a list of one-entry maps.
    #[serde(default)]
    pub headers: Option<Headers>,
}

/// The two shapes of `HTTPRouteGroup` headers.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Headers {
    /// `headers: {name: regex}`.
    Map(BTreeMap<String, String>),
    /// `headers: [{name: regex}, ...]`.
    List(Vec<BTreeMap<String, String>>),
}

impl Headers {
    /// All entries as one map (later entries win).
    pub fn merged(&self) -> BTreeMap<String, String> {
        match self {
            Headers::Map(m) => m.clone(),
            Headers::List(list) => list
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// `TCPRoute.spec` (`v1alpha4`: `matches.ports`; earlier versions have no body).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TcpRouteSpec {
    /// The ports the route covers (all when absent).
    #[serde(default)]
    pub matches: Option<TcpMatch>,
}

/// `TCPRoute.spec.matches`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TcpMatch {
    /// Ports.
    #[serde(default)]
    pub ports: Vec<u16>,
}

/// `TrafficSplit.spec`.
#[derive(Debug, Clone, Deserialize)]
pub struct TrafficSplitSpec {
    /// The root service (the name clients call), short or FQDN.
    pub service: String,
    /// Backend services and weights.
    pub backends: Vec<Backend>,
    /// `v1alpha3`+: the split applies to requests matching these route groups; others go
    /// to the root service.
    #[serde(default)]
    pub matches: Vec<SplitMatch>,
}

/// A TrafficSplit `matches` entry: a route group in the split's namespace.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitMatch {
    /// `HTTPRouteGroup`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// API group (`specs.smi-spec.io`, `v1alpha4`).
    #[serde(default)]
    pub api_group: Option<String>,
}

/// A TrafficSplit backend.
#[derive(Debug, Clone, Deserialize)]
pub struct Backend {
    /// Backend service name (same namespace).
    pub service: String,
    /// Weight: an integer (`v1alpha2`+) or a quantity such as `500m` (`v1alpha1`).
    pub weight: Weight,
}

/// A TrafficSplit weight.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Weight {
    /// An integer weight.
    Int(u32),
    /// A Kubernetes quantity (`1`, `500m`).
    Quantity(String),
}

impl Weight {
    /// The weight in thousandths (`500m` → 500, `1` → 1000), or `None` if unreadable or
    /// too large.
    pub fn millis(&self) -> Option<u64> {
        match self {
            Weight::Int(n) => Some(u64::from(*n) * 1000),
            Weight::Quantity(q) => match q.strip_suffix('m') {
                Some(m) => m.parse().ok(),
                None => q.parse::<u64>().ok()?.checked_mul(1000),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_accept_map_and_list() {
        let map: Headers = serde_json::from_str(r#"{"x-user":"a.*","host":"b"}"#).unwrap();
        let list: Headers = serde_json::from_str(r#"[{"x-user":"a.*"},{"host":"b"}]"#).unwrap();
        assert_eq!(map.merged(), list.merged());
        assert_eq!(map.merged().len(), 2);
    }

    #[test]
    fn weights_read_integers_and_quantities() {
        assert_eq!(Weight::Int(3).millis(), Some(3000));
        assert_eq!(Weight::Quantity("500m".into()).millis(), Some(500));
        assert_eq!(Weight::Quantity("2".into()).millis(), Some(2000));
        assert_eq!(Weight::Quantity("lots".into()).millis(), None);
        // Regression: `n * 1000` overflowed (a panic in debug builds).
        assert_eq!(Weight::Quantity(u64::MAX.to_string()).millis(), None);
    }
}
