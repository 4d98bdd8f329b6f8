//! Gloo Mesh: `networking.mesh.gloo.solo.io/v1alpha2` `TrafficPolicy`;
//! `networking.gloo.solo.io/v2` `VirtualDestination` and `RouteTable`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `TrafficPolicy.spec` (v1alpha2).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicySpec {
    /// The services the policy applies to.
    #[serde(default)]
    pub destination_selector: Vec<DestinationSelector>,
    /// Request matchers (not supported: the policy must cover all requests).
    #[serde(default)]
    pub http_request_matchers: Vec<serde_json::Value>,
    /// The weighted split.
    #[serde(default)]
    pub traffic_shift: Option<TrafficShift>,
}

/// A `destinationSelector` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationSelector {
    /// Services by reference.
    #[serde(default)]
    pub kube_service_refs: Option<KubeServiceRefs>,
    /// Services by label (not supported).
    #[serde(default)]
    pub kube_service_matcher: Option<serde_json::Value>,
}

/// `kubeServiceRefs`.
#[derive(Debug, Clone, Deserialize)]
pub struct KubeServiceRefs {
    /// The services.
    #[serde(default)]
    pub services: Vec<ClusterObjectRef>,
}

/// A service in a cluster.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterObjectRef {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Cluster.
    #[serde(default)]
    pub cluster_name: Option<String>,
}

/// `trafficShift`.
#[derive(Debug, Clone, Deserialize)]
pub struct TrafficShift {
    /// Weighted destinations.
    pub destinations: Vec<WeightedDestination>,
}

/// A weighted `trafficShift` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedDestination {
    /// A Kubernetes service destination (the only supported type).
    #[serde(default)]
    pub kube_service: Option<KubeServiceDestination>,
    /// Weight.
    pub weight: u32,
}

/// `kubeService` of a weighted destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeServiceDestination {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Cluster.
    pub cluster_name: String,
    /// Subset labels.
    #[serde(default, deserialize_with = "super::labels")]
    pub subset: BTreeMap<String, String>,
}

/// `VirtualDestination.spec`.
#[derive(Debug, Clone, Deserialize)]
pub struct VirtualDestinationSpec {
    /// Internal host names.
    pub hosts: Vec<String>,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<VirtualPort>,
    /// The backing services, by selector.
    #[serde(default)]
    pub services: Vec<ObjectSelector>,
}

/// A VirtualDestination port.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualPort {
    /// Port number.
    pub number: u16,
    /// Protocol.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// A service selector (`labels`, `name`, `namespace`, `cluster`; all given must hold).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ObjectSelector {
    /// Labels.
    #[serde(default, deserialize_with = "super::labels")]
    pub labels: BTreeMap<String, String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Cluster.
    #[serde(default)]
    pub cluster: Option<String>,
}

/// `RouteTable.spec`.
#[derive(Debug, Clone, Deserialize)]
pub struct RouteTableSpec {
    /// Hosts (`*` = any).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// HTTP routes.
    #[serde(default)]
    pub http: Vec<HttpRoute>,
}

/// A RouteTable HTTP route.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Matchers (any may match).
    #[serde(default)]
    pub matchers: Vec<HttpMatcher>,
    /// The forwarding action.
    #[serde(default)]
    pub forward_to: Option<ForwardTo>,
}

/// A RouteTable request matcher.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HttpMatcher {
    /// Path condition.
    #[serde(default)]
    pub uri: Option<UriMatch>,
    /// Header conditions.
    #[serde(default)]
    pub headers: Vec<HeaderMatcher>,
    /// Method.
    #[serde(default)]
    pub method: Option<String>,
}

/// A path condition: one of `exact`, `prefix`, `regex`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UriMatch {
    /// Exact path.
    #[serde(default)]
    pub exact: Option<String>,
    /// Path prefix.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Path regex.
    #[serde(default)]
    pub regex: Option<String>,
}

/// A header condition.
#[derive(Debug, Clone, Deserialize)]
pub struct HeaderMatcher {
    /// Header name.
    pub name: String,
    /// Value (exact, or a regex when `regex` is true); absent = present.
    #[serde(default)]
    pub value: Option<String>,
    /// Whether `value` is a regex.
    #[serde(default)]
    pub regex: bool,
}

/// `forwardTo`.
#[derive(Debug, Clone, Deserialize)]
pub struct ForwardTo {
    /// Weighted destinations.
    pub destinations: Vec<ForwardDestination>,
}

/// A `forwardTo` destination.
#[derive(Debug, Clone, Deserialize)]
pub struct ForwardDestination {
    /// The referenced object.
    #[serde(rename = "ref")]
    pub reference: ObjectRef,
    /// `VIRTUAL_DESTINATION` or `SERVICE` (default).
    #[serde(default)]
    pub kind: Option<String>,
    /// Weight (default 1 when several destinations).
    #[serde(default)]
    pub weight: Option<u32>,
    /// Subset labels.
    #[serde(default, deserialize_with = "super::labels")]
    pub subset: BTreeMap<String, String>,
}

/// An object reference.
#[derive(Debug, Clone, Deserialize)]
pub struct ObjectRef {
    /// Name.
    pub name: String,
    /// Namespace (default: the RouteTable's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Cluster.
    #[serde(default)]
    pub cluster: Option<String>,
}
