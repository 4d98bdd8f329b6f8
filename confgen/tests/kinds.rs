//! Per-kind tests: small YAML inputs through the library (load → kinds → model), the
//! shapes that differ between spec versions, and the errors users must be able to act on.
#![cfg(test)]

use xcluster_confgen::kinds::Resources;
use xcluster_confgen::load::{parse_documents, Error};
use xcluster_confgen::model::{build, Model, Options};
use xcluster_filter::config::{AccessMode, LbPolicy, PathMatchConfig, TargetConfig};

fn generate(yaml: &str, local: Option<&str>) -> Result<Model, Error> {
    let docs = parse_documents("in.yaml", yaml)?;
    let res = Resources::from_docs(&docs)?;
    let opts = Options {
        local_cluster: local.map(String::from),
        ..Options::default()
    };
    let model = build(&res, &opts)?;
    xcluster_confgen::validate(&model.config)?;
    Ok(model)
}

fn target<'a>(model: &'a Model, dest: &str, name: &str) -> &'a TargetConfig {
    let d = model
        .config
        .destinations
        .iter()
        .find(|d| d.name == dest)
        .unwrap_or_else(|| panic!("no destination {dest}"));
    d.targets
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no target {name} in {:?}", d.targets))
}

const HTTPBIN_LOCAL: &str = "
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: httpbin}
spec:
  selector: {app: pipy}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin, namespace: httpbin}
spec:
  template:
    metadata: {labels: {app: pipy, extra: x}}
    spec: {containers: []}
";

const IMPORT: &str = "
apiVersion: flomesh.io/v1alpha1
kind: ServiceImport
metadata: {name: httpbin, namespace: httpbin}
spec:
  serviceAccountName: httpbin
  ports:
  - port: 8080
    endpoints:
    - clusterKey: us/east/default/cluster-1
      target: {host: gw1.example, port: 81, path: /cluster-1/httpbin-mesh}
    - clusterKey: eu/west/default/cluster-3
      target: {ip: 10.0.0.3, port: 83, path: /cluster-3/httpbin-mesh}
";

#[test]
fn fsm_failover_uses_import_endpoints_and_local_service_account() {
    let gtp = "
apiVersion: multicluster.flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata: {name: httpbin, namespace: httpbin}
spec:
  lbType: FailOver
  targets:
  - clusterKey: us/east/default/cluster-1
    weight: 3
";
    let m = generate(
        &format!("{HTTPBIN_LOCAL}---{IMPORT}---{gtp}"),
        Some("cluster-2"),
    )
    .unwrap();
    let d = &m.config.destinations[0];
    assert_eq!(d.policy, LbPolicy::FailOver);
    assert_eq!(d.hosts[3], "httpbin.httpbin.svc.cluster.local");
    // Only the GTP's targets join the local instance.
    assert_eq!(d.targets.len(), 2);
    let local = target(&m, "httpbin/httpbin", "cluster-2");
    assert_eq!(local.service_account.name, "default");
    assert_eq!(local.envoy_cluster, "xc|cluster-2|httpbin|httpbin");
    let remote = target(&m, "httpbin/httpbin", "cluster-1");
    assert_eq!(remote.service_account.name, "httpbin");
    assert_eq!(remote.weight, 3);
    assert_eq!(
        remote.path_prefix.as_deref(),
        Some("/cluster-1/httpbin-mesh")
    );
    assert_eq!(remote.locality.region.as_deref(), Some("us"));
    assert_eq!(
        remote.cluster_key.as_deref(),
        Some("us/east/default/cluster-1")
    );
    let up = &m.upstreams["xc|cluster-1|gateway"];
    let addr = up.address.as_ref().unwrap();
    assert_eq!((addr.host.as_str(), addr.port), ("gw1.example", 81));
}

#[test]
fn fsm_import_without_policy_is_locality_over_every_endpoint() {
    let m = generate(IMPORT, Some("cluster-2")).unwrap();
    let d = &m.config.destinations[0];
    assert_eq!(d.policy, LbPolicy::Locality);
    let names: Vec<&str> = d.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["cluster-1", "cluster-3"]);
    // The ip is preferred over the host name.
    assert_eq!(
        m.upstreams["xc|cluster-3|gateway"]
            .address
            .as_ref()
            .unwrap()
            .host,
        "10.0.0.3"
    );
}

#[test]
fn fsm_export_and_cluster_gateway_stand_in_for_an_import() {
    let yaml = "
apiVersion: flomesh.io/v1alpha1
kind: Cluster
metadata: {name: cluster-1}
spec: {region: us, zone: east, gatewayHost: 192.168.1.110, gatewayPort: 81}
---
apiVersion: flomesh.io/v1alpha1
kind: ServiceExport
metadata:
  name: httpbin
  namespace: httpbin
  labels: {topology.istio.io/cluster: cluster-1}
spec:
  serviceAccountName: httpbin
  rules:
  - {portNumber: 8080, path: /cluster-1/httpbin-mesh, pathType: Prefix}
---
apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata: {name: httpbin, namespace: httpbin}
spec:
  lbType: ActiveActive
  targets:
  - clusterKey: us/east/default/cluster-1
";
    let m = generate(yaml, Some("cluster-2")).unwrap();
    let t = target(&m, "httpbin/httpbin", "cluster-1");
    assert_eq!(t.path_prefix.as_deref(), Some("/cluster-1/httpbin-mesh"));
    assert_eq!(t.service_account.name, "httpbin");
    let addr = m.upstreams["xc|cluster-1|gateway"].address.clone().unwrap();
    assert_eq!((addr.host.as_str(), addr.port), ("192.168.1.110", 81));
}

#[test]
fn fsm_errors_name_the_field() {
    let bad_key = "
apiVersion: flomesh.io/v1alpha1
kind: GlobalTrafficPolicy
metadata: {name: httpbin, namespace: httpbin}
spec:
  lbType: ActiveActive
  targets:
  - clusterKey: cluster-9
";
    let e = generate(bad_key, Some("c")).unwrap_err();
    assert_eq!(
        (e.line, e.column, e.path.as_str()),
        (8, 17, "spec.targets[0].clusterKey")
    );
    assert!(e.message.contains("region/zone/group/cluster"), "{e}");

    let unknown_cluster = bad_key.replace("cluster-9", "a/b/c/cluster-9");
    let e = generate(&unknown_cluster, Some("c")).unwrap_err();
    assert!(
        e.message
            .contains("cluster cluster-9 serves no httpbin/httpbin"),
        "{e}"
    );

    let bad_type = bad_key.replace("ActiveActive", "RoundRobin");
    let e = generate(&bad_type, Some("c")).unwrap_err();
    assert_eq!(e.path, "spec.lbType");
    assert!(
        e.to_string()
            .starts_with("in.yaml:6:11: spec.lbType: GlobalTrafficPolicy httpbin/httpbin"),
        "{e}"
    );
}

const GLOO_TP: &str = "
apiVersion: networking.mesh.gloo.solo.io/v1alpha2
kind: TrafficPolicy
metadata: {namespace: gloo-mesh, name: simple}
spec:
  destinationSelector:
  - kubeServiceRefs:
      services:
      - {clusterName: mgmt-cluster, name: reviews, namespace: bookinfo}
  trafficShift:
    destinations:
    - kubeService: {clusterName: remote-cluster, name: reviews, namespace: bookinfo}
      weight: 75
    - kubeService:
        clusterName: mgmt-cluster
        name: reviews
        namespace: bookinfo
        subset: {version: v1}
      weight: 25
";

#[test]
fn gloo_traffic_shift_keeps_weights_and_subsets() {
    // The local cluster is inferred from the destination selector.
    let m = generate(GLOO_TP, None).unwrap();
    assert_eq!(
        m.config.local.as_ref().unwrap().cluster.as_deref(),
        Some("mgmt-cluster")
    );
    let v1 = target(&m, "bookinfo/reviews", "mgmt-cluster/version=v1");
    assert_eq!(v1.weight, 25);
    assert_eq!(v1.subset.as_deref(), Some("version=v1"));
    assert_eq!(
        v1.envoy_cluster,
        "xc|mgmt-cluster|bookinfo|reviews|version=v1"
    );
    assert_eq!(target(&m, "bookinfo/reviews", "remote-cluster").weight, 75);
}

#[test]
fn gloo_weights_that_cannot_be_satisfied_are_errors() {
    let zero = GLOO_TP
        .replace("weight: 75", "weight: 0")
        .replace("weight: 25", "weight: 0");
    let e = generate(&zero, None).unwrap_err();
    assert!(
        e.message
            .contains("every weight of bookinfo/reviews is zero"),
        "{e}"
    );
    assert!(
        e.message
            .contains("TrafficPolicy gloo-mesh/simple (in.yaml:2:1)"),
        "{e}"
    );
    let negative = GLOO_TP.replace("weight: 75", "weight: -5");
    let e = generate(&negative, None).unwrap_err();
    assert_eq!(e.path, "spec.trafficShift.destinations[0].weight");
}

#[test]
fn two_policies_for_one_service_name_both_resources() {
    let split = "
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: reviews-split, namespace: bookinfo}
spec:
  service: reviews.bookinfo.svc.cluster.local
  backends:
  - {service: reviews-v1, weight: 1}
";
    let e = generate(&format!("{GLOO_TP}---{split}"), None).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("TrafficSplit bookinfo/reviews-split (in.yaml:21:1)"),
        "{text}"
    );
    assert!(text.contains("TrafficPolicy gloo-mesh/simple"), "{text}");
    assert_eq!(
        e.path,
        "spec.destinationSelector[0].kubeServiceRefs.services[0]"
    );
}

#[test]
fn smi_traffic_split_versions_read_int_and_quantity_weights() {
    let v4 = "
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 90}
  - {service: web-v2, weight: 10}
";
    let m = generate(v4, Some("c1")).unwrap();
    assert_eq!(target(&m, "shop/web", "c1/web-v1").weight, 90);
    assert_eq!(
        target(&m, "shop/web", "c1/web-v2").envoy_cluster,
        "xc|c1|shop|web-v2"
    );
    let v1 = v4
        .replace("v1alpha4", "v1alpha1")
        .replace("weight: 90", "weight: 900m")
        .replace("weight: 10", "weight: 100m");
    let m = generate(&v1, Some("c1")).unwrap();
    assert_eq!(target(&m, "shop/web", "c1/web-v1").weight, 900);
    assert_eq!(target(&m, "shop/web", "c1/web-v2").weight, 100);
}

#[test]
fn split_weight_is_shared_by_the_clusters_of_a_backend() {
    let yaml = "
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 50}
  - {service: web-v2, weight: 50}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop, labels: {topology.istio.io/cluster: east}}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop, labels: {topology.istio.io/cluster: west}}
";
    let m = generate(yaml, Some("east")).unwrap();
    // web-v1 has two instances: each gets half of its 50.
    assert_eq!(target(&m, "shop/web", "east/web-v1").weight, 50);
    assert_eq!(target(&m, "shop/web", "west/web-v1").weight, 50);
    assert_eq!(target(&m, "shop/web", "east/web-v2").weight, 100);
}

const ROUTE_GROUP_V4: &str = "
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: httpbin-route, namespace: httpbin}
spec:
  matches:
  - name: all
    pathRegex: /
    methods: [GET]
    headers: {x-user: 'a.*'}
";

const TRAFFIC_TARGET: &str = "
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: curl-to-httpbin, namespace: httpbin}
spec:
  destination: {kind: ServiceAccount, name: default, namespace: httpbin}
  rules:
  - kind: HTTPRouteGroup
    name: httpbin-route
    matches: [all]
  sources:
  - {kind: ServiceAccount, name: curl, namespace: curl}
";

#[test]
fn smi_access_defaults_to_enforce_and_reads_both_header_shapes() {
    let m = generate(
        &format!("{IMPORT}---{ROUTE_GROUP_V4}---{TRAFFIC_TARGET}"),
        Some("c2"),
    )
    .unwrap();
    let access = &m.config.access;
    assert_eq!(access.mode, AccessMode::Enforce);
    assert_eq!(access.route_groups[0].name, "httpbin/httpbin-route");
    assert_eq!(
        access.route_groups[0].matches[0].headers,
        [("x-user".to_string(), "a.*".to_string())]
    );
    assert_eq!(access.traffic_targets[0].sources[0].name, "curl");
    assert_eq!(
        access.traffic_targets[0].rules[0].route_group,
        "httpbin/httpbin-route"
    );

    let v3_list = ROUTE_GROUP_V4
        .replace("v1alpha4", "v1alpha3")
        .replace("headers: {x-user: 'a.*'}", "headers:\n    - x-user: 'a.*'");
    let m = generate(
        &format!("{IMPORT}---{v3_list}---{TRAFFIC_TARGET}"),
        Some("c2"),
    )
    .unwrap();
    assert_eq!(
        m.config.access.route_groups[0].matches[0].headers,
        [("x-user".to_string(), "a.*".to_string())]
    );
}

#[test]
fn smi_v1alpha1_traffic_target_uses_specs() {
    let v1 = TRAFFIC_TARGET
        .replace("v1alpha3", "v1alpha1")
        .replace("  rules:", "  specs:");
    let m = generate(&format!("{IMPORT}---{ROUTE_GROUP_V4}---{v1}"), Some("c2")).unwrap();
    assert_eq!(m.config.access.traffic_targets[0].rules.len(), 1);
}

#[test]
fn traffic_target_naming_a_missing_route_group_names_both() {
    let e = generate(&format!("{IMPORT}---{TRAFFIC_TARGET}"), Some("c2")).unwrap_err();
    assert_eq!(e.path, "spec.rules[0].name");
    assert!(
        e.message.contains("TrafficTarget httpbin/curl-to-httpbin"),
        "{e}"
    );
    assert!(
        e.message.contains("HTTPRouteGroup httpbin/httpbin-route"),
        "{e}"
    );
    let wrong_match = TRAFFIC_TARGET.replace("[all]", "[metrics]");
    let e = generate(
        &format!("{IMPORT}---{ROUTE_GROUP_V4}---{wrong_match}"),
        Some("c2"),
    )
    .unwrap_err();
    assert_eq!(e.path, "spec.rules[0].matches[0]");
    assert!(e.message.contains("has no match named \"metrics\""), "{e}");
}

#[test]
fn access_mode_flag_overrides_the_default() {
    let docs = parse_documents(
        "in.yaml",
        &format!("{IMPORT}---{ROUTE_GROUP_V4}---{TRAFFIC_TARGET}"),
    )
    .unwrap();
    let res = Resources::from_docs(&docs).unwrap();
    let opts = Options {
        local_cluster: Some("c2".into()),
        access_mode: Some(AccessMode::DryRun),
        ..Options::default()
    };
    assert_eq!(
        build(&res, &opts).unwrap().config.access.mode,
        AccessMode::DryRun
    );
    let m = generate(IMPORT, Some("c2")).unwrap();
    assert_eq!(m.config.access.mode, AccessMode::Permissive);
}

const VD: &str = "
apiVersion: networking.gloo.solo.io/v2
kind: VirtualDestination
metadata: {name: reviews-vd, namespace: bookinfo}
spec:
  hosts: [reviews.mesh.internal.com]
  ports: [{number: 9080, protocol: HTTP}]
  services:
  - labels: {app: reviews}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo, labels: {app: reviews, topology.istio.io/cluster: c1}}
spec: {selector: {app: reviews}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo, labels: {app: reviews}}
spec: {selector: {app: reviews}}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: bookinfo, labels: {app: ratings}}
";

#[test]
fn virtual_destination_selects_services_across_clusters() {
    let rt = "
apiVersion: networking.gloo.solo.io/v2
kind: RouteTable
metadata: {name: rt, namespace: bookinfo}
spec:
  hosts: ['*']
  http:
  - name: reviews
    matchers:
    - uri: {prefix: /reviews}
      method: GET
    forwardTo:
      destinations:
      - ref: {name: reviews-vd}
        kind: VIRTUAL_DESTINATION
";
    let m = generate(&format!("{VD}---{rt}"), Some("c2")).unwrap();
    let d = &m.config.destinations[0];
    let names: Vec<&str> = d.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["c1", "c2"]);
    assert!(d.outlier_detection.is_some());
    // The exact-host routes (the VD's, then those of the Services themselves) come before
    // the any-host route table route.
    let r = &m.config.routes;
    let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bookinfo/reviews-vd",
            "bookinfo/reviews",
            "bookinfo/ratings",
            "bookinfo/rt/reviews"
        ]
    );
    assert_eq!(r[3].destination, "bookinfo/reviews-vd");
    assert_eq!(r[3].route_match.hosts, ["*"]);
    assert_eq!(
        r[3].route_match.path,
        Some(PathMatchConfig::Prefix("/reviews".into()))
    );
    assert_eq!(r[3].route_match.methods, ["GET"]);
}

#[test]
fn route_table_weighted_destinations_make_their_own_destination() {
    let rt = "
apiVersion: networking.gloo.solo.io/v2
kind: RouteTable
metadata: {name: rt, namespace: bookinfo}
spec:
  hosts: [shop.example.com]
  http:
  - name: canary
    forwardTo:
      destinations:
      - ref: {name: reviews-vd}
        kind: VIRTUAL_DESTINATION
        weight: 90
      - ref: {name: ratings, cluster: c2}
        weight: 10
        subset: {version: v9}
";
    let m = generate(&format!("{VD}---{rt}"), Some("c2")).unwrap();
    let name = "bookinfo/rt/canary";
    // 90 is shared by the VD's two instances: shares 45 / 45 / 10 (weights scaled by 2).
    assert_eq!(target(&m, name, "c1/reviews").weight, 90);
    assert_eq!(target(&m, name, "c2/reviews").weight, 90);
    let r = target(&m, name, "c2/ratings/version=v9");
    assert_eq!(
        (r.weight, r.envoy_cluster.as_str()),
        (20, "xc|c2|bookinfo|ratings|version=v9")
    );
    let missing = rt.replace("name: reviews-vd", "name: nope");
    let e = generate(&format!("{VD}---{missing}"), Some("c2")).unwrap_err();
    assert!(
        e.message
            .contains("VirtualDestination bookinfo/nope is not in the input"),
        "{e}"
    );
}

const ISTIO: &str = "
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: remote, namespace: default}
spec:
  hosts: [svc.cluster-b.remote]
  ports: [{name: https, number: 443, protocol: HTTPS}]
  endpoints: [{address: 203.0.113.7}]
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v2, labels: {version: v2}}
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, baseEjectionTime: 15s, maxEjectionPercent: 50}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - match:
    - uri: {prefix: /api}
      headers: {x-canary: {exact: 'yes'}}
    rewrite: {authority: reviews.default.svc.cluster-b.remote}
    route:
    - destination: {host: svc.cluster-b.remote, port: {number: 443}}
      weight: 30
    - destination: {host: reviews, subset: v2}
      weight: 70
";

#[test]
fn istio_virtual_service_weights_subsets_rewrite_and_outliers() {
    let m = generate(ISTIO, Some("cluster-a")).unwrap();
    let d = &m.config.destinations[0];
    assert_eq!(d.name, "default/reviews");
    let od = d.outlier_detection.as_ref().unwrap();
    assert_eq!(
        (
            od.consecutive_5xx,
            od.base_ejection_time_ms,
            od.max_ejection_percent
        ),
        (3, 15_000, 50)
    );
    let remote = target(
        &m,
        "default/reviews",
        "svc.cluster-b.remote/svc.cluster-b.remote",
    );
    assert_eq!(remote.weight, 30);
    assert_eq!(
        remote.authority.as_deref(),
        Some("reviews.default.svc.cluster-b.remote")
    );
    let addr = m.upstreams[&remote.envoy_cluster].address.clone().unwrap();
    assert_eq!((addr.host.as_str(), addr.port), ("203.0.113.7", 443));
    let v2 = target(&m, "default/reviews", "cluster-a/reviews/v2");
    assert_eq!(
        (v2.weight, v2.envoy_cluster.as_str()),
        (70, "xc|cluster-a|default|reviews|v2")
    );
    assert_eq!(v2.subset.as_deref(), Some("v2"));
    let route = &m.config.routes[0].route_match;
    assert_eq!(route.path, Some(PathMatchConfig::Prefix("/api".into())));
    assert_eq!(route.headers[0].exact.as_deref(), Some("yes"));
}

#[test]
fn istio_errors_weights_subsets_hosts() {
    let e = generate(&ISTIO.replace("weight: 30", "weight: 20"), Some("a")).unwrap_err();
    assert_eq!(e.path, "spec.http[0].route");
    assert!(
        e.message.contains("weights sum to 90; Istio requires 100"),
        "{e}"
    );
    let e = generate(&ISTIO.replace("subset: v2}", "subset: v3}"), Some("a")).unwrap_err();
    assert_eq!(e.path, "spec.http[0].route[1].destination.subset");
    let e = generate(
        &ISTIO.replace("host: reviews, subset", "host: a.b.c.d, subset"),
        Some("a"),
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("neither a Kubernetes service name nor a ServiceEntry host"),
        "{e}"
    );
}

#[test]
fn istio_locality_failover_sets_failover_policy_and_priorities() {
    let yaml = "
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        enabled: true
        failover: [{from: us, to: eu}]
    outlierDetection: {consecutive5xxErrors: 1}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
---
apiVersion: flomesh.io/v1alpha1
kind: Cluster
metadata: {name: eu-1}
spec: {region: eu, zone: a}
---
apiVersion: flomesh.io/v1alpha1
kind: Cluster
metadata: {name: ap-1}
spec: {region: ap, zone: a}
---
apiVersion: flomesh.io/v1alpha1
kind: Cluster
metadata: {name: us-1}
spec: {region: us, zone: a}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default, labels: {topology.istio.io/cluster: eu-1}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default, labels: {topology.istio.io/cluster: ap-1}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
";
    let m = generate(yaml, Some("us-1")).unwrap();
    assert_eq!(m.config.destinations[0].policy, LbPolicy::FailOver);
    assert_eq!(target(&m, "default/reviews", "eu-1").priority, Some(3));
    assert_eq!(target(&m, "default/reviews", "ap-1").priority, Some(4));
    assert_eq!(target(&m, "default/reviews", "us-1").priority, None);
}

#[test]
fn kubernetes_resources_give_accounts_clusters_and_addresses() {
    let yaml = "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {serviceAccount: web-sa}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: shop, labels: {kubernetes.io/service-name: web}}
ports: [{port: 8080}]
endpoints:
- addresses: [10.1.0.9]
  conditions: {ready: false}
- addresses: [10.1.0.7]
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends: [{service: web, weight: 1}]
";
    let m = generate(yaml, Some("home")).unwrap();
    let t = target(&m, "shop/web", "home");
    assert_eq!(t.service_account.name, "web-sa");
    let addr = m.upstreams[&t.envoy_cluster].address.clone().unwrap();
    assert_eq!((addr.host.as_str(), addr.port), ("10.1.0.7", 8080));
}

#[test]
fn unknown_kinds_are_skipped_with_a_warning() {
    let yaml = format!("{IMPORT}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n");
    let m = generate(&yaml, Some("c")).unwrap();
    assert_eq!(m.warnings.len(), 1);
    assert!(m.warnings[0].starts_with("in.yaml:"), "{:?}", m.warnings);
    assert!(
        m.warnings[0].contains("skipping v1 ConfigMap"),
        "{:?}",
        m.warnings
    );
}

#[test]
fn malformed_input_names_file_line_column_and_field() {
    let e = generate(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: [a, b]\n",
        None,
    )
    .unwrap_err();
    assert_eq!((e.file.as_str(), e.line, e.column), ("in.yaml", 4, 9));
    assert_eq!(e.path, "metadata.name");
    let e = generate("kind: Service\nmetadata: {name: x}\n", None).unwrap_err();
    assert_eq!(e.path, "apiVersion");
    let e = generate("apiVersion: v1\nkind: Service\nmetadata: {name: x\n", None).unwrap_err();
    assert_eq!(e.file, "in.yaml");
    assert!(e.line >= 3, "{e}");
}

#[test]
fn local_cluster_is_required_when_needed() {
    let yaml = "
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends: [{service: web, weight: 1}]
";
    let e = generate(yaml, None).unwrap_err();
    assert!(e.message.contains("--local-cluster"), "{e}");
    assert_eq!(e.path, "spec.backends[0].service");
}

#[test]
fn clashing_destination_names_name_both_resources() {
    let yaml = "
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: foo
  backends: [{service: foo-v1, weight: 1}]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: foo, namespace: shop}
spec:
  hosts: [bar.example.com]
  http:
  - route:
    - destination: {host: foo-v2}
";
    let e = generate(yaml, Some("c")).unwrap_err();
    assert!(e.message.contains("VirtualService shop/foo"), "{e}");
    assert!(
        e.message
            .contains("already used by TrafficSplit shop/s (in.yaml:2:1)"),
        "{e}"
    );
}
