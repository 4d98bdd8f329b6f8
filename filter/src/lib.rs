//! xcluster: a proxy-wasm HTTP filter for cross-cluster traffic.
//!
//! Per request it authorizes the caller per target (SMI TrafficTarget + HTTPRouteGroup),
//! drops ejected targets, applies the destination's locality policy and picks a target by
//! weight, then sets the header the Envoy route's `cluster_header` reads.
//!
//! Everything but `adapter` (compiled for wasm only) is plain Rust:
//! - [`config`]: the JSON wire types; [`policy`]: validation and compilation;
//! - [`matcher`]: routes and request conditions; [`identity`]: caller identities;
//! - [`authorizer`]: TrafficTargets; [`tail`]: a fast matcher for simple regex tails;
//! - [`balancer`]: policies, weights, sticky picks;
//! - [`health`]: outlier detection; [`engine`]: the per-request decision.

pub mod authorizer;
pub mod balancer;
pub mod config;
pub mod engine;
pub mod health;
pub mod identity;
pub mod matcher;
pub mod policy;
pub mod tail;

#[cfg(target_arch = "wasm32")]
pub mod adapter;
