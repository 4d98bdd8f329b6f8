//! The bootstrap document: node, admin, static listeners and clusters, and listeners from
//! an LDS file.

use serde_json::{json, Map, Value};

use crate::{Cluster, Listener, SocketAddress, StatsConfig};

/// An Envoy bootstrap with static resources (`envoy.config.bootstrap.v3.Bootstrap`).
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    /// The node Envoy reports as (the filter reads its locality and `CLUSTER_ID`).
    pub node: Option<Node>,
    /// The admin listener's address.
    pub admin: Option<SocketAddress>,
    /// Listeners, in order.
    pub listeners: Vec<Listener>,
    /// Clusters, in order.
    pub clusters: Vec<Cluster>,
    /// `stats_config`: tags extracted from stat names, stats kept.
    pub stats_config: Option<StatsConfig>,
    /// A file Envoy watches for its listeners (`dynamic_resources.lds_config`
    /// `path_config_source`), written with [`lds_file`]. Replace it atomically (write a
    /// temporary file, then rename it over this path): Envoy reloads on the rename, and
    /// refuses an update it cannot apply (`listener_manager.lds.update_rejected`) while the
    /// listeners it has keep serving. Envoy needs a [`Bootstrap::node`] for it.
    pub lds_path: Option<String>,
}

impl Bootstrap {
    /// The bootstrap as JSON.
    pub fn render(&self) -> Value {
        let mut doc = json!({
            "static_resources": {
                "listeners": self.listeners.iter().map(Listener::render).collect::<Vec<_>>(),
                "clusters": self.clusters.iter().map(Cluster::render).collect::<Vec<_>>(),
            }
        });
        if let Some(node) = &self.node {
            doc["node"] = node.render();
        }
        if let Some(admin) = &self.admin {
            doc["admin"] = json!({ "address": admin.render() });
        }
        if let Some(stats) = &self.stats_config {
            doc["stats_config"] = stats.render();
        }
        if let Some(path) = &self.lds_path {
            doc["dynamic_resources"] = json!({
                "lds_config": {
                    "path_config_source": { "path": path },
                    "resource_api_version": "V3",
                }
            });
        }
        doc
    }
}

/// The contents of an LDS file (a `DiscoveryResponse` Envoy reads from
/// [`Bootstrap::lds_path`]): `listeners` at `version`.
pub fn lds_file(version: &str, listeners: &[Listener]) -> Value {
    let resources: Vec<Value> = listeners
        .iter()
        .map(|l| {
            let mut listener = l.render();
            listener["@type"] = json!(LISTENER_TYPE);
            listener
        })
        .collect();
    json!({ "version_info": version, "resources": resources })
}

/// The type URL of a listener resource.
const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

/// The node identity (`envoy.config.core.v3.Node`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `id`.
    pub id: String,
    /// `cluster` (Envoy's service cluster, not a mesh cluster).
    pub cluster: String,
    /// The mesh cluster the gateway runs in (`metadata.CLUSTER_ID`, as Istio sets it).
    pub cluster_id: Option<String>,
    /// Where the gateway runs.
    pub locality: Locality,
}

impl Node {
    fn render(&self) -> Value {
        let mut node = json!({ "id": self.id, "cluster": self.cluster });
        if let Some(cluster_id) = &self.cluster_id {
            node["metadata"] = json!({ "CLUSTER_ID": cluster_id });
        }
        let mut locality = Map::new();
        if let Some(region) = &self.locality.region {
            locality.insert("region".into(), json!(region));
        }
        if let Some(zone) = &self.locality.zone {
            locality.insert("zone".into(), json!(zone));
        }
        if !locality.is_empty() {
            node["locality"] = Value::Object(locality);
        }
        node
    }
}

/// A node's region and zone (`envoy.config.core.v3.Locality`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locality {
    /// `region`.
    pub region: Option<String>,
    /// `zone`.
    pub zone: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_carries_cluster_id_and_locality_only_when_known() {
        let mut node = Node {
            id: "gw".into(),
            cluster: "gw".into(),
            cluster_id: Some("cluster-2".into()),
            locality: Locality {
                region: Some("eu".into()),
                zone: None,
            },
        };
        let doc = Bootstrap {
            node: Some(node.clone()),
            ..Bootstrap::default()
        }
        .render();
        assert_eq!(doc["node"]["metadata"]["CLUSTER_ID"], "cluster-2");
        assert_eq!(doc["node"]["locality"], json!({ "region": "eu" }));
        assert!(doc.get("admin").is_none());
        assert!(doc.get("stats_config").is_none());

        node.cluster_id = None;
        node.locality = Locality::default();
        let doc = node.render();
        assert_eq!(doc, json!({ "id": "gw", "cluster": "gw" }));
    }

    #[test]
    fn admin_and_static_resources() {
        let doc = Bootstrap {
            admin: Some(SocketAddress::loopback(0)),
            ..Bootstrap::default()
        }
        .render();
        assert_eq!(
            doc["admin"]["address"]["socket_address"],
            json!({ "address": "127.0.0.1", "port_value": 0 })
        );
        assert_eq!(
            doc["static_resources"],
            json!({ "listeners": [], "clusters": [] })
        );
        assert!(doc.get("dynamic_resources").is_none());
    }

    #[test]
    fn listeners_from_an_lds_file() {
        let doc = Bootstrap {
            lds_path: Some("/etc/envoy/lds.json".into()),
            ..Bootstrap::default()
        }
        .render();
        assert_eq!(
            doc["dynamic_resources"]["lds_config"],
            json!({
                "path_config_source": { "path": "/etc/envoy/lds.json" },
                "resource_api_version": "V3"
            })
        );
        let http = crate::HttpConnectionManager::new("gw", vec![], vec![]);
        let listener = Listener::new("gw", SocketAddress::loopback(0), http);
        let file = lds_file("7", std::slice::from_ref(&listener));
        assert_eq!(file["version_info"], "7");
        let resource = &file["resources"][0];
        assert_eq!(resource["@type"], LISTENER_TYPE);
        assert_eq!(resource["name"], "gw");
        assert_eq!(
            resource["filter_chains"],
            listener.render()["filter_chains"]
        );
    }
}
