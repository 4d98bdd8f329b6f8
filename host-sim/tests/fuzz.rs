//! Property test: random requests and configs never trap the real filter.
#![cfg(test)]

mod common;

use std::sync::OnceLock;

use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use xcluster_host_sim::{Host, HostOptions, LogLevel, VmConfig};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..max),
        "[a-zA-Z0-9:./\\-_=;, \\[\\]*?]{0,40}".prop_map(String::into_bytes),
    ]
}

fn header_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b":method".to_vec()),
        Just(b":path".to_vec()),
        Just(b":authority".to_vec()),
        Just(b"cookie".to_vec()),
        Just(b"x-user".to_vec()),
        Just(b"x-env".to_vec()),
        Just(b"x-caller".to_vec()),
        Just(b"x-xcluster-cluster".to_vec()),
        "[a-zA-Z\\-]{1,12}".prop_map(String::into_bytes),
    ]
}

fn request() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    proptest::collection::vec((header_name(), bytes(64)), 0..10)
}

fn text() -> impl Strategy<Value = String> {
    "[a-z*./^$()\\[\\]|+?0-9-]{0,12}"
}

/// Mostly valid values, sometimes random text (which the filter may reject).
fn pick(valid: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(valid).prop_map(str::to_string),
        1 => text(),
    ]
}

fn config() -> impl Strategy<Value = Value> {
    let target = (
        pick(&["c", "c2", "c3"]),
        0u32..5,
        proptest::option::of(0u32..4),
        any::<bool>(),
        text(),
    );
    (
        proptest::collection::vec(target, 1..4),
        prop_oneof![Just("Locality"), Just("FailOver"), Just("ActiveActive")],
        prop_oneof![Just("permissive"), Just("enforce"), Just("dry-run")],
        (
            pick(&["", "/", "/api", "^/items/[0-9]+$", ".*", "/a|/b", "[a-z]+"]),
            pick(&["*", "svc.example.com", "*.example.com", "[::1]", "a.b"]),
            any::<bool>(),
        ),
        (
            pick(&["*", "GET", "POST", "DELETE"]),
            proptest::collection::vec(pick(&["*", "svc.example.com", "*.example.com"]), 0..3),
        ),
    )
        .prop_map(|(targets, policy, mode, (path_regex, host, sticky), (method, hosts))| {
            let targets: Vec<Value> = targets
                .into_iter()
                .enumerate()
                .map(|(i, (cluster, weight, priority, rewrite, prefix))| {
                    let mut t = json!({
                        "name": format!("t{i}"),
                        "cluster": cluster,
                        "envoy_cluster": format!("e{i}"),
                        "weight": weight,
                        "service_account": {"namespace": "ns", "name": format!("sa{i}")},
                    });
                    if let Some(p) = priority {
                        t["priority"] = json!(p);
                    }
                    if rewrite {
                        t["authority"] = json!("rewritten");
                        t["path_prefix"] = json!(format!("/{prefix}"));
                    }
                    t
                })
                .collect();
            let mut dest = json!({"name": "d", "hosts": hosts, "policy": policy, "targets": targets,
                "outlier_detection": {"consecutive_5xx": 1}});
            if sticky {
                dest["sticky"] = json!({"cookie": "u"});
            }
            json!({
                "version": 1,
                "decision_header": "x-d",
                "local": {"cluster": "c"},
                "identity": {"trusted_header": "x-caller"},
                "access": {
                    "mode": mode,
                    "route_groups": [{"name": "g", "matches": [{"name": "m", "path_regex": path_regex,
                        "methods": [method], "headers": {"x-env": path_regex}}]}],
                    "traffic_targets": [{"name": "tt", "destination": {"namespace": "ns", "name": "sa0"},
                        "sources": [{"namespace": "ns", "name": "curl"}], "rules": [{"route_group": "g"}]}]
                },
                "routes": [{"name": "r", "match": {"hosts": [host]}, "destination": "d"},
                           {"name": "any", "destination": "d"}],
                "destinations": [dest],
            })
        })
}

fn host() -> Host {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    let wasm = WASM.get_or_init(|| wasm().to_vec());
    let options = HostOptions {
        log_level: LogLevel::Warn,
        ..HostOptions::default()
    };
    Host::new(wasm, options).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_and_configs_never_trap(
        cfg in config(),
        requests in proptest::collection::vec((request(), 100u16..600, any::<u64>()), 1..6),
    ) {
        let host = host();
        // A config may be rejected (bad regex, ...), but never trap the VM.
        let vm = match host.start_vm(VmConfig::plugin(cfg.to_string())) {
            Ok(vm) => vm,
            Err(xcluster_host_sim::SimError::ConfigRejected) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("{e} for {cfg}"))),
        };
        for (headers, status, flags) in requests {
            let mut s = vm.http_stream().unwrap();
            s.set_peer_uri_san("spiffe://cluster.local/ns/ns/sa/curl");
            let action = s.request_headers(&headers, true);
            prop_assert!(action.is_ok(), "{action:?} for {headers:?} and {cfg}");
            if s.local_reply().is_none() {
                s.set_response_flags(flags);
                let r = s.response_headers(&[(":status", status.to_string())], true);
                prop_assert!(r.is_ok(), "{r:?}");
            }
            prop_assert!(s.finish().is_ok());
        }
        host.advance(std::time::Duration::from_secs(2)).unwrap();
        prop_assert!(!vm.is_failed());
        prop_assert!(host.logs_at(LogLevel::Critical).is_empty(), "{:?}", host.logs());
    }
}
