//! Active health checks through a real Envoy with four workers: one of them probes (the
//! probes counted at the upstreams follow the interval, not four times it); a cluster that
//! turns sick is drained within interval × threshold while replays keep every request
//! served; when it recovers it takes traffic back gradually (probation).
#![cfg(test)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use xcluster_e2e::client::Client;
use xcluster_e2e::envoy::{Listener, Options};
use xcluster_e2e::fixture::Gateway;
use xcluster_e2e::scenario::{ACTIVE_ACTIVE, HTTPBIN_HOST};
use xcluster_e2e::upstream::HEALTH_PATH;
use xcluster_e2e::wait_for;

/// Served by each cluster in `window`, under the load the clients keep up.
fn shares(gw: &Gateway, window: Duration) -> [u64; 3] {
    let before: Vec<u64> = gw.clusters.iter().map(|u| u.served()).collect();
    thread::sleep(window);
    let mut out = [0; 3];
    for (i, u) in gw.clusters.iter().enumerate() {
        out[i] = u.served() - before[i];
    }
    out
}

#[test]
fn one_prober_drains_a_sick_cluster_without_a_failed_request_and_ramps_it_back() {
    let mut config = ACTIVE_ACTIVE.value();
    config["destinations"][0]["health_check"] = json!({
        "path": HEALTH_PATH, "interval_ms": 1000, "timeout_ms": 500,
        "unhealthy_threshold": 2, "healthy_threshold": 2});
    config["destinations"][0]["slow_start"] = json!({"window_ms": 6000});
    config["routes"][0]["replay"] = json!({});
    let options = Options {
        concurrency: 4,
        ..Options::named("health-checks")
    };
    let gw = Gateway::start_with(&options, vec![Listener::plain("gw", &config)]).unwrap();
    let addr = gw.listener("gw");
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
            thread::spawn(move || {
                let mut client = Client::plain(addr);
                while !stop.load(Ordering::Relaxed) {
                    match client.get(HTTPBIN_HOST, "/") {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    // One prober: about one probe per target per second, whatever the workers.
    let begin = Instant::now();
    let probes = |gw: &Gateway| gw.clusters.iter().map(|u| u.probes()).collect::<Vec<_>>();
    let start = probes(&gw);
    thread::sleep(Duration::from_secs(4));
    let seconds = begin.elapsed().as_secs_f64();
    let per_target: Vec<f64> = probes(&gw)
        .iter()
        .zip(&start)
        .map(|(now, before)| (now - before) as f64 / seconds)
        .collect();
    println!("probes per target per second with 4 workers: {per_target:.2?}");
    assert!(
        per_target.iter().all(|&p| (0.5..=1.6).contains(&p)),
        "one prober, one probe a second: {per_target:?}"
    );

    // cluster-2 turns sick: drained within interval × threshold (+ a tick to spread).
    let sick = Instant::now();
    gw.clusters[1].set_failing(true);
    let drained = wait_for(Duration::from_secs(6), || {
        (shares(&gw, Duration::from_millis(500))[1] == 0).then(|| sick.elapsed())
    });
    println!("drained after {drained:?}");
    assert!(
        drained.is_some_and(|d| d <= Duration::from_millis(4500)),
        "{drained:?}"
    );

    // It recovers: back after the healthy threshold, at a fraction of its share first.
    gw.clusters[1].set_failing(false);
    let back = wait_for(Duration::from_secs(5), || {
        let s = shares(&gw, Duration::from_millis(500));
        (s[1] > 0).then_some(s)
    });
    let early = back.expect("cluster-2 never came back");
    thread::sleep(Duration::from_secs(6));
    let later = shares(&gw, Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let share = |s: [u64; 3]| s[1] as f64 / s.iter().sum::<u64>().max(1) as f64;
    println!(
        "cluster-2 share: {:.3} on return, {:.3} after the window; {} ok, {} failed",
        share(early),
        share(later),
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    assert!(share(early) < 0.2, "probation: {early:?}");
    assert!(share(later) > 0.2, "fully back: {later:?}");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests");
}
