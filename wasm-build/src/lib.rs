//! Builds a workspace package for `wasm32-wasip1 --release` with cargo, once per process,
//! and returns the `.wasm`: the one helper behind host-sim's, the e2e tests' and the
//! benchmark's modules.
//!
//! Cargo itself decides whether a module is stale, so asking again in a new process is a
//! no-op when nothing changed. `$CARGO` (set by `cargo test`/`cargo run`) and
//! `$CARGO_TARGET_DIR` are honoured; `$XCLUSTER_WASM` replaces the filter build.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The target every module is built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";

/// The filter's package.
pub const FILTER_PACKAGE: &str = "xcluster-filter";

/// Environment variable that points at a prebuilt filter module (skips the build).
pub const WASM_ENV: &str = "XCLUSTER_WASM";

/// Why a module could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(pub String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
}

/// The cargo target directory: `$CARGO_TARGET_DIR` (relative to the workspace root, as
/// cargo run there reads it) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Where the release module of `package` lands under `target_dir`
/// (`wasm32-wasip1/release/<package, `-` as `_`>.wasm`).
pub fn module_path(target_dir: &Path, package: &str) -> PathBuf {
    target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}

/// The filter module: `$XCLUSTER_WASM` if set, else [`build`] of the filter package.
pub fn filter_wasm() -> Result<PathBuf, BuildError> {
    match std::env::var_os(WASM_ENV) {
        Some(path) => Ok(PathBuf::from(path)),
        None => build(FILTER_PACKAGE),
    }
}

/// Builds `package` (`cargo build -p <package> --release --target wasm32-wasip1` in the
/// workspace root) the first time it is asked for in this process, and returns its module.
/// Concurrent callers wait for the one build.
pub fn build(package: &str) -> Result<PathBuf, BuildError> {
    static BUILT: OnceLock<Mutex<HashMap<String, Result<PathBuf, BuildError>>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    built
        .entry(package.to_string())
        .or_insert_with(|| run_cargo(package))
        .clone()
}

fn run_cargo(package: &str) -> Result<PathBuf, BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let args = ["build", "-p", package, "--release", "--target", WASM_TARGET];
    let command = format!("cargo {}", args.join(" "));
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args(args)
        .output()
        .map_err(|e| BuildError(format!("cannot run cargo to build {package}: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(BuildError(format!(
            "building {package} ({command}) failed:\n{stderr}{}",
            missing_target_hint(&stderr)
        )));
    }
    let path = module_path(&target_dir(), package);
    if path.is_file() {
        Ok(path)
    } else {
        Err(BuildError(format!(
            "cargo built {package} but {} is missing",
            path.display()
        )))
    }
}

/// The hint for a toolchain without the wasm target, judged from cargo's stderr.
fn missing_target_hint(stderr: &str) -> &'static str {
    if stderr.contains(WASM_TARGET) && stderr.contains("target") {
        "\nhint: install the target with `rustup target add wasm32-wasip1` (or run `make setup`)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths_follow_cargo_naming() {
        assert_eq!(
            module_path(Path::new("/t"), "xcluster-bench-noop"),
            Path::new("/t/wasm32-wasip1/release/xcluster_bench_noop.wasm")
        );
    }

    #[test]
    fn a_missing_target_gets_the_rustup_hint() {
        let stderr = "error[E0463]: can't find crate for `core`\n  = note: the `wasm32-wasip1` target may not be installed";
        assert!(missing_target_hint(stderr).contains("rustup target add wasm32-wasip1"));
        assert_eq!(missing_target_hint("error: could not compile"), "");
    }
}
