//! What users already have: every `Service` is a destination, `--endpoint` declares a local
//! instance of a service the inputs know, and the regressions found on the way.
#![cfg(test)]

use xcluster_confgen::emit::envoy::{apply_endpoints, EndpointFlag};
use xcluster_confgen::kinds::Resources;
use xcluster_confgen::load::{parse_documents, Error};
use xcluster_confgen::model::{build, Backend, Model, Options};
use xcluster_filter::config::{AccessMode, LbPolicy, TargetConfig};

fn generate_with(yaml: &str, opts: Options) -> Result<Model, Error> {
    let docs = parse_documents("in.yaml", yaml)?;
    let res = Resources::from_docs(&docs)?;
    let model = build(&res, &opts)?;
    xcluster_confgen::validate(&model.config)?;
    Ok(model)
}

fn generate(yaml: &str, local: Option<&str>) -> Result<Model, Error> {
    let opts = Options {
        local_cluster: local.map(String::from),
        ..Options::default()
    };
    generate_with(yaml, opts)
}

fn targets<'a>(m: &'a Model, dest: &str) -> &'a [TargetConfig] {
    &m.config
        .destinations
        .iter()
        .find(|d| d.name == dest)
        .unwrap_or_else(|| panic!("no destination {dest}: {:#?}", m.config.destinations))
        .targets
}

const SHOP: &str = "
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  selector: {app: cart}
  ports: [{name: grpc, port: 9000}, {name: http, port: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cart, namespace: shop}
spec:
  template:
    metadata: {labels: {app: cart}}
    spec: {serviceAccountName: cart}
---
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: shop}
---
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: shop, labels: {topology.istio.io/cluster: west}}
";

#[test]
fn every_service_is_a_destination_with_its_instances() {
    let m = generate(SHOP, Some("east")).unwrap();
    let cart = targets(&m, "shop/cart");
    assert_eq!(cart.len(), 1);
    assert_eq!(
        (cart[0].name.as_str(), cart[0].cluster.as_str()),
        ("east", "east")
    );
    // The ServiceAccount of the Deployment the Service selects, else `default`.
    assert_eq!(cart[0].service_account.name, "cart");
    let catalog = targets(&m, "shop/catalog");
    let names: Vec<&str> = catalog.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["east", "west"]);
    assert_eq!(catalog[0].service_account.name, "default");
    let d = m
        .config
        .destinations
        .iter()
        .find(|d| d.name == "shop/cart")
        .unwrap();
    assert_eq!(d.policy, LbPolicy::ActiveActive);
    assert_eq!(d.hosts[3], "cart.shop.svc.cluster.local");
    // The HTTP port, for the Istio output.
    assert_eq!(
        m.backends[&("shop/cart".to_string(), "east".to_string())],
        Backend::Service {
            port: Some(8080),
            subset: None
        }
    );
    let route = m.config.routes.iter().find(|r| r.name == "shop/cart");
    assert!(route.is_some());
}

#[test]
fn smi_access_over_plain_services_routes_to_them() {
    let access = "
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: all, namespace: shop}
spec:
  matches: [{name: all, pathRegex: /}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: web-to-cart, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: cart}
  rules: [{kind: HTTPRouteGroup, name: all}]
  sources: [{kind: ServiceAccount, name: web}]
";
    let m = generate(&format!("{SHOP}---{access}"), Some("east")).unwrap();
    assert_eq!(m.config.access.mode, AccessMode::Enforce);
    assert_eq!(targets(&m, "shop/cart")[0].service_account.name, "cart");
}

#[test]
fn services_of_an_unknown_local_cluster_are_skipped_with_a_warning() {
    let m = generate(SHOP, None).unwrap();
    assert!(m.config.destinations.is_empty());
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("Service shop/cart") && w.contains("--local-cluster")),
        "{:?}",
        m.warnings
    );
}

#[test]
fn a_service_another_source_routes_is_not_routed_twice() {
    let split = "
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: cart-split, namespace: shop}
spec:
  service: cart
  backends: [{service: catalog, weight: 1}]
";
    let m = generate(&format!("{SHOP}---{split}"), Some("east")).unwrap();
    let names: Vec<&str> = m
        .config
        .destinations
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    // cart is the split; catalog is its backend and a service of its own.
    assert_eq!(names, ["shop/cart", "shop/catalog"]);
}

const IMPORT: &str = "
apiVersion: flomesh.io/v1alpha1
kind: ServiceImport
metadata: {name: echo, namespace: demo}
spec:
  serviceAccountName: echo
  ports:
  - port: 8080
    endpoints:
    - clusterKey: default/default/default/c1
      target: {ip: 10.0.0.1, port: 81, path: /c1/echo}
---
apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata: {name: echo, namespace: demo}
spec:
  lbType: FailOver
  targets: [{clusterKey: default/default/default/c1}]
";

fn with_endpoints(yaml: &str, flags: &[&str]) -> Result<Model, Error> {
    let flags: Vec<EndpointFlag> = flags.iter().map(|f| f.parse().unwrap()).collect();
    let opts = Options {
        local_cluster: Some("c2".into()),
        instances: flags.iter().map(EndpointFlag::instance).collect(),
        ..Options::default()
    };
    let mut m = generate_with(yaml, opts)?;
    apply_endpoints(&mut m, &flags)?;
    Ok(m)
}

#[test]
fn an_endpoint_declares_a_local_instance_of_a_known_service() {
    // Before: `--endpoint c2/demo/echo=…: no target is c2/demo/echo`.
    let m = with_endpoints(IMPORT, &["c2/demo/echo=127.0.0.1:8080"]).unwrap();
    let echo = targets(&m, "demo/echo");
    let names: Vec<&str> = echo.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["c2", "c1"]);
    assert_eq!(echo[0].service_account.name, "default");
    assert_eq!(echo[0].envoy_cluster, "xc|c2|demo|echo");
    let addr = m.upstreams["xc|c2|demo|echo"].address.clone().unwrap();
    assert_eq!((addr.host.as_str(), addr.port), ("127.0.0.1", 8080));

    let m = with_endpoints(IMPORT, &["c2/demo/echo=127.0.0.1:8080@echo"]).unwrap();
    assert_eq!(targets(&m, "demo/echo")[0].service_account.name, "echo");

    // A service no input names is still an error, as is a remote cluster nothing knows.
    for flag in ["c2/demo/other=127.0.0.1:1", "c9/demo/echo=127.0.0.1:1"] {
        let e = with_endpoints(IMPORT, &[flag]).unwrap_err().to_string();
        assert!(e.contains("no target is"), "{e}");
    }
}

#[test]
fn an_import_listing_the_local_cluster_yields_to_the_local_instance() {
    // Regression: "target c2 appears twice in one destination".
    let import = IMPORT.split("---").next().unwrap();
    let yaml = import.replace(
        "      target: {ip: 10.0.0.1, port: 81, path: /c1/echo}",
        "      target: {ip: 10.0.0.1, port: 81, path: /c1/echo}
    - clusterKey: default/default/default/c2
      target: {ip: 10.0.0.2, port: 82, path: /c2/echo}",
    );
    let local = "
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
";
    let m = generate(&format!("{yaml}---{local}"), Some("c2")).unwrap();
    let echo = targets(&m, "demo/echo");
    let names: Vec<&str> = echo.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["c2", "c1"]);
    assert_eq!(echo[0].envoy_cluster, "xc|c2|demo|echo");
    // Without a local instance the local cluster's gateway still serves it.
    let m = generate(&yaml, Some("c2")).unwrap();
    let names: Vec<&str> = targets(&m, "demo/echo")
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["c1", "c2"]);
}

#[test]
fn a_route_table_names_a_virtual_destination_not_any_destination() {
    // Regression: a missing VIRTUAL_DESTINATION was accepted when another destination
    // (here the Service itself) had that namespace/name.
    let yaml = "
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
---
apiVersion: networking.gloo.solo.io/v2
kind: RouteTable
metadata: {name: rt, namespace: bookinfo}
spec:
  hosts: ['*']
  http:
  - name: r
    forwardTo:
      destinations:
      - {ref: {name: reviews}, kind: VIRTUAL_DESTINATION}
";
    let e = generate(yaml, Some("c1")).unwrap_err();
    assert_eq!(e.path, "spec.http[0].forwardTo.destinations[0].ref");
    assert!(
        e.message
            .contains("VirtualDestination bookinfo/reviews is not in the input"),
        "{e}"
    );
}

#[test]
fn a_virtual_destination_ignores_services_it_does_not_select() {
    // Regression: an unrelated unlabelled Service needed --local-cluster.
    let yaml = "
apiVersion: networking.gloo.solo.io/v2
kind: VirtualDestination
metadata: {name: vd, namespace: bookinfo}
spec:
  hosts: [reviews.global]
  services: [{labels: {app: reviews}}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo, labels: {app: reviews, topology.istio.io/cluster: c1}}
---
apiVersion: v1
kind: Service
metadata: {name: unrelated, namespace: bookinfo}
";
    let m = generate(yaml, None).unwrap();
    assert_eq!(targets(&m, "bookinfo/vd").len(), 1);
}

#[test]
fn a_virtual_service_may_spell_one_service_twice() {
    // Regression: "service bookinfo/reviews already has a policy" from the same resource.
    let yaml = "
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews, reviews.bookinfo.svc.cluster.local]
  http:
  - route: [{destination: {host: reviews}}]
";
    let m = generate(yaml, Some("c1")).unwrap();
    let d = &m.config.destinations[0];
    assert_eq!(d.hosts.len(), 4, "{:?}", d.hosts);
}

#[test]
fn a_service_entry_target_is_named_after_the_host_routed_to() {
    // Regression: the first host named the target even when the route used another.
    let yaml = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: remote, namespace: default}
spec:
  hosts: [first.example, second.example]
  ports: [{number: 443, name: https}, {number: 80, name: http}]
  endpoints: [{address: 10.0.0.9}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v, namespace: default}
spec:
  hosts: [app.example]
  http:
  - route: [{destination: {host: second.example, port: {number: 80}}}]
";
    let m = generate(yaml, Some("c1")).unwrap();
    let t = &m.config.destinations[0].targets[0];
    assert_eq!(t.name, "second.example");
    assert_eq!(t.envoy_cluster, "xc|second.example|default|second.example");
    assert_eq!(
        m.backends[&("default/v".to_string(), t.name.clone())],
        Backend::Entry {
            host: "second.example".into(),
            port: Some(80)
        }
    );
    let addr = m.upstreams[&t.envoy_cluster].address.clone().unwrap();
    assert_eq!((addr.host.as_str(), addr.port), ("10.0.0.9", 80));
}
