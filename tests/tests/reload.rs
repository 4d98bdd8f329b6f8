//! Safe reload: Envoy takes its listener from an LDS file (`path_config_source`), and the
//! file is replaced atomically (write, then rename). An update whose plugin config the
//! filter refuses is rejected as a whole (`listener_manager.lds.update_rejected`) and the
//! listener keeps serving with the config it had; a valid update then applies.
#![cfg(test)]

use std::io;
use std::time::Duration;

use serde_json::json;
use xcluster_e2e::envoy::{Bootstrap, Config, Envoy, LdsFile, Listener, Options};
use xcluster_e2e::fixture::{outcome, Tally};
use xcluster_e2e::scenario::{ACTIVE_ACTIVE, CLUSTERS, FAILOVER, HTTPBIN_HOST};
use xcluster_e2e::upstream::Upstream;
use xcluster_envoy::UpstreamProtocol;

/// How long an LDS update may take to be seen (Envoy re-reads the file on the rename).
const UPDATE_DEADLINE: Duration = Duration::from_secs(30);

const LISTENER: &str = "gw";

fn counter(envoy: &Envoy, name: &str) -> u64 {
    envoy
        .stats(name)
        .ok()
        .and_then(|s| s.get(name).copied())
        .unwrap_or(0)
}

/// Waits until counter `name` reaches `value`.
fn wait_counter(envoy: &Envoy, name: &str, value: u64) {
    let reached = xcluster_e2e::wait_for(UPDATE_DEADLINE, || {
        (counter(envoy, name) >= value).then_some(())
    });
    assert!(
        reached.is_some(),
        "{name} stayed at {} (< {value}):\n{}",
        counter(envoy, name),
        envoy.log()
    );
}

/// Who serves 30 requests, each on a new connection (a listener update applies to new
/// connections).
fn serving(envoy: &Envoy) -> Tally {
    let mut client = xcluster_e2e::client::Client::plain(envoy.listener(LISTENER));
    Tally::collect(30, || -> io::Result<_> {
        client.disconnect();
        client.get(HTTPBIN_HOST, "/")
    })
}

#[test]
fn a_refused_plugin_config_keeps_the_old_one_serving_and_a_valid_one_applies() {
    let upstreams: Vec<Upstream> = CLUSTERS
        .iter()
        .map(|n| Upstream::start(n).unwrap())
        .collect();
    let mut bootstrap = Bootstrap {
        wasm: xcluster_wasm_build::filter_wasm().unwrap(),
        listeners: vec![Listener::plain(LISTENER, &FAILOVER.value())],
        clusters: upstreams
            .iter()
            .map(|u| (u.name().to_string(), u.addr()))
            .collect(),
        upstream_protocol: UpstreamProtocol::Http1,
    };
    let mut lds = LdsFile::create("reload").unwrap();
    lds.write(&bootstrap.lds("1")).unwrap();
    let envoy = Envoy::start_with(
        &Options::named("reload"),
        Config::Json(&bootstrap.render_dynamic(&lds)),
    )
    .unwrap();
    wait_counter(&envoy, "listener_manager.lds.update_success", 1);
    let tally = serving(&envoy);
    assert_eq!(tally.outcomes(), ["cluster-2"], "{tally}");

    // A weight of -5: the filter refuses the config on Envoy's canary VM, so the whole
    // listener update is rejected.
    let mut broken = ACTIVE_ACTIVE.value();
    broken["destinations"][0]["targets"][0]["weight"] = json!(-5);
    bootstrap.listeners = vec![Listener::plain(LISTENER, &broken)];
    lds.write(&bootstrap.lds("2")).unwrap();
    wait_counter(&envoy, "listener_manager.lds.update_rejected", 1);
    assert!(
        envoy
            .log()
            .contains("xcluster: invalid plugin config: destinations[0].targets[0].weight"),
        "{}",
        envoy.log()
    );
    let tally = serving(&envoy);
    assert_eq!(
        tally.outcomes(),
        ["cluster-2"],
        "after the rejected update: {tally}"
    );

    // A valid update applies: ActiveActive spreads over all three clusters.
    bootstrap.listeners = vec![Listener::plain(LISTENER, &ACTIVE_ACTIVE.value())];
    lds.write(&bootstrap.lds("3")).unwrap();
    wait_counter(&envoy, "listener_manager.lds.update_success", 2);
    let spread = xcluster_e2e::wait_for(UPDATE_DEADLINE, || {
        let tally = serving(&envoy);
        (tally.outcomes() == ["cluster-1", "cluster-2", "cluster-3"]).then_some(tally)
    });
    assert!(
        spread.is_some(),
        "the valid update never served:\n{}",
        envoy.log()
    );
    assert_eq!(
        counter(&envoy, "listener_manager.lds.update_rejected"),
        1,
        "{}",
        envoy.log()
    );
    let resp = xcluster_e2e::client::Client::plain(envoy.listener(LISTENER))
        .get(HTTPBIN_HOST, "/")
        .unwrap();
    assert_eq!(resp.status, 200, "{}", outcome(&resp));
}
