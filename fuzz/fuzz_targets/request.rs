//! A request (method, path, authority, headers) and the caller's SAN, decided by the
//! engine natively (the coverage libFuzzer follows) and by the real `.wasm` in host-sim:
//! the VM never traps and both give the same answer (local reply status or the cluster
//! chosen; the policy leaves no room for chance).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xcluster_fuzz::{decide_native, decide_wasm, RequestInput};

fuzz_target!(|input: RequestInput| {
    let native = decide_native(&input);
    let wasm = decide_wasm(&input);
    assert_eq!(native, wasm, "native and .wasm disagree on {input:?}");
});
