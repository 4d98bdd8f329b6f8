//! Phase two of config parsing: validating the wire config and compiling it into the
//! indexed [`Policy`] the data path runs. Every error names the field path it is about.

use std::fmt;

use crate::authorizer::{path_test, AccountId, Authorizer, CompiledMatch};
use crate::balancer::{Balancer, TargetSlot, MAX_TARGETS};
use crate::config::{
    DestinationConfig, HeaderMatchConfig, HttpMatchConfig, LocalConfig, OutlierDetectionConfig,
    PathMatchConfig, PathNormalization, PluginConfig, RouteConfig, SlowStartConfig, StickyConfig,
    TargetConfig, Unmatched, CONFIG_VERSION, DEFAULT_CLUSTER_HEADER,
};
use crate::hash::{hash_bytes, Map};
use crate::matcher::{
    HeaderCondition, HostPattern, MethodSet, PathCondition, Route, RouteTable, ValueCondition,
};
use crate::probe::HealthCheck;
use crate::regex::{compile_regex, RegexCache};
use crate::replay::ReplayPolicy;

/// A config error: the field path (`destinations[0].targets[1].weight`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Field path from the config root.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parses the JSON wire config (phase one), reporting the field path of a shape error.
pub fn parse_config(json: &[u8]) -> Result<PluginConfig, ConfigError> {
    serde_json::from_slice(json).map_err(|e| {
        let path = json_path_at(json, byte_offset(json, e.line(), e.column()));
        ConfigError::new(path, e.to_string())
    })
}

/// The byte offset of a 1-based line and column (serde_json's error position).
fn byte_offset(json: &[u8], line: usize, column: usize) -> usize {
    let line_start = json
        .split_inclusive(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    (line_start + column).min(json.len())
}

/// The field path (`destinations[0].targets[1].weight`) of the value being read at
/// `offset` in a JSON document; `config` for the root.
fn json_path_at(json: &[u8], offset: usize) -> String {
    enum Frame {
        Object { key: Option<String>, in_key: bool },
        Array(usize),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < offset.min(json.len()) {
        match json[i] {
            b'{' => stack.push(Frame::Object {
                key: None,
                in_key: true,
            }),
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object { key, in_key }) => {
                    *key = None;
                    *in_key = true;
                }
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { in_key, .. }) = stack.last_mut() {
                    *in_key = false;
                }
            }
            b'"' => {
                let start = i + 1;
                i = start;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, in_key: true }) = stack.last_mut() {
                    let end = i.min(json.len());
                    *key = Some(
                        std::str::from_utf8(&json[start..end])
                            .unwrap_or("?")
                            .to_owned(),
                    );
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => break,
            Frame::Array(n) => path.push_str(&format!("[{n}]")),
        }
    }
    if path.is_empty() {
        path.push_str("config");
    }
    path
}

/// Where the caller identity comes from.
#[derive(Debug, Clone, Default)]
pub struct IdentitySource {
    /// The trusted header, if the identity comes from one.
    pub trusted_header: Option<String>,
    /// Accepted trust domains (empty: any).
    pub trust_domains: Vec<String>,
}

/// What the data path needs of a target once it is chosen.
#[derive(Debug, Clone)]
pub struct Target {
    /// Name, unique in the destination.
    pub name: String,
    /// Kubernetes cluster.
    pub cluster: String,
    /// Envoy cluster to route to.
    pub envoy_cluster: String,
    /// `:authority` rewrite.
    pub authority: Option<String>,
    /// Prefix prepended to `:path`.
    pub path_prefix: Option<String>,
}

/// A compiled destination.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Name.
    pub name: String,
    /// Targets, in config order.
    pub targets: Vec<Target>,
    /// ServiceAccount of each target.
    pub accounts: Vec<AccountId>,
    /// Policy and weights.
    pub balancer: Balancer,
    /// Sticky key.
    pub sticky: Option<StickyConfig>,
    /// Outlier detection settings.
    pub outlier_detection: Option<OutlierDetectionConfig>,
    /// Probation of returning targets.
    pub slow_start: Option<SlowStartConfig>,
    /// Active health checks.
    pub health_check: Option<HealthCheck>,
}

/// The compiled, validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Header carrying the chosen Envoy cluster.
    pub cluster_header: String,
    /// Optional decision header (response).
    pub decision_header: Option<String>,
    /// Whether a forwarded request asks the host to match its route again.
    pub clear_route_cache: bool,
    /// Treatment of unmatched requests.
    pub unmatched: Unmatched,
    /// Treatment of paths not in normal form.
    pub path_normalization: PathNormalization,
    /// Identity source.
    pub identity: IdentitySource,
    /// Access control.
    pub authorizer: Authorizer,
    /// Routes.
    pub routes: RouteTable,
    /// Each route's replay settings, by route index.
    pub replays: Vec<Option<ReplayPolicy>>,
    /// Destinations.
    pub destinations: Vec<Destination>,
    /// The gateway's locality after node fallback.
    pub local: LocalConfig,
}

impl TryFrom<PluginConfig> for Policy {
    type Error = ConfigError;

    fn try_from(config: PluginConfig) -> Result<Self, ConfigError> {
        Policy::compile(config, &LocalConfig::default())
    }
}

impl Policy {
    /// Parses and compiles a JSON config; `node` supplies locality fields the config omits.
    pub fn from_json(json: &[u8], node: &LocalConfig) -> Result<Self, ConfigError> {
        Self::compile(parse_config(json)?, node)
    }

    /// Validates and compiles; `node` supplies locality fields the config omits.
    pub fn compile(config: PluginConfig, node: &LocalConfig) -> Result<Self, ConfigError> {
        if config.version != CONFIG_VERSION {
            return Err(ConfigError::new(
                "version",
                format!(
                    "unsupported version {}, expected {CONFIG_VERSION}",
                    config.version
                ),
            ));
        }
        let cluster_header = header_name(
            "cluster_header",
            config
                .cluster_header
                .as_deref()
                .unwrap_or(DEFAULT_CLUSTER_HEADER),
        )?;
        let decision_header = config
            .decision_header
            .as_deref()
            .map(|h| header_name("decision_header", h))
            .transpose()?;
        if let Some(h) = &decision_header {
            if *h == cluster_header {
                return Err(ConfigError::new(
                    "decision_header",
                    "must differ from cluster_header",
                ));
            }
        }
        let trusted_header = config
            .identity
            .trusted_header
            .as_deref()
            .map(|h| header_name("identity.trusted_header", h))
            .transpose()?;
        let given = config.local.unwrap_or_default();
        let local = LocalConfig {
            cluster: given.cluster.or_else(|| node.cluster.clone()),
            region: given.region.or_else(|| node.region.clone()),
            zone: given.zone.or_else(|| node.zone.clone()),
            subzone: given.subzone.or_else(|| node.subzone.clone()),
        };

        let mut authorizer = Authorizer::new(config.access.mode);
        compile_access(&config.access, &mut authorizer)?;

        let mut dest_index: Map<&str, usize> = Map::default();
        let mut destinations = Vec::with_capacity(config.destinations.len());
        for (i, d) in config.destinations.iter().enumerate() {
            let path = format!("destinations[{i}]");
            if dest_index.insert(d.name.as_str(), i).is_some() {
                return Err(duplicate(&path, "destination", &d.name));
            }
            destinations.push(compile_destination(&path, d, &local, &mut authorizer)?);
        }

        let mut names: Map<&str, usize> = Map::default();
        let mut routes = Vec::with_capacity(config.routes.len());
        let mut replays = Vec::with_capacity(config.routes.len());
        for (i, r) in config.routes.iter().enumerate() {
            let path = format!("routes[{i}]");
            if names.insert(r.name.as_str(), i).is_some() {
                return Err(duplicate(&path, "route", &r.name));
            }
            let Some(&d) = dest_index.get(r.destination.as_str()) else {
                return Err(field_error(
                    &path,
                    "destination",
                    format!("no destination named \"{}\"", r.destination),
                ));
            };
            routes.push(compile_route(&path, r, d, &config.destinations[d])?);
            replays.push(
                r.replay
                    .as_ref()
                    .map(|c| ReplayPolicy::compile(&format!("{path}.replay"), c))
                    .transpose()?,
            );
        }

        Ok(Self {
            cluster_header,
            decision_header,
            clear_route_cache: config.clear_route_cache,
            unmatched: config.unmatched,
            path_normalization: config.path_normalization,
            identity: IdentitySource {
                trusted_header,
                trust_domains: config.identity.trust_domains,
            },
            authorizer,
            routes: RouteTable::new(routes),
            replays,
            destinations,
            local,
        })
    }
}

/// An error about `path.field`.
fn field_error(path: &str, field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(format!("{path}.{field}"), message)
}

fn duplicate(path: &str, what: &str, name: &str) -> ConfigError {
    field_error(path, "name", format!("duplicate {what} name \"{name}\""))
}

/// Validates an HTTP header name (an RFC 9110 token) and lower-cases it.
fn header_name(path: &str, name: &str) -> Result<String, ConfigError> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.is_empty() && name.bytes().all(token) {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(ConfigError::new(
            path,
            format!("\"{name}\" is not a valid header name"),
        ))
    }
}

/// Fails when `value` is blank; the path (`path.field`) is only built on failure.
fn non_empty(path: &str, field: &str, value: &str, what: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        let path = if field.is_empty() {
            path.to_owned()
        } else {
            format!("{path}.{field}")
        };
        Err(ConfigError::new(path, format!("{what} must not be empty")))
    } else {
        Ok(())
    }
}

fn compile_access(
    access: &crate::config::AccessConfig,
    authorizer: &mut Authorizer,
) -> Result<(), ConfigError> {
    // Group name → index in `group_matches`, which maps match name → match id.
    // Identical matches share one id.
    let mut groups: Map<&str, usize> = Map::default();
    let mut group_matches: Vec<Map<&str, usize>> = Vec::new();
    let mut dedup: Map<Vec<u8>, u32> = Map::default();
    let mut regexes = RegexCache::default();
    for (g, group) in access.route_groups.iter().enumerate() {
        // Paths are built only for errors: a large policy has many thousands of matches.
        let gpath = || format!("access.route_groups[{g}]");
        non_empty(&gpath(), "name", &group.name, "name")?;
        if groups.contains_key(group.name.as_str()) {
            return Err(duplicate(&gpath(), "route group", &group.name));
        }
        let mut ids: Map<&str, usize> =
            Map::with_capacity_and_hasher(group.matches.len(), Default::default());
        for (m, mat) in group.matches.iter().enumerate() {
            let mpath = || format!("{}.matches[{m}]", gpath());
            if ids.contains_key(mat.name.as_str()) {
                return Err(duplicate(&mpath(), "match", &mat.name));
            }
            let key = match_key(mat);
            let id = match dedup.get(&key) {
                Some(&id) => id,
                None => {
                    let (literal, compiled) = compile_http_match(mpath, mat, &mut regexes)?;
                    let id = authorizer.add_match(&literal, compiled);
                    dedup.insert(key, id);
                    id
                }
            };
            ids.insert(mat.name.as_str(), id as usize);
        }
        groups.insert(group.name.as_str(), group_matches.len());
        group_matches.push(ids);
    }

    let mut names: Map<&str, usize> = Map::default();
    for (t, tt) in access.traffic_targets.iter().enumerate() {
        let tpath = format!("access.traffic_targets[{t}]");
        if names.insert(tt.name.as_str(), t).is_some() {
            return Err(duplicate(&tpath, "traffic target", &tt.name));
        }
        non_empty(
            &tpath,
            "destination.name",
            &tt.destination.name,
            "ServiceAccount name",
        )?;
        if tt.sources.is_empty() {
            return Err(field_error(
                &tpath,
                "sources",
                "must list at least one source",
            ));
        }
        if tt.rules.is_empty() {
            return Err(field_error(&tpath, "rules", "must list at least one rule"));
        }
        let mut match_ids = Vec::new();
        for (r, rule) in tt.rules.iter().enumerate() {
            let rpath = format!("{tpath}.rules[{r}]");
            let Some(group) = groups
                .get(rule.route_group.as_str())
                .map(|&g| &group_matches[g])
            else {
                return Err(field_error(
                    &rpath,
                    "route_group",
                    format!("no route group named \"{}\"", rule.route_group),
                ));
            };
            if rule.matches.is_empty() {
                match_ids.extend(group.values().map(|&id| id as u32));
            }
            for (k, name) in rule.matches.iter().enumerate() {
                match group.get(name.as_str()) {
                    Some(&id) => match_ids.push(id as u32),
                    None => {
                        return Err(ConfigError::new(
                            format!("{rpath}.matches[{k}]"),
                            format!(
                                "route group \"{}\" has no match named \"{name}\"",
                                rule.route_group
                            ),
                        ))
                    }
                }
            }
        }
        match_ids.sort_unstable();
        match_ids.dedup();
        let destination = authorizer.account(&tt.destination);
        let mut sources = Vec::with_capacity(tt.sources.len());
        for (s, src) in tt.sources.iter().enumerate() {
            if src.name.trim().is_empty() {
                non_empty(
                    &format!("{tpath}.sources[{s}]"),
                    "name",
                    &src.name,
                    "ServiceAccount name",
                )?;
            }
            sources.push(authorizer.account(src));
        }
        authorizer.add_grant(destination, sources, &match_ids);
    }
    Ok(())
}

/// A key equal for matches with the same conditions (names aside): every part is
/// tagged and length-prefixed, so different conditions never share a key.
fn match_key(mat: &HttpMatchConfig) -> Vec<u8> {
    fn push(key: &mut Vec<u8>, tag: u8, part: &str) {
        key.push(tag);
        key.extend_from_slice(&(part.len() as u64).to_le_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    let parts = mat
        .path_regex
        .iter()
        .chain(&mat.methods)
        .map(String::len)
        .sum::<usize>()
        + mat
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>();
    let count = 1 + mat.methods.len() + 2 * mat.headers.len();
    let mut key = Vec::with_capacity(parts + 9 * count);
    if let Some(re) = &mat.path_regex {
        push(&mut key, b'p', re);
    }
    for m in &mat.methods {
        push(&mut key, b'm', m);
    }
    for (name, value) in &mat.headers {
        push(&mut key, b'h', name);
        push(&mut key, b'v', value);
    }
    key
}

fn compile_http_match(
    path: impl Fn() -> String,
    mat: &HttpMatchConfig,
    regexes: &mut RegexCache,
) -> Result<(String, CompiledMatch), ConfigError> {
    let (literal, path_test) = match &mat.path_regex {
        None => (String::new(), crate::authorizer::PathTest::Prefix),
        Some(re) => path_test(re, regexes)
            .map_err(|e| ConfigError::new(format!("{}.path_regex", path()), e))?,
    };
    let methods = MethodSet::new(&mat.methods)
        .map_err(|e| ConfigError::new(format!("{}.methods", path()), e))?;
    let mut headers: Vec<HeaderCondition> = Vec::with_capacity(mat.headers.len());
    for (name, re) in &mat.headers {
        let hpath = format!("{}.headers.{name}", path());
        if headers.iter().any(|h| h.name.eq_ignore_ascii_case(name)) {
            return Err(ConfigError::new(hpath, "duplicate header name"));
        }
        non_empty(&hpath, "", name, "header name")?;
        let regex = regexes
            .compile(re, true)
            .map_err(|e| ConfigError::new(hpath, e))?;
        headers.push(HeaderCondition {
            name: name.to_ascii_lowercase(),
            value: ValueCondition::Regex(regex),
        });
    }
    Ok((
        literal,
        CompiledMatch {
            path: path_test,
            methods,
            headers,
        },
    ))
}

/// A target's locality tier, lower first: its explicit `priority`, else 0 in the local
/// cluster, 1 same region and zone, 2 same region, 3 anywhere (Istio's order).
pub fn tier(target: &TargetConfig, local: &LocalConfig) -> u32 {
    if let Some(p) = target.priority {
        return p;
    }
    let same = |a: &Option<String>, b: &Option<String>| a.is_some() && a == b;
    if local.cluster.as_deref() == Some(target.cluster.as_str()) {
        0
    } else if same(&target.locality.region, &local.region)
        && same(&target.locality.zone, &local.zone)
    {
        1
    } else if same(&target.locality.region, &local.region) {
        2
    } else {
        3
    }
}

fn compile_destination(
    path: &str,
    d: &DestinationConfig,
    local: &LocalConfig,
    authorizer: &mut Authorizer,
) -> Result<Destination, ConfigError> {
    non_empty(path, "name", &d.name, "name")?;
    for (h, host) in d.hosts.iter().enumerate() {
        HostPattern::parse(host).map_err(|e| ConfigError::new(format!("{path}.hosts[{h}]"), e))?;
    }
    let tpath = format!("{path}.targets");
    if d.targets.is_empty() {
        return Err(ConfigError::new(tpath, "must list at least one target"));
    }
    if d.targets.len() > MAX_TARGETS {
        return Err(ConfigError::new(
            tpath,
            format!(
                "{} targets; at most {MAX_TARGETS} are supported",
                d.targets.len()
            ),
        ));
    }
    if d.targets.iter().all(|t| t.weight == 0) {
        return Err(ConfigError::new(tpath, "all target weights are zero"));
    }
    let mut names: Map<&str, usize> = Map::default();
    let mut targets = Vec::with_capacity(d.targets.len());
    let mut accounts = Vec::with_capacity(d.targets.len());
    let mut slots = Vec::with_capacity(d.targets.len());
    for (i, t) in d.targets.iter().enumerate() {
        let p = format!("{tpath}[{i}]");
        non_empty(&p, "name", &t.name, "name")?;
        if names.insert(t.name.as_str(), i).is_some() {
            return Err(duplicate(&p, "target", &t.name));
        }
        non_empty(&p, "cluster", &t.cluster, "cluster")?;
        non_empty(&p, "envoy_cluster", &t.envoy_cluster, "envoy_cluster")?;
        non_empty(
            &p,
            "service_account.name",
            &t.service_account.name,
            "ServiceAccount name",
        )?;
        if let Some(a) = &t.authority {
            if a.is_empty() || a.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
                return Err(field_error(
                    &p,
                    "authority",
                    format!("\"{a}\" is not a valid authority"),
                ));
            }
        }
        if let Some(prefix) = &t.path_prefix {
            if !prefix.starts_with('/') || prefix.contains(['?', '#', ' ']) {
                return Err(field_error(
                    &p,
                    "path_prefix",
                    format!("\"{prefix}\" must be a path starting with `/`"),
                ));
            }
        }
        accounts.push(authorizer.account(&t.service_account));
        slots.push(TargetSlot {
            weight: t.weight,
            tier: tier(t, local),
            local: local.cluster.as_deref() == Some(t.cluster.as_str()),
            seed: hash_bytes(t.name.as_bytes()),
        });
        targets.push(Target {
            name: t.name.clone(),
            cluster: t.cluster.clone(),
            envoy_cluster: t.envoy_cluster.clone(),
            authority: t.authority.clone(),
            path_prefix: t
                .path_prefix
                .as_deref()
                .map(|p| p.trim_end_matches('/').to_owned()),
        });
    }
    match &d.sticky {
        Some(StickyConfig::Header(h)) => {
            header_name(&format!("{path}.sticky.header"), h)?;
        }
        Some(StickyConfig::Cookie(c)) => non_empty(path, "sticky.cookie", c, "cookie")?,
        None => {}
    }
    if let Some(o) = &d.outlier_detection {
        let opath = format!("{path}.outlier_detection");
        if o.max_ejection_percent > 100 {
            return Err(field_error(
                &opath,
                "max_ejection_percent",
                "must be at most 100",
            ));
        }
        if o.base_ejection_time_ms == 0 {
            return Err(field_error(
                &opath,
                "base_ejection_time_ms",
                "must be greater than 0",
            ));
        }
        if o.max_ejection_time_ms < o.base_ejection_time_ms {
            return Err(field_error(
                &opath,
                "max_ejection_time_ms",
                "must be at least base_ejection_time_ms",
            ));
        }
    }
    if let Some(s) = &d.slow_start {
        let spath = format!("{path}.slow_start");
        if s.window_ms == 0 {
            return Err(field_error(&spath, "window_ms", "must be greater than 0"));
        }
        if !(1..=100).contains(&s.min_weight_percent) {
            return Err(field_error(
                &spath,
                "min_weight_percent",
                "must be 1 to 100",
            ));
        }
    }
    Ok(Destination {
        name: d.name.clone(),
        targets,
        accounts,
        balancer: Balancer::new(d.policy, slots),
        sticky: d.sticky.clone(),
        outlier_detection: d.outlier_detection.clone(),
        slow_start: d.slow_start.clone(),
        health_check: d
            .health_check
            .as_ref()
            .map(|c| HealthCheck::compile(&format!("{path}.health_check"), c))
            .transpose()?,
    })
}

fn compile_route(
    path: &str,
    r: &RouteConfig,
    destination: usize,
    d: &DestinationConfig,
) -> Result<Route, ConfigError> {
    let m = &r.route_match;
    let (hosts_path, host_list) = if m.hosts.is_empty() {
        (format!("destinations[{destination}].hosts"), &d.hosts)
    } else {
        (format!("{path}.match.hosts"), &m.hosts)
    };
    let mut hosts = Vec::with_capacity(host_list.len().max(1));
    for (h, host) in host_list.iter().enumerate() {
        hosts.push(
            HostPattern::parse(host)
                .map_err(|e| ConfigError::new(format!("{hosts_path}[{h}]"), e))?,
        );
    }
    if hosts.is_empty() {
        hosts.push(HostPattern::Any);
    }
    let path_condition = match &m.path {
        None => PathCondition::Any,
        Some(PathMatchConfig::Exact(p)) => PathCondition::Exact(p.clone()),
        Some(PathMatchConfig::Prefix(p)) => PathCondition::Prefix(p.clone()),
        Some(PathMatchConfig::Regex(re)) => PathCondition::Regex(
            compile_regex(re, true).map_err(|e| field_error(path, "match.path.regex", e))?,
        ),
    };
    let methods = MethodSet::new(&m.methods).map_err(|e| field_error(path, "match.methods", e))?;
    let headers = m
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| compile_header(&format!("{path}.match.headers[{i}]"), h))
        .collect::<Result<_, _>>()?;
    Ok(Route {
        name: r.name.clone(),
        hosts,
        path: path_condition,
        methods,
        headers,
        destination,
    })
}

fn compile_header(path: &str, h: &HeaderMatchConfig) -> Result<HeaderCondition, ConfigError> {
    non_empty(path, "name", &h.name, "header name")?;
    let value = match (&h.exact, &h.regex) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                path,
                "give at most one of `exact` and `regex`",
            ))
        }
        (Some(e), None) => ValueCondition::Exact(e.as_bytes().to_vec()),
        (None, Some(re)) => ValueCondition::Regex(
            compile_regex(re, true).map_err(|e| field_error(path, "regex", e))?,
        ),
        (None, None) => ValueCondition::Present,
    };
    Ok(HeaderCondition {
        name: h.name.to_ascii_lowercase(),
        value,
    })
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use serde_json::{json, Value};

    fn base() -> Value {
        json!({
            "version": 1,
            "access": {
                "mode": "enforce",
                "route_groups": [{"name": "g", "matches": [{"name": "all", "path_regex": "/"}]}],
                "traffic_targets": [{"name": "t",
                    "destination": {"namespace": "b", "name": "b"},
                    "sources": [{"namespace": "a", "name": "a"}],
                    "rules": [{"route_group": "g", "matches": ["all"]}]}]
            },
            "routes": [{"name": "r", "match": {"path": {"prefix": "/"}}, "destination": "d"}],
            "destinations": [{"name": "d", "hosts": ["svc.ns"], "targets": [
                {"name": "t1", "cluster": "c1", "envoy_cluster": "e1", "weight": 1,
                 "service_account": {"namespace": "b", "name": "b"}},
                {"name": "t2", "cluster": "c2", "envoy_cluster": "e2", "weight": 1,
                 "service_account": {"namespace": "b", "name": "b"}}
            ]}]
        })
    }

    fn error(mutate: impl FnOnce(&mut Value)) -> ConfigError {
        let mut v = base();
        mutate(&mut v);
        match Policy::from_json(v.to_string().as_bytes(), &LocalConfig::default()) {
            Ok(_) => panic!("config accepted: {v}"),
            Err(e) => e,
        }
    }

    fn assert_error(mutate: impl FnOnce(&mut Value), path: &str, message: &str) {
        let e = error(mutate);
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(message), "{e}");
    }

    #[test]
    fn base_config_compiles() {
        let p = Policy::from_json(base().to_string().as_bytes(), &LocalConfig::default()).unwrap();
        assert_eq!(p.cluster_header, DEFAULT_CLUSTER_HEADER);
        assert_eq!(p.destinations[0].targets.len(), 2);
    }

    #[test]
    fn unknown_field() {
        assert_error(
            |v| v["destinations"][0]["targets"][1]["wieght"] = json!(3),
            "destinations[0].targets[1].wieght",
            "unknown field `wieght`",
        );
        assert_error(|v| v["extra"] = json!(1), "extra", "unknown field `extra`");
    }

    #[test]
    fn missing_field_and_pretty_json() {
        assert_error(
            |v| {
                v["destinations"][0]["targets"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("envoy_cluster");
            },
            "destinations[0].targets[1]",
            "missing field `envoy_cluster`",
        );
        let mut v = base();
        v["routes"][0]["name"] = json!("a \"quoted\" [name], {x}");
        v["destinations"][0]["targets"][1]["weight"] = json!("heavy");
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        let e = Policy::from_json(pretty.as_bytes(), &LocalConfig::default()).unwrap_err();
        assert_eq!(e.path, "destinations[0].targets[1].weight", "{e}");
        let e = Policy::from_json(b"{\"version\": 1,", &LocalConfig::default()).unwrap_err();
        assert_eq!(e.path, "config", "{e}");
        let e = Policy::from_json(b"", &LocalConfig::default()).unwrap_err();
        assert_eq!(e.path, "config", "{e}");
    }

    #[test]
    fn negative_weight() {
        assert_error(
            |v| v["destinations"][0]["targets"][1]["weight"] = json!(-5),
            "destinations[0].targets[1].weight",
            "-5",
        );
    }

    #[test]
    fn all_zero_weights() {
        assert_error(
            |v| {
                v["destinations"][0]["targets"][0]["weight"] = json!(0);
                v["destinations"][0]["targets"][1]["weight"] = json!(0);
            },
            "destinations[0].targets",
            "all target weights are zero",
        );
    }

    #[test]
    fn missing_destination() {
        assert_error(
            |v| v["routes"][0]["destination"] = json!("nope"),
            "routes[0].destination",
            "no destination named \"nope\"",
        );
    }

    #[test]
    fn missing_route_group_or_match() {
        assert_error(
            |v| v["access"]["traffic_targets"][0]["rules"][0]["route_group"] = json!("x"),
            "access.traffic_targets[0].rules[0].route_group",
            "no route group named \"x\"",
        );
        assert_error(
            |v| v["access"]["traffic_targets"][0]["rules"][0]["matches"] = json!(["all", "y"]),
            "access.traffic_targets[0].rules[0].matches[1]",
            "no match named \"y\"",
        );
    }

    #[test]
    fn bad_regexes() {
        assert_error(
            |v| v["access"]["route_groups"][0]["matches"][0]["path_regex"] = json!("/(unclosed"),
            "access.route_groups[0].matches[0].path_regex",
            "invalid regex",
        );
        assert_error(
            |v| v["routes"][0]["match"]["path"] = json!({"regex": "(a{1000}){1000}"}),
            "routes[0].match.path.regex",
            "invalid regex",
        );
        assert_error(
            |v| v["access"]["route_groups"][0]["matches"][0]["headers"] = json!({"x-a": "["}),
            "access.route_groups[0].matches[0].headers.x-a",
            "invalid regex",
        );
        assert_error(
            |v| {
                v["routes"][0]["match"]["headers"] =
                    json!([{"name": "x", "regex": "a".repeat(5000)}])
            },
            "routes[0].match.headers[0].regex",
            "limit",
        );
    }

    #[test]
    fn duplicate_header_names_in_a_match() {
        let json = base().to_string().replace(
            r#""path_regex":"/""#,
            r#""path_regex":"/","headers":{"x-a":"1","X-A":"2"}"#,
        );
        assert!(json.contains("X-A"), "the fixture changed: {json}");
        let e = Policy::from_json(json.as_bytes(), &LocalConfig::default()).unwrap_err();
        assert_eq!(
            e.path, "access.route_groups[0].matches[0].headers.X-A",
            "{e}"
        );
        assert_eq!(e.message, "duplicate header name");
    }

    #[test]
    fn duplicate_names() {
        assert_error(
            |v| v["destinations"][0]["targets"][1]["name"] = json!("t1"),
            "destinations[0].targets[1].name",
            "duplicate target name",
        );
        assert_error(
            |v| {
                let r = v["routes"][0].clone();
                v["routes"].as_array_mut().unwrap().push(r);
            },
            "routes[1].name",
            "duplicate route name",
        );
        assert_error(
            |v| {
                let d = v["destinations"][0].clone();
                v["destinations"].as_array_mut().unwrap().push(d);
            },
            "destinations[1].name",
            "duplicate destination name",
        );
        assert_error(
            |v| {
                let g = v["access"]["route_groups"][0].clone();
                v["access"]["route_groups"].as_array_mut().unwrap().push(g);
            },
            "access.route_groups[1].name",
            "duplicate route group name",
        );
        assert_error(
            |v| {
                let m = v["access"]["route_groups"][0]["matches"][0].clone();
                v["access"]["route_groups"][0]["matches"]
                    .as_array_mut()
                    .unwrap()
                    .push(m);
            },
            "access.route_groups[0].matches[1].name",
            "duplicate match name",
        );
        assert_error(
            |v| {
                let t = v["access"]["traffic_targets"][0].clone();
                v["access"]["traffic_targets"]
                    .as_array_mut()
                    .unwrap()
                    .push(t);
            },
            "access.traffic_targets[1].name",
            "duplicate traffic target name",
        );
    }

    #[test]
    fn empty_lists() {
        assert_error(
            |v| v["destinations"][0]["targets"] = json!([]),
            "destinations[0].targets",
            "at least one target",
        );
        assert_error(
            |v| v["access"]["traffic_targets"][0]["sources"] = json!([]),
            "access.traffic_targets[0].sources",
            "at least one source",
        );
    }

    #[test]
    fn other_field_checks() {
        assert_error(
            |v| v["version"] = json!(2),
            "version",
            "unsupported version 2",
        );
        assert_error(
            |v| v["cluster_header"] = json!("x cluster"),
            "cluster_header",
            "not a valid header name",
        );
        assert_error(
            |v| v["destinations"][0]["policy"] = json!("RoundRobin"),
            "destinations[0].policy",
            "unknown variant",
        );
        assert_error(
            |v| v["destinations"][0]["targets"][0]["path_prefix"] = json!("cluster-1"),
            "destinations[0].targets[0].path_prefix",
            "starting with `/`",
        );
        assert_error(
            |v| v["destinations"][0]["hosts"] = json!(["a*b"]),
            "destinations[0].hosts[0]",
            "not a valid host name",
        );
        assert_error(
            |v| v["destinations"][0]["outlier_detection"] = json!({"max_ejection_percent": 150}),
            "destinations[0].outlier_detection.max_ejection_percent",
            "at most 100",
        );
        assert_error(
            |v| v["access"]["route_groups"][0]["matches"][0]["methods"] = json!(["get"]),
            "access.route_groups[0].matches[0].methods",
            "upper-case",
        );
        assert_error(
            |v| {
                v["routes"][0]["match"]["headers"] =
                    json!([{"name": "x", "exact": "a", "regex": "b"}])
            },
            "routes[0].match.headers[0]",
            "at most one",
        );
        let targets: Vec<Value> = (0..65)
            .map(|i| {
                json!({"name": format!("t{i}"), "cluster": "c", "envoy_cluster": "e",
                            "service_account": {"namespace": "b", "name": "b"}})
            })
            .collect();
        assert_error(
            |v| v["destinations"][0]["targets"] = json!(targets),
            "destinations[0].targets",
            "at most 64",
        );
    }

    #[test]
    fn match_keys_separate_conditions() {
        let m = |re: Option<&str>, methods: &[&str]| HttpMatchConfig {
            name: "x".into(),
            path_regex: re.map(str::to_owned),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            headers: Default::default(),
        };
        assert_eq!(
            match_key(&m(Some("/a"), &["GET"])),
            match_key(&m(Some("/a"), &["GET"]))
        );
        assert_ne!(match_key(&m(Some("/a"), &[])), match_key(&m(None, &["/a"])));
        assert_ne!(
            match_key(&m(Some("/aGET"), &[])),
            match_key(&m(Some("/a"), &["GET"]))
        );
        assert_ne!(match_key(&m(None, &[])), match_key(&m(Some(""), &[])));
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let mut v = base();
        v["cluster_header"] = json!("X-Target-Cluster");
        v["identity"] = json!({"trusted_header": "X-Client-Id"});
        let p = Policy::from_json(v.to_string().as_bytes(), &LocalConfig::default()).unwrap();
        assert_eq!(p.cluster_header, "x-target-cluster");
        assert_eq!(p.identity.trusted_header.as_deref(), Some("x-client-id"));
    }

    #[test]
    fn locality_falls_back_to_node_and_sets_tiers() {
        let mut v = base();
        v["destinations"][0]["targets"][0]["locality"] = json!({"region": "r1", "zone": "z1"});
        v["destinations"][0]["targets"][1]["locality"] = json!({"region": "r1", "zone": "z2"});
        let node = LocalConfig {
            cluster: Some("elsewhere".into()),
            region: Some("r1".into()),
            zone: Some("z1".into()),
            subzone: None,
        };
        let p = Policy::from_json(v.to_string().as_bytes(), &node).unwrap();
        let b = &p.destinations[0].balancer;
        assert_eq!((b.tier(0), b.tier(1)), (1, 2));
        v["local"] = json!({"cluster": "c2"});
        let p = Policy::from_json(v.to_string().as_bytes(), &node).unwrap();
        assert_eq!(
            p.local.cluster.as_deref(),
            Some("c2"),
            "config wins over node"
        );
        assert_eq!(p.destinations[0].balancer.tier(1), 0);
        v["destinations"][0]["targets"][0]["priority"] = json!(7);
        let p = Policy::from_json(v.to_string().as_bytes(), &node).unwrap();
        assert_eq!(
            p.destinations[0].balancer.tier(0),
            7,
            "explicit priority wins"
        );
    }
}
