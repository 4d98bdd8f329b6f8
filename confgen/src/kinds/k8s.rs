//! Kubernetes: `v1` `Service`, `apps/v1` `Deployment`, `discovery.k8s.io/v1`
//! `EndpointSlice`. A resource belongs to the local cluster unless labelled with
//! [`super::CLUSTER_LABEL`].

use std::collections::BTreeMap;

use serde::Deserialize;

/// `Service.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServiceSpec {
    /// Pod selector.
    #[serde(default, deserialize_with = "super::labels")]
    pub selector: BTreeMap<String, String>,
}

/// `Deployment.spec`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentSpec {
    /// Pod template.
    pub template: PodTemplate,
}

/// A pod template.
#[derive(Debug, Clone, Deserialize)]
pub struct PodTemplate {
    /// Template metadata.
    #[serde(default)]
    pub metadata: TemplateMeta,
    /// Pod spec.
    #[serde(default)]
    pub spec: PodSpec,
}

/// Pod template metadata.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TemplateMeta {
    /// Pod labels.
    #[serde(default, deserialize_with = "super::labels")]
    pub labels: BTreeMap<String, String>,
}

/// The part of a pod spec that matters here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// ServiceAccount (default `default`).
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// Deprecated alias of `serviceAccountName`.
    #[serde(default)]
    pub service_account: Option<String>,
}

impl PodSpec {
    /// The ServiceAccount the pods run as.
    pub fn account(&self) -> &str {
        self.service_account_name
            .as_deref()
            .or(self.service_account.as_deref())
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
    }
}

/// An `EndpointSlice` (its fields are top-level).
#[derive(Debug, Clone, Deserialize)]
pub struct EndpointSlice {
    /// Endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
}

/// An endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoint {
    /// Addresses.
    pub addresses: Vec<String>,
    /// Conditions.
    #[serde(default)]
    pub conditions: Option<Conditions>,
}

/// Endpoint conditions.
#[derive(Debug, Clone, Deserialize)]
pub struct Conditions {
    /// Ready (absent = ready).
    #[serde(default)]
    pub ready: Option<bool>,
}

/// An EndpointSlice port.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    /// Port number.
    pub port: u16,
    /// The Service port's name (Istio reads the protocol from it: `grpc-*`, `http2-*`).
    #[serde(default)]
    pub name: Option<String>,
    /// The Service port's `appProtocol` (`grpc`, `http2`, `kubernetes.io/h2c`).
    #[serde(default)]
    pub app_protocol: Option<String>,
}

/// The label naming an EndpointSlice's service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
