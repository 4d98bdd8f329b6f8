//! Every Istio document `xcluster-gen` writes validates against Istio's own CRD schemas
//! (`tests/istio-crds/`, vendored from istio/api): a validator for the subset of OpenAPI v3
//! and Kubernetes structural-schema keywords those schemas use, with their CEL rules
//! (`x-kubernetes-validations`) implemented one by one. A schema keyword or rule the
//! validator does not know fails the test instead of passing silently.
#![cfg(test)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use xcluster_confgen::load::parse_documents;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `(apiVersion, kind)` → the version's openAPIV3Schema.
fn schemas() -> Vec<(String, String, Value)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/istio-crds/crds.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = Vec::new();
    for doc in parse_documents("crds.yaml", &text).unwrap() {
        let crd = doc.root.to_json();
        let group = crd["spec"]["group"].as_str().unwrap().to_string();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        for v in crd["spec"]["versions"].as_array().unwrap() {
            let version = v["name"].as_str().unwrap();
            let schema = v["schema"]["openAPIV3Schema"].clone();
            out.push((format!("{group}/{version}"), kind.clone(), schema));
        }
    }
    out
}

/// The keywords the vendored schemas use, all of which the validator implements.
const KEYWORDS: &[&str] = &[
    "type",
    "description",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "maxProperties",
    "format",
    "nullable",
    "oneOf",
    "anyOf",
    "allOf",
    "not",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
];

fn has(v: &Value, field: &str) -> bool {
    v.get(field).is_some_and(|x| !x.is_null())
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// A Go / protobuf duration (`1.5s`, `100ms`, `1h2m`) in nanoseconds.
fn duration_ns(text: &str) -> Option<f64> {
    let mut rest = text;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, scale) = [
            ("ns", 1.0),
            ("us", 1e3),
            ("µs", 1e3),
            ("ms", 1e6),
            ("s", 1e9),
            ("m", 60e9),
            ("h", 3600e9),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))?;
        total += n * scale;
        rest = &rest[unit.len()..];
    }
    Some(total)
}

/// The CEL rules of the vendored schemas, each as Rust. `None` for a rule not known here.
fn cel(rule: &str, v: &Value) -> Option<bool> {
    let keys = || v.as_object().into_iter().flat_map(|m| m.keys());
    let s = v.as_str().unwrap_or_default();
    let count = |fields: &[&str]| fields.iter().filter(|f| has(v, f)).count();
    let resolution = |default: &'static str| {
        v.get("resolution")
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    Some(match rule {
        "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1" => {
            count(&["selector", "targetRef", "targetRefs"]) <= 1
        }
        "self.all(key, !key.contains(\"*\"))" => keys().all(|k| !k.contains('*')),
        "self.all(key, key.size() != 0)" => keys().all(|k| !k.is_empty()),
        "!self.contains(\"*\")" => !s.contains('*'),
        "self.size() == 0" => s.is_empty(),
        "isURL(self) ? (url(self).getScheme() in [\"\", \"http\", \"https\", \"oci\", \"file\"]) : (isURL(\"http://\" + self) &&\nurl(\"http://\" + self).getScheme() in [\"\", \"http\", \"https\", \"oci\", \"file\"])" => {
            match s.split_once("://") {
                Some((scheme, _)) => ["http", "https", "oci", "file"].contains(&scheme),
                None => !s.is_empty() && !s.contains(char::is_whitespace),
            }
        }
        "(has(self.valueFrom) ? self.valueFrom : \"\") != \"HOST\" || !has(self.value)" => {
            str_of(v, "valueFrom") != "HOST" || !has(v, "value")
        }
        "duration(self) >= duration('1ms')" => duration_ns(s).is_some_and(|ns| ns >= 1e6),
        "(has(self.workloadSelector) ? 1 : 0) + (has(self.endpoints) ? 1 : 0) <= 1" => {
            count(&["workloadSelector", "endpoints"]) <= 1
        }
        "!((has(self.addresses) ? self.addresses : []).exists(k, k.contains(\"/\")) && !((has(self.resolution) ? self.resolution : \"NONE\") in [\"STATIC\", \"NONE\"]))" => {
            let cidr = v["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a.as_str().unwrap_or_default().contains('/'));
            !cidr || ["STATIC", "NONE"].contains(&resolution("NONE").as_str())
        }
        "((has(self.resolution) ? self.resolution : \"NONE\") == \"NONE\") ? !has(self.endpoints) : true" => {
            resolution("NONE") != "NONE" || !has(v, "endpoints")
        }
        "((has(self.resolution) ? self.resolution : \"\") == \"DNS_ROUND_ROBIN\") ? ((has(self.endpoints) ? self.endpoints : []).size() <= 1) : true" => {
            resolution("") != "DNS_ROUND_ROBIN"
                || v["endpoints"].as_array().map_or(0, Vec::len) <= 1
        }
        "has(self.address) || has(self.network)" => has(v, "address") || has(v, "network"),
        "(has(self.address) ? self.address : \"\").startsWith(\"unix://\") ? !has(self.ports) : true" => {
            !str_of(v, "address").starts_with("unix://") || !has(v, "ports")
        }
        "self.startsWith(\"unix://\") ? (self.substring(7, 8) == \"/\" || self.substring(7, 8) == \"@\") : true" => {
            !s.starts_with("unix://") || matches!(s.get(7..8), Some("/" | "@"))
        }
        "self.startsWith(\"unix://\") ? !self.endsWith(\"/\") : true" => {
            !s.starts_with("unix://") || !s.ends_with('/')
        }
        "self.all(key, size(key) < 63 && key.matches(\"^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$\"))" => {
            let re = regex_lite::Regex::new("^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$").unwrap();
            keys().all(|k| k.chars().count() < 63 && re.is_match(k))
        }
        "0 < self && self <= 65535" => v.as_i64().is_some_and(|n| 0 < n && n <= 65535),
        "self != \"*\"" => s != "*",
        "self.all(l1, self.exists_one(l2, l1.number == l2.number))" => {
            let numbers: Vec<&Value> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| &p["number"])
                .collect();
            numbers
                .iter()
                .all(|n| numbers.iter().filter(|m| *m == n).count() == 1)
        }
        _ => return None,
    })
}

/// Validation errors of `value` against `schema`, at `path`.
fn validate(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let mut fail = |m: String| errors.push(format!("{path}: {m}"));
    if let Some(unknown) = schema
        .as_object()
        .and_then(|m| m.keys().find(|k| !KEYWORDS.contains(&k.as_str())))
    {
        fail(format!("schema keyword {unknown:?} is not implemented"));
        return;
    }
    if value.is_null() {
        if schema["nullable"] != true && has(schema, "type") {
            fail("null is not allowed".into());
        }
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"] == true;
    let ok_type = match (str_of(schema, "type"), value) {
        ("", _) => !int_or_string || value.is_i64() || value.is_u64() || value.is_string(),
        ("object", Value::Object(_)) | ("array", Value::Array(_)) => true,
        ("string", Value::String(_)) | ("boolean", Value::Bool(_)) => true,
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
        ("number", Value::Number(_)) => true,
        _ => false,
    };
    if !ok_type {
        fail(format!("{value} is not of type {}", str_of(schema, "type")));
        return;
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            fail(format!("{value} is not one of {options:?}"));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| len < m) {
            fail(format!("{s:?} is shorter than {}", schema["minLength"]));
        }
        if schema["maxLength"].as_u64().is_some_and(|m| len > m) {
            fail(format!("{s:?} is longer than {}", schema["maxLength"]));
        }
        if let Some(p) = schema["pattern"].as_str() {
            if !regex_lite::Regex::new(p).unwrap().is_match(s) {
                fail(format!("{s:?} does not match {p}"));
            }
        }
    }
    if let Some(n) = value.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| n < m) {
            fail(format!("{n} is below {}", schema["minimum"]));
        }
        if schema["maximum"].as_f64().is_some_and(|m| n > m) {
            fail(format!("{n} is above {}", schema["maximum"]));
        }
        if str_of(schema, "format") == "int32"
            && !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&n)
        {
            fail(format!("{n} is not an int32"));
        }
    }
    if let Some(items) = value.as_array() {
        let n = items.len() as u64;
        if schema["minItems"].as_u64().is_some_and(|m| n < m) {
            fail(format!("fewer than {} items", schema["minItems"]));
        }
        if schema["maxItems"].as_u64().is_some_and(|m| n > m) {
            fail(format!("more than {} items", schema["maxItems"]));
        }
        let keys = |item: &Value| -> Value {
            match schema["x-kubernetes-list-map-keys"].as_array() {
                Some(fields) => fields
                    .iter()
                    .map(|f| item[f.as_str().unwrap_or_default()].clone())
                    .collect(),
                None => item.clone(),
            }
        };
        if matches!(str_of(schema, "x-kubernetes-list-type"), "map" | "set") {
            let mut seen = Vec::new();
            for item in items {
                let k = keys(item);
                if seen.contains(&k) {
                    fail(format!("duplicate list key {k}"));
                }
                seen.push(k);
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(item_schema, item, &format!("{path}[{i}]"), errors);
            }
        }
    }
    if let Some(map) = value.as_object() {
        if schema["maxProperties"]
            .as_u64()
            .is_some_and(|m| map.len() as u64 > m)
        {
            errors.push(format!(
                "{path}: more than {} properties",
                schema["maxProperties"]
            ));
        }
        for field in schema["required"].as_array().into_iter().flatten() {
            let field = field.as_str().unwrap_or_default();
            if !map.contains_key(field) {
                errors.push(format!("{path}: {field} is required"));
            }
        }
        let props = schema["properties"].as_object();
        let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
        for (k, v) in map {
            let sub = format!("{path}.{k}");
            match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => validate(s, v, &sub, errors),
                (None, Some(s)) if s.is_object() => validate(s, v, &sub, errors),
                // Structural schemas: an object schema names its fields.
                _ if str_of(schema, "type") == "object" && !preserve => {
                    errors.push(format!("{sub}: unknown field"))
                }
                _ => {}
            }
        }
    }
    let passes = |s: &Value| {
        let mut e = Vec::new();
        validate(s, value, path, &mut e);
        e.is_empty()
    };
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            validate(s, value, path, errors);
        }
    }
    if let Some(any) = schema["anyOf"].as_array() {
        if !any.iter().any(passes) {
            errors.push(format!("{path}: matches none of anyOf {any:?}"));
        }
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let n = one.iter().filter(|s| passes(s)).count();
        if n != 1 {
            errors.push(format!("{path}: matches {n} of oneOf {one:?}"));
        }
    }
    if let Some(not) = schema.get("not") {
        if passes(not) {
            errors.push(format!("{path}: matches not {not}"));
        }
    }
    for rule in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let text = str_of(rule, "rule");
        match cel(text, value) {
            Some(true) => {}
            Some(false) => errors.push(format!("{path}: {}", str_of(rule, "message"))),
            None => errors.push(format!("{path}: CEL rule not implemented: {text:?}")),
        }
    }
}

/// An RFC 1123 subdomain (Kubernetes object names) or label (namespaces).
fn dns_name(text: &str, label: bool) -> bool {
    let re = regex_lite::Regex::new(
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    )
    .unwrap();
    let max = if label { 63 } else { 253 };
    !text.is_empty() && text.len() <= max && re.is_match(text) && !(label && text.contains('.'))
}

/// Validation errors of one document: a known kind, names Kubernetes accepts, and the
/// schema (which does not describe `apiVersion`, `kind` and `metadata`).
fn check(doc: &Value, schemas: &[(String, String, Value)]) -> Vec<String> {
    let (api, kind) = (str_of(doc, "apiVersion"), str_of(doc, "kind"));
    let Some((_, _, schema)) = schemas.iter().find(|(a, k, _)| a == api && k == kind) else {
        return vec![format!("{api} {kind}: no schema")];
    };
    let mut errors = Vec::new();
    let meta = &doc["metadata"];
    if !dns_name(str_of(meta, "name"), false) {
        errors.push(format!(
            "metadata.name {:?} is not a DNS subdomain",
            meta["name"]
        ));
    }
    if !dns_name(str_of(meta, "namespace"), true) {
        errors.push(format!(
            "metadata.namespace {:?} is not a DNS label",
            meta["namespace"]
        ));
    }
    let mut body = doc.clone();
    if let Some(m) = body.as_object_mut() {
        for field in ["apiVersion", "kind", "metadata"] {
            m.remove(field);
        }
    }
    validate(schema, &body, "", &mut errors);
    errors
}

/// Istio's webhook rules the output relies on beyond the schemas
/// (`pkg/config/validation/validation.go`): subset names are RFC 1123 labels.
fn webhook(doc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    for s in doc["spec"]["subsets"].as_array().into_iter().flatten() {
        if !dns_name(str_of(s, "name"), true) {
            errors.push(format!("subset name {:?} is not a DNS label", s["name"]));
        }
    }
    errors
}

fn yaml_docs(file: &str, text: &str) -> Vec<Value> {
    parse_documents(file, text)
        .unwrap()
        .iter()
        .map(|d| d.root.to_json())
        .collect()
}

/// Every generated Istio output of the examples (regenerated by `tests/examples.rs`).
fn example_outputs() -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    let mut stack = vec![repo_root().join("examples")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if name == "istio.yaml" || name == "wasmplugin.yaml" {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), yaml_docs(&name, &text)));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_generated_istio_document_validates_against_istios_schemas() {
    let schemas = schemas();
    let mut kinds = BTreeSet::new();
    let mut failures = Vec::new();
    let outputs = example_outputs();
    assert!(
        outputs
            .iter()
            .filter(|(f, _)| f.ends_with("istio.yaml"))
            .count()
            >= 5,
        "{outputs:?}"
    );
    for (file, docs) in &outputs {
        for doc in docs {
            kinds.insert(str_of(doc, "kind").to_string());
            for e in check(doc, &schemas).into_iter().chain(webhook(doc)) {
                failures.push(format!(
                    "{file}: {} {}: {e}",
                    doc["kind"], doc["metadata"]["name"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let all: BTreeSet<String> = [
        "DestinationRule",
        "ServiceEntry",
        "VirtualService",
        "WasmPlugin",
    ]
    .map(String::from)
    .into();
    assert_eq!(kinds, all);
}

#[test]
fn the_validator_knows_every_keyword_and_rule_of_the_schemas() {
    fn walk(s: &Value, rules: &mut BTreeSet<String>, errors: &mut Vec<String>) {
        match s {
            Value::Object(m) => {
                for k in m.keys().filter(|k| !KEYWORDS.contains(&k.as_str())) {
                    errors.push(format!("keyword {k}"));
                }
                for r in m
                    .get("x-kubernetes-validations")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    rules.insert(str_of(r, "rule").to_string());
                }
                for (k, v) in m {
                    if k == "properties" {
                        for p in v.as_object().into_iter().flat_map(|p| p.values()) {
                            walk(p, rules, errors);
                        }
                    } else if k != "enum" && k != "required" && k != "x-kubernetes-validations" {
                        walk(v, rules, errors);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, rules, errors)),
            _ => {}
        }
    }
    let mut rules = BTreeSet::new();
    let mut errors = Vec::new();
    for (_, _, schema) in schemas() {
        walk(&schema, &mut rules, &mut errors);
    }
    for rule in &rules {
        if cel(rule, &Value::Null).is_none() {
            errors.push(format!("rule {rule:?}"));
        }
    }
    assert!(errors.is_empty(), "not implemented: {errors:#?}");
    assert!(rules.len() >= 15, "{rules:#?}");
}

#[test]
fn the_validator_rejects_what_kubernetes_rejects() {
    let schemas = schemas();
    let errors = |yaml: &str| check(&yaml_docs("bad.yaml", yaml)[0], &schemas);
    let good = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: gw, namespace: istio-system}
spec:
  hosts: [gateway.c1.xcluster.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
";
    assert_eq!(errors(good), Vec::<String>::new());
    for (change, want) in [
        (("resolution: STATIC", "resolution: MAGIC"), "is not one of"),
        (
            ("protocol: HTTP}", "protocol: HTTP, colour: red}"),
            "ports[0].colour: unknown field",
        ),
        (("number: 80", "number: 0"), "port must be between 1-65535"),
        (
            ("hosts: [gateway.c1.xcluster.internal]", "hosts: ['*']"),
            "hostname cannot be wildcard",
        ),
        (
            ("resolution: STATIC", "resolution: NONE"),
            "NONE mode cannot set endpoints",
        ),
        (("name: gw,", "name: Gw_1,"), "not a DNS subdomain"),
        (
            (
                "{number: 80, name: http, protocol: HTTP}",
                "{number: 80, name: a}, {number: 80, name: b}",
            ),
            "port number cannot be duplicated",
        ),
    ] {
        let bad = good.replace(change.0, change.1);
        assert_ne!(bad, good, "{change:?}");
        let e = errors(&bad);
        assert!(e.iter().any(|e| e.contains(want)), "{change:?}: {e:?}");
    }
    let plugin = "apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: xcluster, namespace: istio-system}
spec:
  url: oci://r.example/x:1
  sha256: abc
  selector: {matchLabels: {istio: ingressgateway}}
  targetRefs: [{kind: Gateway, name: g}]
  pluginConfig: {anything: [1, {goes: here}]}
";
    let e = errors(plugin);
    assert!(
        e.iter()
            .any(|e| e.contains("sha256") && e.contains("does not match")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|e| e.contains("only one of targetRefs or selector")),
        "{e:?}"
    );
    assert_eq!(e.len(), 2, "{e:?}");
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v, namespace: istio-system}
spec:
  hosts: [a.example]
  http:
  - match: [{headers: {x-c: {exact: a, prefix: b}}}]
    route: [{destination: {host: a.example}}]
    timeout: 0.5us
";
    let e = errors(vs);
    assert!(e.iter().any(|e| e.contains("oneOf")), "{e:?}");
    assert!(e.iter().any(|e| e.contains("timeout")), "{e:?}");
    assert!(check(
        &yaml_docs("x", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")[0],
        &schemas
    )[0]
    .contains("no schema"));
    assert!(!webhook(&yaml_docs("x", "spec: {subsets: [{name: a.b}]}\n")[0]).is_empty());
    assert_eq!(duration_ns("1h2m0.5s"), Some(3_720.5e9));
    assert_eq!(duration_ns("1x"), None);
}

#[test]
fn the_istio_command_prints_documents_that_validate() {
    // A Gloo split with label subsets, a remote cluster and an FSM gateway in one input,
    // through the real binary.
    let input = "apiVersion: networking.mesh.gloo.solo.io/v1alpha2
kind: TrafficPolicy
metadata: {namespace: gloo-mesh, name: shift}
spec:
  destinationSelector:
  - kubeServiceRefs:
      services: [{clusterName: east, name: reviews, namespace: bookinfo}]
  trafficShift:
    destinations:
    - kubeService: {clusterName: west, name: reviews, namespace: bookinfo}
      weight: 3
    - kubeService: {clusterName: east, name: reviews, namespace: bookinfo, subset: {version: v1}}
      weight: 1
---
apiVersion: flomesh.io/v1alpha1
kind: ServiceImport
metadata: {name: httpbin, namespace: httpbin}
spec:
  ports:
  - port: 8080
    endpoints:
    - clusterKey: default/default/default/north
      target: {host: gw.north.example, port: 81, path: /north/httpbin}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo, labels: {topology.istio.io/cluster: west}}
spec: {ports: [{name: http, port: 9080}]}
";
    let mut child = Command::new(env!("CARGO_BIN_EXE_xcluster-gen"))
        .args([
            "istio",
            "-f",
            "-",
            "--local-cluster",
            "east",
            "--url",
            "oci://registry.example/xcluster:0.1.0",
            "--gateway",
            "gateways/east-west",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = yaml_docs("istio.yaml", &text);
    let schemas = schemas();
    for doc in &docs {
        let e: Vec<String> = check(doc, &schemas)
            .into_iter()
            .chain(webhook(doc))
            .collect();
        assert!(e.is_empty(), "{doc:#}: {e:?}");
    }
    let kinds: Vec<&str> = docs.iter().map(|d| str_of(d, "kind")).collect();
    assert_eq!(
        kinds,
        [
            "ServiceEntry",
            "DestinationRule",
            "VirtualService",
            "VirtualService",
            "WasmPlugin"
        ]
    );
    let entry = &docs[0]["spec"];
    assert_eq!(entry["hosts"][0], "gateway.north.xcluster.internal");
    assert_eq!(entry["resolution"], "DNS");
    assert_eq!(entry["endpoints"][0]["address"], "gw.north.example");
    let subsets: Vec<(&str, &Value)> = docs[1]["spec"]["subsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (str_of(s, "name"), &s["labels"]))
        .collect();
    assert_eq!(subsets.len(), 2);
    assert_eq!(subsets[0].0, "xc-east-v1");
    assert_eq!(subsets[0].1["version"], "v1");
    assert_eq!(subsets[0].1["topology.istio.io/cluster"], "east");
    assert_eq!(subsets[1].0, "xc-west");
    let vs = &docs
        .iter()
        .find(|d| d["metadata"]["name"] == "xcluster-bookinfo-reviews")
        .unwrap()["spec"];
    assert_eq!(vs["gateways"][0], "gateways/east-west");
    assert_eq!(
        vs["http"][0]["match"][0]["headers"]["x-xcluster-cluster"]["exact"],
        "outbound|9080|xc-west|reviews.bookinfo.svc.cluster.local"
    );
    // The port of the Service in another cluster serves the local subset too.
    assert_eq!(
        vs["http"][1]["match"][0]["headers"]["x-xcluster-cluster"]["exact"],
        "outbound|9080|xc-east-v1|reviews.bookinfo.svc.cluster.local"
    );
    let plugin = docs.last().unwrap();
    let targets = &plugin["spec"]["pluginConfig"]["destinations"];
    let clusters: Vec<&str> = targets
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["targets"].as_array().unwrap())
        .map(|t| str_of(t, "envoy_cluster"))
        .collect();
    assert!(
        clusters.contains(&"outbound|81||gateway.north.xcluster.internal"),
        "{clusters:?}"
    );
    assert_eq!(
        vs["http"][0]["route"][0]["destination"]["subset"],
        "xc-west"
    );
    assert!(text.starts_with("# Generated by xcluster-gen istio."));
}
