//! Seed 002's story through a real Envoy: `Locality` with no local httpbin → 503;
//! `FailOver` → the remote clusters (through their gateway paths); once httpbin appears
//! in the local cluster-2 → cluster-2 only; `ActiveActive` → all three.
#![cfg(test)]

use xcluster_e2e::envoy::Listener;
use xcluster_e2e::fixture::{Gateway, Tally};
use xcluster_e2e::scenario::{
    PluginConfigFile, ACTIVE_ACTIVE, DECISION_HEADER, FAILOVER, FAILOVER_NO_LOCAL, HTTPBIN_HOST,
    LOCALITY_NO_LOCAL,
};

fn gateway() -> Gateway {
    let steps: [PluginConfigFile; 4] = [
        LOCALITY_NO_LOCAL,
        FAILOVER_NO_LOCAL,
        FAILOVER,
        ACTIVE_ACTIVE,
    ];
    let listeners = steps
        .iter()
        .map(|step| Listener::plain(step.name, &step.value()))
        .collect();
    Gateway::start("locality", listeners).unwrap()
}

#[test]
fn seed_002_locality_failover_active_active() {
    let gw = gateway();

    // Locality, httpbin only remote: nothing may serve.
    let mut client = gw.client(LOCALITY_NO_LOCAL.name);
    let resp = client.get(HTTPBIN_HOST, "/").unwrap();
    assert_eq!(
        (resp.status, resp.body.as_str()),
        (503, "no healthy target")
    );
    let decision = resp.header(DECISION_HEADER).unwrap_or_default().to_string();
    assert!(
        decision.contains("target=-"),
        "decision header: {decision:?}"
    );
    let tally = Tally::collect(20, || client.get(HTTPBIN_HOST, "/"));
    assert_eq!(tally.count("503 no healthy target"), 20, "{tally}");

    // FailOver, httpbin only remote: cluster-1 and cluster-3 serve, under their gateway paths.
    let mut client = gw.client(FAILOVER_NO_LOCAL.name);
    let mut tally = Tally::default();
    for _ in 0..200 {
        let resp = client.get(HTTPBIN_HOST, "/get").unwrap();
        tally.record(&resp);
        if resp.status == 200 {
            let cluster = xcluster_e2e::scenario::served_by(&resp.body).unwrap_or_default();
            assert_eq!(
                resp.header("x-upstream-path"),
                Some(format!("/{cluster}/httpbin-mesh/get").as_str()),
                "path prefix of {cluster}"
            );
        }
    }
    println!("FailOver (no local): {tally}");
    assert_eq!(tally.outcomes(), ["cluster-1", "cluster-3"], "{tally}");

    // FailOver after httpbin appeared in cluster-2: local only, path untouched.
    let mut client = gw.client(FAILOVER.name);
    let resp = client.get(HTTPBIN_HOST, "/get").unwrap();
    assert_eq!(resp.header("x-upstream-path"), Some("/get"));
    let decision = resp.header(DECISION_HEADER).unwrap_or_default().to_string();
    assert!(
        decision.contains("target=cluster-2") && decision.contains("tier=0"),
        "decision header: {decision:?}"
    );
    let tally = Tally::collect(100, || client.get(HTTPBIN_HOST, "/get"));
    println!("FailOver (local): {tally}");
    assert_eq!(tally.outcomes(), ["cluster-2"], "{tally}");

    // ActiveActive: all three serve, about evenly (equal weights).
    let mut client = gw.client(ACTIVE_ACTIVE.name);
    let tally = Tally::collect(300, || client.get(HTTPBIN_HOST, "/get"));
    println!("ActiveActive: {tally}");
    assert_eq!(
        tally.outcomes(),
        ["cluster-1", "cluster-2", "cluster-3"],
        "{tally}"
    );
    for cluster in ["cluster-1", "cluster-2", "cluster-3"] {
        let share = tally.share(cluster);
        assert!((0.2..=0.47).contains(&share), "{cluster}: {tally}");
    }
}

#[test]
fn other_hosts_do_not_match_the_route() {
    let gw = gateway();
    // No route matches (unmatched: pass): the request passes untouched and nothing selects
    // a cluster, so Envoy's fallback route answers.
    let resp = gw
        .client(ACTIVE_ACTIVE.name)
        .get("other.example:8080", "/")
        .unwrap();
    assert_eq!(
        (resp.status, resp.body.as_str()),
        (404, xcluster_envoy::NO_CLUSTER_BODY)
    );
}
