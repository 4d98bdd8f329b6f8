//! The dry run (`xcluster-sim`) against the real filter, with the example in `dry-run/`.
#![cfg(test)]

mod common;

use std::path::Path;
use std::process::Command;

use xcluster_host_sim::dryrun::{self, Report};
use xcluster_host_sim::profile::Profile;

fn example() -> (serde_json::Value, Profile) {
    load("reviews.json", "profile.yaml")
}

fn load(config: &str, profile: &str) -> (serde_json::Value, Profile) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dry-run");
    let config = serde_json::from_str(&std::fs::read_to_string(dir.join(config)).unwrap()).unwrap();
    let path = dir.join(profile);
    let profile = Profile::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
    (config, profile)
}

#[test]
fn a_target_dying_at_two_seconds_costs_no_request_the_replays_take_them() {
    let (config, profile) = load("replay.json", "replay-profile.yaml");
    let report = dryrun::run(common::wasm(), &config, &profile).unwrap();
    println!("{report}");
    assert_eq!(report.failed, 0, "{report}");
    let local = &report.targets[&key("httpbin", "cluster-1")];
    assert!(local.upstream_errors >= 5, "{report}");
    assert_eq!(
        report.replayed, local.upstream_errors,
        "every failure replayed: {report}"
    );
    assert_eq!(report.ejections.get(&key("httpbin", "cluster-1")), Some(&1));
    assert!(report.to_string().contains(&format!("replayed (failed on their target, answered by the next): {}; failed (a 5xx to the client): 0", report.replayed)));
}

fn key(d: &str, t: &str) -> (String, String) {
    (d.to_string(), t.to_string())
}

#[test]
fn the_example_run_denies_strangers_and_fails_over() {
    let (config, mut profile) = example();
    profile.requests = 800;
    let report: Report = dryrun::run(common::wasm(), &config, &profile).unwrap();
    assert_eq!(report.forwarded, 720);
    assert_eq!(report.replies.get("403 access denied"), Some(&80));
    assert_eq!(
        report.denials.get(&key("reviews", "not_allowed")),
        Some(&80)
    );
    assert!(report.dry_run_denials.is_empty());
    let local = &report.targets[&key("reviews", "cluster-1")];
    let remote = &report.targets[&key("reviews", "cluster-2")];
    assert_eq!((local.tier.as_str(), remote.tier.as_str()), ("0", "2"));
    assert_eq!(local.requests + remote.requests, 720);
    assert!(local.upstream_errors >= 5, "{report}");
    assert_eq!(report.ejections.get(&key("reviews", "cluster-1")), Some(&1));
    assert_eq!(report.failovers, remote.requests);
    assert!(report.request_instructions.min > 0);
    assert!(report.stream_instructions.mean() >= report.request_instructions.mean());
    // Deterministic: the same inputs give the same report.
    assert_eq!(
        dryrun::run(common::wasm(), &config, &profile).unwrap(),
        report
    );
}

#[test]
fn the_cli_prints_the_table_and_explains_bad_input() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dry-run");
    let wasm = xcluster_host_sim::filter_wasm().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xcluster-sim"))
            .arg("--wasm")
            .arg(&wasm)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--config",
        "reviews.json",
        "--profile",
        "profile.yaml",
        "--requests",
        "100",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("100 requests, 2 worker(s), seed 1"),
        "{text}"
    );
    assert!(
        text.contains("local reply 403 access denied        10  10.0%"),
        "{text}"
    );
    assert!(
        text.contains("wasm instructions per request: on_request_headers min "),
        "{text}"
    );

    let bad = std::env::temp_dir().join(format!("xcluster-sim-bad-{}.yaml", std::process::id()));
    std::fs::write(&bad, "requests: 5\ntraffic:\n  - host: h\n    methd: GET\n").unwrap();
    let out = run(&[
        "--config",
        "reviews.json",
        "--profile",
        bad.to_str().unwrap(),
    ]);
    std::fs::remove_file(&bad).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let place = format!("{}:4:5: unknown field `methd`", bad.display());
    assert!(err.contains(&place), "{err}");
    assert_eq!(err.lines().count(), 1, "one line, no snippet: {err}");

    let out = run(&["--config", "profile.yaml", "--profile", "profile.yaml"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("profile.yaml"), "{err}");
}

/// Every output `README.md` quotes is the CLI's on the `dry-run/` example it names, line for
/// line, run as the README runs it (no `--wasm`: the shipped module): when the filter's
/// instruction counts, the report or the CLI's default module change, the README follows.
#[test]
fn the_readme_quotes_what_the_cli_prints() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let outputs: Vec<String> = [
        ("reviews.json", "profile.yaml"),
        ("replay.json", "replay-profile.yaml"),
        ("split.json", "split-profile.yaml"),
    ]
    .iter()
    .map(|(config, profile)| {
        let out = Command::new(env!("CARGO_BIN_EXE_xcluster-sim"))
            .args(["--config", config, "--profile", profile])
            .current_dir(dir.join("dry-run"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{config}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    })
    .collect();
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let quoted: Vec<Vec<&str>> = readme
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|block| block.lines().filter(|l| !l.trim().is_empty()).collect())
        .filter(|lines: &Vec<&str>| {
            lines
                .first()
                .is_some_and(|l| l.starts_with("destination ") || l.contains(" requests, "))
        })
        .collect();
    assert_eq!(quoted.len(), 3, "the README's dry-run outputs");
    for block in quoted {
        let printed_it = outputs.iter().any(|text| {
            let mut lines = text.lines();
            block.iter().all(|want| lines.any(|l| l == *want))
        });
        assert!(
            printed_it,
            "host-sim/README.md quotes output no run prints; update it from:\n{}\n--- quoted:\n{}",
            outputs.join("\n"),
            block.join("\n")
        );
    }
}
