//! `xcluster-gen`: compiles SMI, FSM, Gloo Mesh, Istio and Kubernetes resources into the
//! xcluster plugin config, an Envoy bootstrap, the Istio resources a gateway needs (the
//! `WasmPlugin` and the routes to Istio's clusters), or an explanation; and writes the
//! filter as an OCI image.
//!
//! Pipeline: [`load`] (files → YAML documents with locations) → [`kinds`] (typed
//! resources, one module per API family) → [`model`] (the merged service model and
//! plugin config, one file per source: FSM, SMI splits, SMI access, Gloo, Istio,
//! Kubernetes, then their assembly) → [`emit`].

#![warn(missing_docs)]

pub mod emit;
pub mod kinds;
pub mod load;
pub mod model;

use std::path::PathBuf;

use xcluster_filter::config::PluginConfig;
use xcluster_filter::policy::Policy;

use crate::load::Error;
use crate::model::{Model, Options};

/// Reads the inputs and builds the model; the config is checked by the filter's own
/// validation, so what is generated is what the filter accepts.
pub fn generate(paths: &[PathBuf], opts: &Options) -> Result<Model, Error> {
    let docs = load::load_paths(paths)?;
    let resources = kinds::Resources::from_docs(&docs)?;
    let model = model::build(&resources, opts)?;
    validate(&model.config)?;
    Ok(model)
}

/// Runs the filter's config validation (`Policy::try_from`).
pub fn validate(config: &PluginConfig) -> Result<(), Error> {
    Policy::try_from(config.clone()).map(|_| ()).map_err(|e| {
        Error::plain(format!(
            "the generated config is rejected by the filter: {e}"
        ))
    })
}
