//! Passive outlier detection through a real Envoy: a cluster whose service goes down is
//! ejected and traffic moves to the others; once it is back it returns after the
//! ejection time.
#![cfg(test)]

use std::time::{Duration, Instant};

use serde_json::json;
use xcluster_e2e::envoy::Listener;
use xcluster_e2e::fixture::{outcome, Gateway, Tally};
use xcluster_e2e::scenario::{ACTIVE_ACTIVE, HTTPBIN_HOST};

/// Ejection time of the first ejection.
const EJECTION: Duration = Duration::from_millis(3000);

#[test]
fn failing_cluster_is_ejected_and_returns() {
    let mut config = ACTIVE_ACTIVE.value();
    config["destinations"][0]["outlier_detection"] = json!({
        "consecutive_5xx": 3,
        "consecutive_gateway_errors": 3,
        "base_ejection_time_ms": EJECTION.as_millis() as u64,
        "max_ejection_time_ms": 30000,
        "max_ejection_percent": 50
    });
    let mut gw = Gateway::start("outlier", vec![Listener::plain("gw", &config)]).unwrap();
    let mut client = gw.client("gw");

    let warm = Tally::collect(60, || client.get(HTTPBIN_HOST, "/"));
    assert_eq!(
        warm.outcomes(),
        ["cluster-1", "cluster-2", "cluster-3"],
        "{warm}"
    );

    // cluster-3 goes down: a few requests fail (503, connect failure) until it is ejected;
    // then 30 successes in a row. Each of Envoy's two worker VMs may see up to 3 failures
    // before the ejection reaches it.
    gw.upstream("cluster-3").stop();
    let mut failures = 0;
    let mut streak = 0;
    let mut last_failure = None;
    for _ in 0..400 {
        let resp = client.get(HTTPBIN_HOST, "/").unwrap();
        if resp.status == 200 {
            streak += 1;
            if streak == 30 && last_failure.is_some() {
                break;
            }
        } else {
            assert_eq!(resp.status, 503, "{}", outcome(&resp));
            failures += 1;
            streak = 0;
            last_failure = Some(Instant::now());
        }
    }
    let last_failure = last_failure.expect("stopping cluster-3 caused no failure");
    assert!(
        (1..=6).contains(&failures),
        "{failures} failures before ejection"
    );
    assert!(streak >= 30, "no 30 successes in a row after the failures");

    let stats = gw.envoy.stats("xcluster_ejections_total").unwrap();
    let ejected = stats
        .get("wasmcustom.xcluster_ejections_total.destination=.=httpbin;.;target=.=cluster-3;.;")
        .copied()
        .unwrap_or(0);
    assert!(ejected >= 1, "ejection counter: {stats:?}");

    // While ejected, the others carry everything, even with cluster-3 back up.
    gw.upstream("cluster-3").restart().unwrap();
    let mut during = Tally::default();
    while last_failure.elapsed() < EJECTION / 3 {
        during.record(&client.get(HTTPBIN_HOST, "/").unwrap());
        std::thread::sleep(Duration::from_millis(2));
    }
    println!("while cluster-3 is ejected: {during}");
    assert_eq!(during.outcomes(), ["cluster-1", "cluster-2"], "{during}");

    // After the ejection time it serves again (checked with a bound).
    let deadline = last_failure + EJECTION * 4;
    let mut after = Tally::default();
    while after.count("cluster-3") == 0 && Instant::now() < deadline {
        after.record(&client.get(HTTPBIN_HOST, "/").unwrap());
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("cluster-3 back after {:?}: {after}", last_failure.elapsed());
    assert!(
        after.count("cluster-3") > 0,
        "cluster-3 never returned: {after}"
    );
    assert_eq!(after.count("503 no healthy target"), 0, "{after}");
}
