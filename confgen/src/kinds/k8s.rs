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
    /// Ports.
    #[serde(default)]
    pub ports: Vec<ServicePort>,
}

impl ServiceSpec {
    /// The port HTTP clients use: the only one, else the first named `http`, `http-*` or
    /// `http2*`, or with an HTTP `appProtocol`, else the first.
    pub fn http_port(&self) -> Option<u16> {
        let http = |p: &&ServicePort| {
            let name = p.name.as_deref().unwrap_or_default();
            name == "http"
                || name.starts_with("http-")
                || name.starts_with("http2")
                || matches!(
                    p.app_protocol.as_deref(),
                    Some("http" | "http2" | "kubernetes.io/h2c")
                )
        };
        self.ports
            .iter()
            .find(http)
            .or(self.ports.first())
            .map(|p| p.port)
    }
}

/// A Service port.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Port number.
    pub port: u16,
    /// Application protocol.
    #[serde(default)]
    pub app_protocol: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_port_is_named_so_else_the_first() {
        let spec = |ports: &str| -> ServiceSpec {
            serde_json::from_str(&format!(r#"{{"ports": {ports}}}"#)).unwrap()
        };
        let two = r#"[{"name": "grpc", "port": 8080}, {"name": "http-web", "port": 9090}]"#;
        assert_eq!(spec(two).http_port(), Some(9090));
        let app = r#"[{"name": "a", "port": 1}, {"name": "b", "port": 2, "appProtocol": "http"}]"#;
        assert_eq!(spec(app).http_port(), Some(2));
        assert_eq!(spec(r#"[{"port": 7}, {"port": 8}]"#).http_port(), Some(7));
        assert_eq!(spec("[]").http_port(), None);
    }
}
