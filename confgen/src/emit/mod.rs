//! Output formats: plugin config JSON, Envoy bootstrap, Istio `WasmPlugin`, explanation.

pub mod config;
pub mod envoy;
pub mod explain;
pub mod wasmplugin;
pub mod yaml;
