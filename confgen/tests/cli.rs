//! The command line: inputs from stdin and directories, exit codes and error text,
//! `--endpoint` handling, `--help` examples, `wasmplugin --wasm` digests.
#![cfg(test)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xcluster-gen"))
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A process that rejects its arguments exits without reading: ignore a broken pipe.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// The stdout of a run that must have succeeded (its stderr in the failure message).
fn stdout_of(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xcluster-gen-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const TP: &str = "apiVersion: networking.mesh.gloo.solo.io/v1alpha2
kind: TrafficPolicy
metadata: {namespace: gloo-mesh, name: simple}
spec:
  destinationSelector:
  - kubeServiceRefs:
      services: [{clusterName: c1, name: reviews, namespace: bookinfo}]
  trafficShift:
    destinations:
    - kubeService: {clusterName: c2, name: reviews, namespace: bookinfo}
      weight: 3
    - kubeService: {clusterName: c1, name: reviews, namespace: bookinfo, subset: {version: v1}}
      weight: 1
";

#[test]
fn stdin_input_and_skipped_kinds_warn_on_stderr() {
    let input = format!("{TP}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n");
    let out = run_with_stdin(&["config", "-f", "-"], &input);
    assert!(out.status.success());
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["destinations"][0]["targets"][0]["weight"], 3);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("warning: -:15:1: skipping v1 ConfigMap"),
        "{stderr}"
    );
}

#[test]
fn malformed_input_exits_non_zero_with_file_line_column_and_path() {
    let bad = TP.replace("weight: 3", "weight: three");
    let out = run_with_stdin(&["explain", "-f", "-"], &bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("-:11:15: spec.trafficShift.destinations[0].weight: invalid type"),
        "{stderr}"
    );
}

#[test]
fn directories_read_yaml_files_in_name_order_only() {
    let dir = temp_dir("dir");
    // b.yaml's TrafficPolicy would clash with a.yml's: the error shows which came first.
    std::fs::write(
        dir.join("b.yaml"),
        TP.replace("name: simple", "name: second"),
    )
    .unwrap();
    std::fs::write(dir.join("a.yml"), TP).unwrap();
    std::fs::write(dir.join("notes.txt"), "not yaml: [").unwrap();
    let out = bin().args(["config", "-f"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("b.yaml:7:"), "{stderr}");
    assert!(
        stderr.contains("TrafficPolicy gloo-mesh/second"),
        "{stderr}"
    );
    assert!(
        stderr.contains("already has a policy from TrafficPolicy gloo-mesh/simple"),
        "{stderr}"
    );
    assert!(stderr.contains("a.yml:1:1"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn envoy_needs_an_address_for_every_target_and_rejects_unused_endpoints() {
    let args = [
        "envoy",
        "-f",
        "-",
        "--wasm",
        "x.wasm",
        "--listen",
        "127.0.0.1:10000",
    ];
    let out = run_with_stdin(&args, TP);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("--endpoint c2/bookinfo/reviews=HOST:PORT"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--endpoint c1/bookinfo/reviews/version=v1=HOST:PORT"),
        "{stderr}"
    );

    let mut full: Vec<&str> = args.to_vec();
    full.extend([
        "--endpoint",
        "c2/bookinfo/reviews=127.0.0.1:18002@bookinfo/reviews-remote",
        "--endpoint",
        "c1/bookinfo/reviews/version=v1=127.0.0.1:18001",
    ]);
    let out = run_with_stdin(&full, TP);
    let text = stdout_of(out);
    assert!(text.contains("port_value: 18002"), "{text}");
    assert!(text.contains("\"name\": \"reviews-remote\""), "{text}");
    assert!(
        text.contains("\"xc|c1|bookinfo|reviews|version=v1\""),
        "{text}"
    );

    full.extend(["--endpoint", "c9/bookinfo/reviews=127.0.0.1:1"]);
    let out = run_with_stdin(&full, TP);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no target is c9/bookinfo/reviews"));
}

#[test]
fn targets_sharing_an_address_share_one_envoy_cluster() {
    let out = run_with_stdin(
        &[
            "envoy",
            "-f",
            "-",
            "--wasm",
            "x.wasm",
            "--listen",
            "127.0.0.1:10000",
            "--endpoint",
            "c2/bookinfo/reviews=127.0.0.1:18000",
            "--endpoint",
            "c1/bookinfo/reviews/version=v1=127.0.0.1:18000",
        ],
        TP,
    );
    let text = stdout_of(out);
    assert_eq!(text.matches("connect_timeout").count(), 1, "{text}");
    // Both targets now route to the first name.
    assert_eq!(
        text.matches("\"envoy_cluster\": \"xc|c1|bookinfo|reviews|version=v1\"")
            .count(),
        2
    );
}

#[test]
fn envoy_tls_flags_add_downstream_mtls() {
    let out = run_with_stdin(
        &[
            "envoy",
            "-f",
            "-",
            "--wasm",
            "x.wasm",
            "--listen",
            "127.0.0.1:10000",
            "--endpoint",
            "c2/bookinfo/reviews=127.0.0.1:18002",
            "--endpoint",
            "c1/bookinfo/reviews/version=v1=127.0.0.1:18001",
            "--tls-cert",
            "gw.crt",
            "--tls-key",
            "gw.key",
            "--client-ca",
            "ca.crt",
        ],
        TP,
    );
    let text = stdout_of(out);
    assert!(text.contains("require_client_certificate: true"), "{text}");
    assert!(text.contains("filename: ca.crt"), "{text}");
    // HTTP/2 by ALPN, for gRPC clients.
    assert!(
        text.contains("alpn_protocols:\n                  - h2\n                  - http/1.1"),
        "{text}"
    );
    // All three are needed.
    let out = run_with_stdin(
        &[
            "envoy",
            "-f",
            "-",
            "--wasm",
            "x",
            "--listen",
            "h:1",
            "--tls-cert",
            "a",
        ],
        TP,
    );
    assert!(!out.status.success());
}

#[test]
fn wasmplugin_carries_the_module_digest_and_selector() {
    let dir = temp_dir("wasm");
    let wasm = dir.join("m.wasm");
    std::fs::write(&wasm, b"abc").unwrap();
    // Istio names clusters by port: the Service says it.
    let input = format!(
        "{TP}---\napiVersion: v1\nkind: Service\nmetadata: {{name: reviews, namespace: bookinfo}}\nspec: {{ports: [{{port: 9080}}]}}\n"
    );
    let plugin = |url: &str, extra: &[&str]| {
        let mut args = vec!["wasmplugin", "-f", "-", "--url", url];
        args.extend_from_slice(extra);
        run_with_stdin(&args, &input)
    };
    let wasm_arg = wasm.to_str().unwrap();
    let text = stdout_of(plugin(
        "https://r.example/x.wasm",
        &["--selector", "istio=ingressgateway", "--wasm", wasm_arg],
    ));
    assert!(
        text.contains("sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        "{text}"
    );
    assert!(
        text.contains("matchLabels:\n      istio: ingressgateway"),
        "{text}"
    );
    assert!(text.contains("failStrategy: FAIL_CLOSE"), "{text}");
    // Targets name the clusters Istio builds.
    assert!(
        text.contains("envoy_cluster: \"outbound|9080|xc-c2|reviews.bookinfo.svc.cluster.local\""),
        "{text}"
    );

    // Regression: for an oci:// URL the module's hash was written, which Istio compares
    // with the image's manifest digest and refuses.
    let out = plugin("oci://r/x:1", &["--wasm", wasm_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("manifest digest"));
    let text = stdout_of(plugin("oci://r/x:1", &[]));
    assert!(!text.contains("sha256"), "{text}");

    // `image` writes the layout and prints its digest; `--image` puts it in the plugin.
    let image = dir.join("image");
    let out = bin()
        .args(["image", "--wasm", wasm_arg, "-o"])
        .arg(&image)
        .args(["--tag", "1"])
        .output()
        .unwrap();
    let digest = stdout_of(out);
    assert!(
        digest.starts_with("sha256:") && digest.len() == 72,
        "{digest:?}"
    );
    let text = stdout_of(plugin("oci://r/x:1", &["--image", image.to_str().unwrap()]));
    assert!(
        text.contains(&format!(
            "sha256: {}",
            digest.trim().trim_start_matches("sha256:")
        )),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_subcommand_help_shows_an_example() {
    for sub in ["config", "envoy", "wasmplugin", "istio", "image", "explain"] {
        let out = bin().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Example:\n  xcluster-gen "), "{sub}: {text}");
    }
}

#[test]
fn endpoint_subsets_match_istio_subset_names_or_their_labels() {
    let istio = "apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v2, labels: {version: v2}}, {name: v3, labels: {version: v3}}]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v2}, weight: 50}
    - {destination: {host: reviews, subset: v3}, weight: 50}
";
    let out = run_with_stdin(
        &[
            "envoy",
            "-f",
            "-",
            "--local-cluster",
            "a",
            "--wasm",
            "x.wasm",
            "--listen",
            "127.0.0.1:1",
            "--endpoint",
            "a/default/reviews/v2=127.0.0.1:18002",
            "--endpoint",
            "a/default/reviews/version=v3=127.0.0.1:18003",
        ],
        istio,
    );
    let text = stdout_of(out);
    assert!(
        text.contains("cluster_name: \"xc|a|default|reviews|v2\""),
        "{text}"
    );
    assert!(
        text.contains("cluster_name: \"xc|a|default|reviews|v3\""),
        "{text}"
    );
    assert!(text.contains("port_value: 18003"), "{text}");
}

#[test]
fn an_endpoint_in_the_local_cluster_declares_an_instance_of_an_imported_service() {
    let input = "apiVersion: flomesh.io/v1alpha1
kind: ServiceImport
metadata: {name: echo, namespace: demo}
spec:
  ports:
  - port: 8080
    endpoints:
    - clusterKey: default/default/default/c1
      target: {ip: 10.0.0.1, port: 81, path: /c1/echo}
---
apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata: {name: echo, namespace: demo}
spec: {lbType: Locality}
";
    let args = [
        "envoy",
        "-f",
        "-",
        "--local-cluster",
        "c2",
        "--wasm",
        "x.wasm",
        "--listen",
        "127.0.0.1:0",
        "--endpoint",
        "c2/demo/echo=127.0.0.1:8080",
    ];
    let yaml = stdout_of(run_with_stdin(&args, input));
    assert!(yaml.contains("name: \"xc|c2|demo|echo\""), "{yaml}");
    assert!(yaml.contains("port_value: 8080"), "{yaml}");
}

/// The clusters of a generated bootstrap: `(name, HTTP/2?)`, in order.
fn upstream_protocols(yaml: &str) -> Vec<(String, bool)> {
    let clusters = yaml
        .split_once("  clusters:\n")
        .and_then(|(_, rest)| rest.split_once("\n  listeners:"))
        .map_or("", |(clusters, _)| clusters);
    clusters
        .split("\n    - ")
        .filter_map(|cluster| {
            let name = cluster
                .lines()
                .find_map(|l| l.trim().strip_prefix("name: "))?
                .trim_matches('"');
            Some((name.to_string(), cluster.contains("http2_protocol_options")))
        })
        .collect()
}

#[test]
fn http2_upstreams_come_from_grpc_ports_or_the_http2_flag() {
    let slice = "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  namespace: bookinfo
  name: reviews-c2
  labels: {kubernetes.io/service-name: reviews, topology.istio.io/cluster: c2}
addressType: IPv4
ports: [{name: grpc-reviews, port: 18002, appProtocol: grpc}]
endpoints: [{addresses: [127.0.0.1]}]
";
    let args = |extra: &[&'static str]| {
        let mut args = vec![
            "envoy",
            "-f",
            "-",
            "--wasm",
            "x.wasm",
            "--listen",
            "127.0.0.1:10000",
            "--endpoint",
            "c1/bookinfo/reviews/version=v1=127.0.0.1:18001",
        ];
        args.extend_from_slice(extra);
        args
    };
    // The EndpointSlice's port says gRPC: its target's upstream is HTTP/2, and an
    // --endpoint override keeps the port's protocol.
    let input = format!("{TP}---\n{slice}");
    let text = stdout_of(run_with_stdin(&args(&[]), &input));
    assert_eq!(
        upstream_protocols(&text),
        [
            ("xc|c1|bookinfo|reviews|version=v1".to_string(), false),
            ("xc|c2|bookinfo|reviews".to_string(), true)
        ],
        "{text}"
    );
    let text = stdout_of(run_with_stdin(
        &args(&["--endpoint", "c2/bookinfo/reviews=127.0.0.1:18003"]),
        &input,
    ));
    assert!(text.contains("port_value: 18003"), "{text}");
    assert!(upstream_protocols(&text)[1].1, "{text}");
    // Without the slice, --http2 says so; the same address over HTTP/1 and HTTP/2 is two
    // Envoy clusters.
    let text = stdout_of(run_with_stdin(
        &args(&[
            "--endpoint",
            "c2/bookinfo/reviews=127.0.0.1:18001",
            "--http2",
            "c2/bookinfo/reviews",
        ]),
        TP,
    ));
    assert_eq!(
        upstream_protocols(&text),
        [
            ("xc|c1|bookinfo|reviews|version=v1".to_string(), false),
            ("xc|c2|bookinfo|reviews".to_string(), true)
        ],
        "{text}"
    );
    let out = run_with_stdin(&args(&["--http2", "c9/bookinfo/reviews"]), &input);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--http2 c9/bookinfo/reviews: no target"),
        "{err}"
    );
}

#[test]
fn health_check_flags_probe_a_destination_with_probation_or_name_the_destinations() {
    let out = stdout_of(run_with_stdin(
        &[
            "config",
            "-f",
            "-",
            "--health-check",
            "bookinfo/reviews=/ready,interval=2s,status=200|204",
        ],
        TP,
    ));
    let config: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dest = &config["destinations"][0];
    assert_eq!(dest["name"], "bookinfo/reviews");
    assert_eq!(dest["health_check"]["path"], "/ready");
    assert_eq!(dest["health_check"]["interval_ms"], 2000);
    assert_eq!(
        dest["health_check"]["expected_statuses"],
        serde_json::json!([200, 204])
    );
    // A target that health checks bring back ramps up (probation).
    assert_eq!(dest["slow_start"]["window_ms"], 30000);

    let out = run_with_stdin(
        &[
            "config",
            "-f",
            "-",
            "--health-check",
            "bookinfo/ratings=/ready",
        ],
        TP,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--health-check bookinfo/ratings: no destination of that name (there are: bookinfo/reviews)"),
        "{err}"
    );
    let out = run_with_stdin(
        &[
            "config",
            "-f",
            "-",
            "--health-check",
            "bookinfo/reviews=/r,interval=fast",
        ],
        TP,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interval: expected a duration"), "{err}");
}

#[test]
fn the_route_cache_is_left_to_envoy_unless_asked() {
    let config = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["config", "-f", "-"];
        all.extend_from_slice(args);
        serde_json::from_str(&stdout_of(run_with_stdin(&all, TP))).unwrap()
    };
    assert_eq!(config(&[])["clear_route_cache"], false);
    // The filter's default (true) is not written.
    assert!(config(&["--clear-route-cache"])
        .get("clear_route_cache")
        .is_none());
}
