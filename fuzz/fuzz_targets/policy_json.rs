//! Plugin config JSON → `Policy::from_json`: any bytes are accepted or refused with an
//! error, never a panic; an accepted policy decides a few requests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcluster_filter::config::LocalConfig;
use xcluster_filter::engine::Engine;
use xcluster_filter::policy::Policy;
use xcluster_fuzz::{requests, NoPeer};

fuzz_target!(|data: &[u8]| {
    let node = LocalConfig {
        cluster: Some("c1".into()),
        ..LocalConfig::default()
    };
    let Ok(policy) = Policy::from_json(data, &node) else {
        return;
    };
    let engine = Engine::new(policy, 7);
    for headers in requests() {
        let _ = engine.on_request_headers(&headers, &mut NoPeer);
    }
});
