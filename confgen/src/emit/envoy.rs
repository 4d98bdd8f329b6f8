//! `xcluster-gen envoy`: the model's side of a bootstrap. `--endpoint` flags give targets
//! their addresses, `--http2` flags (or the input's port names and protocols) make their
//! upstreams HTTP/2, targets sharing an address and protocol share one Envoy cluster, and
//! the plugin
//! config goes into the wasm filter; [`xcluster_envoy`] renders the rest: one gateway
//! listener (`xcluster_gateway`) running the filter before the router, the route that
//! follows the cluster header with its fallback 404, the clusters, and the stats tags that
//! make the filter's metrics Prometheus labels.

use std::collections::BTreeMap;

use serde_json::Value;
use xcluster_envoy::{
    Bootstrap, Cluster, DataSource, DownstreamTls, HttpConnectionManager, Listener, Locality, Node,
    SocketAddress, StatsConfig, UpstreamProtocol, WasmFilter,
};
use xcluster_filter::config::{ServiceAccountRef, DEFAULT_CLUSTER_HEADER};

use crate::kinds::labels_text;
use crate::load::Error;
use crate::model::{Address, EndpointKey, Instance, Model};

/// Name of the bootstrap's one listener.
pub const LISTENER: &str = "xcluster_gateway";

/// The node `id` and `cluster` of the bootstrap.
const NODE: &str = "xcluster-gateway";

/// `--endpoint CLUSTER/NAMESPACE/SERVICE[/SUBSET]=HOST:PORT[@SERVICEACCOUNT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFlag {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service (or ServiceEntry host).
    pub service: String,
    /// Istio subset name or `key=value[,key=value]` labels (normalized to key order).
    pub subset: Option<String>,
    /// Host or IP.
    pub host: String,
    /// Port.
    pub port: u16,
    /// ServiceAccount the instance runs as (`name` or `namespace/name`).
    pub account: Option<ServiceAccountRef>,
    /// The flag as written.
    pub text: String,
}

impl EndpointFlag {
    /// The service instance the flag names (its subset aside).
    pub fn instance(&self) -> Instance {
        Instance {
            cluster: self.cluster.clone(),
            namespace: self.namespace.clone(),
            service: self.service.clone(),
        }
    }
}

impl std::str::FromStr for EndpointFlag {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || {
            format!("--endpoint {text:?}: expected CLUSTER/NAMESPACE/SERVICE[/SUBSET]=HOST:PORT[@SERVICEACCOUNT]")
        };
        let (key, addr) = text.rsplit_once('=').ok_or_else(usage)?;
        let (addr, account) = match addr.split_once('@') {
            Some((a, sa)) => (a, Some(sa)),
            None => (addr, None),
        };
        let (host, port) = addr.rsplit_once(':').ok_or_else(usage)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| usage())?;
        let target = TargetFlag::parse(key).ok_or_else(usage)?;
        if host.is_empty() {
            return Err(usage());
        }
        let account = account
            .filter(|a| !a.is_empty())
            .map(|a| match a.split_once('/') {
                Some((ns, name)) => ServiceAccountRef {
                    namespace: ns.into(),
                    name: name.into(),
                },
                None => ServiceAccountRef {
                    namespace: target.namespace.clone(),
                    name: a.into(),
                },
            });
        Ok(EndpointFlag {
            cluster: target.cluster,
            namespace: target.namespace,
            service: target.service,
            subset: target.subset,
            host: host.to_string(),
            port,
            account,
            text: text.to_string(),
        })
    }
}

/// `--http2 CLUSTER/NAMESPACE/SERVICE[/SUBSET]`: the targets it names are reached over
/// HTTP/2 (gRPC), whatever the input says of their ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFlag {
    /// Cluster.
    pub cluster: String,
    /// Namespace.
    pub namespace: String,
    /// Service (or ServiceEntry host).
    pub service: String,
    /// Istio subset name or `key=value[,key=value]` labels (normalized to key order).
    pub subset: Option<String>,
}

impl TargetFlag {
    fn parse(key: &str) -> Option<Self> {
        let parts: Vec<&str> = key.splitn(4, '/').collect();
        if parts.len() < 3 || parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        let subset = parts.get(3).map(|s| {
            if s.contains('=') {
                let labels = s
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                labels_text(&labels)
            } else {
                s.to_string()
            }
        });
        Some(Self {
            cluster: parts[0].to_string(),
            namespace: parts[1].to_string(),
            service: parts[2].to_string(),
            subset,
        })
    }

    /// Whether the target instance `key` is one this flag names.
    fn selects(&self, key: &EndpointKey) -> bool {
        key.cluster == self.cluster
            && key.namespace == self.namespace
            && key.service == self.service
            && match &self.subset {
                None => key.subset.is_empty(),
                Some(s) => key.subset.contains(s),
            }
    }
}

impl std::str::FromStr for TargetFlag {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
            .ok_or_else(|| format!("--http2 {text:?}: expected CLUSTER/NAMESPACE/SERVICE[/SUBSET]"))
    }
}

impl std::fmt::Display for TargetFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.cluster, self.namespace, self.service)?;
        match &self.subset {
            Some(s) => write!(f, "/{s}"),
            None => Ok(()),
        }
    }
}

/// Downstream mTLS files (`--tls-cert`, `--tls-key`, `--client-ca`).
#[derive(Debug, Clone)]
pub struct Tls {
    /// Server certificate chain.
    pub cert: String,
    /// Server private key.
    pub key: String,
    /// CA that signs client certificates.
    pub client_ca: String,
}

/// Bootstrap settings.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// Path of the filter's `.wasm` (as Envoy will open it).
    pub wasm: String,
    /// Listener address.
    pub listen: SocketAddress,
    /// Admin address.
    pub admin: Option<SocketAddress>,
    /// Downstream mTLS.
    pub tls: Option<Tls>,
}

/// Applies `--endpoint` flags to the model: addresses of upstreams (they override the
/// input's) and ServiceAccounts of targets. Every flag must match some target.
pub fn apply_endpoints(model: &mut Model, flags: &[EndpointFlag]) -> Result<(), Error> {
    let mut by_flag: BTreeMap<String, String> = BTreeMap::new();
    for flag in flags {
        let mut matched = false;
        for (name, up) in model.upstreams.iter_mut() {
            let hit = up.keys.iter().any(|k| {
                k.cluster == flag.cluster
                    && k.namespace == flag.namespace
                    && k.service == flag.service
                    && match &flag.subset {
                        None => k.subset.is_empty(),
                        Some(s) => k.subset.contains(s),
                    }
            });
            if !hit {
                continue;
            }
            matched = true;
            if let Some(prev) = by_flag.get(name) {
                let same = up
                    .address
                    .as_ref()
                    .is_some_and(|a| a.host == flag.host && a.port == flag.port);
                if !same {
                    return Err(Error::plain(format!(
                        "{name}: --endpoint {} contradicts --endpoint {prev}",
                        flag.text,
                    )));
                }
            }
            by_flag.insert(name.clone(), flag.text.clone());
            // The port's protocol, as the input says, stays.
            let protocol = up
                .address
                .as_ref()
                .map_or(UpstreamProtocol::Http1, |a| a.protocol);
            up.address = Some(Address {
                host: flag.host.clone(),
                port: flag.port,
                protocol,
                source: format!("--endpoint {}", flag.text),
            });
        }
        if !matched {
            return Err(Error::plain(format!(
                "--endpoint {}: no target is {}/{}/{}{}",
                flag.text,
                flag.cluster,
                flag.namespace,
                flag.service,
                flag.subset
                    .as_ref()
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default()
            )));
        }
        if let Some(account) = &flag.account {
            for dest in &mut model.config.destinations {
                for t in &mut dest.targets {
                    let key = model.target_keys.get(&(dest.name.clone(), t.name.clone()));
                    let hit = key.is_some_and(|k| {
                        k.cluster == flag.cluster
                            && k.namespace == flag.namespace
                            && k.service == flag.service
                            && match &flag.subset {
                                None => k.subset.is_empty(),
                                Some(s) => k.subset.contains(s),
                            }
                    });
                    if hit {
                        t.service_account = account.clone();
                    }
                }
            }
        }
    }
    Ok(())
}

/// Applies `--http2` flags (after [`apply_endpoints`]): the upstreams of the targets they
/// name speak HTTP/2. Every flag must match some target with a known address.
pub fn apply_http2(model: &mut Model, flags: &[TargetFlag]) -> Result<(), Error> {
    for flag in flags {
        let mut matched = false;
        for up in model.upstreams.values_mut() {
            if !up.keys.iter().any(|k| flag.selects(k)) {
                continue;
            }
            let address = up.address.as_mut().ok_or_else(|| {
                Error::plain(format!(
                    "--http2 {flag}: no address known; give --endpoint {flag}=HOST:PORT"
                ))
            })?;
            address.protocol = UpstreamProtocol::Http2;
            matched = true;
        }
        if !matched {
            return Err(Error::plain(format!("--http2 {flag}: no target is {flag}")));
        }
    }
    Ok(())
}

/// Builds the bootstrap. Targets sharing an address and protocol share one Envoy cluster
/// (named after the first in name order), and the embedded plugin config points them all
/// at it.
pub fn bootstrap(model: &Model, opts: &EnvoyOptions) -> Result<Value, Error> {
    let mut config = model.config.clone();
    // Address of every upstream a target uses.
    let mut used: BTreeMap<String, Address> = BTreeMap::new();
    let mut missing = Vec::new();
    for dest in &config.destinations {
        for t in &dest.targets {
            match model
                .upstreams
                .get(&t.envoy_cluster)
                .and_then(|u| u.address.clone())
            {
                Some(a) => {
                    used.insert(t.envoy_cluster.clone(), a);
                }
                None => {
                    let hint = model
                        .target_keys
                        .get(&(dest.name.clone(), t.name.clone()))
                        .map(|k| {
                            let subset = k
                                .subset
                                .first()
                                .map(|s| format!("/{s}"))
                                .unwrap_or_default();
                            format!(
                                "--endpoint {}/{}/{}{subset}=HOST:PORT",
                                k.cluster, k.namespace, k.service
                            )
                        })
                        .unwrap_or_default();
                    if !missing.contains(&hint) {
                        missing.push(hint);
                    }
                }
            }
        }
    }
    if !missing.is_empty() {
        return Err(Error::plain(format!(
            "no address known for some targets; give {}",
            missing.join(", ")
        )));
    }
    // One Envoy cluster per distinct address and protocol.
    let mut by_address: BTreeMap<(String, u16, bool), String> = BTreeMap::new();
    let mut rename: BTreeMap<String, String> = BTreeMap::new();
    for (name, addr) in &used {
        let http2 = addr.protocol == UpstreamProtocol::Http2;
        let canonical = by_address
            .entry((addr.host.clone(), addr.port, http2))
            .or_insert_with(|| name.clone());
        rename.insert(name.clone(), canonical.clone());
    }
    for dest in &mut config.destinations {
        for t in &mut dest.targets {
            if let Some(n) = rename.get(&t.envoy_cluster) {
                t.envoy_cluster = n.clone();
            }
        }
    }
    let mut clusters: Vec<Cluster> = by_address
        .into_iter()
        .map(|((host, port, http2), name)| Cluster {
            protocol: if http2 {
                UpstreamProtocol::Http2
            } else {
                UpstreamProtocol::Http1
            },
            ..Cluster::new(name, SocketAddress::new(host, port))
        })
        .collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));

    let header = config
        .cluster_header
        .clone()
        .unwrap_or_else(|| DEFAULT_CLUSTER_HEADER.to_string());
    let plugin_json = serde_json::to_string_pretty(&config)
        .map_err(|e| Error::plain(format!("cannot serialize the plugin config: {e}")))?;
    let filter = WasmFilter::new("xcluster", opts.wasm.clone(), plugin_json);
    let mut listener = Listener::new(
        LISTENER,
        opts.listen.clone(),
        HttpConnectionManager::xcluster("xcluster", filter, &header),
    );
    listener.tls = opts.tls.as_ref().map(|tls| DownstreamTls {
        certificate_chain: DataSource::Filename(tls.cert.clone()),
        private_key: DataSource::Filename(tls.key.clone()),
        trusted_ca: DataSource::Filename(tls.client_ca.clone()),
    });
    let local = config.local.clone().unwrap_or_default();
    let node = Node {
        id: NODE.into(),
        cluster: NODE.into(),
        cluster_id: local.cluster,
        locality: Locality {
            region: local.region,
            zone: local.zone,
        },
    };
    Ok(Bootstrap {
        node: Some(node),
        admin: opts.admin.clone(),
        listeners: vec![listener],
        clusters,
        stats_config: Some(StatsConfig::xcluster()),
        lds_path: None,
    }
    .render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_flags_parse_subsets_and_accounts() {
        let f: EndpointFlag =
            "c1/bookinfo/reviews/version=v2,app=r=127.0.0.1:9080@bookinfo/reviews"
                .parse()
                .unwrap();
        assert_eq!(f.subset.as_deref(), Some("app=r,version=v2"));
        assert_eq!((f.host.as_str(), f.port), ("127.0.0.1", 9080));
        assert_eq!(f.account.unwrap().name, "reviews");
        let g: EndpointFlag = "c2/httpbin/httpbin=[::1]:81@default".parse().unwrap();
        assert_eq!(
            (
                g.host.as_str(),
                g.subset,
                g.account.unwrap().namespace.as_str()
            ),
            ("::1", None, "httpbin")
        );
        assert!("c1/ns=1.2.3.4:80".parse::<EndpointFlag>().is_err());
        assert!("c1/ns/svc=1.2.3.4:http".parse::<EndpointFlag>().is_err());
        assert!("c1//svc=1.2.3.4:80".parse::<EndpointFlag>().is_err());
    }

    #[test]
    fn http2_flags_name_targets() {
        let f: TargetFlag = "c1/bookinfo/reviews/version=v2,app=r".parse().unwrap();
        assert_eq!(f.subset.as_deref(), Some("app=r,version=v2"));
        assert_eq!(f.to_string(), "c1/bookinfo/reviews/app=r,version=v2");
        let key = |subset: &[&str]| EndpointKey {
            cluster: "c1".into(),
            namespace: "bookinfo".into(),
            service: "reviews".into(),
            subset: subset.iter().map(|s| s.to_string()).collect(),
        };
        assert!(f.selects(&key(&["v2", "app=r,version=v2"])));
        assert!(!f.selects(&key(&[])));
        let plain: TargetFlag = "c1/bookinfo/reviews".parse().unwrap();
        assert!(plain.selects(&key(&[])));
        assert!(!plain.selects(&key(&["v2"])));
        let err = "c1/reviews".parse::<TargetFlag>().unwrap_err();
        assert!(err.contains("CLUSTER/NAMESPACE/SERVICE"), "{err}");
    }
}
