//! Behaviour of the real filter: plugin config rejection, with the field path in one
//! error log line, and acceptance of valid configs.
#![cfg(test)]

mod common;

use common::*;
use serde_json::{json, Value};
use xcluster_host_sim::{LogLevel, SimError, VmConfig};

/// Starts a VM with `cfg` and returns the single error line it must log on rejection.
fn rejection(cfg: &str) -> String {
    let host = new_host();
    let result = host.start_vm(VmConfig::plugin(cfg));
    assert_eq!(result.err(), Some(SimError::ConfigRejected), "config {cfg}");
    let errors = host.logs_at(LogLevel::Error);
    assert_eq!(errors.len(), 1, "exactly one error line: {errors:?}");
    errors[0].clone()
}

fn rejected_at(cfg: Value, path: &str) -> String {
    let line = rejection(&cfg.to_string());
    let prefix = format!("xcluster: invalid plugin config: {path}: ");
    assert!(
        line.starts_with(&prefix),
        "expected {prefix:?}, got {line:?}"
    );
    line[prefix.len()..].to_string()
}

fn base() -> Value {
    config(
        vec![target("a", "c1", "ns/a"), target("b", "c2", "ns/b")],
        json!({"access": {
            "mode": "enforce",
            "route_groups": [{"name": "g", "matches": [{"name": "all"}]}],
            "traffic_targets": [
                {"name": "t0", "destination": {"namespace": "ns", "name": "a"},
                 "sources": [{"namespace": "x", "name": "y"}], "rules": [{"route_group": "g"}]},
                {"name": "t1", "destination": {"namespace": "ns", "name": "b"},
                 "sources": [{"namespace": "x", "name": "y"}], "rules": [{"route_group": "g"}]},
                {"name": "t2", "destination": {"namespace": "ns", "name": "b"},
                 "sources": [{"namespace": "x", "name": "y"}], "rules": [{"route_group": "g"}]}
            ]
        }}),
    )
}

#[test]
fn the_base_config_is_accepted() {
    let host = new_host();
    start(&host, &base());
    assert!(host.logs_at(LogLevel::Error).is_empty());
}

#[test]
fn bad_target_fields_are_reported_with_their_path() {
    let mut cfg = base();
    cfg["destinations"][0]["targets"][1]["weight"] = json!(-1);
    rejected_at(cfg, "destinations[0].targets[1].weight");
    let mut cfg = base();
    cfg["destinations"][0]["targets"][1]["weight"] = json!("heavy");
    rejected_at(cfg, "destinations[0].targets[1].weight");
    let mut cfg = base();
    cfg["destinations"][0]["targets"][0]["colour"] = json!("red");
    let why = rejected_at(cfg, "destinations[0].targets[0].colour");
    assert!(why.contains("unknown field"), "{why}");
}

#[test]
fn dangling_references_are_reported_with_their_path() {
    let mut cfg = base();
    cfg["access"]["traffic_targets"][2]["rules"][0]["route_group"] = json!("nope");
    let why = rejected_at(cfg, "access.traffic_targets[2].rules[0].route_group");
    assert!(why.contains("nope"), "{why}");
    let mut cfg = base();
    cfg["routes"] = json!([
        {"name": "r", "destination": "d"},
        {"name": "r2", "destination": "missing"}
    ]);
    let why = rejected_at(cfg, "routes[1].destination");
    assert!(why.contains("missing"), "{why}");
}

#[test]
fn bad_regexes_versions_and_json_are_rejected() {
    let mut cfg = base();
    cfg["access"]["route_groups"][0]["matches"][0]["path_regex"] = json!("/api/(");
    rejected_at(cfg, "access.route_groups[0].matches[0].path_regex");
    let mut cfg = base();
    cfg["version"] = json!(2);
    rejected_at(cfg, "version");
    let line = rejection("{\"version\": 1,");
    assert!(
        line.starts_with("xcluster: invalid plugin config: "),
        "{line}"
    );
    let line = rejection("");
    assert!(
        line.starts_with("xcluster: invalid plugin config: "),
        "{line}"
    );
}
