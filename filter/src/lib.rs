//! xcluster: a proxy-wasm HTTP filter for cross-cluster traffic.
//!
//! Per request it authorizes the caller per target (SMI TrafficTarget + HTTPRouteGroup),
//! drops ejected targets, applies the destination's locality policy and picks a target by
//! weight, then sets the header the Envoy route's `cluster_header` reads.
//!
//! Everything but `adapter` (compiled for the proxy-wasm target only) is plain Rust:
//! - [`config`]: the JSON wire types; [`policy`]: validation and compilation;
//! - [`path`]: the normal form of a path (the only form authorized);
//! - [`matcher`]: the request view, routes and request conditions; [`regex`]: regex
//!   compilation and `pathRegex` shapes; [`tail`]: a fast matcher for simple regex tails;
//!   [`header_map`]: the ABI's header-map bytes; [`hash`]: the filter's hashing;
//! - [`identity`]: caller identities; [`authorizer`]: TrafficTargets;
//! - [`balancer`]: policies, weights, sticky picks; [`health`]: outlier detection and
//!   its shared table; [`probe`]: active health checks;
//! - [`decision`]: the routing decision; [`replay`]: sending a failed request to the next
//!   target; [`engine`]: each callback's [`outcome`];
//!   [`stats`]: every stat, in one list;
//! - [`allocator`]: the heap allocator the `.wasm` runs on.

pub mod allocator;
pub mod authorizer;
pub mod balancer;
pub mod config;
pub mod decision;
pub mod engine;
pub mod hash;
pub mod header_map;
pub mod health;
pub mod identity;
pub mod matcher;
pub mod outcome;
pub mod path;
pub mod policy;
pub mod probe;
pub mod regex;
pub mod replay;
pub mod stats;
pub mod tail;

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod adapter;
