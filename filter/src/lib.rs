//! xcluster: a proxy-wasm HTTP filter for cross-cluster traffic.
pub mod config;
