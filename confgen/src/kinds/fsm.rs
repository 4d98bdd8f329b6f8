//! FSM (Flomesh) multi-cluster: `GlobalTrafficPolicy`, `ServiceImport`, `ServiceExport`,
//! `Cluster` (`flomesh.io/v1alpha1` and `multicluster.flomesh.io/v1alpha1`).

use serde::Deserialize;

/// `GlobalTrafficPolicy.spec`; the policy applies to the service of the same
/// namespace and name.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalTrafficPolicySpec {
    /// `Locality` (default), `FailOver` or `ActiveActive`.
    #[serde(default)]
    pub lb_type: Option<String>,
    /// Remote clusters that may serve, by `clusterKey`.
    #[serde(default)]
    pub targets: Vec<GlobalTarget>,
}

/// A GlobalTrafficPolicy target.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalTarget {
    /// `region/zone/group/cluster`.
    pub cluster_key: String,
    /// Relative weight (default 1: the targets share equally).
    #[serde(default)]
    pub weight: Option<u32>,
}

/// `ServiceImport.spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceImportSpec {
    /// Ports with the remote endpoints that serve them.
    #[serde(default)]
    pub ports: Vec<ImportPort>,
    /// The ServiceAccount remote instances run as (`*` = unknown).
    #[serde(default)]
    pub service_account_name: Option<String>,
}

/// A ServiceImport port.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportPort {
    /// Service port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Port name (`grpc-*`, `http2-*` mean HTTP/2).
    #[serde(default)]
    pub name: Option<String>,
    /// Application protocol (`grpc`, `http2`, `http`).
    #[serde(default)]
    pub app_protocol: Option<String>,
    /// Remote endpoints.
    #[serde(default)]
    pub endpoints: Vec<ImportEndpoint>,
}

/// A remote endpoint of an imported service.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportEndpoint {
    /// `region/zone/group/cluster` of the serving cluster.
    pub cluster_key: String,
    /// Where that cluster's gateway serves it.
    pub target: ImportTarget,
}

/// Gateway address and path of a remote endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct ImportTarget {
    /// Gateway host name.
    #[serde(default)]
    pub host: Option<String>,
    /// Gateway IP (preferred over `host`).
    #[serde(default)]
    pub ip: Option<String>,
    /// Gateway port.
    pub port: u16,
    /// Path prefix the gateway exposes the service under.
    #[serde(default)]
    pub path: Option<String>,
}

/// `ServiceExport.spec` (in the exporting cluster; label it with its cluster).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExportSpec {
    /// The ServiceAccount the exported service runs as (`*` = unknown).
    #[serde(default)]
    pub service_account_name: Option<String>,
    /// Ingress rules of the exporting cluster's gateway.
    #[serde(default)]
    pub rules: Vec<ExportRule>,
}

/// A ServiceExport ingress rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRule {
    /// Service port.
    #[serde(default)]
    pub port_number: Option<u16>,
    /// Path prefix on the gateway.
    #[serde(default)]
    pub path: Option<String>,
}

/// `Cluster.spec`: a member cluster and its gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Region (default `default`).
    #[serde(default)]
    pub region: Option<String>,
    /// Zone (default `default`).
    #[serde(default)]
    pub zone: Option<String>,
    /// Group (default `default`).
    #[serde(default)]
    pub group: Option<String>,
    /// Gateway host.
    #[serde(default)]
    pub gateway_host: Option<String>,
    /// Gateway port.
    #[serde(default)]
    pub gateway_port: Option<u16>,
}

/// A parsed `clusterKey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterKey {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Group.
    pub group: String,
    /// Cluster name.
    pub cluster: String,
}

impl ClusterKey {
    /// Parses `region/zone/group/cluster`.
    pub fn parse(key: &str) -> Result<Self, String> {
        let parts: Vec<&str> = key.split('/').collect();
        match parts.as_slice() {
            [region, zone, group, cluster] if parts.iter().all(|p| !p.is_empty()) => {
                Ok(ClusterKey {
                    region: region.to_string(),
                    zone: zone.to_string(),
                    group: group.to_string(),
                    cluster: cluster.to_string(),
                })
            }
            _ => Err(format!(
                "clusterKey {key:?} is not region/zone/group/cluster"
            )),
        }
    }

    /// The key text.
    pub fn text(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.region, self.zone, self.group, self.cluster
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_keys_have_four_parts() {
        let k = ClusterKey::parse("us/east-1/default/cluster-1").unwrap();
        assert_eq!(
            (k.region.as_str(), k.zone.as_str(), k.cluster.as_str()),
            ("us", "east-1", "cluster-1")
        );
        assert_eq!(k.text(), "us/east-1/default/cluster-1");
        assert!(ClusterKey::parse("cluster-1").is_err());
        assert!(ClusterKey::parse("a//c/d").is_err());
    }
}
