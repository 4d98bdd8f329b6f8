//! When the host fails the filter: a request is never decided on headers the filter
//! could not read, and a VM without random numbers still serves.
#![cfg(test)]

mod common;

use common::*;
use serde_json::json;
use xcluster_host_sim::LogLevel;

#[test]
fn unreadable_request_headers_are_a_500_internal_error_not_a_decision() {
    let host = new_host();
    let vm = start(&host, &config(vec![target("a", "c1", "ns/a")], json!({})));
    host.fail_import("proxy_get_header_map_pairs");
    let (s, _) = send(&vm, &get("/", &[("x-xcluster-cluster", "evil")]), None);
    let reply = s.local_reply().expect("a local reply");
    assert_eq!(reply.status, 500);
    assert_eq!(reply.details, "xcluster_internal_error");
    assert_eq!(reply.body, b"internal error");
    assert_eq!(host.counter("xcluster_internal_errors_total"), Some(1));
    assert_eq!(
        host.counter("xcluster_requests_total.destination=.=d;.;target=.=a;.;"),
        Some(0)
    );
    assert_eq!(
        host.logs_at(LogLevel::Error),
        ["xcluster: internal error: request headers unavailable"]
    );
}

#[test]
fn without_random_numbers_the_vm_seeds_from_the_clock_and_serves() {
    let host = new_host();
    host.fail_import("random_get");
    let vm = start(
        &host,
        &config(
            vec![target("a", "c1", "ns/a"), target("b", "c2", "ns/b")],
            json!({}),
        ),
    );
    let got = spread(&vm, 200);
    assert_eq!(got.keys().collect::<Vec<_>>(), ["a", "b"], "{got:?}");
    assert!(
        host.logs_at(LogLevel::Critical).is_empty(),
        "{:?}",
        host.logs()
    );
}
