//! Request matching: the request view, host normalization, route lookup and the
//! primitive conditions (host, path, method, header) shared by routes and HTTPRouteGroups.

use regex_lite::Regex;

use crate::hash::Map;
use crate::header_map::{as_str, header, Header};

/// The parts of a request the filter decides on. Borrowed from the adapter's header read.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `:method`, as sent.
    pub method: &'a str,
    /// `:authority`, normalized by [`normalize_host`].
    pub host: &'a str,
    /// `:path` without the query string.
    pub path: &'a str,
    /// All request headers (names lower-case, as Envoy hands them over).
    pub headers: &'a [Header<'a>],
}

impl<'a> Request<'a> {
    /// A request view from raw pseudo-headers and the path without its query (see
    /// [`path_without_query`]): normalizes the host (see [`normalize_host`], using
    /// `host_buf` if it must lower-case).
    pub fn new(
        method: &'a str,
        authority: &'a str,
        path: &'a str,
        headers: &'a [Header<'a>],
        host_buf: &'a mut String,
    ) -> Self {
        Self {
            method,
            host: normalize_host(authority, host_buf),
            path,
            headers,
        }
    }

    /// The first value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        header(self.headers, name)
    }
}

/// Strips the query string (and fragment) from a `:path`.
pub fn path_without_query(path: &str) -> &str {
    match path.bytes().position(|b| b == b'?' || b == b'#') {
        Some(end) => &path[..end],
        None => path,
    }
}

/// Normalizes an `:authority` for host matching: drops the port (also after an IPv6
/// literal), a trailing dot, and lower-cases. Uses `buf` only when lower-casing is needed.
pub fn normalize_host<'a>(authority: &'a str, buf: &'a mut String) -> &'a str {
    let bytes = authority.as_bytes();
    let mut end = bytes.len();
    if bytes.first() == Some(&b'[') {
        if let Some(close) = bytes.iter().position(|&b| b == b']') {
            end = close + 1;
        }
    } else {
        // A `:port` of digits (or none) after the last colon.
        let digits = bytes
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if end > digits && bytes[end - digits - 1] == b':' {
            end -= digits + 1;
        }
    }
    if end > 0 && bytes[end - 1] == b'.' {
        end -= 1;
    }
    let host = authority.get(..end).unwrap_or(authority);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        buf.clear();
        buf.push_str(host);
        buf.make_ascii_lowercase();
        buf.as_str()
    } else {
        host
    }
}

/// A host condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Every host.
    Any,
    /// Exactly this (lower-case) host.
    Exact(String),
    /// Any host ending with this suffix, which starts with `.` (from `*.example.com`).
    Suffix(String),
}

impl HostPattern {
    /// Parses a config host: `*`, `*.suffix` or an exact name (port and case dropped).
    pub fn parse(host: &str) -> Result<Self, String> {
        if host == "*" {
            return Ok(Self::Any);
        }
        if let Some(suffix) = host.strip_prefix('*') {
            if !suffix.starts_with('.') || suffix.len() < 2 || suffix.contains('*') {
                return Err(format!(
                    "host \"{host}\": a wildcard must be `*` or `*.<domain>`"
                ));
            }
            return Ok(Self::Suffix(suffix.to_ascii_lowercase()));
        }
        if host.is_empty() || host.contains(['*', '/', ' ']) {
            return Err(format!("host \"{host}\" is not a valid host name"));
        }
        let mut buf = String::new();
        Ok(Self::Exact(normalize_host(host, &mut buf).to_owned()))
    }

    /// Whether a normalized host matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(h) => h == host,
            Self::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        }
    }
}

/// A route's path condition.
#[derive(Debug, Clone)]
pub enum PathCondition {
    /// Any path.
    Any,
    /// Equal to.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Full-match regex.
    Regex(Regex),
}

impl PathCondition {
    /// Whether a path (without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(p) => p == path,
            Self::Prefix(p) => path.starts_with(p.as_str()),
            Self::Regex(r) => r.is_match(path),
        }
    }
}

/// The methods of RFC 9110 and PATCH: a set holds them as bits, without allocating.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// A set of HTTP methods; empty or `*` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MethodSet {
    /// Bit `i`: `STANDARD_METHODS[i]` is in the set.
    standard: u16,
    /// Extension methods in the set (any other upper-case token).
    extension: Vec<String>,
}

impl MethodSet {
    /// Builds the set; methods must be upper-case tokens, `*` matches any.
    pub fn new(methods: &[String]) -> Result<Self, String> {
        if methods.iter().any(|m| m == "*") {
            return Ok(Self::default());
        }
        let mut set = Self::default();
        for m in methods {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
                return Err(format!(
                    "method \"{m}\" must be an upper-case HTTP method or `*`"
                ));
            }
            match STANDARD_METHODS.iter().position(|s| s == m) {
                Some(i) => set.standard |= 1 << i,
                None if !set.extension.contains(m) => set.extension.push(m.clone()),
                None => {}
            }
        }
        Ok(set)
    }

    /// Whether `method` is in the set (methods are case-sensitive, RFC 9110).
    pub fn matches(&self, method: &str) -> bool {
        if self.standard == 0 && self.extension.is_empty() {
            return true;
        }
        match STANDARD_METHODS.iter().position(|s| *s == method) {
            Some(i) => self.standard & (1 << i) != 0,
            None => self.extension.iter().any(|m| m == method),
        }
    }
}

/// A header condition.
#[derive(Debug, Clone)]
pub struct HeaderCondition {
    /// Lower-case header name.
    pub name: String,
    /// What the value must be.
    pub value: ValueCondition,
}

/// A header value condition.
#[derive(Debug, Clone)]
pub enum ValueCondition {
    /// The header is present.
    Present,
    /// The value equals these bytes.
    Exact(Vec<u8>),
    /// The value is UTF-8 and matches this full-match regex.
    Regex(Regex),
}

impl HeaderCondition {
    /// Whether the request satisfies the condition (first value of the header).
    pub fn matches(&self, req: &Request<'_>) -> bool {
        match (req.header(&self.name), &self.value) {
            (None, _) => false,
            (Some(_), ValueCondition::Present) => true,
            (Some(v), ValueCondition::Exact(e)) => v == e.as_slice(),
            (Some(v), ValueCondition::Regex(r)) => as_str(v).is_some_and(|v| r.is_match(v)),
        }
    }
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Route name.
    pub name: String,
    /// Host conditions (any of them).
    pub hosts: Vec<HostPattern>,
    /// Path condition.
    pub path: PathCondition,
    /// Method condition.
    pub methods: MethodSet,
    /// Header conditions (all of them).
    pub headers: Vec<HeaderCondition>,
    /// Index of the destination.
    pub destination: usize,
}

impl Route {
    fn matches_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.matches(host))
    }

    fn matches_rest(&self, req: &Request<'_>) -> bool {
        self.path.matches(req.path)
            && self.methods.matches(req.method)
            && self.headers.iter().all(|h| h.matches(req))
    }
}

/// Routes indexed by host; lookup keeps config order (first match wins).
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Exact host → index in `host_routes`.
    by_host: Map<String, u32>,
    /// Per exact host: every route that can match it, in config order.
    host_routes: Vec<Vec<usize>>,
    /// Routes with wildcard hosts, in config order, for hosts not in `by_host`.
    wildcard: Vec<usize>,
}

impl RouteTable {
    /// Indexes routes (already validated).
    pub fn new(routes: Vec<Route>) -> Self {
        let mut by_host: Map<String, u32> = Map::default();
        let mut host_routes: Vec<Vec<usize>> = Vec::new();
        for route in &routes {
            for host in &route.hosts {
                if let HostPattern::Exact(h) = host {
                    if by_host.contains_key(h) {
                        continue;
                    }
                    by_host.insert(h.clone(), host_routes.len() as u32);
                    host_routes.push(
                        routes
                            .iter()
                            .enumerate()
                            .filter(|(_, r)| r.matches_host(h))
                            .map(|(i, _)| i)
                            .collect(),
                    );
                }
            }
        }
        let wildcard = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.hosts.iter().any(|h| !matches!(h, HostPattern::Exact(_))))
            .map(|(i, _)| i)
            .collect();
        Self {
            routes,
            by_host,
            host_routes,
            wildcard,
        }
    }

    /// The routes, in config order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The first route matching the request.
    pub fn find(&self, req: &Request<'_>) -> Option<usize> {
        match self.by_host.get(req.host) {
            Some(&at) => self.host_routes[at as usize]
                .iter()
                .copied()
                .find(|&i| self.routes[i].matches_rest(req)),
            None => self.wildcard.iter().copied().find(|&i| {
                let r = &self.routes[i];
                r.matches_host(req.host) && r.matches_rest(req)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::regex::compile_regex;

    fn req<'a>(
        method: &'a str,
        host: &'a str,
        path: &'a str,
        headers: &'a [Header<'a>],
    ) -> Request<'a> {
        Request {
            method,
            host,
            path,
            headers,
        }
    }

    fn route(name: &str, hosts: &[&str], path: PathCondition) -> Route {
        Route {
            name: name.into(),
            hosts: hosts
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
            path,
            methods: MethodSet::default(),
            headers: vec![],
            destination: 0,
        }
    }

    #[test]
    fn host_normalization() {
        let mut buf = String::new();
        assert_eq!(normalize_host("Example.COM:8080", &mut buf), "example.com");
        let mut buf = String::new();
        assert_eq!(normalize_host("[::1]:8080", &mut buf), "[::1]");
        let mut buf = String::new();
        assert_eq!(normalize_host("[::1]", &mut buf), "[::1]");
        let mut buf = String::new();
        assert_eq!(
            normalize_host("httpbin.httpbin.", &mut buf),
            "httpbin.httpbin"
        );
        let mut buf = String::new();
        assert_eq!(normalize_host("", &mut buf), "");
        let mut buf = String::new();
        assert_eq!(normalize_host("a:b:c", &mut buf), "a:b:c");
        for (authority, host) in [
            ("host:", "host"),
            ("host.:443", "host"),
            ("1234", "1234"),
            ("a:b:80", "a:b"),
            ("[::1", "[::1"),
            (":80", ""),
            (".", ""),
            ("h:8x", "h:8x"),
        ] {
            let mut buf = String::new();
            assert_eq!(normalize_host(authority, &mut buf), host, "{authority}");
        }
    }

    #[test]
    fn path_query_is_ignored() {
        assert_eq!(path_without_query("/a/b?x=1#f"), "/a/b");
        assert_eq!(path_without_query(""), "");
    }

    #[test]
    fn host_patterns() {
        assert_eq!(
            HostPattern::parse("Foo.Com:80").unwrap(),
            HostPattern::Exact("foo.com".into())
        );
        let w = HostPattern::parse("*.example.com").unwrap();
        assert!(w.matches("a.example.com"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("aexample.com"));
        assert!(HostPattern::parse("a*.com").is_err());
        assert!(HostPattern::parse("*").unwrap().matches("anything"));
    }

    #[test]
    fn first_route_in_config_order_wins() {
        let table = RouteTable::new(vec![
            route("wild", &["*.mesh"], PathCondition::Prefix("/api".into())),
            route("exact", &["a.mesh"], PathCondition::Any),
            route("any", &["*"], PathCondition::Exact("/x".into())),
        ]);
        let h = [];
        assert_eq!(table.find(&req("GET", "a.mesh", "/api/1", &h)), Some(0));
        assert_eq!(table.find(&req("GET", "a.mesh", "/other", &h)), Some(1));
        assert_eq!(table.find(&req("GET", "b.mesh", "/api", &h)), Some(0));
        assert_eq!(table.find(&req("GET", "b.mesh", "/x", &h)), Some(2));
        assert_eq!(table.find(&req("GET", "b.mesh", "/y", &h)), None);
        assert_eq!(table.find(&req("GET", "", "/x", &h)), Some(2));
    }

    #[test]
    fn route_methods_and_headers() {
        let mut r = route(
            "r",
            &["h"],
            PathCondition::Regex(compile_regex("/v[0-9]+/.*", true).unwrap()),
        );
        r.methods = MethodSet::new(&["GET".into()]).unwrap();
        r.headers = vec![
            HeaderCondition {
                name: "x-env".into(),
                value: ValueCondition::Regex(compile_regex("prod|stage", true).unwrap()),
            },
            HeaderCondition {
                name: "x-tenant".into(),
                value: ValueCondition::Present,
            },
        ];
        let table = RouteTable::new(vec![r]);
        let good: [Header; 2] = [("x-env", b"prod"), ("x-tenant", &[0xff, 0xfe])];
        assert_eq!(table.find(&req("GET", "h", "/v2/items", &good)), Some(0));
        assert_eq!(table.find(&req("get", "h", "/v2/items", &good)), None);
        assert_eq!(table.find(&req("GET", "h", "/v/items", &good)), None);
        let partial: [Header; 2] = [("x-env", b"production"), ("x-tenant", b"")];
        assert_eq!(table.find(&req("GET", "h", "/v2/items", &partial)), None);
        let non_utf8: [Header; 2] = [("x-env", &[0xff]), ("x-tenant", b"")];
        assert_eq!(table.find(&req("GET", "h", "/v2/items", &non_utf8)), None);
    }

    #[test]
    fn method_set_rules() {
        assert!(MethodSet::new(&["*".into()]).unwrap().matches("PURGE"));
        assert!(MethodSet::new(&[]).unwrap().matches("GET"));
        assert!(MethodSet::new(&["get".into()]).is_err());
        let m = MethodSet::new(&["GET".into(), "POST".into()]).unwrap();
        assert!(m.matches("POST") && !m.matches("PUT"));
        assert!(!m.matches("post") && !m.matches("PURGE"));
        let m = MethodSet::new(&["PURGE".into(), "HEAD".into(), "PURGE".into()]).unwrap();
        assert!(m.matches("PURGE") && m.matches("HEAD") && !m.matches("GET"));
        assert_eq!(m, MethodSet::new(&["HEAD".into(), "PURGE".into()]).unwrap());
    }
}
