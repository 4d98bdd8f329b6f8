//! ABI plumbing of the host, checked with a tiny hand-written proxy-wasm module.
#![cfg(test)]

use std::time::Duration;

use xcluster_host_sim::{
    Action, Host, HostOptions, HttpCallResponse, LogLevel, SimError, VmConfig,
};

const MODULE: &str = r#"
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $set_tick (param i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define_metric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $local_reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_call_foreign_function" (func $foreign (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $get_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 100) "x-name")
  (data (i32.const 110) "x-echo")
  (data (i32.const 120) "denied")
  (data (i32.const 130) "requests")
  (data (i32.const 140) "clear_route_cache")
  (data (i32.const 160) "response\00code")
  (data (i32.const 180) "last_code")
  (data (i32.const 200) "tick")
  (data (i32.const 210) "authz")
  (data (i32.const 220) "hello from stdout\n")
  ;; iovec for fd_write: ptr 220, len 18
  (data (i32.const 240) "\dc\00\00\00\12\00\00\00")
  ;; http_call headers: 3 pairs (:method GET) (:path /check) (:authority authz)
  (data (i32.const 300) "\03\00\00\00\07\00\00\00\03\00\00\00\05\00\00\00\06\00\00\00\0a\00\00\00\05\00\00\00:method\00GET\00:path\00/check\00:authority\00authz\00")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param $ctx i32) (param $size i32) (result i32)
    (if (i32.eqz (local.get $size)) (then (return (i32.const 0))))
    (drop (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size) (i32.const 8) (i32.const 12)))
    (drop (call $log (i32.const 2) (i32.load (i32.const 8)) (i32.load (i32.const 12))))
    (drop (call $set_tick (i32.const 1000)))
    (drop (call $define_metric (i32.const 0) (i32.const 130) (i32.const 8) (i32.const 16)))
    (drop (call $fd_write (i32.const 1) (i32.const 240) (i32.const 1) (i32.const 24)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (drop (call $increment (i32.load (i32.const 16)) (i64.const 1)))
    ;; x-name present: echo it; absent: 403 "denied"
    (if (i32.eqz (call $get_header (i32.const 0) (i32.const 100) (i32.const 6) (i32.const 8) (i32.const 12)))
      (then
        (drop (call $replace_header (i32.const 0) (i32.const 110) (i32.const 6)
          (i32.load (i32.const 8)) (i32.load (i32.const 12))))
        (drop (call $foreign (i32.const 140) (i32.const 17) (i32.const 0) (i32.const 0) (i32.const 8) (i32.const 12)))
        (return (i32.const 0))))
    (drop (call $local_reply (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 120) (i32.const 6)
      (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    ;; pause and ask the authz service
    (drop (call $http_call (i32.const 210) (i32.const 5) (i32.const 300) (i32.const 71)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 500) (i32.const 28)))
    (i32.const 1))
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
    (drop (call $continue (i32.const 0))))
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32)
    unreachable)
  (func (export "proxy_on_response_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    ;; remember response.code in shared data "last_code", using CAS
    (if (i32.eqz (call $get_property (i32.const 160) (i32.const 13) (i32.const 8) (i32.const 12)))
      (then
        (drop (call $get_shared (i32.const 180) (i32.const 9) (i32.const 32) (i32.const 36) (i32.const 20)))
        (drop (call $set_shared (i32.const 180) (i32.const 9)
          (i32.load (i32.const 8)) (i32.load (i32.const 12)) (i32.load (i32.const 20))))))
    (i32.const 0))
  (func (export "proxy_on_tick") (param i32)
    (drop (call $random (i32.const 40) (i32.const 8)))
    (drop (call $log (i32.const 2) (i32.const 200) (i32.const 4))))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
)
"#;

/// The plumbing, without Envoy's canary configure (see the test of it below).
fn host() -> Host {
    let wasm = wat::parse_str(MODULE).unwrap();
    let options = HostOptions {
        canary: false,
        ..HostOptions::default()
    };
    Host::new(&wasm, options).unwrap()
}

#[test]
fn a_config_is_first_configured_on_a_canary_that_never_serves() {
    let wasm = wat::parse_str(MODULE).unwrap();
    let host = Host::new(&wasm, HostOptions::default()).unwrap();
    host.start_vm(VmConfig::plugin("cfg-1")).unwrap();
    host.start_vm(VmConfig::plugin("cfg-1")).unwrap();
    let configures = host
        .logs_at(LogLevel::Info)
        .iter()
        .filter(|l| *l == "cfg-1")
        .count();
    assert_eq!(configures, 3, "the canary, then two workers");
    assert!(host.vm(1).is_some() && host.vm(2).is_none(), "two workers");
}

#[test]
fn configure_reads_the_plugin_config_and_rejection_is_reported() {
    let host = host();
    assert_eq!(
        host.start_vm(VmConfig::plugin("")).err(),
        Some(SimError::ConfigRejected)
    );
    let vm = host.start_vm(VmConfig::plugin("cfg-1")).unwrap();
    assert_eq!(
        host.logs_at(LogLevel::Info),
        vec!["cfg-1", "hello from stdout"]
    );
    assert_eq!(vm.tick_period(), Some(Duration::from_secs(1)));
    assert_eq!(host.counter("requests"), Some(0));
}

#[test]
fn request_headers_are_read_and_replaced() {
    let host = host();
    let vm = host.start_vm(VmConfig::plugin("c")).unwrap();
    let mut s = vm.http_stream().unwrap();
    let action = s
        .request_headers(&[(":path", "/"), ("X-Name", "alice")], true)
        .unwrap();
    assert_eq!(action, Action::Continue);
    assert_eq!(s.request_header("x-echo").as_deref(), Some("alice"));
    assert_eq!(s.route_cache_cleared(), 1);
    assert!(s.instructions() > 0);
    assert_eq!(host.counter("requests"), Some(1));
    s.response_headers(&[(":status", "201")], true).unwrap();
    assert_eq!(
        host.shared_data("last_code").unwrap().0,
        201u64.to_le_bytes()
    );
    s.finish().unwrap();
}

#[test]
fn a_local_reply_runs_the_response_callbacks_and_stops_the_stream() {
    let host = host();
    let vm = host.start_vm(VmConfig::plugin("c")).unwrap();
    let mut s = vm.http_stream().unwrap();
    let action = s.request_headers(&[(":path", "/")], false).unwrap();
    assert_eq!(action, Action::Pause);
    let reply = s.local_reply().unwrap();
    assert_eq!((reply.status, reply.body.as_slice()), (403, &b"denied"[..]));
    assert_eq!(s.response_header(":status").as_deref(), Some("403"));
    // The filter's on_response_headers saw the local reply (response.code 403).
    assert_eq!(
        host.shared_data("last_code").unwrap().0,
        403u64.to_le_bytes()
    );
    let callbacks: Vec<&str> = s.costs().iter().map(|c| c.callback).collect();
    assert_eq!(
        callbacks,
        vec![
            "proxy_on_request_headers",
            "proxy_on_response_headers",
            "proxy_on_response_body"
        ]
    );
    assert!(matches!(
        s.request_body(b"x", true),
        Err(SimError::Sequence(_))
    ));
}

#[test]
fn sequence_guards_reject_orders_envoy_never_produces() {
    let host = host();
    let vm = host.start_vm(VmConfig::plugin("c")).unwrap();
    let mut s = vm.http_stream().unwrap();
    assert!(matches!(
        s.response_headers(&[(":status", "200")], true),
        Err(SimError::Sequence(_))
    ));
    s.request_headers(&[("x-name", "a")], true).unwrap();
    assert!(matches!(
        s.request_headers(&[("x-name", "a")], true),
        Err(SimError::Sequence(_))
    ));
    assert!(matches!(
        s.request_body(b"late", true),
        Err(SimError::Sequence(_))
    ));
    s.finish().unwrap();
    assert!(matches!(s.finish(), Err(SimError::Sequence(_))));
}

#[test]
fn ticks_follow_virtual_time_and_shared_data_spans_vms() {
    let host = host();
    let a = host.start_vm(VmConfig::plugin("a")).unwrap();
    let _b = host.start_vm(VmConfig::plugin("b")).unwrap();
    host.clear_logs();
    host.advance(Duration::from_millis(2500)).unwrap();
    let ticks = host.logs().iter().filter(|l| l.message == "tick").count();
    assert_eq!(ticks, 4, "two VMs, ticks at 1 s and 2 s");
    assert_eq!(host.tick().unwrap(), Duration::from_millis(500));
    assert_eq!(host.elapsed(), Duration::from_secs(3));

    let mut s = a.http_stream().unwrap();
    s.request_headers(&[("x-name", "a")], true).unwrap();
    s.response_headers(&[(":status", "200")], true).unwrap();
    let (_, cas) = host.shared_data("last_code").unwrap();
    let mut t = host.vm(1).unwrap().http_stream().unwrap();
    t.request_headers(&[("x-name", "b")], true).unwrap();
    t.response_headers(&[(":status", "503")], true).unwrap();
    let (value, cas2) = host.shared_data("last_code").unwrap();
    assert_eq!(value, 503u64.to_le_bytes());
    assert!(cas2 > cas);
}

#[test]
fn http_calls_wait_for_the_test_and_resume_the_request() {
    let host = host();
    host.add_cluster("authz");
    let vm = host.start_vm(VmConfig::plugin("c")).unwrap();
    let mut s = vm.http_stream().unwrap();
    s.request_headers(&[("x-name", "a")], false).unwrap();
    assert_eq!(s.request_body(b"payload", true).unwrap(), Action::Pause);
    let calls = host.http_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].upstream, "authz");
    assert_eq!(calls[0].timeout_ms, 500);
    assert!(!s.request_resumed());
    host.respond_http_call(calls[0].token, HttpCallResponse::default())
        .unwrap();
    assert!(s.request_resumed());
    assert!(host.http_calls().is_empty());
}

#[test]
fn http_calls_to_unknown_clusters_fail_and_time_out() {
    let host = host();
    let vm = host.start_vm(VmConfig::plugin("c")).unwrap();
    let mut s = vm.http_stream().unwrap();
    s.request_headers(&[("x-name", "a")], false).unwrap();
    s.request_body(b"payload", true).unwrap();
    assert!(
        host.http_calls().is_empty(),
        "no cluster authz: BadArgument"
    );

    host.add_cluster("authz");
    let mut s = vm.http_stream().unwrap();
    s.request_headers(&[("x-name", "a")], false).unwrap();
    s.request_body(b"payload", true).unwrap();
    host.advance(Duration::from_millis(499)).unwrap();
    assert!(!s.request_resumed());
    host.advance(Duration::from_millis(1)).unwrap();
    assert!(
        s.request_resumed(),
        "the timeout delivered an empty response"
    );
}

#[test]
fn a_trap_fails_the_vm_like_envoy() {
    let host = host();
    let vm = host.start_vm(VmConfig::plugin("c")).unwrap();
    let mut s = vm.http_stream().unwrap();
    s.request_headers(&[("x-name", "a")], false).unwrap();
    let err = s.request_trailers(&[("t", "1")]).unwrap_err();
    assert!(
        matches!(err, SimError::Trap { ref callback, .. } if callback == "proxy_on_request_trailers")
    );
    assert!(vm.is_failed());
    assert!(matches!(
        vm.http_stream(),
        Err(SimError::VmFailed { vm: 0 })
    ));
}

#[test]
fn instruction_counts_are_deterministic() {
    let count = || {
        let host = host();
        let vm = host.start_vm(VmConfig::plugin("c")).unwrap();
        let mut s = vm.http_stream().unwrap();
        s.request_headers(&[("x-name", "a")], true).unwrap();
        s.instructions()
    };
    assert_eq!(count(), count());
}
