//! A cluster that dies costs no request (issue 10's kill test) through a real Envoy
//! (`--concurrency 2`): four clients send `GET`s for six seconds over ActiveActive; after two
//! seconds the local cluster's upstream dies (its listener and its live keep-alive
//! connections closed, as a crashed pod). Every `GET` that fails there is replayed on
//! another cluster: none fails. `POST`s are not replayed, so none reaches an upstream twice;
//! and no request, replayed or not, reaches the cluster the caller may not use.
#![cfg(test)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use xcluster_e2e::envoy::Listener;
use xcluster_e2e::fixture::Gateway;
use xcluster_e2e::scenario::{ACTIVE_ACTIVE, CURL_ID, HTTPBIN_HOST};

const CLIENTS: usize = 4;
const RUN: Duration = Duration::from_secs(6);
const KILL_AFTER: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

#[test]
fn a_dying_cluster_costs_no_get_and_no_post_is_delivered_twice() {
    let mut config = ACTIVE_ACTIVE.value();
    // curl may call httpbin/default (cluster-2) and httpbin/httpbin (cluster-1); cluster-3
    // runs as httpbin/other, which it may not call.
    config["destinations"][0]["targets"][2]["service_account"]["name"] = json!("other");
    config["destinations"][0]["outlier_detection"] = json!({});
    config["routes"][0]["replay"] = json!({});
    config["identity"] = json!({"trusted_header": "x-caller"});
    config["access"] = json!({
        "mode": "enforce",
        "route_groups": [{"name": "all", "matches": [{"name": "all", "path_regex": "/"}]}],
        "traffic_targets": [{"name": "curl",
            "destination": {"namespace": "httpbin", "name": "default"},
            "sources": [{"namespace": "curl", "name": "curl"}],
            "rules": [{"route_group": "all"}]},
            {"name": "curl-httpbin",
            "destination": {"namespace": "httpbin", "name": "httpbin"},
            "sources": [{"namespace": "curl", "name": "curl"}],
            "rules": [{"route_group": "all"}]}]
    });
    let mut gw = Gateway::start("replay", vec![Listener::plain("gw", &config)]).unwrap();
    let addr = gw.listener("gw");
    let stop = Arc::new(AtomicBool::new(false));
    let gets = Arc::new(Counts::default());
    let posts = Arc::new(Counts::default());
    let seq = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for i in 0..=CLIENTS {
        let (stop, seq) = (Arc::clone(&stop), Arc::clone(&seq));
        let counts = Arc::clone(if i < CLIENTS { &gets } else { &posts });
        workers.push(thread::spawn(move || {
            let mut client = xcluster_e2e::client::Client::plain(addr);
            let mut failures: HashMap<u16, u64> = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let id = seq.fetch_add(1, Ordering::Relaxed).to_string();
                let headers = [("x-caller", CURL_ID), ("x-test-id", id.as_str())];
                let resp = if i < CLIENTS {
                    client.request("GET", HTTPBIN_HOST, "/", &headers)
                } else {
                    client.request_with_body("POST", HTTPBIN_HOST, "/", &headers, b"{\"n\":1}")
                };
                match resp {
                    Ok(r) if r.status == 200 => {
                        counts.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        *failures.entry(other.map_or(0, |r| r.status)).or_default() += 1;
                    }
                }
            }
            failures
        }));
    }
    let begin = Instant::now();
    thread::sleep(KILL_AFTER);
    gw.upstream("cluster-2").stop();
    thread::sleep(RUN.saturating_sub(begin.elapsed()));
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<HashMap<u16, u64>> = workers.into_iter().map(|w| w.join().unwrap()).collect();

    let stats = gw.envoy.stats("xcluster_replays_total").unwrap();
    let replayed: u64 = stats.values().sum();
    println!(
        "GETs {} ok, {} failed; POSTs {} ok, {} failed; replayed {replayed}; failures {failures:?}",
        gets.ok.load(Ordering::Relaxed),
        gets.failed.load(Ordering::Relaxed),
        posts.ok.load(Ordering::Relaxed),
        posts.failed.load(Ordering::Relaxed),
    );
    assert!(gets.ok.load(Ordering::Relaxed) > 500, "the load ran");
    assert_eq!(
        gets.failed.load(Ordering::Relaxed),
        0,
        "failed GETs: {:?}",
        &failures[..CLIENTS]
    );
    assert!(replayed > 0, "the kill was replayed over: {stats:?}");
    assert_eq!(
        gw.upstream("cluster-3").served(),
        0,
        "the cluster the caller may not use served"
    );
    let mut deliveries: HashMap<String, u32> = HashMap::new();
    for upstream in &gw.clusters {
        for id in upstream.test_ids() {
            *deliveries.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<_> = deliveries.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert!(posts.ok.load(Ordering::Relaxed) > 0, "POSTs were served");
}
