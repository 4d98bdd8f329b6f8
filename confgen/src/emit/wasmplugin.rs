//! An Istio `WasmPlugin` (`extensions.istio.io/v1alpha1`) carrying the plugin config.

use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use xcluster_filter::config::PluginConfig;

use super::image;
use crate::load::Error;

/// WasmPlugin settings.
#[derive(Debug, Clone)]
pub struct WasmPluginOptions {
    /// Module URL (`oci://`, `https://`, `file://`).
    pub url: String,
    /// Local copy of the module (not for `oci://`): its sha256 goes into `sha256`.
    pub wasm: Option<String>,
    /// OCI image layout of the module (for `oci://`): its manifest digest goes into
    /// `sha256`.
    pub image: Option<String>,
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

/// The `sha256` Istio checks the module against: for `oci://`, the image's manifest
/// digest (`--image`); otherwise the module file's hash (`--wasm`); `None` when neither is
/// given. A file hash for an image, or an image for a file, is an error: Istio would
/// refuse the module.
pub fn checksum(opts: &WasmPluginOptions) -> Result<Option<String>, Error> {
    let oci = opts.url.starts_with("oci://") || !opts.url.contains("://");
    match (oci, &opts.wasm, &opts.image) {
        (_, Some(_), Some(_)) => Err(Error::plain("give --wasm or --image, not both")),
        (true, Some(_), None) => Err(Error::plain(format!(
            "--wasm: for {} Istio compares sha256 with the image's manifest digest, not the \
             module's hash; give --image DIR (from xcluster-gen image) or leave both out",
            opts.url
        ))),
        (true, None, Some(dir)) => {
            let tag = opts
                .url
                .rsplit_once('/')
                .and_then(|(_, last)| last.split_once(':'))
                .map(|(_, tag)| tag);
            let d = image::layout_digest(Path::new(dir), tag)?;
            Ok(Some(d.trim_start_matches("sha256:").to_string()))
        }
        (false, None, Some(_)) => Err(Error::plain(format!(
            "--image: {} is not an oci:// URL; give the module file with --wasm",
            opts.url
        ))),
        (false, Some(path), None) => sha256_file(Path::new(path)).map(Some),
        (_, None, None) => Ok(None),
    }
}

/// Builds the WasmPlugin carrying `config` (see [`super::istio::istio_config`]). It runs
/// in the `AUTHZ` phase (after Istio authentication, so the peer certificate is known) and
/// fails closed.
pub fn wasm_plugin(config: &PluginConfig, opts: &WasmPluginOptions) -> Result<Value, Error> {
    let config = serde_json::to_value(config)
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
    if let Some(sha) = checksum(opts)? {
        spec["sha256"] = json!(sha);
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

    fn opts(url: &str, wasm: Option<&str>, image: Option<&str>) -> WasmPluginOptions {
        WasmPluginOptions {
            url: url.into(),
            wasm: wasm.map(String::from),
            image: image.map(String::from),
            namespace: "istio-system".into(),
            selector: Vec::new(),
        }
    }

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
        let file = file.to_string_lossy().into_owned();
        let https = checksum(&opts("https://x/m.wasm", Some(&file), None)).unwrap();
        assert_eq!(https.as_deref().map(str::len), Some(64));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn oci_urls_take_the_manifest_digest_and_never_a_file_hash() {
        let dir = std::env::temp_dir().join(format!("xcluster-oci-{}", std::process::id()));
        let layout = dir.join("image");
        let digest = image::write_layout(b"\0asm", &layout, "0.1.0").unwrap();
        let layout = layout.to_string_lossy().into_owned();
        let url = "oci://registry.example/xcluster:0.1.0";
        let sha = checksum(&opts(url, None, Some(&layout))).unwrap().unwrap();
        assert_eq!(format!("sha256:{sha}"), digest);
        // Regression: the .wasm file's hash was written for an oci:// URL.
        let e = checksum(&opts(url, Some("m.wasm"), None)).unwrap_err();
        assert!(e.message.contains("manifest digest"), "{e}");
        assert_eq!(checksum(&opts(url, None, None)).unwrap(), None);
        let e = checksum(&opts("https://x/m.wasm", None, Some(&layout))).unwrap_err();
        assert!(e.message.contains("not an oci:// URL"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
