//! The HTTP connection manager: its HTTP filters (the xcluster wasm filter, any other)
//! before the router, and its routes.

use serde_json::{json, Value};

use crate::NO_CLUSTER_BODY;

/// Format of the optional access log: one line per request on stdout, the filter's
/// reasons showing up as response code details.
const ACCESS_LOG_FORMAT: &str =
    "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS%\n";

/// Largest request header block, in KiB (`max_request_headers_kb`): Envoy's default, stated
/// so that a change of default cannot change the gateway; larger requests get `431`.
pub const MAX_REQUEST_HEADERS_KB: u32 = 60;

/// Most request headers (`common_http_protocol_options.max_headers_count`): Envoy's
/// default, stated; a request with more gets `431` (HTTP/1) or a stream reset (HTTP/2).
pub const MAX_REQUEST_HEADERS: u32 = 100;

/// The `envoy.filters.network.http_connection_manager` of a listener and its route
/// configuration.
///
/// Every connection manager is hardened as Envoy's edge-proxy best practices say for a
/// proxy that authorizes or routes by path (the filter does both): the path is normalized
/// (RFC 3986 dot segments, `normalize_path`) and adjacent slashes merged (`merge_slashes`)
/// before any filter sees it, and the upstream gets that same path; a path with an escaped
/// `/` or `\` (`%2F`, `%5C`) is redirected to its unescaped, normalized form
/// (`UNESCAPE_AND_REDIRECT`; gRPC requests get `INTERNAL` instead); a header name with an
/// underscore is refused with `400` (`REJECT_REQUEST`); the header block is limited to
/// [`MAX_REQUEST_HEADERS_KB`] KiB and [`MAX_REQUEST_HEADERS`] headers. `docs/config.md`
/// (Security) explains each choice.
#[derive(Debug, Clone)]
pub struct HttpConnectionManager {
    /// `stat_prefix`; also names the route configuration and tags access log lines.
    pub stat_prefix: String,
    /// Logs `access <stat_prefix> <method> <path> <code> <details>` per request on stdout.
    pub access_log: bool,
    /// HTTP filters, in order; the router is always appended.
    pub http_filters: Vec<HttpFilter>,
    /// Virtual hosts, matched by `:authority`.
    pub virtual_hosts: Vec<VirtualHost>,
    /// `ignore_port_in_host_matching` of the route configuration (Istio sets it: `host:port`
    /// matches the domain `host`).
    pub ignore_port_in_host_matching: bool,
}

impl HttpConnectionManager {
    /// `http_filters` then the router, and one virtual host (`*`) holding `routes`; no
    /// access log.
    pub fn new(
        stat_prefix: impl Into<String>,
        http_filters: Vec<HttpFilter>,
        routes: Vec<Route>,
    ) -> Self {
        Self {
            stat_prefix: stat_prefix.into(),
            access_log: false,
            http_filters,
            virtual_hosts: vec![VirtualHost::any(routes)],
            ignore_port_in_host_matching: false,
        }
    }

    /// An xcluster gateway: `filter`, then the router; requests carrying `cluster_header`
    /// go to the cluster it names, the others get `404` [`NO_CLUSTER_BODY`].
    pub fn xcluster(
        stat_prefix: impl Into<String>,
        filter: WasmFilter,
        cluster_header: &str,
    ) -> Self {
        Self::new(
            stat_prefix,
            vec![HttpFilter::Wasm(filter)],
            vec![
                Route::selected_cluster(cluster_header),
                Route::no_cluster_selected(),
            ],
        )
    }

    /// The network filter entry; wasm filters run in the VM `vm_id`.
    pub fn render(&self, vm_id: &str) -> Value {
        let mut http_filters: Vec<Value> =
            self.http_filters.iter().map(|f| f.render(vm_id)).collect();
        http_filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" }
        }));
        let mut route_config = json!({
            "name": self.stat_prefix,
            "virtual_hosts": self.virtual_hosts.iter().map(VirtualHost::render).collect::<Vec<_>>(),
        });
        if self.ignore_port_in_host_matching {
            route_config["ignore_port_in_host_matching"] = json!(true);
        }
        let mut config = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": self.stat_prefix,
            "route_config": route_config,
            "http_filters": http_filters,
            "normalize_path": true,
            "merge_slashes": true,
            "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
            "max_request_headers_kb": MAX_REQUEST_HEADERS_KB,
            "common_http_protocol_options": {
                "headers_with_underscores_action": "REJECT_REQUEST",
                "max_headers_count": MAX_REQUEST_HEADERS,
            },
        });
        if self.access_log {
            config["access_log"] = json!([{
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                    "log_format": { "text_format_source": {
                        "inline_string": format!("access {} {ACCESS_LOG_FORMAT}", self.stat_prefix)
                    } }
                }
            }]);
        }
        json!({ "name": "envoy.filters.network.http_connection_manager", "typed_config": config })
    }
}

/// A virtual host of the route configuration (`envoy.config.route.v3.VirtualHost`).
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    /// `name`.
    pub name: String,
    /// `domains` (`*` is any).
    pub domains: Vec<String>,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
}

impl VirtualHost {
    /// `all`: every domain.
    pub fn any(routes: Vec<Route>) -> Self {
        Self {
            name: "all".into(),
            domains: vec!["*".into()],
            routes,
        }
    }

    fn render(&self) -> Value {
        json!({
            "name": self.name,
            "domains": self.domains,
            "routes": self.routes.iter().map(Route::render).collect::<Vec<_>>(),
        })
    }
}

/// One entry of `http_filters` (the router excepted).
#[derive(Debug, Clone)]
pub enum HttpFilter {
    /// A proxy-wasm filter.
    Wasm(WasmFilter),
    /// Any other filter, as its whole JSON entry (`name` and `typed_config`).
    Other(Value),
}

impl HttpFilter {
    fn render(&self, vm_id: &str) -> Value {
        match self {
            HttpFilter::Wasm(filter) => filter.render(vm_id),
            HttpFilter::Other(entry) => entry.clone(),
        }
    }
}

/// `envoy.filters.http.wasm` running a local module in V8. Its `root_id` is its name;
/// its `vm_id` is the listener's name (see [`HttpConnectionManager::render`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmFilter {
    /// Plugin name and `root_id`.
    pub name: String,
    /// Path of the `.wasm`, as Envoy opens it.
    pub filename: String,
    /// Plugin configuration, passed verbatim as a `StringValue`.
    pub configuration: String,
    /// Whether requests pass when the plugin fails (xcluster fails closed).
    pub fail_open: bool,
}

impl WasmFilter {
    /// A filter that fails closed.
    pub fn new(
        name: impl Into<String>,
        filename: impl Into<String>,
        configuration: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            filename: filename.into(),
            configuration: configuration.into(),
            fail_open: false,
        }
    }

    fn render(&self, vm_id: &str) -> Value {
        json!({
            "name": "envoy.filters.http.wasm",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": self.name,
                    "root_id": self.name,
                    "fail_open": self.fail_open,
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": self.configuration,
                    },
                    "vm_config": {
                        "vm_id": vm_id,
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": { "local": { "filename": self.filename } },
                    }
                }
            }
        })
    }
}

/// A route of the virtual host (`envoy.config.route.v3.Route`).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `name`.
    pub name: Option<String>,
    /// Path prefix to match.
    pub prefix: String,
    /// Header conditions, all of which must hold.
    pub headers: Vec<HeaderMatch>,
    /// What a matching request gets.
    pub action: RouteAction,
}

/// A route's header condition (`envoy.config.route.v3.HeaderMatcher`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderMatch {
    /// The header is present (`present_match`).
    Present(String),
    /// The header's value equals `.1` (`string_match.exact`).
    Exact(String, String),
}

impl HeaderMatch {
    fn render(&self) -> Value {
        match self {
            HeaderMatch::Present(name) => json!({ "name": name, "present_match": true }),
            HeaderMatch::Exact(name, value) => {
                json!({ "name": name, "string_match": { "exact": value } })
            }
        }
    }
}

impl Route {
    /// Every request (prefix `/`) gets `action`.
    pub fn all(action: RouteAction) -> Self {
        Self {
            name: None,
            prefix: "/".into(),
            headers: Vec::new(),
            action,
        }
    }

    /// `selected-cluster`: requests carrying `header` go to the cluster it names.
    pub fn selected_cluster(header: &str) -> Self {
        Self {
            name: Some("selected-cluster".into()),
            headers: vec![HeaderMatch::Present(header.into())],
            ..Self::all(RouteAction::ClusterHeader(header.into()))
        }
    }

    /// `no-cluster-selected`: every request gets `404` [`NO_CLUSTER_BODY`].
    pub fn no_cluster_selected() -> Self {
        Self {
            name: Some("no-cluster-selected".into()),
            ..Self::all(RouteAction::DirectResponse {
                status: 404,
                body: NO_CLUSTER_BODY.into(),
            })
        }
    }

    fn render(&self) -> Value {
        let mut matcher = json!({ "prefix": self.prefix });
        if !self.headers.is_empty() {
            matcher["headers"] =
                Value::Array(self.headers.iter().map(HeaderMatch::render).collect());
        }
        let mut route = json!({ "match": matcher });
        if let Some(name) = &self.name {
            route["name"] = json!(name);
        }
        match &self.action {
            RouteAction::Cluster(cluster) => route["route"] = json!({ "cluster": cluster }),
            RouteAction::ClusterHeader(header) => {
                route["route"] = json!({ "cluster_header": header })
            }
            RouteAction::Other(action) => route["route"] = action.clone(),
            RouteAction::DirectResponse { status, body } => {
                route["direct_response"] =
                    json!({ "status": status, "body": { "inline_string": body } })
            }
        }
        route
    }
}

/// What a route does with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    /// Forward to this cluster.
    Cluster(String),
    /// Forward to the cluster this request header names (`cluster_header`).
    ClusterHeader(String),
    /// Any other forwarding `route` action, as JSON (e.g. `weighted_clusters`).
    Other(Value),
    /// Answer directly (`direct_response`).
    DirectResponse {
        /// Status code.
        status: u16,
        /// Body (`inline_string`).
        body: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> Value {
        let filter = WasmFilter::new("xcluster", "/m/x.wasm", r#"{"version": 1}"#);
        let mut http = HttpConnectionManager::xcluster("gw", filter, "x-xcluster-cluster");
        http.access_log = true;
        http.render("vm-gw")
    }

    #[test]
    fn wasm_filter_runs_before_the_router_in_the_listener_vm() {
        let doc = gateway();
        let hcm = &doc["typed_config"];
        assert_eq!(hcm["stat_prefix"], "gw");
        let filters = hcm["http_filters"].as_array().unwrap();
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[1]["name"], "envoy.filters.http.router");
        let wasm = &filters[0]["typed_config"]["config"];
        assert_eq!(
            (&wasm["name"], &wasm["root_id"], &wasm["fail_open"]),
            (&json!("xcluster"), &json!("xcluster"), &json!(false))
        );
        assert_eq!(
            wasm["configuration"],
            json!({
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": "{\"version\": 1}"
            })
        );
        assert_eq!(
            wasm["vm_config"],
            json!({
                "vm_id": "vm-gw",
                "runtime": "envoy.wasm.runtime.v8",
                "code": { "local": { "filename": "/m/x.wasm" } }
            })
        );
    }

    #[test]
    fn routes_follow_the_cluster_header_then_answer_404() {
        let doc = gateway();
        let routes = &doc["typed_config"]["route_config"]["virtual_hosts"][0]["routes"];
        assert_eq!(
            routes[0],
            json!({
                "name": "selected-cluster",
                "match": { "prefix": "/", "headers": [{ "name": "x-xcluster-cluster", "present_match": true }] },
                "route": { "cluster_header": "x-xcluster-cluster" }
            })
        );
        assert_eq!(
            routes[1]["direct_response"],
            json!({ "status": 404, "body": { "inline_string": NO_CLUSTER_BODY } })
        );
        assert_eq!(routes.as_array().unwrap().len(), 2);
    }

    #[test]
    fn paths_are_normalized_and_odd_headers_refused() {
        let doc = HttpConnectionManager::new("q", vec![], vec![]).render("q");
        let hcm = &doc["typed_config"];
        assert_eq!(
            (
                &hcm["normalize_path"],
                &hcm["merge_slashes"],
                &hcm["path_with_escaped_slashes_action"]
            ),
            (&json!(true), &json!(true), &json!("UNESCAPE_AND_REDIRECT"))
        );
        assert_eq!(hcm["max_request_headers_kb"], 60);
        assert_eq!(
            hcm["common_http_protocol_options"],
            json!({ "headers_with_underscores_action": "REJECT_REQUEST", "max_headers_count": 100 })
        );
    }

    #[test]
    fn access_log_lines_are_tagged_with_the_stat_prefix() {
        let doc = gateway();
        let log = &doc["typed_config"]["access_log"][0];
        assert_eq!(log["name"], "envoy.access_loggers.stdout");
        let format = log["typed_config"]["log_format"]["text_format_source"]["inline_string"]
            .as_str()
            .unwrap();
        assert!(format.starts_with("access gw %REQ(:METHOD)%"), "{format}");
        let quiet = HttpConnectionManager::new("q", vec![], vec![]).render("q");
        assert!(quiet["typed_config"].get("access_log").is_none());
    }

    #[test]
    fn virtual_hosts_match_domains_and_exact_header_values() {
        let route = Route {
            name: Some("east".into()),
            headers: vec![HeaderMatch::Exact("x-c".into(), "xc|east".into())],
            ..Route::all(RouteAction::Cluster("outbound|80||a.example".into()))
        };
        let mut http = HttpConnectionManager::new("gw", vec![], vec![]);
        http.virtual_hosts = vec![VirtualHost {
            name: "a.example:80".into(),
            domains: vec!["a.example".into()],
            routes: vec![route],
        }];
        http.ignore_port_in_host_matching = true;
        let config = &http.render("gw")["typed_config"]["route_config"];
        assert_eq!(config["ignore_port_in_host_matching"], true);
        assert_eq!(
            config["virtual_hosts"][0],
            json!({
                "name": "a.example:80",
                "domains": ["a.example"],
                "routes": [{
                    "name": "east",
                    "match": { "prefix": "/", "headers": [
                        { "name": "x-c", "string_match": { "exact": "xc|east" } }
                    ] },
                    "route": { "cluster": "outbound|80||a.example" }
                }]
            })
        );
        let plain = HttpConnectionManager::new("q", vec![], vec![]).render("q");
        let plain = &plain["typed_config"]["route_config"];
        assert!(plain.get("ignore_port_in_host_matching").is_none());
        assert_eq!(plain["virtual_hosts"][0]["domains"], json!(["*"]));
    }

    #[test]
    fn other_filters_and_routes_pass_through() {
        let rbac = json!({ "name": "envoy.filters.http.rbac", "typed_config": {} });
        let weighted = json!({ "weighted_clusters": { "clusters": [] } });
        let doc = HttpConnectionManager::new(
            "bench",
            vec![HttpFilter::Other(rbac.clone())],
            vec![
                Route::all(RouteAction::Other(weighted.clone())),
                Route::all(RouteAction::Cluster("c0".into())),
            ],
        )
        .render("bench");
        let hcm = &doc["typed_config"];
        assert_eq!(hcm["http_filters"][0], rbac);
        let routes = &hcm["route_config"]["virtual_hosts"][0]["routes"];
        assert_eq!(
            routes[0],
            json!({ "match": { "prefix": "/" }, "route": weighted })
        );
        assert_eq!(routes[1]["route"], json!({ "cluster": "c0" }));
    }
}
