//! The filter as an OCI image Istio's Wasm fetcher accepts: an OCI image layout directory
//! holding the *compat* variant of the Wasm image spec, one `tar+gzip` layer with
//! `plugin.wasm` (istio/istio `pkg/wasm/imagefetcher.go`, `extractOCIStandardImage`).
//!
//! The layout is reproducible: the same module gives the same bytes (no timestamps, owners
//! or file names in the archive and gzip headers), so the same manifest digest. For an
//! `oci://` URL Istio compares a `WasmPlugin`'s `sha256` with that digest (`img.Digest()`
//! in `imagefetcher.go`, checked in `cache.go`), not with the module's own hash.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::load::Error;

/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the one layer (what Istio's compat variant expects).
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The module's name inside the layer.
pub const MODULE_FILE: &str = "plugin.wasm";
/// The annotation naming a tag in `index.json`.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A one-file ustar archive: `name` with `data`, mode 0644, owner 0, time 0.
fn tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let mut put = |at: usize, field: &[u8]| header[at..at + field.len()].copy_from_slice(field);
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", data.len()).as_bytes());
    put(136, b"00000000000\0");
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    // End of archive: two zero blocks.
    out.resize(out.len() + 1024, 0);
    out
}

/// gzip of `data` with a zero time and no file name.
fn gzip(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut encoder: GzEncoder<Vec<u8>> = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    encoder
        .write_all(data)
        .and_then(|()| encoder.finish())
        .map_err(|e| Error::plain(format!("cannot compress the layer: {e}")))
}

/// A blob: its bytes and their descriptor.
struct Blob {
    bytes: Vec<u8>,
    media_type: &'static str,
}

impl Blob {
    fn descriptor(&self) -> Value {
        json!({
            "mediaType": self.media_type,
            "digest": digest(&self.bytes),
            "size": self.bytes.len(),
        })
    }
}

/// Writes the image of `module` to the OCI image layout `dir`, tagged `tag`, and returns
/// the manifest digest (`sha256:<hex>`). `dir` must be missing, empty or an OCI layout
/// (which is replaced).
pub fn write_layout(module: &[u8], dir: &Path, tag: &str) -> Result<String, Error> {
    let place = |e: std::io::Error| Error::plain(format!("{}: {e}", dir.display()));
    if dir.exists() {
        let is_layout = dir.join("oci-layout").is_file();
        let empty = std::fs::read_dir(dir).map_err(place)?.next().is_none();
        if !is_layout && !empty {
            return Err(Error::plain(format!(
                "{}: not empty and not an OCI image layout; give a new directory",
                dir.display()
            )));
        }
        if dir.join("blobs").exists() {
            std::fs::remove_dir_all(dir.join("blobs")).map_err(place)?;
        }
    }
    let archive = tar(MODULE_FILE, module);
    let layer = Blob {
        bytes: gzip(&archive)?,
        media_type: LAYER_MEDIA_TYPE,
    };
    let config = Blob {
        bytes: to_bytes(&json!({
            "architecture": "wasm",
            "os": "wasip1",
            "rootfs": { "type": "layers", "diff_ids": [digest(&archive)] },
        }))?,
        media_type: CONFIG_MEDIA_TYPE,
    };
    let mut layer_descriptor = layer.descriptor();
    layer_descriptor["annotations"] = json!({ "org.opencontainers.image.title": MODULE_FILE });
    let manifest = Blob {
        bytes: to_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": config.descriptor(),
            "layers": [layer_descriptor],
        }))?,
        media_type: MANIFEST_MEDIA_TYPE,
    };
    let mut manifest_descriptor = manifest.descriptor();
    manifest_descriptor["annotations"] = json!({ REF_NAME: tag });
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest_descriptor],
    });
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(place)?;
    for blob in [&layer, &config, &manifest] {
        let name = digest(&blob.bytes).replace("sha256:", "");
        std::fs::write(blobs.join(name), &blob.bytes).map_err(place)?;
    }
    std::fs::write(
        dir.join("oci-layout"),
        to_bytes(&json!({ "imageLayoutVersion": "1.0.0" }))?,
    )
    .map_err(place)?;
    std::fs::write(dir.join("index.json"), to_bytes(&index)?).map_err(place)?;
    Ok(digest(&manifest.bytes))
}

fn to_bytes(value: &Value) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::plain(format!("cannot encode JSON: {e}")))
}

/// The manifest digest (`sha256:<hex>`) of the image tagged `tag` in the OCI layout `dir`;
/// with no tag, of its only image.
pub fn layout_digest(dir: &Path, tag: Option<&str>) -> Result<String, Error> {
    let path = dir.join("index.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::plain(format!(
            "{}: cannot read ({e}); is {} an OCI image layout (xcluster-gen image)?",
            path.display(),
            dir.display()
        ))
    })?;
    let index: Value = serde_json::from_str(&text)
        .map_err(|e| Error::plain(format!("{}: {e}", path.display())))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let tagged = |m: &&Value| tag.is_some_and(|t| m["annotations"][REF_NAME] == t);
    let chosen = match (manifests.iter().find(tagged), manifests.as_slice()) {
        (Some(m), _) => m,
        (None, [only]) => only,
        _ => {
            return Err(Error::plain(format!(
                "{}: {} images and none tagged {}",
                path.display(),
                manifests.len(),
                tag.unwrap_or("(no tag in the URL)")
            )))
        }
    };
    match chosen["digest"].as_str() {
        Some(d) if d.starts_with("sha256:") => Ok(d.to_string()),
        _ => Err(Error::plain(format!(
            "{}: the image has no sha256 digest",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_is_one_ustar_entry_with_a_valid_checksum() {
        let archive = tar("plugin.wasm", b"\0asm");
        assert_eq!(archive.len(), 512 + 512 + 1024);
        assert_eq!(&archive[..11], b"plugin.wasm");
        assert_eq!(&archive[124..136], b"00000000004\0");
        assert_eq!(&archive[257..263], b"ustar\0");
        let mut blank = archive[..512].to_vec();
        blank[148..156].copy_from_slice(b"        ");
        let sum: u32 = blank.iter().map(|&b| u32::from(b)).sum();
        let written = std::str::from_utf8(&archive[148..154]).unwrap();
        assert_eq!(u32::from_str_radix(written, 8).unwrap(), sum);
        assert_eq!(&archive[512..516], b"\0asm");
    }

    #[test]
    fn layouts_are_reproducible_and_name_their_digest() {
        let base = std::env::temp_dir().join(format!("xcluster-image-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        let d1 = write_layout(b"\0asm module", &a, "0.1.0").unwrap();
        let d2 = write_layout(b"\0asm module", &b, "0.1.0").unwrap();
        assert_eq!(d1, d2);
        for file in ["index.json", "oci-layout"] {
            assert_eq!(
                std::fs::read(a.join(file)).unwrap(),
                std::fs::read(b.join(file)).unwrap()
            );
        }
        let manifest = std::fs::read(a.join("blobs/sha256").join(&d1[7..])).unwrap();
        assert_eq!(digest(&manifest), d1);
        assert_eq!(layout_digest(&a, Some("0.1.0")).unwrap(), d1);
        assert_eq!(layout_digest(&a, None).unwrap(), d1);
        // Rewriting replaces the old image.
        let d3 = write_layout(b"\0asm other", &a, "0.2.0").unwrap();
        assert_ne!(d3, d1);
        assert_eq!(
            std::fs::read_dir(a.join("blobs/sha256")).unwrap().count(),
            3
        );
        assert!(layout_digest(&base.join("nowhere"), None).is_err());
        let busy = base.join("busy");
        std::fs::create_dir_all(&busy).unwrap();
        std::fs::write(busy.join("notes"), "x").unwrap();
        let e = write_layout(b"x", &busy, "t").unwrap_err().to_string();
        assert!(e.contains("not an OCI image layout"), "{e}");
        std::fs::remove_dir_all(&base).unwrap();
    }
}
