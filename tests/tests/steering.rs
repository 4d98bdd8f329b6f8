//! A client cannot pick its own cluster: the filter strips the cluster-selection header
//! before deciding, so a forged header neither overrides nor survives the decision.
#![cfg(test)]

use xcluster_e2e::envoy::Listener;
use xcluster_e2e::fixture::{Gateway, Tally};
use xcluster_e2e::scenario::{FAILOVER, HTTPBIN_HOST, LOCALITY_NO_LOCAL};
use xcluster_envoy::NO_CLUSTER_BODY;
use xcluster_filter::config::DEFAULT_CLUSTER_HEADER;

#[test]
fn forged_cluster_header_cannot_steer() {
    let gw = Gateway::start(
        "steering",
        vec![
            Listener::plain(FAILOVER.name, &FAILOVER.value()),
            Listener::plain(LOCALITY_NO_LOCAL.name, &LOCALITY_NO_LOCAL.value()),
        ],
    )
    .unwrap();
    let forged = [(DEFAULT_CLUSTER_HEADER, "cluster-3")];

    // FailOver with a local target: always cluster-2, whatever the client asks for.
    let mut client = gw.client(FAILOVER.name);
    let tally = Tally::collect(50, || client.request("GET", HTTPBIN_HOST, "/", &forged));
    assert_eq!(tally.outcomes(), ["cluster-2"], "{tally}");

    // No target may serve: the forged header does not sneak the request through.
    let mut client = gw.client(LOCALITY_NO_LOCAL.name);
    let resp = client.request("GET", HTTPBIN_HOST, "/", &forged).unwrap();
    assert_eq!(
        (resp.status, resp.body.as_str()),
        (503, "no healthy target")
    );

    // No route matches: the header is still stripped, so Envoy selects no cluster.
    let resp = client
        .request("GET", "elsewhere.example", "/", &forged)
        .unwrap();
    assert_eq!((resp.status, resp.body.as_str()), (404, NO_CLUSTER_BODY));

    assert_eq!(gw.clusters[2].served(), 0, "cluster-3 was steered to");
}

/// With `clear_route_cache: false` the filter leaves matching the route again to Envoy,
/// which does it itself when a filter of ABI 0.2.1 changes request headers: the route's
/// `cluster_header` still reads the filter's choice, never the client's.
#[test]
fn routing_rematches_when_the_host_clears_the_route_cache() {
    let mut config = FAILOVER.value();
    config["clear_route_cache"] = false.into();
    let gw = Gateway::start(
        "steering-host-clears",
        vec![Listener::plain(FAILOVER.name, &config)],
    )
    .unwrap();
    let mut client = gw.client(FAILOVER.name);
    let forged = [(DEFAULT_CLUSTER_HEADER, "cluster-3")];
    let tally = Tally::collect(50, || client.request("GET", HTTPBIN_HOST, "/", &forged));
    assert_eq!(tally.outcomes(), ["cluster-2"], "{tally}");
    let tally = Tally::collect(20, || client.request("GET", HTTPBIN_HOST, "/", &[]));
    assert_eq!(tally.outcomes(), ["cluster-2"], "{tally}");
    assert_eq!(gw.clusters[2].served(), 0, "cluster-3 was steered to");
}
