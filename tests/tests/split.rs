//! Weighted split over a real Envoy: 75 / 15 / 10 lands within ±3 points.
#![cfg(test)]

use xcluster_e2e::envoy::Listener;
use xcluster_e2e::fixture::{Gateway, Tally};
use xcluster_e2e::scenario::{REVIEWS_HOST, SPLIT};

#[test]
fn split_75_15_10_lands_within_3_points() {
    let gw = Gateway::start("split", vec![Listener::plain("split", &SPLIT.value())]).unwrap();
    let addr = gw.listener("split");
    // 4 connections × 750 requests, spread over Envoy's two worker VMs.
    let clients = (0..4)
        .map(|_| xcluster_e2e::client::Client::plain(addr))
        .collect();
    let tally = Tally::collect_parallel(clients, 750, REVIEWS_HOST, "/reviews/1");
    println!("split over {} requests: {tally}", tally.total());
    assert_eq!(tally.total(), 3000);
    assert_eq!(
        tally.outcomes(),
        ["cluster-1", "cluster-2", "cluster-3"],
        "only the three clusters answer: {tally}"
    );
    tally.assert_shares(
        &[
            ("cluster-1", 0.75),
            ("cluster-2", 0.15),
            ("cluster-3", 0.10),
        ],
        3.0,
    );
    // The upstreams saw exactly what the client saw.
    for upstream in &gw.clusters {
        assert_eq!(upstream.served() as usize, tally.count(upstream.name()));
    }
    // And so did the filter's own counters.
    let stats = gw.envoy.stats("xcluster_requests_total").unwrap();
    for cluster in ["cluster-1", "cluster-2", "cluster-3"] {
        let name = format!(
            "wasmcustom.xcluster_requests_total.destination=.=reviews;.;target=.={cluster};.;"
        );
        assert_eq!(
            stats.get(&name).copied(),
            Some(tally.count(cluster) as u64),
            "{name} in {stats:?}"
        );
    }
}
