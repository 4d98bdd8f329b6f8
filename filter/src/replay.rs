//! Same-request replay: a request that fails on its target is sent again, within the same
//! downstream request, to the next target the policy would choose for it — the decision
//! run again on the same request without the targets tried, so the caller's authorization,
//! the targets' health and the tier order hold as for a first attempt.
//!
//! The adapter keeps the request (its header map as read, its body up to a limit), and on a
//! failure the engine names the next target and the callout's headers; the target's answer
//! becomes the response.

use crate::config::ReplayConfig;
use crate::header_map::{as_str, Header};
use crate::matcher::MethodSet;
use crate::policy::ConfigError;

/// Most further targets a route may replay to.
pub const MAX_ATTEMPTS: u32 = 8;

/// A route's compiled replay settings.
#[derive(Debug, Clone)]
pub struct ReplayPolicy {
    /// Most further targets per request.
    pub attempts: u32,
    methods: MethodSet,
    /// Bit `s - 100` set ⇔ status `s` is a failure.
    statuses: [u64; 8],
    /// Time each replayed attempt may take.
    pub timeout_ms: u64,
    /// Largest request body kept for a replay.
    pub max_body_bytes: u32,
}

impl ReplayPolicy {
    /// Validates `config` (at field path `path`).
    pub fn compile(path: &str, config: &ReplayConfig) -> Result<Self, ConfigError> {
        let field = |f: &str, m: String| ConfigError {
            path: format!("{path}.{f}"),
            message: m,
        };
        if config.attempts == 0 || config.attempts > MAX_ATTEMPTS {
            return Err(field("attempts", format!("must be 1 to {MAX_ATTEMPTS}")));
        }
        if config.methods.is_empty() {
            return Err(field("methods", "must list at least one method".into()));
        }
        let methods = MethodSet::new(&config.methods).map_err(|m| field("methods", m))?;
        let mut statuses = [0u64; 8];
        for (i, &s) in config.statuses.iter().enumerate() {
            if !(100..600).contains(&s) {
                return Err(field(
                    &format!("statuses[{i}]"),
                    format!("{s} is not an HTTP status"),
                ));
            }
            let bit = (s - 100) as usize;
            statuses[bit / 64] |= 1 << (bit % 64);
        }
        if config.timeout_ms == 0 {
            return Err(field("timeout_ms", "must be positive".into()));
        }
        Ok(Self {
            attempts: config.attempts,
            methods,
            statuses,
            timeout_ms: config.timeout_ms,
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// Whether requests with `method` are replayed.
    pub fn replays(&self, method: &str) -> bool {
        self.methods.matches(method)
    }

    /// Whether `status` is a failure of the target.
    pub fn fails(&self, status: u32) -> bool {
        let Some(bit) = status.checked_sub(100).map(|b| b as usize) else {
            return false;
        };
        self.statuses
            .get(bit / 64)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }
}

/// One request's replay state, which the adapter keeps from the request headers until the
/// answer.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Route index.
    pub route: usize,
    /// Destination index.
    pub destination: usize,
    /// The request header map as the host handed it over (ABI bytes).
    headers: Vec<u8>,
    body: Vec<u8>,
    max_body: usize,
    /// The body outgrew the limit (or the request had trailers): not replayable.
    spoiled: bool,
    /// Targets tried so far, the first one included.
    pub tried: u64,
    /// Further targets this request may still be sent to.
    pub attempts_left: u32,
    /// The target the replay in flight was sent to.
    pub current: Option<usize>,
}

impl Replay {
    /// State for a request first sent to `target`.
    pub fn new(
        route: usize,
        destination: usize,
        target: usize,
        policy: &ReplayPolicy,
        headers: Vec<u8>,
    ) -> Self {
        Self {
            route,
            destination,
            headers,
            body: Vec::new(),
            max_body: policy.max_body_bytes as usize,
            spoiled: false,
            tried: 1 << target,
            attempts_left: policy.attempts,
            current: None,
        }
    }

    /// The request header map bytes.
    pub fn header_bytes(&self) -> &[u8] {
        &self.headers
    }

    /// Keeps a chunk of the request body (a body over the limit spoils the replay).
    pub fn buffer_body(&mut self, chunk: &[u8]) {
        if self.spoiled || self.body.len() + chunk.len() > self.max_body {
            self.spoiled = true;
            self.body = Vec::new();
        } else {
            self.body.extend_from_slice(chunk);
        }
    }

    /// The request cannot be sent again as it was (trailers are not kept).
    pub fn spoil(&mut self) {
        self.spoiled = true;
        self.body = Vec::new();
    }

    /// The request body, if the request can still be replayed.
    pub fn body(&self) -> Option<&[u8]> {
        (!self.spoiled).then_some(self.body.as_slice())
    }

    /// Whether another target may still be tried.
    pub fn can_replay(&self) -> bool {
        !self.spoiled && self.attempts_left > 0
    }
}

/// Request headers an upstream must not get from a replay: the connection's own, those the
/// host computes (`content-length` from the body), and Envoy's internal ones.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "content-length"
    ) || name.starts_with("x-envoy-")
}

/// The callout's headers: the saved request's, without hop-by-hop headers, `x-envoy-*` and
/// the filter's own (`own`), with `:path` and `:authority` as the target gets them; `None`
/// when a kept value is not UTF-8 (the host's call API takes text).
pub fn callout_headers(
    saved: &[Header<'_>],
    own: &[&str],
    path: &str,
    authority: &str,
) -> Option<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(saved.len());
    out.push((":path".to_owned(), path.to_owned()));
    out.push((":authority".to_owned(), authority.to_owned()));
    for &(name, value) in saved {
        if matches!(name, ":path" | ":authority" | "host")
            || hop_by_hop(name)
            || own.iter().any(|o| o.eq_ignore_ascii_case(name))
        {
            continue;
        }
        out.push((name.to_owned(), as_str(value)?.to_owned()));
    }
    Some(out)
}

/// Whether a header of a replayed target's response is passed on to the client (the host
/// sets `:status`, framing and connection headers of the reply itself).
pub fn answer_header(name: &str) -> bool {
    !name.starts_with(':') && !hop_by_hop(name)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn policy(json: &str) -> Result<ReplayPolicy, ConfigError> {
        let config: ReplayConfig = serde_json::from_str(json).unwrap();
        ReplayPolicy::compile("routes[0].replay", &config)
    }

    #[test]
    fn defaults_replay_idempotent_methods_on_gateway_errors() {
        let p = policy("{}").unwrap();
        assert_eq!(
            (p.attempts, p.timeout_ms, p.max_body_bytes),
            (2, 5000, 65536)
        );
        assert!(p.replays("GET") && p.replays("HEAD") && p.replays("OPTIONS"));
        assert!(!p.replays("POST") && !p.replays("PUT"));
        assert!(p.fails(502) && p.fails(503) && p.fails(504));
        assert!(!p.fails(500) && !p.fails(200) && !p.fails(99) && !p.fails(600));
        let p = policy(r#"{"methods": ["GET", "POST"], "statuses": [500, 599, 100]}"#).unwrap();
        assert!(p.replays("POST") && p.fails(500) && p.fails(599) && p.fails(100));
        assert!(!p.fails(503));
    }

    #[test]
    fn bad_settings_name_their_field() {
        let path = |json| policy(json).unwrap_err().path;
        assert_eq!(path(r#"{"attempts": 0}"#), "routes[0].replay.attempts");
        assert_eq!(path(r#"{"attempts": 9}"#), "routes[0].replay.attempts");
        assert_eq!(path(r#"{"methods": []}"#), "routes[0].replay.methods");
        assert_eq!(path(r#"{"methods": ["get"]}"#), "routes[0].replay.methods");
        assert_eq!(
            path(r#"{"statuses": [503, 700]}"#),
            "routes[0].replay.statuses[1]"
        );
        assert_eq!(path(r#"{"timeout_ms": 0}"#), "routes[0].replay.timeout_ms");
    }

    #[test]
    fn a_body_over_the_limit_or_trailers_spoil_the_replay() {
        let p = policy(r#"{"max_body_bytes": 4}"#).unwrap();
        let mut r = Replay::new(0, 0, 3, &p, vec![]);
        assert_eq!(r.tried, 0b1000);
        r.buffer_body(b"ab");
        r.buffer_body(b"cd");
        assert_eq!(r.body(), Some(&b"abcd"[..]));
        assert!(r.can_replay());
        r.buffer_body(b"e");
        assert_eq!(r.body(), None);
        assert!(!r.can_replay());
        let mut r = Replay::new(0, 0, 0, &p, vec![]);
        r.spoil();
        assert!(!r.can_replay());
    }

    #[test]
    fn callouts_carry_the_targets_path_and_authority_and_nothing_hop_by_hop() {
        let saved: [Header; 9] = [
            (":method", b"GET"),
            (":path", b"/a"),
            (":authority", b"svc"),
            (":scheme", b"https"),
            ("content-length", b"0"),
            ("x-envoy-attempt-count", b"1"),
            ("x-xcluster-cluster", b"a"),
            ("connection", b"close"),
            ("x-request-id", b"r1"),
        ];
        let out = callout_headers(&saved, &["x-xcluster-cluster"], "/p/a", "b.remote").unwrap();
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [":path", ":authority", ":method", ":scheme", "x-request-id"]
        );
        assert_eq!(out[0].1, "/p/a");
        assert_eq!(out[1].1, "b.remote");
        let binary: [Header; 1] = [("x-bin", &[0xff])];
        assert_eq!(callout_headers(&binary, &[], "/", "a"), None);
        assert!(answer_header("content-type") && answer_header("x-served-by"));
        assert!(!answer_header(":status") && !answer_header("transfer-encoding"));
    }
}
