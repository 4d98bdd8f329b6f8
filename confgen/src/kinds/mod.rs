//! Typed input resources, one module per API family, and their dispatch by
//! `apiVersion` / `kind`.

pub mod fsm;
pub mod gloo;
pub mod istio;
pub mod k8s;
pub mod smi;

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use xcluster_envoy::UpstreamProtocol;

use crate::load::{Doc, Error};

/// Label naming the cluster a resource describes (Istio's well-known topology label).
pub const CLUSTER_LABEL: &str = "topology.istio.io/cluster";
/// Alternative cluster label of the Kubernetes multi-cluster services API.
pub const MCS_CLUSTER_LABEL: &str = "multicluster.kubernetes.io/source-cluster";

/// `metadata` of a resource.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Meta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (`default` when absent, as `kubectl` without `-n`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// `metadata.labels`.
    #[serde(default, deserialize_with = "labels")]
    pub labels: BTreeMap<String, String>,
}

/// One typed resource with its source document.
#[derive(Debug)]
pub struct Res<T> {
    /// The document it was read from (for error locations).
    pub doc: Rc<Doc>,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, defaulted to `default`.
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// Where the body was read: `spec`, or `""` for kinds whose fields are top-level
    /// (SMI `v1alpha1` TrafficTarget, `v1alpha1`/`v1alpha2` HTTPRouteGroup, EndpointSlice).
    pub body: &'static str,
    /// The kind-specific body.
    pub spec: T,
}

impl<T> Res<T> {
    /// `Kind namespace/name (file:line:column)`, for messages naming this resource.
    pub fn id(&self) -> String {
        format!(
            "{} {}/{} ({})",
            self.kind,
            self.namespace,
            self.name,
            self.doc.place()
        )
    }

    /// The field path of `field` of the body (`spec.rules[0]`, or `rules[0]` at the top).
    pub fn at(&self, field: &str) -> String {
        if self.body.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.body)
        }
    }

    /// An error at field `path` of this resource.
    pub fn error(&self, path: &str, message: impl Into<String>) -> Error {
        let message = message.into();
        self.doc.error(
            path,
            format!("{} {}/{}: {message}", self.kind, self.namespace, self.name),
        )
    }

    /// The cluster this resource describes, from its cluster label; `None` = local.
    pub fn cluster_label(&self) -> Option<&str> {
        self.labels
            .get(CLUSTER_LABEL)
            .or_else(|| self.labels.get(MCS_CLUSTER_LABEL))
            .map(String::as_str)
    }
}

/// Every understood resource of the input, by kind, in input order.
#[derive(Debug, Default)]
pub struct Resources {
    /// SMI `TrafficTarget`s.
    pub traffic_targets: Vec<Res<smi::TrafficTargetSpec>>,
    /// SMI `HTTPRouteGroup`s.
    pub route_groups: Vec<Res<smi::HttpRouteGroupSpec>>,
    /// SMI `TCPRoute`s.
    pub tcp_routes: Vec<Res<smi::TcpRouteSpec>>,
    /// SMI `TrafficSplit`s.
    pub traffic_splits: Vec<Res<smi::TrafficSplitSpec>>,
    /// FSM `GlobalTrafficPolicy`s.
    pub global_policies: Vec<Res<fsm::GlobalTrafficPolicySpec>>,
    /// FSM `ServiceImport`s.
    pub service_imports: Vec<Res<fsm::ServiceImportSpec>>,
    /// FSM `ServiceExport`s.
    pub service_exports: Vec<Res<fsm::ServiceExportSpec>>,
    /// FSM `Cluster`s.
    pub clusters: Vec<Res<fsm::ClusterSpec>>,
    /// Gloo Mesh `TrafficPolicy`s (v1alpha2).
    pub traffic_policies: Vec<Res<gloo::TrafficPolicySpec>>,
    /// Gloo `VirtualDestination`s (v2).
    pub virtual_destinations: Vec<Res<gloo::VirtualDestinationSpec>>,
    /// Gloo `RouteTable`s (v2).
    pub route_tables: Vec<Res<gloo::RouteTableSpec>>,
    /// Istio `VirtualService`s.
    pub virtual_services: Vec<Res<istio::VirtualServiceSpec>>,
    /// Istio `DestinationRule`s.
    pub destination_rules: Vec<Res<istio::DestinationRuleSpec>>,
    /// Istio `ServiceEntry`s.
    pub service_entries: Vec<Res<istio::ServiceEntrySpec>>,
    /// Kubernetes `Service`s.
    pub services: Vec<Res<k8s::ServiceSpec>>,
    /// Kubernetes `Deployment`s.
    pub deployments: Vec<Res<k8s::DeploymentSpec>>,
    /// Kubernetes `EndpointSlice`s (the whole object: its fields are top-level).
    pub endpoint_slices: Vec<Res<k8s::EndpointSlice>>,
    /// One line per skipped document.
    pub warnings: Vec<String>,
}

impl Resources {
    /// Sorts the documents into typed resources; unknown kinds become warnings.
    pub fn from_docs(docs: &[Rc<Doc>]) -> Result<Self, Error> {
        let mut out = Resources::default();
        for doc in docs {
            out.add(doc)?;
        }
        Ok(out)
    }

    fn add(&mut self, doc: &Rc<Doc>) -> Result<(), Error> {
        let api_version = doc
            .root
            .str_at("apiVersion")
            .ok_or_else(|| doc.error("apiVersion", "missing apiVersion (a string)"))?;
        let kind = doc
            .root
            .str_at("kind")
            .ok_or_else(|| doc.error("kind", "missing kind (a string)"))?;
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let version = api_version.rsplit('/').next().unwrap_or_default();
        match (group, kind) {
            // SMI moved these bodies under `spec` in later versions; read either.
            ("access.smi-spec.io", "TrafficTarget") => {
                self.traffic_targets.push(typed(doc, spec_or_top(doc))?)
            }
            ("specs.smi-spec.io", "HTTPRouteGroup") => {
                self.route_groups.push(typed(doc, spec_or_top(doc))?)
            }
            ("specs.smi-spec.io", "TCPRoute") => self.tcp_routes.push(typed(doc, "spec")?),
            ("split.smi-spec.io", "TrafficSplit") => self.traffic_splits.push(typed(doc, "spec")?),
            ("flomesh.io" | "multicluster.flomesh.io", "GlobalTrafficPolicy") => {
                self.global_policies.push(typed(doc, "spec")?)
            }
            ("flomesh.io" | "multicluster.flomesh.io", "ServiceImport") => {
                self.service_imports.push(typed(doc, "spec")?)
            }
            ("flomesh.io" | "multicluster.flomesh.io", "ServiceExport") => {
                self.service_exports.push(typed(doc, "spec")?)
            }
            ("flomesh.io" | "multicluster.flomesh.io", "Cluster") => {
                self.clusters.push(typed(doc, "spec")?)
            }
            ("networking.mesh.gloo.solo.io", "TrafficPolicy") if version == "v1alpha2" => {
                self.traffic_policies.push(typed(doc, "spec")?)
            }
            ("networking.gloo.solo.io", "VirtualDestination") => {
                self.virtual_destinations.push(typed(doc, "spec")?)
            }
            ("networking.gloo.solo.io", "RouteTable") => {
                self.route_tables.push(typed(doc, "spec")?)
            }
            ("networking.istio.io", "VirtualService") => {
                self.virtual_services.push(typed(doc, "spec")?)
            }
            ("networking.istio.io", "DestinationRule") => {
                self.destination_rules.push(typed(doc, "spec")?)
            }
            ("networking.istio.io", "ServiceEntry") => {
                self.service_entries.push(typed(doc, "spec")?)
            }
            ("", "Service") => self.services.push(typed(doc, "spec")?),
            ("apps", "Deployment") => self.deployments.push(typed(doc, "spec")?),
            ("discovery.k8s.io", "EndpointSlice") => self.endpoint_slices.push(typed(doc, "")?),
            _ => self.warnings.push(format!(
                "{}: skipping {api_version} {kind}: not a kind xcluster-gen understands",
                doc.place()
            )),
        }
        Ok(())
    }
}

/// `spec` when the document has one, else `""` (fields at the top level).
fn spec_or_top(doc: &Doc) -> &'static str {
    if doc.root.get("spec").is_some() {
        "spec"
    } else {
        ""
    }
}

/// Reads `metadata` and the body at `path` (`""` = the whole object).
fn typed<T: DeserializeOwned>(doc: &Rc<Doc>, path: &'static str) -> Result<Res<T>, Error> {
    let meta: Meta = doc.parse("metadata")?;
    let spec = doc.parse(path)?;
    Ok(Res {
        doc: doc.clone(),
        kind: doc.root.str_at("kind").unwrap_or_default().to_string(),
        name: meta.name,
        namespace: meta.namespace.unwrap_or_else(|| "default".to_string()),
        labels: meta.labels,
        body: path,
        spec,
    })
}

/// A string-valued map whose values may be written as YAML numbers or booleans
/// (label values such as `version: 1`).
pub fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw: Option<BTreeMap<String, serde_json::Value>> = Option::deserialize(d)?;
    raw.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => Ok((k, s)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "label {k}: expected a string, found {other}"
            ))),
        })
        .collect()
}

/// `key=value[,key=value]` in key order: how subsets given as labels are named.
pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The HTTP version a service port speaks, by Istio's protocol selection: its
/// `appProtocol` (Kubernetes, FSM) or `protocol` (Istio `ServiceEntry`) when given, else
/// its name's `<protocol>[-<suffix>]`. gRPC (`grpc`, `grpc-web`), `http2` and
/// `kubernetes.io/h2c` are HTTP/2; anything else is HTTP/1.1.
pub fn port_protocol(
    name: Option<&str>,
    protocol: Option<&str>,
    app_protocol: Option<&str>,
) -> UpstreamProtocol {
    let declared = app_protocol.or(protocol);
    let named = || name.map(|n| n.split_once('-').map_or(n, |(p, _)| p));
    let http2 = match declared.or_else(named) {
        Some(p) => ["grpc", "grpc-web", "http2", "kubernetes.io/h2c"]
            .iter()
            .any(|h2| p.eq_ignore_ascii_case(h2)),
        None => false,
    };
    if http2 {
        UpstreamProtocol::Http2
    } else {
        UpstreamProtocol::Http1
    }
}

/// `true` when every `selector` entry is in `labels` (an empty selector selects nothing).
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_protocol_follows_istio_protocol_selection() {
        let p = |name, protocol, app| port_protocol(name, protocol, app);
        use UpstreamProtocol::{Http1, Http2};
        assert_eq!(p(Some("grpc"), None, None), Http2);
        assert_eq!(p(Some("grpc-web"), None, None), Http2);
        assert_eq!(p(Some("http2-api"), None, None), Http2);
        assert_eq!(p(Some("GRPC-reviews"), None, None), Http2);
        assert_eq!(p(Some("http"), None, None), Http1);
        assert_eq!(p(Some("grpcish"), None, None), Http1);
        assert_eq!(p(Some("http-grpc"), None, None), Http1);
        assert_eq!(p(None, Some("GRPC"), None), Http2);
        assert_eq!(p(None, Some("HTTP2"), None), Http2);
        assert_eq!(p(Some("grpc"), Some("HTTP"), None), Http1);
        assert_eq!(
            p(Some("http"), Some("TCP"), Some("kubernetes.io/h2c")),
            Http2
        );
        assert_eq!(p(Some("grpc"), None, Some("http")), Http1);
        assert_eq!(p(None, None, None), Http1);
    }
}
