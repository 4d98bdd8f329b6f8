//! Finding the built filter: `XCLUSTER_WASM`, or the workspace's release build, built
//! on demand with cargo.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::SimError;

/// Environment variable that points at a prebuilt `xcluster_filter.wasm`.
pub const WASM_ENV: &str = "XCLUSTER_WASM";

/// Where `cargo build -p xcluster-filter --release --target wasm32-wasip1` puts the
/// module, relative to the workspace root.
pub const WASM_RELATIVE_PATH: &str = "target/wasm32-wasip1/release/xcluster_filter.wasm";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The filter module for tests: `$XCLUSTER_WASM` if set, else the workspace's release
/// build, which is (re)built once per process with cargo so it is never stale.
pub fn filter_wasm() -> Result<PathBuf, SimError> {
    static BUILT: OnceLock<Result<PathBuf, SimError>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(path) = std::env::var_os(WASM_ENV) {
                return Ok(PathBuf::from(path));
            }
            build_filter(&workspace_root())
        })
        .clone()
}

/// Builds the filter for `wasm32-wasip1` in `root` and returns the module's path.
pub fn build_filter(root: &Path) -> Result<PathBuf, SimError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "-p",
            "xcluster-filter",
            "--release",
            "--target",
            "wasm32-wasip1",
        ])
        .output()
        .map_err(|e| SimError::Io(format!("cannot run cargo to build the filter: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("wasm32-wasip1") && stderr.contains("target") {
            "\nhint: install the target with `rustup target add wasm32-wasip1` (or run `make setup`)"
        } else {
            ""
        };
        return Err(SimError::Io(format!(
            "building the filter (cargo build -p xcluster-filter --release --target wasm32-wasip1) failed:\n{stderr}{hint}"
        )));
    }
    let path = root.join(WASM_RELATIVE_PATH);
    if !path.is_file() {
        return Err(SimError::Io(format!(
            "cargo built the filter but {} is missing",
            path.display()
        )));
    }
    Ok(path)
}
