//! Every SMI version's shapes, one test each: access `v1alpha1` (fields at the top level,
//! `specs`, destination `port`) to `v1alpha3` (`rules`, `TCPRoute`), specs `v1alpha1` to
//! `v1alpha4` (top-level `matches`, header maps and lists), split `v1alpha1` to `v1alpha4`
//! (quantities, integers, `matches`).
#![cfg(test)]

use xcluster_confgen::kinds::Resources;
use xcluster_confgen::load::{parse_documents, Error};
use xcluster_confgen::model::{build, Model, Options};
use xcluster_filter::config::{AccessMode, PathMatchConfig, TrafficTargetConfig};

fn generate(yaml: &str) -> Result<Model, Error> {
    let docs = parse_documents("in.yaml", yaml)?;
    let res = Resources::from_docs(&docs)?;
    let opts = Options {
        local_cluster: Some("c1".into()),
        ..Options::default()
    };
    let model = build(&res, &opts)?;
    xcluster_confgen::validate(&model.config)?;
    Ok(model)
}

/// The service the TrafficTargets guard, so the config has a destination.
const SERVICE: &str = "
apiVersion: v1
kind: Service
metadata: {name: service-a, namespace: default}
spec: {ports: [{port: 8080}]}
";

fn only_target(m: &Model) -> &TrafficTargetConfig {
    assert_eq!(m.config.access.traffic_targets.len(), 1, "{m:#?}");
    &m.config.access.traffic_targets[0]
}

#[test]
fn access_v1alpha1_fields_are_top_level_with_specs_and_a_port() {
    let yaml = format!(
        "{SERVICE}---
apiVersion: specs.smi-spec.io/v1alpha1
kind: HTTPRouteGroup
metadata: {{name: the-routes, namespace: default}}
matches:
- name: metrics
  pathRegex: /metrics
  methods: [GET]
---
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {{name: path-specific, namespace: default}}
destination: {{kind: ServiceAccount, name: service-a, namespace: default, port: 8080}}
specs:
- kind: HTTPRouteGroup
  name: the-routes
  matches: [metrics]
sources:
- {{kind: ServiceAccount, name: prometheus, namespace: default}}
"
    );
    let m = generate(&yaml).unwrap();
    let tt = only_target(&m);
    assert_eq!(tt.destination.name, "service-a");
    assert_eq!(tt.sources[0].name, "prometheus");
    assert_eq!(tt.rules[0].route_group, "default/the-routes");
    assert_eq!(m.config.access.mode, AccessMode::Enforce);
    let group = &m.config.access.route_groups[0];
    assert_eq!(group.matches[0].path_regex.as_deref(), Some("/metrics"));
    assert!(
        m.warnings.iter().any(|w| w
            .contains("destination.port: the filter cannot limit a TrafficTarget to port 8080")),
        "{:?}",
        m.warnings
    );

    // Errors name the top-level field.
    let missing = yaml.replace("name: the-routes\n  matches", "name: other\n  matches");
    let e = generate(&missing).unwrap_err();
    assert_eq!(e.path, "specs[0].name");
    assert!(
        e.message.contains("names HTTPRouteGroup default/other"),
        "{e}"
    );
}

#[test]
fn access_v1alpha2_rules_under_spec_with_a_port() {
    let yaml = format!(
        "{SERVICE}---
apiVersion: specs.smi-spec.io/v1alpha2
kind: HTTPRouteGroup
metadata: {{name: the-routes, namespace: default}}
matches:
- {{name: everything, pathRegex: '.*', methods: ['*']}}
---
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {{name: path-specific, namespace: default}}
spec:
  destination: {{kind: ServiceAccount, name: service-a, namespace: default, port: 8080}}
  rules:
  - {{kind: HTTPRouteGroup, name: the-routes, matches: [everything]}}
  sources:
  - {{kind: ServiceAccount, name: prometheus, namespace: default}}
"
    );
    let m = generate(&yaml).unwrap();
    assert_eq!(only_target(&m).rules[0].matches, ["everything"]);
    assert!(m
        .warnings
        .iter()
        .any(|w| w.contains("spec.destination.port")));
}

#[test]
fn access_v1alpha3_tcp_route_rules_allow_every_request() {
    let yaml = format!(
        "{SERVICE}---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {{name: the-routes, namespace: default}}
spec:
  matches:
    ports: [8080]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {{name: the-routes, namespace: default}}
spec:
  matches:
  - {{name: metrics, pathRegex: /metrics, methods: [GET]}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: path-specific, namespace: default}}
spec:
  destination: {{kind: ServiceAccount, name: service-a, namespace: default}}
  rules:
  - {{kind: TCPRoute, name: the-routes}}
  - {{kind: HTTPRouteGroup, name: the-routes, matches: [metrics]}}
  sources:
  - {{kind: ServiceAccount, name: prometheus, namespace: default}}
"
    );
    let m = generate(&yaml).unwrap();
    let tt = only_target(&m);
    assert_eq!(tt.rules[0].route_group, "TCPRoute default/the-routes");
    assert_eq!(tt.rules[1].route_group, "default/the-routes");
    let tcp = m
        .config
        .access
        .route_groups
        .iter()
        .find(|g| g.name == "TCPRoute default/the-routes")
        .unwrap();
    // One match with no condition: every request.
    assert_eq!(tcp.matches.len(), 1);
    assert!(tcp.matches[0].path_regex.is_none() && tcp.matches[0].methods.is_empty());
    assert!(m.warnings.iter().any(|w| w.contains("limits ports")));
}

#[test]
fn access_v1alpha4_identity_bindings_are_refused_by_name() {
    let yaml = format!(
        "{SERVICE}---
apiVersion: access.smi-spec.io/v1alpha4
kind: TrafficTarget
metadata: {{name: t, namespace: default}}
spec:
  destination: {{kind: IdentityBinding, group: access.smi-spec.io, name: service-a}}
  rules: [{{kind: TCPRoute, name: r}}]
  sources: [{{kind: IdentityBinding, name: b}}]
"
    );
    let e = generate(&yaml).unwrap_err();
    assert_eq!(e.path, "spec.destination.kind");
    assert!(
        e.message
            .contains("IdentityBinding identities are not supported"),
        "{e}"
    );
}

#[test]
fn traffic_targets_that_allow_no_http_leave_access_permissive() {
    // Regression: a UDP-only TrafficTarget switched the default to enforce with no
    // TrafficTarget left, which denied every request.
    let yaml = format!(
        "{SERVICE}---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: dns, namespace: default}}
spec:
  destination: {{kind: ServiceAccount, name: service-a}}
  rules: [{{kind: UDPRoute, name: dns}}]
  sources: [{{kind: ServiceAccount, name: client}}]
"
    );
    let m = generate(&yaml).unwrap();
    assert_eq!(m.config.access.mode, AccessMode::Permissive);
    assert!(m.config.access.traffic_targets.is_empty());
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("no TrafficTarget allows HTTP traffic")),
        "{:?}",
        m.warnings
    );
}

/// A TrafficTarget of every match of `the-routes`, so the route group is used.
const TARGET_V3: &str = "
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: service-a}
  rules: [{kind: HTTPRouteGroup, name: the-routes}]
  sources: [{kind: ServiceAccount, name: client}]
";

fn group_headers(group_yaml: &str) -> Vec<(String, String)> {
    let m = generate(&format!("{SERVICE}---{group_yaml}---{TARGET_V3}")).unwrap();
    m.config.access.route_groups[0].matches[0].headers.clone()
}

#[test]
fn specs_v1alpha1_matches_are_top_level() {
    let m = generate(&format!(
        "{SERVICE}---
apiVersion: specs.smi-spec.io/v1alpha1
kind: HTTPRouteGroup
metadata: {{name: the-routes, namespace: default}}
matches:
- {{name: health, pathRegex: /ping, methods: ['*']}}
---{TARGET_V3}"
    ))
    .unwrap();
    let group = &m.config.access.route_groups[0];
    assert_eq!(group.name, "default/the-routes");
    assert_eq!(group.matches[0].path_regex.as_deref(), Some("/ping"));
    assert_eq!(group.matches[0].methods, ["*"]);
}

#[test]
fn specs_v1alpha2_top_level_matches_with_header_maps() {
    let headers = group_headers(
        "
apiVersion: specs.smi-spec.io/v1alpha2
kind: HTTPRouteGroup
metadata: {name: the-routes, namespace: default}
matches:
- name: android-insiders
  headers:
    user-agent: '.*Android.*'
    cookie: '^(.*?;)?(type=insider)(;.*)?$'
",
    );
    assert_eq!(
        headers,
        [
            (
                "cookie".to_string(),
                "^(.*?;)?(type=insider)(;.*)?$".to_string()
            ),
            ("user-agent".to_string(), ".*Android.*".to_string())
        ]
    );
}

#[test]
fn specs_v1alpha3_spec_matches_with_header_lists() {
    let headers = group_headers(
        "
apiVersion: specs.smi-spec.io/v1alpha3
kind: HTTPRouteGroup
metadata: {name: the-routes, namespace: default}
spec:
  matches:
  - name: firefox-users
    headers:
    - user-agent: '.*Firefox.*'
",
    );
    assert_eq!(
        headers,
        [("user-agent".to_string(), ".*Firefox.*".to_string())]
    );
}

#[test]
fn specs_v1alpha4_spec_matches_with_header_maps() {
    let headers = group_headers(
        "
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: the-routes, namespace: default}
spec:
  matches:
  - name: iphone-users
    pathRegex: /api/.*
    methods: [GET, HEAD]
    headers: {user-agent: '.*iPhone.*'}
",
    );
    assert_eq!(
        headers,
        [("user-agent".to_string(), ".*iPhone.*".to_string())]
    );
}

fn weights(m: &Model, dest: &str) -> Vec<(String, u32)> {
    let d = m
        .config
        .destinations
        .iter()
        .find(|d| d.name == dest)
        .unwrap_or_else(|| panic!("no {dest}: {:#?}", m.config.destinations));
    d.targets
        .iter()
        .map(|t| (t.name.clone(), t.weight))
        .collect()
}

fn split(version: &str, backends: &str) -> String {
    format!(
        "
apiVersion: split.smi-spec.io/{version}
kind: TrafficSplit
metadata: {{name: my-weights, namespace: default}}
spec:
  service: numbers
  backends:
{backends}"
    )
}

#[test]
fn split_v1alpha1_weights_are_quantities() {
    let yaml = split(
        "v1alpha1",
        "  - {service: one, weight: 10m}\n  - {service: two, weight: 100m}\n  - {service: three, weight: 1500m}\n",
    );
    let m = generate(&yaml).unwrap();
    assert_eq!(
        weights(&m, "default/numbers"),
        [
            ("c1/one".to_string(), 10),
            ("c1/two".to_string(), 100),
            ("c1/three".to_string(), 1500)
        ]
    );
}

#[test]
fn split_v1alpha2_weights_are_integers() {
    let yaml = split(
        "v1alpha2",
        "  - {service: my-website-v1, weight: 50}\n  - {service: my-website-v2, weight: 50}\n",
    );
    let m = generate(&yaml).unwrap();
    assert_eq!(
        weights(&m, "default/numbers"),
        [
            ("c1/my-website-v1".to_string(), 50),
            ("c1/my-website-v2".to_string(), 50)
        ]
    );
}

const AB_GROUP: &str = "
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: ab-test, namespace: default}
spec:
  matches:
  - name: firefox-users
    headers: {user-agent: '.*Firefox.*'}
";

fn ab_test(version: &str, matches: &str) -> Model {
    let yaml = format!(
        "{}  matches:\n{matches}---{AB_GROUP}",
        split(
            version,
            "  - {service: website-v1, weight: 0}\n  - {service: website-v2, weight: 100}\n"
        )
    );
    generate(&yaml).unwrap()
}

fn check_ab_test(m: &Model) {
    // Firefox users go to the split; everyone else to the root service.
    let routes: Vec<(&str, &str)> = m
        .config
        .routes
        .iter()
        .map(|r| (r.name.as_str(), r.destination.as_str()))
        .collect();
    assert_eq!(
        routes,
        [
            (
                "default/numbers/my-weights#ab-test/firefox-users",
                "default/numbers/my-weights"
            ),
            ("default/numbers", "default/numbers"),
        ]
    );
    let first = &m.config.routes[0].route_match;
    assert_eq!(first.headers[0].name, "user-agent");
    assert_eq!(first.headers[0].regex.as_deref(), Some(".*Firefox.*"));
    assert_eq!(
        weights(m, "default/numbers/my-weights"),
        [
            ("c1/website-v1".to_string(), 0),
            ("c1/website-v2".to_string(), 100)
        ]
    );
    assert_eq!(weights(m, "default/numbers"), [("c1".to_string(), 1)]);
}

#[test]
fn split_v1alpha3_matches_name_route_groups() {
    check_ab_test(&ab_test(
        "v1alpha3",
        "  - {kind: HTTPRouteGroup, name: ab-test}\n",
    ));
}

#[test]
fn split_v1alpha4_matches_carry_an_api_group() {
    let m = ab_test(
        "v1alpha4",
        "  - {kind: HTTPRouteGroup, name: ab-test, apiGroup: specs.smi-spec.io}\n",
    );
    check_ab_test(&m);
    let path_group = AB_GROUP.replace("headers: {user-agent: '.*Firefox.*'}", "pathRegex: /beta");
    let yaml = format!(
        "{}  matches:\n  - {{kind: HTTPRouteGroup, name: ab-test}}\n---{path_group}",
        split("v1alpha4", "  - {service: website-v2, weight: 1}\n")
    );
    let m = generate(&yaml).unwrap();
    assert_eq!(
        m.config.routes[0].route_match.path,
        Some(PathMatchConfig::Regex("(?:/beta).*".into()))
    );
}

#[test]
fn split_errors_name_the_field() {
    // Regression: an empty split said "every weight is zero".
    let e = generate(&split("v1alpha4", "  []\n").replace("backends:\n  []", "backends: []"))
        .unwrap_err();
    assert_eq!(e.path, "spec.backends");
    assert!(e.message.contains("no backends"), "{e}");
    let e = generate(&format!(
        "{}  matches:\n  - {{kind: HTTPRouteGroup, name: missing}}\n",
        split("v1alpha4", "  - {service: a, weight: 1}\n")
    ))
    .unwrap_err();
    assert_eq!(e.path, "spec.matches[0].name");
    let e = generate(&format!(
        "{}  matches:\n  - {{kind: TCPRoute, name: tcp}}\n",
        split("v1alpha4", "  - {service: a, weight: 1}\n")
    ))
    .unwrap_err();
    assert_eq!(e.path, "spec.matches[0].kind");
    let e = generate(&split(
        "v1alpha1",
        "  - {service: a, weight: 99999999999999999999}\n",
    ))
    .unwrap_err();
    assert_eq!(e.path, "spec.backends[0].weight");
}
