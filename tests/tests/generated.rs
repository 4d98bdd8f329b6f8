//! The generator's output in a real Envoy: bootstraps rendered exactly as `xcluster-gen
//! envoy` renders them from `examples/` (addresses replaced by `--endpoint` flags that
//! point at loopback upstreams, downstream mTLS via `--tls-cert/--tls-key/--client-ca`
//! with test certificates). Seed 000's split lands at 75 / 15 / 10 and is counted in
//! labelled `/stats/prometheus` series, and seed 002's SMI policy decides access by the
//! caller's certificate.
#![cfg(test)]

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use xcluster_e2e::client::Client;
use xcluster_e2e::envoy::Envoy;
use xcluster_e2e::fixture::Tally;
use xcluster_e2e::generated::{EnvoyGen, TlsFiles, GATEWAY_LISTENER};
use xcluster_e2e::pki::Pki;
use xcluster_e2e::prometheus;
use xcluster_e2e::scenario::{CURL_ID, HTTPBIN_HOST, INTRUDER_ID, REVIEWS_HOST, SEED_000_SHARES};
use xcluster_e2e::upstream::{Upstream, HEALTH_PATH};
use xcluster_e2e::wait_for;

/// A test CA, its server certificate written for the generator, and client configs.
struct Certs {
    pki: Pki,
    files: TlsFiles,
}

fn certs() -> Certs {
    let pki = Pki::new().unwrap();
    let files = TlsFiles::write(&pki.server_cert("localhost").unwrap(), &pki.ca_pem()).unwrap();
    Certs { pki, files }
}

impl Certs {
    fn client(&self, spiffe_id: &str) -> Arc<ClientConfig> {
        self.pki
            .client_config(&self.pki.client_cert(spiffe_id).unwrap())
            .unwrap()
    }
}

fn start(name: &str, gen: &EnvoyGen) -> Envoy {
    let wasm = xcluster_wasm_build::filter_wasm().unwrap();
    println!("$ {}", gen.command_line(&wasm));
    gen.start(name, &wasm).unwrap()
}

fn tls_client(envoy: &Envoy, config: &Arc<ClientConfig>) -> Client {
    Client::tls(
        envoy.listener(GATEWAY_LISTENER),
        Arc::clone(config),
        "localhost",
    )
    .unwrap()
}

/// Seed 000's three targets, each at its own upstream, and the generator over its input
/// pointing at them.
fn seed_000() -> ([Upstream; 3], EnvoyGen) {
    let upstreams = SEED_000_SHARES.map(|(target, _)| Upstream::start(target).unwrap());
    let gen = EnvoyGen::new(&["examples/000-gloo-traffic-shift/traffic-policy.yaml"])
        .endpoint("remote-cluster/bookinfo/reviews", upstreams[0].addr())
        .endpoint(
            "mgmt-cluster/bookinfo/reviews/version=v1",
            upstreams[1].addr(),
        )
        .endpoint(
            "mgmt-cluster/bookinfo/reviews/version=v2",
            upstreams[2].addr(),
        );
    (upstreams, gen)
}

#[test]
fn generated_000_split_lands_at_75_15_10_within_3_points() {
    let certs = certs();
    let (upstreams, gen) = seed_000();
    let envoy = start("generated-split", &gen.tls(&certs.files));
    let caller = certs.client(CURL_ID);
    // 4 connections × 750 requests, spread over Envoy's two worker VMs.
    let clients = (0..4).map(|_| tls_client(&envoy, &caller)).collect();
    let tally = Tally::collect_parallel(clients, 750, REVIEWS_HOST, "/reviews/1");
    println!("split over {} requests: {tally}", tally.total());
    assert_eq!(tally.total(), 3000);
    tally.assert_shares(&SEED_000_SHARES, 3.0);
    // Nothing else answered, and the upstreams saw what the client saw.
    for upstream in &upstreams {
        assert_eq!(upstream.served() as usize, tally.count(upstream.name()));
    }
    assert_eq!(
        upstreams.iter().map(|u| u.served() as usize).sum::<usize>(),
        3000
    );
    // The bootstrap's stats tags make the filter's stats labelled Prometheus series, one
    // per target, that add up to the requests sent.
    let text = prometheus::scrape(&envoy).unwrap();
    let series = prometheus::series(&text, "xcluster_requests_total");
    assert_eq!(series.len(), 3, "{series:?}");
    for (labels, value) in &series {
        assert_eq!(labels["destination"], "bookinfo/reviews");
        assert_eq!(*value, tally.count(&labels["target"]) as f64, "{labels:?}");
    }
    assert_eq!(series.iter().map(|(_, v)| v).sum::<f64>(), 3000.0);
}

/// `xcluster-gen envoy --health-check` makes the gateway probe every target of the
/// destination; a target whose health path fails is out of service before any request
/// finds out, and comes back when it passes again.
#[test]
fn generated_health_check_takes_a_failing_cluster_out_of_the_split_and_back() {
    let certs = certs();
    let (upstreams, gen) = seed_000();
    let envoy = start(
        "generated-health-check",
        &gen.health_check(&format!(
            "bookinfo/reviews={HEALTH_PATH},interval=1s,timeout=500ms,unhealthy=2,healthy=2"
        ))
        .tls(&certs.files),
    );
    let probed = wait_for(Duration::from_secs(10), || {
        upstreams.iter().all(|u| u.probes() >= 2).then_some(())
    });
    let probes: Vec<u64> = upstreams.iter().map(Upstream::probes).collect();
    assert!(probed.is_some(), "every target probed twice: {probes:?}");

    let transitions = |to: &str| {
        let text = prometheus::scrape(&envoy).unwrap();
        prometheus::series(&text, "xcluster_health_transitions_total")
            .into_iter()
            .filter(|(l, _)| l["target"] == "remote-cluster" && l["to"] == to)
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    // No request is sent: only the probes can find remote-cluster sick.
    upstreams[0].set_failing(true);
    let drained = wait_for(Duration::from_secs(10), || {
        (transitions("unhealthy") >= 1.0).then_some(())
    });
    assert!(drained.is_some(), "remote-cluster found unhealthy");
    let caller = certs.client(CURL_ID);
    let clients = (0..2).map(|_| tls_client(&envoy, &caller)).collect();
    let tally = Tally::collect_parallel(clients, 150, REVIEWS_HOST, "/reviews/1");
    println!("with remote-cluster unhealthy: {tally}");
    assert_eq!(tally.count("remote-cluster"), 0, "{tally}");
    assert_eq!(
        tally.count("mgmt-cluster/version=v1") + tally.count("mgmt-cluster/version=v2"),
        300,
        "{tally}"
    );

    upstreams[0].set_failing(false);
    let back = wait_for(Duration::from_secs(10), || {
        (transitions("healthy") >= 1.0).then_some(())
    });
    assert!(back.is_some(), "remote-cluster healthy again");
}

/// Seed 002's three httpbin clusters behind a gateway generated from `dirs`.
fn fsm(name: &str, dirs: &[&str], certs: &Certs) -> (Envoy, [Upstream; 3]) {
    let upstreams = ["cluster-1", "cluster-2", "cluster-3"].map(|c| Upstream::start(c).unwrap());
    let files: Vec<String> = dirs
        .iter()
        .map(|d| format!("examples/002-fsm/{d}"))
        .collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let mut gen = EnvoyGen::new(&files)
        .local_cluster("cluster-2")
        .tls(&certs.files);
    for upstream in &upstreams {
        gen = gen.endpoint(
            &format!("{}/httpbin/httpbin", upstream.name()),
            upstream.addr(),
        );
    }
    (start(name, &gen), upstreams)
}

#[test]
fn generated_002_smi_serves_curl_from_cluster_2_only_and_denies_others() {
    let certs = certs();
    let (envoy, upstreams) = fsm("generated-smi", &["common", "active-active", "smi"], &certs);

    let mut intruder = tls_client(&envoy, &certs.client(INTRUDER_ID));
    for _ in 0..20 {
        let resp = intruder.get(HTTPBIN_HOST, "/get").unwrap();
        assert_eq!(
            (resp.status, resp.body.as_str()),
            (403, "access denied"),
            "{resp:?}"
        );
    }
    assert!(
        upstreams.iter().all(|u| u.served() == 0),
        "a denied request reached an upstream"
    );

    let mut curl = tls_client(&envoy, &certs.client(CURL_ID));
    let mut tally = Tally::default();
    for _ in 0..60 {
        let resp = curl.get(HTTPBIN_HOST, "/get").unwrap();
        assert_eq!(resp.header("x-upstream-path"), Some("/get"), "{resp:?}");
        tally.record(&resp);
    }
    // ActiveActive would spread over three clusters; only cluster-2 runs as the
    // ServiceAccount the TrafficTarget names (httpbin/default).
    assert_eq!(tally.outcomes(), ["cluster-2"], "{tally}");
    let served: Vec<u64> = upstreams.iter().map(Upstream::served).collect();
    assert_eq!(served, [0, 60, 0]);
}

#[test]
fn generated_002_second_traffic_target_opens_every_cluster_to_curl() {
    let certs = certs();
    let (envoy, _upstreams) = fsm(
        "generated-smi-ext",
        &["common", "active-active", "smi", "smi-ext"],
        &certs,
    );
    let mut curl = tls_client(&envoy, &certs.client(CURL_ID));
    let mut tally = Tally::default();
    for _ in 0..60 {
        let resp = curl.get(HTTPBIN_HOST, "/get").unwrap();
        let cluster = xcluster_e2e::scenario::served_by(&resp.body).unwrap_or_default();
        let want = match cluster {
            "cluster-2" => "/get".to_string(),
            other => format!("/{other}/httpbin-mesh/get"),
        };
        assert_eq!(
            resp.header("x-upstream-path"),
            Some(want.as_str()),
            "{resp:?}"
        );
        tally.record(&resp);
    }
    assert_eq!(
        tally.outcomes(),
        ["cluster-1", "cluster-2", "cluster-3"],
        "{tally}"
    );
    // Other callers stay out.
    let resp = tls_client(&envoy, &certs.client(INTRUDER_ID))
        .get(HTTPBIN_HOST, "/get")
        .unwrap();
    assert_eq!((resp.status, resp.body.as_str()), (403, "access denied"));
}
