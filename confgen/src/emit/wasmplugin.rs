//! An Istio `WasmPlugin` (`extensions.istio.io/v1alpha1`) carrying the plugin config.

use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::load::Error;
use crate::model::Model;

/// WasmPlugin settings.
#[derive(Debug, Clone)]
pub struct WasmPluginOptions {
    /// Module URL (`oci://`, `https://`, `file://`).
    pub url: String,
    /// Local copy of the module, to compute `sha256`.
    pub wasm: Option<String>,
    /// Namespace (default `istio-system`).
    pub namespace: String,
    /// Workload selector labels.
    pub selector: Vec<(String, String)>,
}

/// Hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::plain(format!("{}: cannot read: {e}", path.display())))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Builds the WasmPlugin. It runs in the `AUTHZ` phase (after Istio authentication,
/// so the peer certificate is known) and fails closed.
pub fn wasm_plugin(model: &Model, opts: &WasmPluginOptions) -> Result<Value, Error> {
    let config = serde_json::to_value(&model.config)
        .map_err(|e| Error::plain(format!("cannot encode the plugin config: {e}")))?;
    let mut spec = json!({});
    if !opts.selector.is_empty() {
        let labels: serde_json::Map<String, Value> = opts
            .selector
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        spec["selector"] = json!({ "matchLabels": labels });
    }
    spec["url"] = json!(opts.url);
    if let Some(path) = &opts.wasm {
        spec["sha256"] = json!(sha256_file(Path::new(path))?);
    }
    spec["phase"] = json!("AUTHZ");
    spec["priority"] = json!(10);
    spec["failStrategy"] = json!("FAIL_CLOSE");
    spec["type"] = json!("HTTP");
    spec["pluginConfig"] = config;
    Ok(json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": { "name": "xcluster", "namespace": opts.namespace },
        "spec": spec
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_file_is_the_standard_digest() {
        let dir = std::env::temp_dir().join(format!("xcluster-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("m.wasm");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(
            sha256_file(&file).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
