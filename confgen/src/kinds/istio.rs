//! Istio `networking.istio.io`: `VirtualService`, `DestinationRule`, `ServiceEntry`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `VirtualService.spec`.
#[derive(Debug, Clone, Deserialize)]
pub struct VirtualServiceSpec {
    /// Hosts the routes apply to.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// HTTP routes, in order.
    #[serde(default)]
    pub http: Vec<HttpRoute>,
}

/// A VirtualService HTTP route.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpRoute {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Conditions (any may match; none = all requests).
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
    /// Rewrites.
    #[serde(default)]
    pub rewrite: Option<Rewrite>,
}

/// A VirtualService match.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpMatchRequest {
    /// Path condition.
    #[serde(default)]
    pub uri: Option<StringMatch>,
    /// Header conditions.
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatch>,
    /// Method condition.
    #[serde(default)]
    pub method: Option<StringMatch>,
}

/// An Istio `StringMatch`: one of `exact`, `prefix`, `regex`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StringMatch {
    /// Exact value.
    #[serde(default)]
    pub exact: Option<String>,
    /// Prefix.
    #[serde(default)]
    pub prefix: Option<String>,
    /// RE2 regex of the whole value.
    #[serde(default)]
    pub regex: Option<String>,
}

/// A weighted route destination.
#[derive(Debug, Clone, Deserialize)]
pub struct RouteDestination {
    /// The destination.
    pub destination: Destination,
    /// Weight (percent).
    #[serde(default)]
    pub weight: Option<u32>,
}

/// A destination host, subset and port.
#[derive(Debug, Clone, Deserialize)]
pub struct Destination {
    /// Service name (short or FQDN) or ServiceEntry host.
    pub host: String,
    /// DestinationRule subset name.
    #[serde(default)]
    pub subset: Option<String>,
    /// Port.
    #[serde(default)]
    pub port: Option<PortSelector>,
}

/// A destination port.
#[derive(Debug, Clone, Deserialize)]
pub struct PortSelector {
    /// Number.
    pub number: u16,
}

/// `rewrite`.
#[derive(Debug, Clone, Deserialize)]
pub struct Rewrite {
    /// New `:authority`.
    #[serde(default)]
    pub authority: Option<String>,
    /// Path rewrite (not supported).
    #[serde(default)]
    pub uri: Option<String>,
}

/// `DestinationRule.spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// The host it applies to.
    pub host: String,
    /// Named subsets.
    #[serde(default)]
    pub subsets: Vec<Subset>,
    /// Traffic policy.
    #[serde(default)]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// A named subset.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subset {
    /// Name.
    pub name: String,
    /// Labels.
    #[serde(default, deserialize_with = "super::labels")]
    pub labels: BTreeMap<String, String>,
    /// The subset's own traffic policy, as written (kept for the `istio` output).
    #[serde(default)]
    pub traffic_policy: Option<serde_json::Value>,
}

/// `trafficPolicy`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicy {
    /// Load balancer settings.
    #[serde(default)]
    pub load_balancer: Option<LoadBalancer>,
    /// Outlier detection.
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
}

/// `loadBalancer`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    /// Locality settings.
    #[serde(default)]
    pub locality_lb_setting: Option<LocalityLbSetting>,
}

/// `localityLbSetting`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityLbSetting {
    /// Enabled (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Region failover order.
    #[serde(default)]
    pub failover: Vec<Failover>,
    /// Weighted distribution (not supported).
    #[serde(default)]
    pub distribute: Vec<serde_json::Value>,
    /// Label priority failover (not supported).
    #[serde(default)]
    pub failover_priority: Vec<String>,
}

/// A region failover pair.
#[derive(Debug, Clone, Deserialize)]
pub struct Failover {
    /// From region.
    pub from: String,
    /// To region.
    pub to: String,
}

/// `outlierDetection`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Consecutive 5xx.
    #[serde(default, rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<u32>,
    /// Consecutive gateway errors.
    #[serde(default)]
    pub consecutive_gateway_errors: Option<u32>,
    /// Base ejection time (`30s`, `500ms`, `1m`).
    #[serde(default)]
    pub base_ejection_time: Option<String>,
    /// Max ejection percent.
    #[serde(default)]
    pub max_ejection_percent: Option<u32>,
}

/// Parses a protobuf duration as written in Istio YAML (`30s`, `1.5s`, `500ms`, `1m`,
/// `1h`) into milliseconds.
pub fn duration_ms(text: &str) -> Option<u64> {
    let (num, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        return None;
    };
    let value: f64 = num.parse().ok()?;
    (value >= 0.0 && value.is_finite()).then(|| (value * scale).round() as u64)
}

/// `ServiceEntry.spec`.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceEntrySpec {
    /// Host names.
    pub hosts: Vec<String>,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// Endpoints.
    #[serde(default)]
    pub endpoints: Vec<WorkloadEntry>,
}

/// A ServiceEntry port.
#[derive(Debug, Clone, Deserialize)]
pub struct ServicePort {
    /// Number.
    pub number: u16,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Protocol (`HTTP`, `HTTP2`, `GRPC`, ...).
    #[serde(default)]
    pub protocol: Option<String>,
}

/// A ServiceEntry endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkloadEntry {
    /// Address (IP or DNS name).
    pub address: String,
    /// Port overrides by port name.
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_protobuf_units() {
        assert_eq!(duration_ms("30s"), Some(30_000));
        assert_eq!(duration_ms("1.5s"), Some(1_500));
        assert_eq!(duration_ms("250ms"), Some(250));
        assert_eq!(duration_ms("2m"), Some(120_000));
        assert_eq!(duration_ms("soon"), None);
    }
}
