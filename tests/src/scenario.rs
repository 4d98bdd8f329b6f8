//! The e2e tests' world, in one place: three loopback clusters, the caller identities and
//! hand-written plugin configs (JSON files under `tests/configs/`, after seeds 000 and 002)
//! that exercise the filter's options directly (decision header, tighter outlier
//! detection). The demo and `tests/generated.rs` use the generator's output instead (see
//! [`crate::generated`]).
//!
//! The gateway runs in `cluster-2`. `httpbin` runs in `cluster-1` and `cluster-3` as
//! ServiceAccount `httpbin/httpbin` (reached through their gateways under
//! `/cluster-N/httpbin-mesh`) and, once it "appears" locally, in `cluster-2` as
//! `httpbin/default`. `reviews` is split 75 / 15 / 10 over the three clusters.

use serde_json::Value;

/// Names of the three clusters (upstream servers and Envoy clusters alike).
pub const CLUSTERS: [&str; 3] = ["cluster-1", "cluster-2", "cluster-3"];

/// `Host` of the seed-002 service.
pub const HTTPBIN_HOST: &str = "httpbin.httpbin:8080";

/// `Host` of the seed-000 split service.
pub const REVIEWS_HOST: &str = "reviews.bookinfo:9080";

/// Seed 000's targets and the shares of its 75 / 15 / 10 split.
pub const SEED_000_SHARES: [(&str, f64); 3] = [
    ("remote-cluster", 0.75),
    ("mgmt-cluster/version=v1", 0.15),
    ("mgmt-cluster/version=v2", 0.10),
];

/// Response header the hand-written configs ask the filter to explain its decision in.
pub const DECISION_HEADER: &str = "x-xcluster-decision";

/// SPIFFE identity of the seed's `curl` client (allowed by the TrafficTargets).
pub const CURL_ID: &str = "spiffe://cluster.local/ns/curl/sa/curl";

/// SPIFFE identity of a caller no TrafficTarget mentions.
pub const INTRUDER_ID: &str = "spiffe://cluster.local/ns/default/sa/intruder";

/// A named plugin config.
#[derive(Debug, Clone, Copy)]
pub struct PluginConfigFile {
    /// Short name (used as the Envoy listener name).
    pub name: &'static str,
    /// Path relative to the repository root.
    pub path: &'static str,
    /// The JSON text.
    pub json: &'static str,
}

impl PluginConfigFile {
    /// The config parsed as JSON.
    ///
    /// # Panics
    /// If the embedded file is not JSON (checked by this crate's unit tests).
    #[expect(
        clippy::panic,
        reason = "the embedded configs are checked by this crate's unit tests"
    )]
    pub fn value(&self) -> Value {
        match serde_json::from_str(self.json) {
            Ok(value) => value,
            Err(e) => panic!("{}: {e}", self.path),
        }
    }
}

macro_rules! config_file {
    ($name:literal) => {
        PluginConfigFile {
            name: $name,
            path: concat!("tests/configs/", $name, ".json"),
            json: include_str!(concat!("../configs/", $name, ".json")),
        }
    };
}

/// `Locality` while only cluster-1 and cluster-3 run httpbin.
pub const LOCALITY_NO_LOCAL: PluginConfigFile = config_file!("locality-no-local");
/// `FailOver` while only cluster-1 and cluster-3 run httpbin.
pub const FAILOVER_NO_LOCAL: PluginConfigFile = config_file!("failover-no-local");
/// `FailOver` after httpbin appeared in the local cluster-2.
pub const FAILOVER: PluginConfigFile = config_file!("failover");
/// `ActiveActive` over all three clusters.
pub const ACTIVE_ACTIVE: PluginConfigFile = config_file!("active-active");
/// `reviews`: 75 / 15 / 10 over cluster-1 / cluster-2 / cluster-3.
pub const SPLIT: PluginConfigFile = config_file!("split-75-15-10");
/// Enforced SMI access: curl may call ServiceAccount `httpbin/default` (cluster-2 only).
pub const ENFORCE_LOCAL_ONLY: PluginConfigFile = config_file!("enforce-local-only");
/// Enforced SMI access: curl may call `httpbin/default` and `httpbin/httpbin` (all clusters).
pub const ENFORCE: PluginConfigFile = config_file!("enforce");

/// Enforced SMI access: curl may `GET` paths under `/public/` only (cluster-2 only).
pub const PUBLIC_ONLY: PluginConfigFile = config_file!("public-only");
/// gRPC: `echo` split 50 / 50 over cluster-1 and cluster-3; `down.echo` has no local target
/// (`Locality`). Permissive; the TrafficTarget lets curl call `/xcluster.Echo/Who` in
/// enforce mode.
pub const GRPC_ECHO: PluginConfigFile = config_file!("grpc-echo");

/// Every hand-written config.
pub const ALL: [PluginConfigFile; 9] = [
    LOCALITY_NO_LOCAL,
    FAILOVER_NO_LOCAL,
    FAILOVER,
    ACTIVE_ACTIVE,
    SPLIT,
    ENFORCE_LOCAL_ONLY,
    ENFORCE,
    PUBLIC_ONLY,
    GRPC_ECHO,
];

/// Which cluster answered, from an upstream body `Hi, I am from cluster-N`.
pub fn served_by(body: &str) -> Option<&str> {
    body.strip_prefix("Hi, I am from ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use xcluster_filter::config::PluginConfig;

    #[test]
    fn hand_written_configs_match_the_wire_format() {
        for file in ALL {
            let parsed: Result<PluginConfig, _> = serde_json::from_str(file.json);
            assert!(parsed.is_ok(), "{}: {:?}", file.path, parsed.err());
        }
    }

    #[test]
    fn served_by_reads_the_greeting() {
        assert_eq!(
            served_by(&crate::upstream::greeting("cluster-3")),
            Some("cluster-3")
        );
        assert_eq!(served_by("access denied"), None);
    }
}
