//! Output formats: plugin config JSON, Envoy bootstrap, Istio `WasmPlugin` and the Istio
//! resources around it, the OCI image, explanation.

pub mod config;
pub mod envoy;
pub mod explain;
pub mod image;
pub mod istio;
pub mod wasmplugin;
pub mod yaml;
