//! The V8 host of `make bench` (`bench/v8/host.mjs`) drives the shipped modules through
//! every callback of a stream: xcluster routes the allowed request and denies the other
//! with a 403, a wrong expectation is reported, not measured, and the probe that prices
//! xcluster's host calls makes exactly the calls xcluster makes.
#![cfg(test)]

use std::fs;

use xcluster_bench::envoy::{self, Arm};
use xcluster_bench::policy;
use xcluster_bench::sim::RequestKind;
use xcluster_bench::v8::{self, Expect};

#[test]
fn the_v8_host_runs_xcluster_and_checks_what_the_stream_got() {
    let module = xcluster_wasm_build::shipped(xcluster_wasm_build::FILTER_PACKAGE).unwrap();
    let dir = xcluster_e2e::target_dir().join("v8-host-test");
    fs::create_dir_all(&dir).unwrap();
    let config = dir.join("d10.config");
    fs::write(
        &config,
        serde_json::to_string(&policy::xcluster_config(10)).unwrap(),
    )
    .unwrap();
    let run = |kind: RequestKind, expect| {
        v8::measure(
            &module,
            &config,
            (&kind.path(10), 2_000, 200),
            expect,
            ("d10".into(), "xcluster".into(), kind),
        )
    };
    let allowed = run(RequestKind::Allowed, Expect::Cluster).unwrap();
    assert_eq!(allowed.rounds.len(), v8::ROUNDS - 2);
    assert!(allowed.ns_per_stream > 0.0 && allowed.configure_ms > 0.0);
    assert!(allowed.cold_ns_per_stream > 0.0);
    let routed = |calls: &str| allowed.host_calls.get(calls).copied();
    assert_eq!(routed("proxy_get_header_map_pairs"), Some(2.0));
    assert_eq!(routed("proxy_replace_header_map_value"), Some(1.0));
    run(RequestKind::Denied, Expect::Status(403)).unwrap();
    let wrong = run(RequestKind::Denied, Expect::Cluster).unwrap_err();
    assert!(wrong.contains("want Cluster"), "{wrong}");
}

#[test]
fn the_probe_makes_the_host_calls_xcluster_makes_for_an_allowed_request() {
    let dir = xcluster_e2e::target_dir().join("v8-host-test");
    fs::create_dir_all(&dir).unwrap();
    let run = |package: &str, arm: Arm| {
        let module = xcluster_wasm_build::shipped(package).unwrap();
        let config = dir.join(format!("{}.config", arm.id()));
        fs::write(&config, envoy::plugin_config(arm)).unwrap();
        let kind = RequestKind::Allowed;
        v8::measure(
            &module,
            &config,
            (&kind.path(10), 500, 20),
            Expect::Cluster,
            (arm.id(), arm.label(), kind),
        )
        .unwrap()
    };
    let xcluster = run(xcluster_wasm_build::FILTER_PACKAGE, Arm::Xcluster(10));
    let probe = run("xcluster-bench-probe", Arm::Probe(envoy::XCLUSTER_CALLS));
    assert!(!probe.host_calls.is_empty());
    assert_eq!(xcluster.host_calls, probe.host_calls);
}
