//! Request matching: the request view, host normalization, route lookup and the
//! primitive conditions (host, path, method, header) shared by routes and HTTPRouteGroups.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use std::rc::Rc;

use regex_lite::{Regex, RegexBuilder};

use crate::tail::TailMatcher;

/// Compiled regexes may use at most this much memory (bytes).
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Regex patterns may be at most this long (bytes).
pub const REGEX_MAX_LEN: usize = 4096;

/// A request header: name and raw value bytes.
pub type Header<'a> = (&'a str, &'a [u8]);

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
    /// A request view from raw pseudo-headers: normalizes the host (see
    /// [`normalize_host`], using `host_buf` if it must lower-case) and drops the query.
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
            path: path_without_query(path),
            headers,
        }
    }

    /// The first value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// `bytes` as a string: ASCII (header names, pseudo-header values) takes a fast path
/// that skips general UTF-8 validation; anything else is validated.
pub fn as_str(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// Parses a proxy-wasm serialized header map (`u32` count, `count` × (`u32` name length,
/// `u32` value length), then each name and value followed by a NUL) without copying.
/// Headers whose name is not UTF-8 are skipped; a malformed buffer yields `None`.
pub fn parse_header_map(buf: &[u8]) -> Option<Vec<Header<'_>>> {
    if buf.is_empty() {
        return Some(Vec::new());
    }
    let u32_at = |at: usize| -> Option<usize> {
        let b = buf.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = u32_at(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    if data > buf.len() {
        return None;
    }
    let mut headers = Vec::with_capacity(count);
    for i in 0..count {
        let name_len = u32_at(4 + i * 8)?;
        let value_len = u32_at(8 + i * 8)?;
        let name = buf.get(data..data.checked_add(name_len)?)?;
        data = data.checked_add(name_len + 1)?;
        let value = buf.get(data..data.checked_add(value_len)?)?;
        data = data.checked_add(value_len + 1)?;
        if let Some(name) = as_str(name) {
            headers.push((name, value));
        }
    }
    Some(headers)
}

/// Serializes headers in the proxy-wasm map format [`parse_header_map`] reads.
pub fn serialize_header_map(headers: &[Header<'_>]) -> Vec<u8> {
    let data: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + headers.len() * 8 + data);
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    for (name, value) in headers {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
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
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        buf.clear();
        buf.push_str(host);
        buf.make_ascii_lowercase();
        buf.as_str()
    } else {
        host
    }
}

/// Compiles `pattern` with the configured limits, anchored as `prefix …` (start) and
/// optionally at the end.
pub fn compile_regex(pattern: &str, anchor_end: bool) -> Result<Regex, String> {
    if pattern.len() > REGEX_MAX_LEN {
        return Err(format!(
            "regex is {} bytes long, the limit is {REGEX_MAX_LEN}",
            pattern.len()
        ));
    }
    let anchored = if anchor_end {
        format!("^(?:{pattern})$")
    } else {
        format!("^(?:{pattern})")
    };
    RegexBuilder::new(&anchored)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regex \"{pattern}\": {e}"))
}

/// FNV-1a: a small, fast hash for the filter's maps. Their keys come from the plugin
/// config, not from clients, so hash flooding is not a concern; requests only look up.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Appends the low `digits` hex digits of `value` (no `fmt` machinery in the .wasm).
pub fn push_hex(out: &mut String, value: u64, digits: u32) {
    for i in (0..digits).rev() {
        let nibble = (value >> (4 * i)) & 0xf;
        out.push(char::from(b"0123456789abcdef"[nibble as usize]));
    }
}

/// The map type of the filter's indexes.
pub type Map<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Compiles each distinct pattern once (large policies repeat the same regexes).
#[derive(Debug, Default)]
pub struct RegexCache {
    index: Map<String, u32>,
    compiled: Vec<Regex>,
    tails: Vec<Option<Rc<TailMatcher>>>,
}

impl RegexCache {
    /// [`compile_regex`], or a clone of the regex compiled before for the same pattern.
    pub fn compile(&mut self, pattern: &str, anchor_end: bool) -> Result<Regex, String> {
        let key = format!("{}{pattern}", if anchor_end { '$' } else { '^' });
        if let Some(&i) = self.index.get(&key) {
            return Ok(self.compiled[i as usize].clone());
        }
        let regex = compile_regex(pattern, anchor_end)?;
        self.index.insert(key, self.compiled.len() as u32);
        self.compiled.push(regex.clone());
        self.tails.push(
            (!anchor_end)
                .then(|| TailMatcher::compile(pattern).map(Rc::new))
                .flatten(),
        );
        Ok(regex)
    }

    /// A start-anchored regex for `pattern` and, when the pattern is simple enough, the
    /// fast [`TailMatcher`] for it (shared by every rule with the same tail).
    pub fn compile_tail(
        &mut self,
        pattern: &str,
    ) -> Result<(Regex, Option<Rc<TailMatcher>>), String> {
        let regex = self.compile(pattern, false)?;
        let key = format!("^{pattern}");
        let tail = self
            .index
            .get(&key)
            .and_then(|&i| self.tails.get(i as usize))
            .cloned()
            .flatten();
        Ok((regex, tail))
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

/// A set of HTTP methods; empty or `*` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MethodSet {
    methods: Vec<String>,
}

impl MethodSet {
    /// Builds the set; methods must be upper-case tokens, `*` matches any.
    pub fn new(methods: &[String]) -> Result<Self, String> {
        if methods.iter().any(|m| m == "*") {
            return Ok(Self::default());
        }
        for m in methods {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
                return Err(format!(
                    "method \"{m}\" must be an upper-case HTTP method or `*`"
                ));
            }
        }
        Ok(Self {
            methods: methods.to_vec(),
        })
    }

    /// Whether `method` is in the set (methods are case-sensitive, RFC 9110).
    pub fn matches(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m == method)
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

/// Splits an SMI `pathRegex` (anchored at the start) into what a prefix index can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegexShape {
    /// The regex is a plain literal: it matches exactly the paths starting with it.
    Prefix(String),
    /// The regex is a literal followed by `$`: it matches exactly this path.
    Exact(String),
    /// Any match starts with `literal` (possibly empty); the regex decides the rest.
    Regex {
        /// The literal every match starts with.
        literal: String,
        /// When set, the pattern from this byte offset on, anchored at the end of the
        /// literal, is equivalent to the whole regex: it can run on the path after the
        /// literal alone (and be shared by every pattern with the same rest).
        rest: Option<usize>,
    },
}

/// Analyzes a start-anchored regex: a leading `^` is implied. Conservative: anything
/// unusual yields `Regex` with no literal and no rest.
pub fn regex_shape(pattern: &str) -> RegexShape {
    let skip = usize::from(pattern.starts_with('^'));
    let body = &pattern[skip..];
    if has_top_level_alternation(body) {
        return RegexShape::Regex {
            literal: String::new(),
            rest: None,
        };
    }
    let mut literal = String::new();
    // Byte offset (in `body`) where the last literal atom starts, for quantifiers.
    let mut atom = 0;
    let mut chars = body.char_indices().peekable();
    let stop = |literal: String, at: usize| {
        let rest = (!literal.is_empty() && splittable(&body[at..])).then_some(skip + at);
        RegexShape::Regex { literal, rest }
    };
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&(_, n)) if n.is_ascii_punctuation() => {
                    literal.push(n);
                    chars.next();
                    atom = at;
                }
                _ => return stop(literal, at),
            },
            '$' if chars.peek().is_none() => return RegexShape::Exact(literal),
            '*' | '?' | '{' | '+' => {
                literal.pop();
                return stop(literal, atom);
            }
            '.' | '[' | '(' | ')' | '|' | '^' | '$' | ']' | '}' => return stop(literal, at),
            c => {
                literal.push(c);
                atom = at;
            }
        }
    }
    RegexShape::Prefix(literal)
}

/// Whether a pattern tail can be matched on its own, anchored where the literal before it
/// ended: it must not assert anything about what comes before it (`^`, word boundaries,
/// flags that change anchors).
fn splittable(rest: &str) -> bool {
    let (mut in_class, mut escaped) = (false, false);
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
            if !in_class && matches!(b, b'b' | b'B' | b'A' | b'<' | b'>') {
                return false;
            }
            continue;
        }
        match b {
            b'\\' => escaped = true,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'^' if !in_class => return false,
            b'(' if !in_class
                && bytes.get(i + 1) == Some(&b'?')
                && bytes.get(i + 2) != Some(&b':') =>
            {
                return false;
            }
            _ => {}
        }
    }
    !rest.is_empty()
}

fn has_top_level_alternation(pattern: &str) -> bool {
    let (mut depth, mut in_class, mut escaped) = (0i32, false, false);
    for c in pattern.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => depth -= 1,
            '|' if !in_class && depth == 0 => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    fn serialize(headers: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (headers.len() as u32).to_le_bytes().to_vec();
        for (n, v) in headers {
            out.extend((n.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (n, v) in headers {
            out.extend(*n);
            out.push(0);
            out.extend(*v);
            out.push(0);
        }
        out
    }

    #[test]
    fn ascii_fast_path_and_utf8_fallback() {
        assert_eq!(as_str(b"x-user"), Some("x-user"));
        assert_eq!(as_str("é".as_bytes()), Some("é"));
        assert_eq!(as_str(&[0xc3, 0x28]), None);
        assert_eq!(as_str(b""), Some(""));
    }

    #[test]
    fn header_map_parsing() {
        let buf = serialize(&[
            (b":path", b"/a"),
            (b"x-bin", &[0xff, 0x00, 0x41]),
            (&[0xc3, 0x28], b"bad-name"),
            (b"empty", b""),
        ]);
        let headers = parse_header_map(&buf).unwrap();
        assert_eq!(
            headers,
            vec![
                (":path", &b"/a"[..]),
                ("x-bin", &[0xff, 0x00, 0x41][..]),
                ("empty", &b""[..])
            ]
        );
        assert_eq!(parse_header_map(&[]), Some(vec![]));
        for cut in 1..buf.len() {
            // Truncated buffers never panic; most are rejected.
            let _ = parse_header_map(&buf[..cut]);
        }
        assert_eq!(parse_header_map(&buf[..buf.len() - 3]), None);
        assert_eq!(
            parse_header_map(&serialize_header_map(&headers)).unwrap(),
            headers
        );
        assert_eq!(serialize_header_map(&[]), 0u32.to_le_bytes());
        assert_eq!(parse_header_map(&[0xff, 0xff, 0xff, 0xff]), None);
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
    }

    #[test]
    fn hex_digits() {
        let mut s = String::new();
        push_hex(&mut s, 0xab, 4);
        push_hex(&mut s, u64::MAX, 16);
        assert_eq!(s, "00abffffffffffffffff");
    }

    #[test]
    fn regex_cache_compiles_once_and_keeps_anchoring_apart() {
        let mut cache = RegexCache::default();
        let start = cache.compile("a+", false).unwrap();
        let whole = cache.compile("a+", true).unwrap();
        assert!(start.is_match("aab") && !whole.is_match("aab"));
        assert!(cache.compile("a+", false).unwrap().is_match("ab"));
        assert_eq!(cache.compiled.len(), 2);
        assert!(cache.compile("(", false).is_err());
    }

    #[test]
    fn regex_limits() {
        assert!(compile_regex("(", false).is_err());
        assert!(compile_regex(&"a".repeat(REGEX_MAX_LEN + 1), false).is_err());
        assert!(compile_regex("(a{1000}){1000}", false).is_err());
        let r = compile_regex("/api", false).unwrap();
        assert!(r.is_match("/api/v1") && r.is_match("/apix") && !r.is_match("/x/api"));
    }

    /// Splitting never changes what a pattern matches.
    #[test]
    fn split_patterns_match_like_the_whole() {
        let patterns = [
            "/api/v[0-9]+/items/",
            "/ab*c",
            "/a\\.+x",
            "/(a|b)c$",
            "/x\\d{2}",
            "/a[^/]*/b",
            "/a(?:b|c)+d",
            "/u.*z$",
        ];
        let paths = [
            "/api/v12/items/3",
            "/api/v/items/",
            "/ac",
            "/abbbc",
            "/a..x",
            "/ax",
            "/ac",
            "/bc",
            "/ac/",
            "/x12",
            "/x1",
            "/a/b",
            "/aq/b",
            "/abcd",
            "/ad",
            "/uz",
            "/u/z/",
            "",
        ];
        for pattern in patterns {
            let RegexShape::Regex {
                literal,
                rest: Some(rest),
            } = regex_shape(pattern)
            else {
                panic!("{pattern} should split");
            };
            let whole = compile_regex(pattern, false).unwrap();
            let tail = compile_regex(&pattern[rest..], false).unwrap();
            for path in paths {
                let split = path
                    .strip_prefix(literal.as_str())
                    .is_some_and(|after| tail.is_match(after));
                assert_eq!(whole.is_match(path), split, "{pattern} on {path}");
            }
        }
    }

    #[test]
    fn regex_shapes() {
        assert_eq!(
            regex_shape("/metrics"),
            RegexShape::Prefix("/metrics".into())
        );
        assert_eq!(
            regex_shape("^/metrics$"),
            RegexShape::Exact("/metrics".into())
        );
        assert_eq!(regex_shape("/a\\.b"), RegexShape::Prefix("/a.b".into()));
        let re = |literal: &str, rest: Option<usize>| RegexShape::Regex {
            literal: literal.into(),
            rest,
        };
        assert_eq!(regex_shape("/api/v[0-9]"), re("/api/v", Some(6)));
        assert_eq!(regex_shape("^/api/v[0-9]"), re("/api/v", Some(7)));
        assert_eq!(regex_shape("/ab*"), re("/a", Some(2)));
        assert_eq!(regex_shape("/ab+"), re("/a", Some(2)));
        assert_eq!(regex_shape("/a\\.+"), re("/a", Some(2)));
        assert_eq!(regex_shape("/a|/b"), re("", None));
        assert_eq!(regex_shape("/(a|b)"), re("/", Some(1)));
        assert_eq!(regex_shape("/x\\d"), re("/x", Some(2)));
        assert_eq!(regex_shape(".*"), re("", None));
        assert_eq!(regex_shape(""), RegexShape::Prefix("".into()));
        // Tails that look behind the split point are never split.
        assert_eq!(regex_shape("/a\\bc"), re("/a", None));
        assert_eq!(regex_shape("/a[0-9]*\\bx"), re("/a", None));
        assert_eq!(regex_shape("/a(?i)b"), re("/a", None));
        assert_eq!(regex_shape("/a^b"), re("/a", None));
        assert_eq!(regex_shape("/a[^b]c"), re("/a", Some(2)));
        assert_eq!(regex_shape("/a(?:b|c)"), re("/a", Some(2)));
    }
}
