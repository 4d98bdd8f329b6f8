//! The OCI image Istio pulls, through a real registry: `xcluster-gen image`'s layout is
//! pushed with `skopeo` to Debian's `docker-registry` on a free loopback port, read back by
//! tag as Istio's fetcher reads it (the manifest, whose sha256 is the digest Istio checks
//! the `WasmPlugin`'s `sha256` against), pulled back with `skopeo`, and its one
//! `tar+gzip` layer must hold `plugin.wasm` with the module's bytes. `make setup-registry`
//! (run by `make test`) installs both tools.
#![cfg(test)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use xcluster_confgen::emit::image::{self, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, MODULE_FILE};
use xcluster_confgen::emit::wasmplugin::{checksum, WasmPluginOptions};
use xcluster_e2e::client::Client;

/// A `docker-registry serve` process, killed when dropped.
struct Registry {
    child: Child,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| panic!("{name} is missing: run `make setup-registry`"))
}

fn start_registry(dir: &Path) -> Registry {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("registry.log")).unwrap();
    let child = Command::new(tool("docker-registry"))
        .arg("serve")
        .arg(&config)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let registry = Registry { child, port };
    let addr = ([127, 0, 0, 1], port).into();
    let up = xcluster_e2e::wait_for(Duration::from_secs(20), || {
        let resp = Client::plain(addr).get("127.0.0.1", "/v2/").ok()?;
        (resp.status == 200).then_some(())
    });
    assert!(
        up.is_some(),
        "registry not up: {}",
        std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
    );
    registry
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool("skopeo"))
        .arg("--insecure-policy")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The bytes of `name` in a ustar archive.
fn untar(archive: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut at = 0;
    while at + 512 <= archive.len() && archive[at] != 0 {
        let header = &archive[at..at + 512];
        let field = |r: std::ops::Range<usize>| {
            String::from_utf8_lossy(&header[r])
                .trim_end_matches('\0')
                .trim()
                .to_string()
        };
        let size = usize::from_str_radix(&field(124..136), 8).ok()?;
        let body = at + 512;
        if field(0..100) == name {
            return archive.get(body..body + size).map(<[u8]>::to_vec);
        }
        at = body + size.div_ceil(512) * 512;
    }
    None
}

#[test]
fn the_image_goes_through_a_registry_as_istio_reads_it() {
    let module = std::fs::read(xcluster_wasm_build::filter_wasm().unwrap()).unwrap();
    let dir = xcluster_e2e::target_dir()
        .join("e2e")
        .join(format!("registry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let layout = dir.join("image");
    let digest = image::write_layout(&module, &layout, "0.1.0").unwrap();

    let registry = start_registry(&dir);
    let repo = format!("127.0.0.1:{}/xcluster", registry.port);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:0.1.0", layout.display()),
        &format!("docker://{repo}:0.1.0"),
    ]);

    // What Istio's fetcher reads: the manifest by tag. Its digest is the sha256 of these
    // bytes (go-containerregistry's img.Digest()), and the registry says the same.
    let addr = ([127, 0, 0, 1], registry.port).into();
    let resp = Client::plain(addr)
        .request(
            "GET",
            "127.0.0.1",
            "/v2/xcluster/manifests/0.1.0",
            &[("accept", MANIFEST_MEDIA_TYPE)],
        )
        .unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(image::digest(resp.body.as_bytes()), digest);
    assert_eq!(resp.header("docker-content-digest"), Some(digest.as_str()));
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{repo}:0.1.0"),
    ]);
    assert_eq!(image::digest(&raw), digest);

    // The WasmPlugin for this image carries that digest.
    let opts = WasmPluginOptions {
        url: format!("oci://{repo}:0.1.0"),
        wasm: None,
        image: Some(layout.to_string_lossy().into_owned()),
        namespace: "istio-system".into(),
        selector: Vec::new(),
    };
    assert_eq!(
        checksum(&opts).unwrap().map(|s| format!("sha256:{s}")),
        Some(digest.clone())
    );

    // Pulled back, the compat variant Istio extracts: the last layer is tar+gzip and holds
    // plugin.wasm, the module unchanged.
    let back = dir.join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{repo}:0.1.0"),
        &format!("oci:{}:pulled", back.display()),
    ]);
    assert_eq!(image::layout_digest(&back, Some("pulled")).unwrap(), digest);
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    let layer = manifest["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(layer["mediaType"], LAYER_MEDIA_TYPE);
    let blob = back.join("blobs/sha256").join(
        layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let mut archive = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(blob).unwrap())
        .read_to_end(&mut archive)
        .unwrap();
    assert_eq!(
        untar(&archive, MODULE_FILE).as_deref(),
        Some(module.as_slice())
    );

    // Reproducible: the same module gives the same digest.
    assert_eq!(
        image::write_layout(&module, &dir.join("again"), "0.1.0").unwrap(),
        digest
    );
    drop(registry);
    std::fs::remove_dir_all(&dir).unwrap();
}
