//! SMI access control: which targets (by ServiceAccount) a caller may reach with a request.
//!
//! HTTPRouteGroup matches are deduplicated and indexed by the literal prefix of their
//! `pathRegex` in a byte trie, so a request walks its path once and evaluates only the
//! matches whose prefix it carries, whatever the number of rules.

use std::hash::Hasher;
use std::rc::Rc;

use regex_lite::Regex;

use crate::config::{AccessMode, ServiceAccountRef};
use crate::hash::{Fnv, Map};
use crate::matcher::{HeaderCondition, MethodSet, Request};
use crate::regex::{regex_shape, RegexCache, RegexShape, REGEX_MAX_LEN};
use crate::tail::TailMatcher;

/// Interned ServiceAccount.
pub type AccountId = u32;

/// How the path of a match is decided once the trie has matched its literal prefix.
#[derive(Debug, Clone)]
pub enum PathTest {
    /// The prefix alone decides.
    Prefix,
    /// The path must be exactly the prefix.
    Exact,
    /// Run the (start-anchored) regex on the whole path.
    Regex(Regex),
    /// Match the path after the literal prefix (see [`crate::regex::RegexShape::Regex`])
    /// with the fast tail matcher when there is one and the path is ASCII, else the regex.
    RegexAfterPrefix {
        /// The tail's fast matcher, if the tail is in its subset.
        fast: Option<Rc<TailMatcher>>,
        /// The tail as a start-anchored regex.
        regex: Regex,
    },
}

/// A compiled HTTPRouteGroup match.
#[derive(Debug, Clone)]
pub struct CompiledMatch {
    /// Path test after the literal prefix matched.
    pub path: PathTest,
    /// Methods.
    pub methods: MethodSet,
    /// Header conditions (value regexes match the whole value).
    pub headers: Vec<HeaderCondition>,
}

impl CompiledMatch {
    fn covers(&self, req: &Request<'_>, prefix_len: usize) -> bool {
        let path_ok = match &self.path {
            PathTest::Prefix => true,
            PathTest::Exact => prefix_len == req.path.len(),
            PathTest::Regex(r) => r.is_match(req.path),
            PathTest::RegexAfterPrefix { fast, regex } => {
                req.path.get(prefix_len..).is_some_and(|rest| {
                    fast.as_ref()
                        .and_then(|m| m.is_match(rest))
                        .unwrap_or_else(|| regex.is_match(rest))
                })
            }
        };
        path_ok && self.methods.matches(req.method) && self.headers.iter().all(|h| h.matches(req))
    }
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    edges: Vec<(u8, u32)>,
    entries: Vec<u32>,
}

/// Matches indexed by literal path prefix.
#[derive(Debug, Clone)]
pub struct MatchIndex {
    matches: Vec<CompiledMatch>,
    nodes: Vec<TrieNode>,
}

impl Default for MatchIndex {
    fn default() -> Self {
        Self {
            matches: Vec::new(),
            nodes: vec![TrieNode::default()],
        }
    }
}

impl MatchIndex {
    /// Adds a match under its literal prefix; returns its id.
    pub fn insert(&mut self, literal: &str, m: CompiledMatch) -> u32 {
        let id = self.matches.len() as u32;
        self.matches.push(m);
        let mut node = 0usize;
        for &b in literal.as_bytes() {
            node = match self.nodes[node].edges.binary_search_by_key(&b, |e| e.0) {
                Ok(i) => self.nodes[node].edges[i].1 as usize,
                Err(i) => {
                    let next = self.nodes.len();
                    self.nodes.push(TrieNode::default());
                    self.nodes[node].edges.insert(i, (b, next as u32));
                    next
                }
            };
        }
        self.nodes[node].entries.push(id);
        id
    }

    /// Calls `f` with every match id covering the request.
    fn for_each_covering(&self, req: &Request<'_>, mut f: impl FnMut(u32)) {
        let mut node = 0usize;
        let mut depth = 0usize;
        loop {
            for &id in &self.nodes[node].entries {
                if self.matches[id as usize].covers(req, depth) {
                    f(id);
                }
            }
            let Some(&b) = req.path.as_bytes().get(depth) else {
                return;
            };
            match self.nodes[node].edges.binary_search_by_key(&b, |e| e.0) {
                Ok(i) => node = self.nodes[node].edges[i].1 as usize,
                Err(_) => return,
            }
            depth += 1;
        }
    }
}

/// Compiles an SMI `pathRegex` into the trie prefix and the test that remains.
pub fn path_test(pattern: &str, cache: &mut RegexCache) -> Result<(String, PathTest), String> {
    if pattern.len() > REGEX_MAX_LEN {
        return Err(format!(
            "regex is {} bytes long, the limit is {REGEX_MAX_LEN}",
            pattern.len()
        ));
    }
    Ok(match regex_shape(pattern) {
        RegexShape::Prefix(p) => (p, PathTest::Prefix),
        RegexShape::Exact(p) => (p, PathTest::Exact),
        RegexShape::Regex {
            literal,
            rest: Some(at),
        } => {
            let (regex, fast) = cache.compile_tail(pattern.get(at..).unwrap_or_default())?;
            (literal, PathTest::RegexAfterPrefix { fast, regex })
        }
        RegexShape::Regex {
            literal,
            rest: None,
        } => (literal, PathTest::Regex(cache.compile(pattern, false)?)),
    })
}

/// FNV-1a of `namespace`, a NUL, `name`.
fn account_hash(namespace: &str, name: &str) -> u64 {
    let mut h = Fnv::default();
    h.write(namespace.as_bytes());
    h.write_u8(0);
    h.write(name.as_bytes());
    h.finish()
}

/// A compiled TrafficTarget.
#[derive(Debug, Clone)]
struct Grant {
    destination: AccountId,
    /// Sorted source accounts.
    sources: Vec<AccountId>,
}

/// Why a caller got no target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No (acceptable) identity was presented.
    NoIdentity,
    /// No TrafficTarget allows this caller this request to any target's ServiceAccount.
    NotAllowed,
}

impl DenyReason {
    /// Short name used in logs and metric names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoIdentity => "no_identity",
            Self::NotAllowed => "not_allowed",
        }
    }
}

/// The compiled access policy.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    mode: AccessMode,
    /// ServiceAccounts by [`account_hash`]: one hash and one probe per request. A hit is
    /// checked against the names; accounts whose hashes collide are chained in `next`.
    accounts: Map<u64, AccountId>,
    /// `(namespace, name)` by id.
    names: Vec<(String, String)>,
    /// The next account with the same hash, by id.
    next: Vec<Option<AccountId>>,
    index: MatchIndex,
    /// Per match id: the grants whose rules include it.
    grants_by_match: Vec<Vec<u32>>,
    grants: Vec<Grant>,
}

impl Authorizer {
    /// An authorizer with no rules in the given mode.
    pub fn new(mode: AccessMode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// The mode.
    pub fn mode(&self) -> AccessMode {
        self.mode
    }

    /// Interns a ServiceAccount.
    pub fn account(&mut self, sa: &ServiceAccountRef) -> AccountId {
        if let Some(id) = self.lookup(&sa.namespace, &sa.name) {
            return id;
        }
        let id = self.names.len() as AccountId;
        self.names.push((sa.namespace.clone(), sa.name.clone()));
        let same_hash = self
            .accounts
            .insert(account_hash(&sa.namespace, &sa.name), id);
        self.next.push(same_hash);
        id
    }

    /// Looks a caller up; `None` when no rule or target mentions it.
    pub fn lookup(&self, namespace: &str, name: &str) -> Option<AccountId> {
        let mut id = *self.accounts.get(&account_hash(namespace, name))?;
        loop {
            let (ns, n) = self.names.get(id as usize)?;
            if ns == namespace && n == name {
                return Some(id);
            }
            id = (*self.next.get(id as usize)?)?;
        }
    }

    /// Adds a compiled match to the index; returns its id.
    pub fn add_match(&mut self, literal: &str, m: CompiledMatch) -> u32 {
        self.grants_by_match.push(Vec::new());
        self.index.insert(literal, m)
    }

    /// Adds a TrafficTarget granting `sources` access to `destination` for `match_ids`.
    pub fn add_grant(
        &mut self,
        destination: AccountId,
        mut sources: Vec<AccountId>,
        match_ids: &[u32],
    ) {
        sources.sort_unstable();
        sources.dedup();
        let id = self.grants.len() as u32;
        self.grants.push(Grant {
            destination,
            sources,
        });
        for &m in match_ids {
            let list = &mut self.grants_by_match[m as usize];
            if list.last() != Some(&id) {
                list.push(id);
            }
        }
    }

    /// Bit `i` set ⇔ the caller may reach `accounts[i]` with this request (at most 64).
    pub fn allowed(&self, caller: AccountId, req: &Request<'_>, accounts: &[AccountId]) -> u64 {
        let mut mask = 0u64;
        let full = if accounts.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << accounts.len()) - 1
        };
        self.index.for_each_covering(req, |m| {
            if mask == full {
                return;
            }
            for &g in &self.grants_by_match[m as usize] {
                let grant = &self.grants[g as usize];
                if grant.sources.binary_search(&caller).is_err() {
                    continue;
                }
                for (i, &a) in accounts.iter().enumerate().take(64) {
                    if a == grant.destination {
                        mask |= 1 << i;
                    }
                }
            }
        });
        mask
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::header_map::Header;
    use crate::matcher::ValueCondition;
    use crate::regex::compile_regex;

    fn sa(ns: &str, name: &str) -> ServiceAccountRef {
        ServiceAccountRef {
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn add(a: &mut Authorizer, path_regex: &str, methods: &[&str]) -> u32 {
        let (literal, path) = path_test(path_regex, &mut RegexCache::default()).unwrap();
        let methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
        a.add_match(
            &literal,
            CompiledMatch {
                path,
                methods: MethodSet::new(&methods).unwrap(),
                headers: vec![],
            },
        )
    }

    fn req<'a>(method: &'a str, path: &'a str, headers: &'a [Header<'a>]) -> Request<'a> {
        Request {
            method,
            host: "h",
            path,
            headers,
        }
    }

    #[test]
    fn accounts_are_interned_once_and_found_by_both_names() {
        let mut a = Authorizer::new(AccessMode::Enforce);
        let ids: Vec<AccountId> = (0..500)
            .map(|i| a.account(&sa(&format!("ns{}", i % 7), &format!("sa{i}"))))
            .collect();
        assert_eq!(ids, (0..500).collect::<Vec<_>>());
        assert_eq!(a.account(&sa("ns3", "sa10")), 10);
        for i in 0..500 {
            let (ns, name) = (format!("ns{}", i % 7), format!("sa{i}"));
            assert_eq!(a.lookup(&ns, &name), Some(i), "{ns}/{name}");
        }
        assert_eq!(a.lookup("ns0", "sa1"), None);
        assert_eq!(a.lookup("ns0sa", "0"), None);
        assert_eq!(a.lookup("", ""), None);
    }

    #[test]
    fn per_target_service_accounts() {
        let mut a = Authorizer::new(AccessMode::Enforce);
        let curl = a.account(&sa("curl", "curl"));
        let default = a.account(&sa("httpbin", "default"));
        let httpbin = a.account(&sa("httpbin", "httpbin"));
        let all = add(&mut a, "/", &["GET"]);
        a.add_grant(default, vec![curl], &[all]);
        let accounts = [httpbin, default, httpbin];
        let h = [];
        assert_eq!(
            a.allowed(curl, &req("GET", "/anything", &h), &accounts),
            0b010
        );
        assert_eq!(a.allowed(curl, &req("POST", "/anything", &h), &accounts), 0);
        assert_eq!(a.allowed(httpbin, &req("GET", "/", &h), &accounts), 0);
        assert_eq!(a.lookup("curl", "curl"), Some(curl));
        assert_eq!(a.lookup("curl", "nobody"), None);
    }

    #[test]
    fn path_regex_is_anchored_at_start_only() {
        let mut a = Authorizer::new(AccessMode::Enforce);
        let src = a.account(&sa("a", "a"));
        let dst = a.account(&sa("b", "b"));
        let ids = [
            add(&mut a, "/metrics", &["*"]),
            add(&mut a, "^/exact$", &[]),
            add(&mut a, "/api/v[0-9]+/items", &[]),
            add(&mut a, ".*/admin", &[]),
        ];
        a.add_grant(dst, vec![src], &ids);
        let h = [];
        let ok = |p: &str| a.allowed(src, &req("GET", p, &h), &[dst]) == 1;
        assert!(ok("/metrics"));
        assert!(ok("/metricsfoo"));
        assert!(!ok("/x/metrics"));
        assert!(ok("/exact"));
        assert!(!ok("/exact/more"));
        assert!(ok("/api/v12/items/7"));
        assert!(!ok("/api/vx/items"));
        assert!(ok("/deep/admin"));
        assert!(!ok("/other"));
    }

    #[test]
    fn simple_tails_take_the_fast_matcher_and_non_ascii_paths_fall_back() {
        let mut cache = RegexCache::default();
        let (literal, test) = path_test("/api/v[0-9]+/items/", &mut cache).unwrap();
        assert_eq!(literal, "/api/v");
        assert!(matches!(
            test,
            PathTest::RegexAfterPrefix { fast: Some(_), .. }
        ));
        let (_, complex) = path_test("/api/(v1|v2)/x", &mut cache).unwrap();
        assert!(matches!(
            complex,
            PathTest::RegexAfterPrefix { fast: None, .. }
        ));

        let mut a = Authorizer::new(AccessMode::Enforce);
        let src = a.account(&sa("a", "a"));
        let dst = a.account(&sa("b", "b"));
        let ids = [
            add(&mut a, "/api/v[0-9]+/items/", &[]),
            add(&mut a, "/x/.+é$", &[]),
        ];
        a.add_grant(dst, vec![src], &ids);
        let h = [];
        let ok = |p: &str| a.allowed(src, &req("GET", p, &h), &[dst]) == 1;
        assert!(ok("/api/v2/items/42"));
        assert!(ok("/api/v2/items/é"), "decided before the non-ASCII byte");
        assert!(
            !ok("/api/vé/items/"),
            "non-ASCII before the answer: regex fallback"
        );
        assert!(ok("/x/ééé"), "non-ASCII throughout: regex fallback");
        assert!(!ok("/x/é"));
    }

    #[test]
    fn header_regexes_must_match() {
        let mut a = Authorizer::new(AccessMode::Enforce);
        let src = a.account(&sa("a", "a"));
        let dst = a.account(&sa("b", "b"));
        let id = a.add_match(
            "/",
            CompiledMatch {
                path: PathTest::Prefix,
                methods: MethodSet::default(),
                headers: vec![HeaderCondition {
                    name: "user-agent".into(),
                    value: ValueCondition::Regex(compile_regex(".*android.*", true).unwrap()),
                }],
            },
        );
        a.add_grant(dst, vec![src], &[id]);
        let android: [Header; 1] = [("user-agent", b"x android y")];
        let ios: [Header; 1] = [("user-agent", b"ios")];
        assert_eq!(a.allowed(src, &req("GET", "/", &android), &[dst]), 1);
        assert_eq!(a.allowed(src, &req("GET", "/", &ios), &[dst]), 0);
        assert_eq!(a.allowed(src, &req("GET", "/", &[]), &[dst]), 0);
    }

    #[test]
    fn many_rules_only_matching_prefixes_are_evaluated() {
        let mut a = Authorizer::new(AccessMode::Enforce);
        let src = a.account(&sa("a", "a"));
        let dst = a.account(&sa("b", "b"));
        let ids: Vec<u32> = (0..5000)
            .map(|i| add(&mut a, &format!("/svc{i}/op"), &["GET"]))
            .collect();
        a.add_grant(dst, vec![src], &ids);
        let h = [];
        assert_eq!(a.allowed(src, &req("GET", "/svc4999/op/x", &h), &[dst]), 1);
        assert_eq!(a.allowed(src, &req("GET", "/svc5000/op", &h), &[dst]), 0);
    }
}
