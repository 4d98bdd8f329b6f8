//! `xcluster-gen istio`'s output in a real Envoy built as Istio's control plane would build
//! the gateway from it (see `xcluster_e2e::istio`): the filter's header picks routes to
//! `outbound|PORT|SUBSET|HOST` clusters, whose endpoints are chosen by the DestinationRule
//! subsets' labels. Seed 000 splits 75 / 15 / 10, seed 002 denies by SMI access and fails
//! over to the remote gateways' ServiceEntries (replaying through those clusters), and the
//! filter's metrics come out of `/stats/prometheus` as labelled series under Istio's stats
//! settings.
#![cfg(test)]

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use xcluster_e2e::client::Client;
use xcluster_e2e::envoy::{Config, Envoy, Options, ServerTls};
use xcluster_e2e::fixture::{outcome, Tally};
use xcluster_e2e::istio::{istio_output, Endpoint, IstioDocs, GATEWAY_LISTENER};
use xcluster_e2e::pki::Pki;
use xcluster_e2e::prometheus;
use xcluster_e2e::scenario::{CURL_ID, HTTPBIN_HOST, INTRUDER_ID, REVIEWS_HOST, SEED_000_SHARES};
use xcluster_e2e::upstream::Upstream;

const REVIEWS: &str = "reviews.bookinfo.svc.cluster.local";
const HTTPBIN: &str = "httpbin.httpbin.svc.cluster.local";

fn start(name: &str, yaml: &str, endpoints: &[Endpoint], tls: Option<&ServerTls>) -> Envoy {
    let wasm = xcluster_wasm_build::filter_wasm().unwrap();
    let docs = IstioDocs::parse(yaml).unwrap();
    let bootstrap = docs.bootstrap(&wasm, endpoints, tls).unwrap();
    Envoy::start_with(&Options::named(name), Config::Json(&bootstrap)).unwrap()
}

fn scrape(envoy: &Envoy) -> String {
    prometheus::scrape(envoy).unwrap()
}

/// The sum of `family`'s series whose labels include `labels`.
fn sum(text: &str, family: &str, labels: &[(&str, &str)]) -> f64 {
    prometheus::series(text, family)
        .iter()
        .filter(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .sum()
}

fn golden(path: &str) -> String {
    std::fs::read_to_string(xcluster_e2e::workspace_root().join(path)).unwrap()
}

#[test]
fn istio_routes_split_000_at_75_15_10_and_count_it_in_labelled_series() {
    let upstreams = SEED_000_SHARES.map(|(target, _)| Upstream::start(target).unwrap());
    let endpoints = [
        Endpoint::new(REVIEWS, "remote-cluster", &[], upstreams[0].addr()),
        Endpoint::new(
            REVIEWS,
            "mgmt-cluster",
            &[("version", "v1")],
            upstreams[1].addr(),
        ),
        Endpoint::new(
            REVIEWS,
            "mgmt-cluster",
            &[("version", "v2")],
            upstreams[2].addr(),
        ),
    ];
    // What a user applies: the checked-in output of `xcluster-gen istio`.
    let yaml = golden("examples/000-gloo-traffic-shift/out/istio.yaml");
    let envoy = start("istio-split", &yaml, &endpoints, None);
    let gateway = envoy.listener(GATEWAY_LISTENER);
    let clients = (0..4).map(|_| Client::plain(gateway)).collect();
    let tally = Tally::collect_parallel(clients, 750, REVIEWS_HOST, "/reviews/1");
    println!("split over {} requests: {tally}", tally.total());
    assert_eq!(tally.total(), 3000);
    tally.assert_shares(&SEED_000_SHARES, 3.0);

    // Istio's stats inclusion keeps the filter's stats; its extraStatTags make labels.
    let text = scrape(&envoy);
    let series = prometheus::series(&text, "xcluster_requests_total");
    assert_eq!(series.len(), 3, "{series:?}");
    for (labels, value) in &series {
        assert_eq!(labels["destination"], "bookinfo/reviews");
        let upstream = upstreams
            .iter()
            .find(|u| u.name() == labels["target"])
            .unwrap();
        assert_eq!(*value, upstream.served() as f64, "{labels:?}");
    }
    assert_eq!(sum(&text, "xcluster_requests_total", &[]), 3000.0);
    assert!(
        !text.contains("=.="),
        "a tag was left in a name: {}",
        text.lines().find(|l| l.contains("=.=")).unwrap_or_default()
    );
}

/// Seed 002's three httpbin clusters: the local one by its subset, the remote ones behind
/// their gateways' ServiceEntries.
fn fsm_endpoints(upstreams: &[Upstream; 3]) -> Vec<Endpoint> {
    vec![
        Endpoint::new(
            "gateway.cluster-1.xcluster.internal",
            "cluster-1",
            &[],
            upstreams[0].addr(),
        ),
        Endpoint::new(HTTPBIN, "cluster-2", &[], upstreams[1].addr()),
        Endpoint::new(
            "gateway.cluster-3.xcluster.internal",
            "cluster-3",
            &[],
            upstreams[2].addr(),
        ),
    ]
}

fn fsm_upstreams() -> [Upstream; 3] {
    ["cluster-1", "cluster-2", "cluster-3"].map(|c| Upstream::start(c).unwrap())
}

#[test]
fn istio_routes_deny_002_callers_smi_does_not_allow() {
    let pki = Pki::new().unwrap();
    let tls = ServerTls {
        cert: pki.server_cert("localhost").unwrap(),
        client_ca_pem: pki.ca_pem(),
    };
    let client = |id: &str| -> Arc<ClientConfig> {
        pki.client_config(&pki.client_cert(id).unwrap()).unwrap()
    };
    let upstreams = fsm_upstreams();
    let yaml = golden("examples/002-fsm/out/smi/istio.yaml");
    let envoy = start("istio-smi", &yaml, &fsm_endpoints(&upstreams), Some(&tls));
    let gateway = envoy.listener(GATEWAY_LISTENER);

    let mut intruder = Client::tls(gateway, client(INTRUDER_ID), "localhost").unwrap();
    for _ in 0..20 {
        let resp = intruder.get(HTTPBIN_HOST, "/get").unwrap();
        assert_eq!((resp.status, resp.body.as_str()), (403, "access denied"));
    }
    assert!(upstreams.iter().all(|u| u.served() == 0));
    let mut curl = Client::tls(gateway, client(CURL_ID), "localhost").unwrap();
    let tally = Tally::collect(40, || curl.get(HTTPBIN_HOST, "/get"));
    assert_eq!(tally.outcomes(), ["cluster-2"], "{tally}");

    let text = scrape(&envoy);
    let denied = [
        ("destination", "httpbin/httpbin"),
        ("reason", "not_allowed"),
    ];
    assert_eq!(sum(&text, "xcluster_denied_total", &denied), 20.0);
    assert_eq!(
        sum(&text, "xcluster_requests_total", &[("target", "cluster-2")]),
        40.0
    );
}

#[test]
fn istio_routes_fail_002_over_to_the_remote_gateways_without_losing_a_request() {
    let mut upstreams = fsm_upstreams();
    let yaml = istio_output(
        &["examples/002-fsm/common", "examples/002-fsm/failover"],
        "cluster-2",
    )
    .unwrap();
    let envoy = start("istio-failover", &yaml, &fsm_endpoints(&upstreams), None);
    let mut client = Client::plain(envoy.listener(GATEWAY_LISTENER));

    let before = Tally::collect(20, || client.get(HTTPBIN_HOST, "/get"));
    assert_eq!(before.outcomes(), ["cluster-2"], "{before}");

    // cluster-2 goes down: each failed request is replayed on a remote gateway (through
    // its outbound|…|gateway.cluster-N.xcluster.internal cluster) until cluster-2 is
    // ejected; then the remote gateways serve, under their path prefixes.
    upstreams[1].stop();
    let mut after = Tally::default();
    for _ in 0..40 {
        let resp = client.get(HTTPBIN_HOST, "/get").unwrap();
        let cluster = outcome(&resp);
        if resp.status == 200 {
            let want = format!("/{cluster}/httpbin-mesh/get");
            assert_eq!(
                resp.header("x-upstream-path"),
                Some(want.as_str()),
                "{resp:?}"
            );
        }
        after.add(cluster, 1);
    }
    println!("after cluster-2 went down: {after}");
    assert_eq!(after.outcomes(), ["cluster-1", "cluster-3"], "{after}");

    let text = scrape(&envoy);
    let ejected = xcluster_e2e::wait_for(Duration::from_secs(3), || {
        let t = scrape(&envoy);
        (sum(
            &t,
            "xcluster_ejected_targets",
            &[("destination", "httpbin/httpbin")],
        ) >= 1.0)
            .then_some(())
    });
    assert!(ejected.is_some(), "{text}");
    assert!(
        sum(
            &text,
            "xcluster_ejections_total",
            &[("target", "cluster-2")]
        ) >= 1.0
    );
    assert!(
        sum(
            &text,
            "xcluster_replays_total",
            &[("destination", "httpbin/httpbin")]
        ) >= 1.0
    );
}
