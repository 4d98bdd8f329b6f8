//! An invalid plugin config is refused: Envoy (fail closed) does not start, and its log
//! names the offending field.
#![cfg(test)]

use std::time::Duration;

use serde_json::{json, Value};
use xcluster_e2e::envoy::{Bootstrap, Envoy, Listener};
use xcluster_e2e::scenario::ACTIVE_ACTIVE;

fn refused(name: &str, config: &Value) -> String {
    let bootstrap = Bootstrap {
        wasm: xcluster_wasm_build::filter_wasm().unwrap(),
        listeners: vec![Listener::plain("gw", config)],
        clusters: vec![],
        upstream_protocol: xcluster_envoy::UpstreamProtocol::Http1,
    };
    let mut envoy = Envoy::spawn(name, &bootstrap).unwrap();
    let status = envoy.wait_exit(Duration::from_secs(60));
    let log = envoy.log();
    assert!(
        status.is_some_and(|s| !s.success()),
        "envoy accepted the config ({status:?}):\n{log}"
    );
    log
}

#[test]
fn wrong_type_is_refused_with_its_field_path() {
    let mut config = ACTIVE_ACTIVE.value();
    config["destinations"][0]["targets"][0]["weight"] = json!(-5);
    let log = refused("invalid-weight", &config);
    assert!(
        log.contains("xcluster: invalid plugin config: destinations[0].targets[0].weight"),
        "{log}"
    );
}

#[test]
fn dangling_reference_is_refused_with_its_field_path() {
    let mut config = ACTIVE_ACTIVE.value();
    config["routes"][0]["destination"] = json!("no-such-destination");
    let log = refused("invalid-route", &config);
    assert!(
        log.contains("xcluster: invalid plugin config: routes[0].destination"),
        "{log}"
    );
}
