//! Behaviour of the real filter: policies, locality tiers, weights, sticky keys and
//! passive outlier detection (ejection, failover, failback) across VMs sharing state.
#![cfg(test)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use xcluster_host_sim::{Action, Host, LogLevel, Vm};

/// A target with an explicit locality.
fn placed(name: &str, cluster: &str, region: &str, zone: &str, extra: Value) -> Value {
    let mut t = target(name, cluster, "ns/sa");
    merge(
        &mut t,
        json!({"locality": {"region": region, "zone": zone}}),
    );
    merge(&mut t, extra);
    t
}

/// Four targets, one per tier (local is c1 / eu / eu-a).
fn tiers() -> Vec<Value> {
    vec![
        placed("t3", "c4", "us", "us-a", json!({})),
        placed("t2", "c3", "eu", "eu-b", json!({})),
        placed("t1", "c2", "eu", "eu-a", json!({})),
        placed("t0", "c1", "eu", "eu-a", json!({})),
    ]
}

fn dest(targets: Vec<Value>, extra: Value) -> Value {
    let mut d = json!({"name": "d", "hosts": ["svc.example.com"], "targets": targets});
    merge(&mut d, extra);
    config(
        vec![],
        json!({"destinations": [d], "decision_header": "x-decision",
        "routes": [{"name": "r", "destination": "d"}]}),
    )
}

/// Sends one request and answers it with `status` (and `flags`); returns the target.
fn exchange(vm: &Vm, status: u16, flags: u64) -> Option<String> {
    let (mut s, action) = send(vm, &get("/", &[]), None);
    let target = routed(&s);
    if action == Action::Continue {
        s.set_response_flags(flags);
        s.response_headers(&[(":status", status.to_string().as_str())], true)
            .unwrap();
    }
    s.finish().unwrap();
    target
}

fn decision_tier(vm: &Vm) -> String {
    let (mut s, _) = send(vm, &get("/", &[]), None);
    s.response_headers(&[(":status", "200")], true).unwrap();
    let d = s.response_header("x-decision").unwrap();
    d.split("; ")
        .find(|p| p.starts_with("tier="))
        .unwrap()
        .to_string()
}

#[test]
fn active_active_splits_by_weight_and_never_picks_weight_zero() {
    let host = new_host();
    let targets = vec![
        placed("a", "c1", "eu", "eu-a", json!({"weight": 75})),
        placed("b", "c2", "us", "us-a", json!({"weight": 15})),
        placed("c", "c3", "eu", "eu-b", json!({"weight": 10})),
        placed("z", "c4", "eu", "eu-b", json!({"weight": 0})),
    ];
    let vm = start(&host, &dest(targets, json!({"policy": "ActiveActive"})));
    let n = 2000;
    let got = spread(&vm, n);
    let share = |t: &str| *got.get(t).unwrap_or(&0) as f64 / n as f64;
    assert!((share("a") - 0.75).abs() < 0.04, "{got:?}");
    assert!((share("b") - 0.15).abs() < 0.03, "{got:?}");
    assert!((share("c") - 0.10).abs() < 0.03, "{got:?}");
    assert_eq!(got.get("z"), None, "{got:?}");
}

#[test]
fn the_split_is_deterministic_for_a_seed_and_differs_across_seeds() {
    let run = |seed| {
        let host = host_with_seed(seed);
        let targets = vec![target("a", "c1", "ns/a"), target("b", "c2", "ns/b")];
        let vm = start(&host, &dest(targets, json!({})));
        (0..32)
            .map(|_| exchange(&vm, 200, 0).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn locality_serves_only_the_local_cluster() {
    let host = new_host();
    let vm = start(&host, &dest(tiers(), json!({"policy": "Locality"})));
    assert_eq!(spread(&vm, 50), BTreeMap::from([("t0".to_string(), 50)]));

    let remote_only = vec![placed("t1", "c2", "eu", "eu-a", json!({}))];
    let vm = start(&host, &dest(remote_only, json!({"policy": "Locality"})));
    let (s, action) = send(&vm, &get("/", &[]), None);
    assert_eq!(action, Action::Pause);
    let reply = s.local_reply().unwrap();
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (503, &b"no healthy target"[..])
    );
    assert_eq!(
        host.counter("xcluster_no_healthy_target_total.destination=.=d;.;"),
        Some(1)
    );
}

#[test]
fn failover_uses_the_best_tier_and_explicit_priorities_override() {
    let host = new_host();
    let vm = start(&host, &dest(tiers(), json!({"policy": "FailOver"})));
    assert_eq!(spread(&vm, 30), BTreeMap::from([("t0".to_string(), 30)]));
    assert_eq!(decision_tier(&vm), "tier=0");

    // Without the local target, the same zone wins, then the region, then anywhere.
    let mut rest = tiers();
    rest.pop();
    let vm = start(&host, &dest(rest.clone(), json!({"policy": "FailOver"})));
    assert_eq!(spread(&vm, 20), BTreeMap::from([("t1".to_string(), 20)]));
    assert_eq!(decision_tier(&vm), "tier=1");
    rest.pop();
    let vm = start(&host, &dest(rest.clone(), json!({"policy": "FailOver"})));
    assert_eq!(spread(&vm, 20), BTreeMap::from([("t2".to_string(), 20)]));
    rest.pop();
    let vm = start(&host, &dest(rest, json!({"policy": "FailOver"})));
    assert_eq!(spread(&vm, 20), BTreeMap::from([("t3".to_string(), 20)]));

    // Priorities beat locality; a weight-0 target does not make its tier the best.
    let prio = vec![
        placed("local", "c1", "eu", "eu-a", json!({"priority": 2})),
        placed(
            "zero",
            "c3",
            "eu",
            "eu-b",
            json!({"priority": 0, "weight": 0}),
        ),
        placed("far", "c4", "us", "us-a", json!({"priority": 1})),
    ];
    let vm = start(&host, &dest(prio, json!({"policy": "FailOver"})));
    assert_eq!(spread(&vm, 20), BTreeMap::from([("far".to_string(), 20)]));
}

fn outlier(extra: Value) -> Value {
    let mut od = json!({"consecutive_5xx": 3, "consecutive_gateway_errors": 0,
        "base_ejection_time_ms": 10000, "max_ejection_percent": 100});
    merge(&mut od, extra);
    od
}

#[test]
fn ejection_fails_over_and_recovery_fails_back() {
    let host = new_host();
    let cfg = dest(
        tiers(),
        json!({"policy": "FailOver", "outlier_detection": outlier(json!({}))}),
    );
    let vm = start(&host, &cfg);
    assert!(
        vm.tick_period().is_some(),
        "outlier detection needs the tick"
    );
    // Two 5xx, then a success resets the count.
    assert_eq!(exchange(&vm, 500, 0).as_deref(), Some("t0"));
    assert_eq!(exchange(&vm, 502, 0).as_deref(), Some("t0"));
    assert_eq!(exchange(&vm, 200, 0).as_deref(), Some("t0"));
    assert_eq!(exchange(&vm, 500, 0).as_deref(), Some("t0"));
    assert_eq!(exchange(&vm, 500, 0).as_deref(), Some("t0"));
    assert_eq!(
        host.counter("xcluster_ejections_total.destination=.=d;.;target=.=t0;.;"),
        Some(0)
    );
    assert_eq!(exchange(&vm, 503, 0).as_deref(), Some("t0"));
    assert_eq!(
        host.counter("xcluster_ejections_total.destination=.=d;.;target=.=t0;.;"),
        Some(1)
    );
    assert!(host
        .logs_at(LogLevel::Warn)
        .iter()
        .any(|l| l.contains("ejected target=t0")));
    // Failover to the next tier.
    assert_eq!(decision_tier(&vm), "tier=1");
    assert_eq!(spread(&vm, 10), BTreeMap::from([("t1".to_string(), 10)]));
    // Still ejected just before the ejection time; back after it, on a tick.
    host.advance(Duration::from_millis(9000)).unwrap();
    assert_eq!(exchange(&vm, 200, 0).as_deref(), Some("t1"));
    host.advance(Duration::from_millis(2000)).unwrap();
    assert_eq!(exchange(&vm, 200, 0).as_deref(), Some("t0"));
}

#[test]
fn the_ejected_targets_gauge_follows_ejections_on_every_worker() {
    let host = new_host();
    let cfg = dest(
        tiers(),
        json!({"policy": "FailOver", "outlier_detection": outlier(json!({}))}),
    );
    let gauge = "xcluster_ejected_targets.destination=.=d;.;";
    let (w0, w1) = (start(&host, &cfg), start(&host, &cfg));
    assert_eq!(host.gauge(gauge), Some(0));
    for _ in 0..3 {
        exchange(&w0, 500, 0);
    }
    assert_eq!(host.gauge(gauge), Some(1), "set by the worker that ejected");
    host.tick().unwrap();
    assert_eq!(
        host.gauge(gauge),
        Some(1),
        "the other worker agrees on its tick"
    );
    assert_eq!(exchange(&w1, 200, 0).as_deref(), Some("t1"));
    host.advance(Duration::from_millis(11_000)).unwrap();
    assert_eq!(host.gauge(gauge), Some(0), "the ejection ended");
}

#[test]
fn a_returning_target_takes_traffic_back_gradually_and_one_failure_ejects_it_again() {
    let host = new_host();
    let cfg = dest(
        tiers(),
        json!({"policy": "FailOver", "outlier_detection": outlier(json!({})),
               "slow_start": {"window_ms": 10000, "min_weight_percent": 10}}),
    );
    let vm = start(&host, &cfg);
    for _ in 0..3 {
        exchange(&vm, 500, 0);
    }
    assert_eq!(spread(&vm, 20), BTreeMap::from([("t1".to_string(), 20)]));
    // The ejection (10 s) ends; a second later t0 is back on probation at 10 %.
    host.advance(Duration::from_millis(11_000)).unwrap();
    let early = spread(&vm, 1000);
    let back = early.get("t0").copied().unwrap_or(0);
    assert!((50..=160).contains(&back), "t0 at ~10 %: {early:?}");
    let on_probation = (0..50).find_map(|_| {
        let (mut s, _) = send(&vm, &get("/", &[]), None);
        s.response_headers(&[(":status", "200")], true).unwrap();
        s.response_header("x-decision")
            .filter(|d| d.contains("target=t0"))
    });
    assert!(
        on_probation
            .as_deref()
            .is_some_and(|d| d.ends_with("; probation=10%")),
        "{on_probation:?}"
    );
    // Half way through the window: about half.
    host.advance(Duration::from_millis(4_000)).unwrap();
    let half = spread(&vm, 1000).get("t0").copied().unwrap_or(0);
    assert!((400..=620).contains(&half), "t0 at ~50 %: {half}");
    // On probation, one failure is enough.
    let mut failed = false;
    for _ in 0..20 {
        if exchange(&vm, 503, 0).as_deref() == Some("t0") {
            failed = true;
            break;
        }
    }
    assert!(failed, "t0 took no request");
    assert_eq!(
        host.counter("xcluster_ejections_total.destination=.=d;.;target=.=t0;.;"),
        Some(2)
    );
    assert_eq!(spread(&vm, 20), BTreeMap::from([("t1".to_string(), 20)]));
    // After the window the target is fully back.
    host.advance(Duration::from_millis(60_000)).unwrap();
    assert_eq!(spread(&vm, 20), BTreeMap::from([("t0".to_string(), 20)]));
}

#[test]
fn a_whole_dead_locality_fails_over_despite_max_ejection_percent() {
    let host = new_host();
    // Two targets in the local zone, one remote; the default cap is 10 %.
    let targets = vec![
        placed("t0", "c1", "eu", "eu-a", json!({})),
        placed("t0b", "c1b", "eu", "eu-a", json!({})),
        placed("t1", "c2", "us", "us-a", json!({})),
    ];
    let od = json!({"consecutive_5xx": 2, "consecutive_gateway_errors": 0,
        "base_ejection_time_ms": 10000});
    let vm = start(
        &host,
        &dest(
            targets,
            json!({"policy": "FailOver", "outlier_detection": od}),
        ),
    );
    for _ in 0..40 {
        exchange(&vm, 500, 0);
    }
    let ejected = |t: &str| {
        host.counter(&format!(
            "xcluster_ejections_total.destination=.=d;.;target=.={t};.;"
        ))
    };
    assert_eq!((ejected("t0"), ejected("t0b")), (Some(1), Some(1)));
    assert_eq!(ejected("t1"), Some(0), "the last target in service stays");
}

#[test]
fn repeated_ejections_last_longer_up_to_the_maximum() {
    let host = new_host();
    let od = outlier(
        json!({"consecutive_5xx": 1, "base_ejection_time_ms": 2000, "max_ejection_time_ms": 3000}),
    );
    let cfg = dest(
        tiers(),
        json!({"policy": "FailOver", "outlier_detection": od}),
    );
    let vm = start(&host, &cfg);
    let eject_and_measure = || {
        assert_eq!(exchange(&vm, 500, 0).as_deref(), Some("t0"));
        let mut waited = 0;
        while exchange(&vm, 200, 0).as_deref() != Some("t0") {
            host.tick().unwrap();
            waited += 1;
            assert!(waited < 60, "t0 never came back");
        }
        waited
    };
    let first = eject_and_measure();
    let second = eject_and_measure();
    let third = eject_and_measure();
    assert!(
        (2..=3).contains(&first),
        "first ejection ~2 s, took {first} ticks"
    );
    assert!(second > first, "{first} then {second}");
    assert!(
        (3..=4).contains(&third),
        "capped at 3 s, took {third} ticks"
    );
}

#[test]
fn gateway_errors_count_502_503_504_and_connect_failures() {
    let host = new_host();
    let od = outlier(json!({"consecutive_5xx": 0, "consecutive_gateway_errors": 2}));
    let cfg = dest(
        tiers(),
        json!({"policy": "FailOver", "outlier_detection": od}),
    );
    let vm = start(&host, &cfg);
    for _ in 0..4 {
        assert_eq!(
            exchange(&vm, 500, 0).as_deref(),
            Some("t0"),
            "plain 500s are not gateway errors"
        );
    }
    assert_eq!(
        exchange(&vm, 500, 0x20).as_deref(),
        Some("t0"),
        "UF: connect failure"
    );
    assert_eq!(exchange(&vm, 504, 0).as_deref(), Some("t0"));
    assert_eq!(
        host.counter("xcluster_ejections_total.destination=.=d;.;target=.=t0;.;"),
        Some(1)
    );
    assert_eq!(exchange(&vm, 200, 0).as_deref(), Some("t1"));
}

#[test]
fn max_ejection_percent_keeps_targets_in_service() {
    let host = new_host();
    let targets = vec![target("a", "c1", "ns/a"), target("b", "c2", "ns/b")];
    let od = outlier(json!({"consecutive_5xx": 1, "max_ejection_percent": 10}));
    let vm = start(&host, &dest(targets, json!({"outlier_detection": od})));
    // Fail everything: one ejection is always allowed, a second one would exceed 10 %.
    for _ in 0..20 {
        exchange(&vm, 500, 0);
    }
    let ejected = host
        .counter("xcluster_ejections_total.destination=.=d;.;target=.=a;.;")
        .unwrap()
        + host
            .counter("xcluster_ejections_total.destination=.=d;.;target=.=b;.;")
            .unwrap();
    assert_eq!(ejected, 1);
    let got = spread(&vm, 10);
    assert_eq!(got.len(), 1, "{got:?}");
}

#[test]
fn ejections_propagate_across_vms_within_a_tick_and_expire_on_a_tick() {
    let host = new_host();
    let cfg = dest(
        tiers(),
        json!({"policy": "FailOver", "outlier_detection": outlier(json!({}))}),
    );
    let w0 = start(&host, &cfg);
    let w1 = start(&host, &cfg);
    for _ in 0..3 {
        assert_eq!(exchange(&w0, 500, 0).as_deref(), Some("t0"));
    }
    let keys = host.shared_data_keys();
    assert!(
        keys.iter().any(|k| k.starts_with("xcluster.outlier.d.")),
        "ejections are shared: {keys:?}"
    );
    assert_eq!(exchange(&w0, 200, 0).as_deref(), Some("t1"));
    // The other worker learns on its next tick.
    host.tick().unwrap();
    assert_eq!(exchange(&w1, 200, 0).as_deref(), Some("t1"));
    // Both recover after the ejection time.
    host.advance(Duration::from_secs(11)).unwrap();
    assert_eq!(exchange(&w0, 200, 0).as_deref(), Some("t0"));
    assert_eq!(exchange(&w1, 200, 0).as_deref(), Some("t0"));
}

#[test]
fn concurrent_ejections_on_two_vms_merge_in_shared_data() {
    let host = new_host();
    let targets = vec![target("a", "c1", "ns/a"), target("b", "c2", "ns/b")];
    let od = outlier(json!({"consecutive_5xx": 1}));
    let cfg = dest(targets, json!({"outlier_detection": od}));
    let (w0, w1) = (start(&host, &cfg), start(&host, &cfg));
    let first = exchange(&w0, 500, 0).unwrap();
    // w1 has not ticked yet: it still routes to both; fail only the other target there.
    let mut other = None;
    for _ in 0..50 {
        let (mut s, _) = send(&w1, &get("/", &[]), None);
        let t = routed(&s).unwrap();
        let status = if t == first { "200" } else { "500" };
        s.response_headers(&[(":status", status)], true).unwrap();
        s.finish().unwrap();
        if t != first {
            other = Some(t);
            break;
        }
    }
    let other = other.expect("w1 never picked the second target");
    assert_eq!(
        host.counter(&format!(
            "xcluster_ejections_total.destination=.=d;.;target=.={first};.;"
        )),
        Some(1)
    );
    assert_eq!(
        host.counter(&format!(
            "xcluster_ejections_total.destination=.=d;.;target=.={other};.;"
        )),
        Some(1)
    );
    // After a tick both workers know both ejections: nothing healthy is left.
    host.tick().unwrap();
    for w in [&w0, &w1] {
        let (s, _) = send(w, &get("/", &[]), None);
        assert_eq!(s.local_reply().map(|r| r.status), Some(503));
    }
}

fn sticky_targets(host: &Host, key: Value) -> Vm {
    let targets = vec![
        target("a", "c1", "ns/a"),
        target("b", "c2", "ns/b"),
        target("c", "c3", "ns/c"),
    ];
    let od = outlier(json!({"consecutive_5xx": 1}));
    start(
        host,
        &dest(targets, json!({"sticky": key, "outlier_detection": od})),
    )
}

fn sticky_pick(vm: &Vm, header: (&str, &str)) -> String {
    let (mut s, _) = send(vm, &get("/", &[header]), None);
    let t = routed(&s).unwrap();
    s.finish().unwrap();
    t
}

#[test]
fn sticky_header_keeps_a_user_on_one_target_while_it_stays_healthy() {
    let host = new_host();
    let vm = sticky_targets(&host, json!({"header": "x-user"}));
    let users: Vec<String> = (0..60).map(|i| format!("user-{i}")).collect();
    let first: Vec<String> = users
        .iter()
        .map(|u| sticky_pick(&vm, ("x-user", u)))
        .collect();
    for _ in 0..3 {
        let again: Vec<String> = users
            .iter()
            .map(|u| sticky_pick(&vm, ("X-User", u)))
            .collect();
        assert_eq!(first, again);
    }
    let used: std::collections::BTreeSet<_> = first.iter().collect();
    assert_eq!(used.len(), 3, "keys spread over every target: {first:?}");
    // Eject the target of user-0: its users move, everyone else stays put.
    let victim = first[0].clone();
    let (mut s, _) = send(&vm, &get("/", &[("x-user", "user-0")]), None);
    s.response_headers(&[(":status", "500")], true).unwrap();
    s.finish().unwrap();
    for (u, before) in users.iter().zip(&first) {
        let now = sticky_pick(&vm, ("x-user", u));
        if *before == victim {
            assert_ne!(now, victim, "{u}");
        } else {
            assert_eq!(now, *before, "{u}");
        }
    }
}

#[test]
fn sticky_cookie_is_read_from_any_cookie_header() {
    let host = new_host();
    let vm = sticky_targets(&host, json!({"cookie": "session"}));
    for i in 0..20 {
        let plain = sticky_pick(&vm, ("cookie", &format!("session=s{i}")));
        let mixed = sticky_pick(&vm, ("cookie", &format!("theme=dark; session=s{i}; x=1")));
        assert_eq!(plain, mixed, "session s{i}");
    }
    // Without the cookie the pick is random: all targets appear.
    let got = spread(&vm, 60);
    assert_eq!(got.len(), 3, "{got:?}");
}
