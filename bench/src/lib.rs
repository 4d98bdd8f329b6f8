//! `make bench`: xcluster against native Envoy.
//!
//! Four arms run in the same Envoy (one worker, pinned to one CPU; wrk and the upstream on
//! the other): (a) no filter, (b) an empty proxy-wasm filter, (c) native RBAC +
//! `weighted_clusters`, (d) xcluster, (c) and (d) with 10 to 10,000 authorization rules.
//! Modules: [`policy`] generates both forms of the policy, [`envoy`] renders the
//! bootstraps and runs pinned Envoys, [`wrk`] drives the load, [`sim`] counts the filter's
//! wasm instructions per request in host-sim (the deterministic companion checked in CI),
//! [`v8`] times the modules in V8 alone (a proxy-wasm host in Node.js, where the filter's
//! own work shows to a few ns), [`report`] writes `bench/results.json` and
//! `docs/benchmarks.md`, [`chart`] the chart `docs/benchmarks.svg`. [`soak`] is `make soak`:
//! memory over a million requests with churn.

pub mod chart;
pub mod envoy;
pub mod policy;
pub mod report;
pub mod sim;
pub mod soak;
pub mod stats;
pub mod v8;
pub mod wrk;
