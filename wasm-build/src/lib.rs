//! Builds a workspace package for `wasm32-wasip1 --release` with cargo, once per process,
//! and returns the `.wasm`: the one helper behind `make build`, host-sim's, the e2e
//! tests' and the benchmark's modules.
//!
//! The module that ships ([`shipped`], `target/<package>.wasm`) is cargo's release build
//! run through binaryen's `wasm-opt -Oz` (installed by `make setup` into `.tools/`): for the
//! filter that is 75 KB smaller (422 against 497 KB) and 12–14 % fewer wasm instructions
//! per request (host-sim's dry-run examples) than what cargo writes. Cargo itself decides whether a module is stale, and `wasm-opt` runs
//! again only when cargo's module is newer than the shipped one, so asking again in a new
//! process is a no-op when nothing changed. `$CARGO` (set by `cargo test`/`cargo run`),
//! `$CARGO_TARGET_DIR` and `$WASM_OPT` are honoured; `$XCLUSTER_WASM` replaces the filter.

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

/// Environment variable that names the `wasm-opt` to use.
pub const WASM_OPT_ENV: &str = "WASM_OPT";

/// The wasm features rustc enables for `wasm32-wasip1`, which `wasm-opt` must accept.
const WASM_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-multivalue",
    "--enable-reference-types",
];

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

/// Where the shipped module of `package` lands under `target_dir`:
/// `<package, `-` as `_`>.wasm`.
pub fn shipped_path(target_dir: &Path, package: &str) -> PathBuf {
    target_dir.join(format!("{}.wasm", package.replace('-', "_")))
}

/// The filter module: `$XCLUSTER_WASM` if set, else the [`shipped`] filter.
pub fn filter_wasm() -> Result<PathBuf, BuildError> {
    match std::env::var_os(WASM_ENV) {
        Some(path) => Ok(PathBuf::from(path)),
        None => shipped(FILTER_PACKAGE),
    }
}

/// The module of `package` as it ships: [`build`], then `wasm-opt -Oz` into
/// [`shipped_path`] unless that is newer than cargo's module already. Once per process.
pub fn shipped(package: &str) -> Result<PathBuf, BuildError> {
    static SHIPPED: OnceLock<Mutex<HashMap<String, Result<PathBuf, BuildError>>>> = OnceLock::new();
    let mut shipped = SHIPPED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    shipped
        .entry(package.to_string())
        .or_insert_with(|| {
            let built = build(package)?;
            let out = shipped_path(&target_dir(), package);
            if !newer(&out, &built) {
                optimize(&built, &out)?;
            }
            Ok(out)
        })
        .clone()
}

/// Whether `a` exists and was modified after `b`.
fn newer(a: &Path, b: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(a), modified(b)), (Some(a), Some(b)) if a > b)
}

/// The `wasm-opt` to run: `$WASM_OPT`, else the one `make setup` installs into `.tools/`.
pub fn wasm_opt() -> PathBuf {
    std::env::var_os(WASM_OPT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/node_modules/.bin/wasm-opt"))
}

/// Runs `wasm-opt -Oz` on `module`, writing `out` (through a temporary file, so a reader
/// never sees half a module).
pub fn optimize(module: &Path, out: &Path) -> Result<(), BuildError> {
    let wasm_opt = wasm_opt();
    let partial = out.with_extension(format!("wasm.{}", std::process::id()));
    let output = Command::new(&wasm_opt)
        .arg("-Oz")
        .args(WASM_FEATURES)
        .arg(module)
        .arg("-o")
        .arg(&partial)
        .output()
        .map_err(|e| {
            BuildError(format!(
                "cannot run {}: {e}\nhint: run `make setup` (it installs binaryen's wasm-opt into .tools/), or set {WASM_OPT_ENV}",
                wasm_opt.display()
            ))
        })?;
    if !output.status.success() {
        return Err(BuildError(format!(
            "wasm-opt -Oz {} failed: {}",
            module.display(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    std::fs::rename(&partial, out)
        .map_err(|e| BuildError(format!("cannot write {}: {e}", out.display())))
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
    fn shipped_modules_sit_in_the_target_dir() {
        assert_eq!(
            shipped_path(Path::new("/t"), "xcluster-filter"),
            Path::new("/t/xcluster_filter.wasm")
        );
    }

    #[test]
    fn only_a_newer_file_is_newer() {
        let dir = std::env::temp_dir().join(format!("wasm-build-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (old, new) = (dir.join("old"), dir.join("new"));
        std::fs::write(&old, b"a").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&new, b"b").unwrap();
        assert!(newer(&new, &old));
        assert!(!newer(&old, &new));
        assert!(!newer(&dir.join("missing"), &old));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_target_gets_the_rustup_hint() {
        let stderr = "error[E0463]: can't find crate for `core`\n  = note: the `wasm32-wasip1` target may not be installed";
        assert!(missing_target_hint(stderr).contains("rustup target add wasm32-wasip1"));
        assert_eq!(missing_target_hint("error: could not compile"), "");
    }
}
