//! Helpers shared by the behaviour suites: the real filter module, config builders and
//! a one-call request driver.
#![cfg(test)]
#![allow(dead_code)]

use std::sync::OnceLock;

use serde_json::{json, Value};
use xcluster_host_sim::{Action, Host, HostOptions, HttpStream, Vm, VmConfig};

/// The built filter's bytes (built once per test binary).
pub fn wasm() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        let path = xcluster_host_sim::filter_wasm().unwrap_or_else(|e| panic!("{e}"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

/// A host running the real filter, logging at info like a default Envoy.
pub fn new_host() -> Host {
    host_with_seed(7)
}

/// A host with a given random seed.
pub fn host_with_seed(seed: u64) -> Host {
    host_with(seed, xcluster_host_sim::LogLevel::Info)
}

/// A host that keeps log lines down to `level` (Envoy with `-l debug` for `Debug`).
pub fn host_with(seed: u64, log_level: xcluster_host_sim::LogLevel) -> Host {
    let options = HostOptions {
        seed,
        log_level,
        ..HostOptions::default()
    };
    Host::new(wasm(), options).unwrap()
}

/// Starts a VM with `config` (JSON), panicking with the filter's error log on rejection.
pub fn start(host: &Host, config: &Value) -> Vm {
    match host.start_vm(VmConfig::plugin(config.to_string())) {
        Ok(vm) => vm,
        Err(e) => panic!("{e}: {:?}", host.logs()),
    }
}

/// A target in cluster `cluster` served by ServiceAccount `ns/sa`.
pub fn target(name: &str, cluster: &str, sa: &str) -> Value {
    let (ns, sa) = sa.split_once('/').unwrap();
    json!({
        "name": name,
        "cluster": cluster,
        "envoy_cluster": format!("outbound|{name}"),
        "service_account": {"namespace": ns, "name": sa},
    })
}

/// A config with one route `r` (host `svc.example.com`) to destination `d`.
pub fn config(targets: Vec<Value>, extra: Value) -> Value {
    let mut cfg = json!({
        "version": 1,
        "local": {"cluster": "c1", "region": "eu", "zone": "eu-a"},
        "routes": [{"name": "r", "match": {"hosts": ["svc.example.com"]}, "destination": "d"}],
        "destinations": [{"name": "d", "targets": targets}],
    });
    merge(&mut cfg, extra);
    cfg
}

/// Deep-merges `extra` into `base` (objects merge, everything else replaces).
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// A GET to `svc.example.com` + `path` with extra headers.
pub fn get(path: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h = vec![
        (":method".to_string(), "GET".to_string()),
        (":path".to_string(), path.to_string()),
        (":authority".to_string(), "svc.example.com".to_string()),
        (":scheme".to_string(), "https".to_string()),
    ];
    h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    h
}

/// Sends request headers (end of stream) with an optional peer identity.
pub fn send(vm: &Vm, headers: &[(String, String)], peer: Option<&str>) -> (HttpStream, Action) {
    let mut s = vm.http_stream().unwrap();
    if let Some(peer) = peer {
        s.set_peer_uri_san(peer);
    }
    let action = s.request_headers(headers, true).unwrap();
    (s, action)
}

/// The target a forwarded request was routed to (from the cluster header).
pub fn routed(s: &HttpStream) -> Option<String> {
    s.request_header("x-xcluster-cluster")
        .map(|c| c.trim_start_matches("outbound|").to_string())
}

/// Sends `n` plain requests and counts the targets chosen.
pub fn spread(vm: &Vm, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for _ in 0..n {
        let (mut s, _) = send(vm, &get("/", &[]), None);
        *out.entry(routed(&s).unwrap_or_else(|| "-".into()))
            .or_default() += 1;
        s.finish().unwrap();
    }
    out
}

/// The SPIFFE id of ServiceAccount `ns/sa` in trust domain `cluster.local`.
pub fn spiffe(sa: &str) -> String {
    let (ns, sa) = sa.split_once('/').unwrap();
    format!("spiffe://cluster.local/ns/{ns}/sa/{sa}")
}
