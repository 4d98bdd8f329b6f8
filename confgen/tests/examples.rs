//! Golden tests: every `examples/*/GENERATE` line is run through the real `xcluster-gen`
//! binary (from the repository root) and its output compared with the checked-in file.
//! `UPDATE_GOLDEN=1` rewrites the files instead. Generated configs are also checked by
//! the filter's own validation, and bootstraps by `envoy --mode validate` when an Envoy
//! binary is available (`ENVOY_BIN`, else `.venv/bin/envoy`). Each example's README shows
//! its `explain --format mermaid` charts.
#![cfg(test)]

use std::path::{Path, PathBuf};
use std::process::Command;

use xcluster_filter::config::PluginConfig;
use xcluster_filter::policy::Policy;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One `output: args...` line of a GENERATE file.
struct Job {
    output: PathBuf,
    args: Vec<String>,
}

fn jobs() -> Vec<Job> {
    let root = repo_root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("GENERATE").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 5,
        "expected the five seed examples, found {dirs:?}"
    );
    let mut jobs = Vec::new();
    for dir in dirs {
        assert!(
            dir.join("README.md").is_file(),
            "{} has no README.md",
            dir.display()
        );
        let text = std::fs::read_to_string(dir.join("GENERATE")).unwrap();
        let joined = text.replace("\\\n", " ");
        for line in joined.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (output, args) = line.split_once(':').unwrap();
            jobs.push(Job {
                output: dir.join(output.trim()),
                args: args.split_whitespace().map(String::from).collect(),
            });
        }
    }
    jobs
}

fn run(args: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xcluster-gen"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xcluster-gen {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn examples_match_their_generated_outputs() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for job in jobs() {
        let fresh = run(&job.args);
        if update {
            std::fs::create_dir_all(job.output.parent().unwrap()).unwrap();
            std::fs::write(&job.output, &fresh).unwrap();
            continue;
        }
        let golden = std::fs::read_to_string(&job.output).unwrap_or_default();
        if golden != fresh {
            stale.push(job.output.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "outputs differ from a fresh run (UPDATE_GOLDEN=1 rewrites them): {stale:?}"
    );
}

#[test]
fn every_example_config_passes_the_filter_validation() {
    let mut checked = 0;
    for job in jobs().iter().filter(|j| j.args[0] == "config") {
        let text = std::fs::read_to_string(&job.output).unwrap();
        let config: PluginConfig = serde_json::from_str(&text).unwrap();
        Policy::try_from(config).unwrap_or_else(|e| panic!("{}: {e}", job.output.display()));
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} configs checked");
}

fn envoy_bin() -> PathBuf {
    let bin = match std::env::var_os("ENVOY_BIN") {
        Some(b) => PathBuf::from(b),
        None => repo_root().join(".venv/bin/envoy"),
    };
    assert!(
        bin.is_file(),
        "no Envoy at {} (run `make setup`, or set ENVOY_BIN)",
        bin.display()
    );
    bin
}

#[test]
fn every_example_bootstrap_passes_envoy_validate() {
    let envoy = envoy_bin();
    // The bootstraps name the shipped module by its path in the repository: build it.
    let wasm = xcluster_wasm_build::filter_wasm().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        wasm.ends_with("target/xcluster_filter.wasm"),
        "{} is not the module the bootstraps name",
        wasm.display()
    );
    let mut checked = 0;
    for job in jobs().iter().filter(|j| j.args[0] == "envoy") {
        let out = Command::new(&envoy)
            .args(["--mode", "validate", "--disable-hot-restart", "-c"])
            .arg(&job.output)
            .current_dir(repo_root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "envoy --mode validate {} failed:\n{}",
            job.output.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} bootstraps validated");
}

#[test]
fn every_example_readme_renders_its_mermaid_explanations() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for job in jobs()
        .iter()
        .filter(|j| j.output.extension().is_some_and(|e| e == "mmd"))
    {
        let dir = job
            .output
            .ancestors()
            .find(|d| d.join("README.md").is_file())
            .unwrap();
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        let chart = std::fs::read_to_string(&job.output).unwrap();
        if !readme.contains(&format!("```mermaid\n{chart}```")) {
            missing.push(job.output.display().to_string());
        }
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} charts");
    assert!(
        missing.is_empty(),
        "README.md lacks these charts as ```mermaid blocks: {missing:?}"
    );
}
