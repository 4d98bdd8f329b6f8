//! The routing decision for one request: match a route, identify and authorize the
//! caller per target, drop ejected targets, apply the policy and pick a target; and the
//! decision header that explains it.

use std::fmt::Write as _;

use crate::authorizer::DenyReason;
use crate::balancer::{Chooser, Rng};
use crate::config::{AccessMode, StickyConfig, Unmatched};
use crate::header_map::as_str;
use crate::identity;
use crate::matcher::Request;
use crate::path::PathIssue;
use crate::policy::Policy;

/// How access control treated a forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Permissive mode: not evaluated.
    Permissive,
    /// A TrafficTarget allowed it.
    Allowed,
    /// Dry-run mode: it would have been denied.
    DryRunDenied(DenyReason),
}

impl Access {
    /// Name used in the decision header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permissive => "permissive",
            Self::Allowed => "allowed",
            Self::DryRunDenied(_) => "dry-run-denied",
        }
    }
}

/// Why the filter answered itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyReason {
    /// No route matched and `unmatched` is `deny` (404).
    NoRoute,
    /// Access control found no target for the caller (403).
    Denied(DenyReason),
    /// No target is available under the policy (503).
    NoHealthyTarget,
    /// The filter could not decide (500): the host failed it or a callback re-entered.
    InternalError,
    /// The path is not in normal form and a route would take it (400).
    PathNotNormal(PathIssue),
}

impl ReplyReason {
    /// HTTP status of the local reply.
    pub fn status(self) -> u32 {
        match self {
            Self::NoRoute => 404,
            Self::Denied(_) => 403,
            Self::NoHealthyTarget => 503,
            Self::InternalError => 500,
            Self::PathNotNormal(_) => 400,
        }
    }

    /// Envoy response code details of the local reply (`%RESPONSE_CODE_DETAILS%` in
    /// access logs): why, without naming the caller or the rules.
    pub fn details(self) -> &'static str {
        match self {
            Self::NoRoute => "xcluster_no_route",
            Self::Denied(DenyReason::NoIdentity) => "xcluster_denied_no_identity",
            Self::Denied(DenyReason::NotAllowed) => "xcluster_denied_not_allowed",
            Self::NoHealthyTarget => "xcluster_no_healthy_target",
            Self::InternalError => "xcluster_internal_error",
            Self::PathNotNormal(_) => "xcluster_path_not_normalized",
        }
    }

    /// The gRPC status of the local reply to a gRPC request.
    pub fn grpc_status(self) -> u32 {
        match self {
            Self::NoRoute => 12,         // UNIMPLEMENTED
            Self::Denied(_) => 7,        // PERMISSION_DENIED
            Self::NoHealthyTarget => 14, // UNAVAILABLE
            Self::InternalError => 13,   // INTERNAL
            Self::PathNotNormal(_) => 3, // INVALID_ARGUMENT
        }
    }

    /// Body of the local reply: never any policy detail.
    pub fn body(self) -> &'static str {
        match self {
            Self::NoRoute => "no route",
            Self::Denied(_) => "access denied",
            Self::NoHealthyTarget => "no healthy target",
            Self::InternalError => "internal error",
            Self::PathNotNormal(_) => "bad request",
        }
    }
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No route and `unmatched: pass`: leave the request alone.
    Pass,
    /// Answer locally.
    Reply {
        /// Why.
        reason: ReplyReason,
        /// Matched route and destination, if any.
        route: Option<(usize, usize)>,
    },
    /// Send to a target.
    Forward {
        /// Route index.
        route: usize,
        /// Destination index.
        destination: usize,
        /// Target index in the destination.
        target: usize,
        /// Access treatment.
        access: Access,
    },
}

/// What [`decide`] needs from the host besides the request.
pub trait Host {
    /// The peer certificate's URI SAN (`connection.uri_san_peer_certificate`); read at
    /// most once per request, and kept by the host (the deny log line names the caller).
    fn peer_uri_san(&mut self) -> Option<&[u8]>;
    /// Bit mask of ejected targets of destination `d`.
    fn ejected(&self, d: usize) -> u64;
    /// The weights of destination `d`'s targets in percent of their own, when some are
    /// on probation (coming back after an ejection); `None` when none is.
    fn ramp(&self, _d: usize) -> Option<&[u8]> {
        None
    }
}

/// Decides what to do with a request.
pub fn decide(policy: &Policy, req: &Request<'_>, host: &mut impl Host, rng: &mut Rng) -> Decision {
    decide_excluding(policy, req, host, rng, 0)
}

/// [`decide`], with the targets in the bit mask `exclude` out of the running (those a
/// replayed request was sent to already).
pub fn decide_excluding(
    policy: &Policy,
    req: &Request<'_>,
    host: &mut impl Host,
    rng: &mut Rng,
    exclude: u64,
) -> Decision {
    let Some(route) = policy.routes.find(req) else {
        return match policy.unmatched {
            Unmatched::Pass => Decision::Pass,
            Unmatched::Deny => Decision::Reply {
                reason: ReplyReason::NoRoute,
                route: None,
            },
        };
    };
    let d = policy.routes.routes()[route].destination;
    let dest = &policy.destinations[d];
    let all = dest.balancer.all();

    let (eligible, access) = match policy.authorizer.mode() {
        AccessMode::Permissive => (all, Access::Permissive),
        mode => {
            let allowed = authorize(policy, req, host, &dest.accounts);
            match (mode, allowed) {
                (_, Ok(mask)) if mask != 0 => (mask, Access::Allowed),
                (AccessMode::DryRun, Ok(_)) => (all, Access::DryRunDenied(DenyReason::NotAllowed)),
                (AccessMode::DryRun, Err(reason)) => (all, Access::DryRunDenied(reason)),
                (_, Ok(_)) => return deny(route, d, DenyReason::NotAllowed),
                (_, Err(reason)) => return deny(route, d, reason),
            }
        }
    };

    let available = eligible & !host.ejected(d) & !exclude;
    let sticky_key = dest.sticky.as_ref().and_then(|s| sticky_value(req, s));
    let chooser = match sticky_key {
        Some(key) => Chooser::Sticky(key),
        None => Chooser::Random(rng),
    };
    match dest.balancer.choose(available, host.ramp(d), chooser) {
        Some(target) => Decision::Forward {
            route,
            destination: d,
            target,
            access,
        },
        None => Decision::Reply {
            reason: ReplyReason::NoHealthyTarget,
            route: Some((route, d)),
        },
    }
}

fn deny(route: usize, d: usize, reason: DenyReason) -> Decision {
    Decision::Reply {
        reason: ReplyReason::Denied(reason),
        route: Some((route, d)),
    }
}

/// The targets (bit mask) the caller may reach, or why there is no caller.
fn authorize(
    policy: &Policy,
    req: &Request<'_>,
    host: &mut impl Host,
    accounts: &[u32],
) -> Result<u64, DenyReason> {
    let raw: &[u8] = match &policy.identity.trusted_header {
        Some(h) => req.header(h).ok_or(DenyReason::NoIdentity)?,
        None => host.peer_uri_san().ok_or(DenyReason::NoIdentity)?,
    };
    let raw = as_str(raw).ok_or(DenyReason::NoIdentity)?;
    let id = identity::parse(raw).ok_or(DenyReason::NoIdentity)?;
    let domains = &policy.identity.trust_domains;
    if !domains.is_empty() && !domains.iter().any(|d| d == id.trust_domain) {
        return Err(DenyReason::NoIdentity);
    }
    Ok(policy
        .authorizer
        .lookup(id.namespace, id.service_account)
        .map_or(0, |caller| policy.authorizer.allowed(caller, req, accounts)))
}

/// The sticky key of a request, if it carries one.
fn sticky_value<'a>(req: &Request<'a>, sticky: &StickyConfig) -> Option<&'a [u8]> {
    match sticky {
        StickyConfig::Header(h) => req.header(h).filter(|v| !v.is_empty()),
        StickyConfig::Cookie(name) => req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .find_map(|(_, v)| cookie_value(v, name.as_bytes())),
    }
}

/// The value of cookie `name` in a `cookie` header value.
pub fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (pair[..eq].trim_ascii() == name)
            .then(|| pair[eq + 1..].trim_ascii())
            .filter(|v| !v.is_empty())
    })
}

/// The decision header value for a decision, if one is to be sent.
pub fn describe(policy: &Policy, decision: &Decision) -> Option<String> {
    let mut out = String::new();
    let route = match *decision {
        Decision::Pass => return None,
        Decision::Reply { route, .. } => route,
        Decision::Forward {
            route, destination, ..
        } => Some((route, destination)),
    };
    if let Some((r, d)) = route {
        let _ = write!(
            out,
            "route={}; destination={}; ",
            policy.routes.routes()[r].name,
            policy.destinations[d].name
        );
    }
    let _ = match *decision {
        Decision::Forward {
            destination,
            target,
            access,
            ..
        } => {
            let dest = &policy.destinations[destination];
            write!(
                out,
                "target={}; tier={}; access={}",
                dest.targets[target].name,
                dest.balancer.tier(target),
                access.as_str()
            )
        }
        Decision::Reply { reason, .. } => {
            let result = match reason {
                ReplyReason::NoRoute => "no-route",
                ReplyReason::Denied(_) => "denied",
                ReplyReason::NoHealthyTarget => "no-healthy-target",
                ReplyReason::InternalError => "internal-error",
                ReplyReason::PathNotNormal(_) => "path-not-normalized",
            };
            write!(out, "target=-; result={result}")
        }
        Decision::Pass => Ok(()),
    };
    Some(out)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::header_map::Header;

    struct FakeHost {
        san: Option<&'static str>,
        ejected: u64,
        san_reads: u32,
    }

    impl Host for FakeHost {
        fn peer_uri_san(&mut self) -> Option<&[u8]> {
            self.san_reads += 1;
            self.san.map(str::as_bytes)
        }
        fn ejected(&self, _: usize) -> u64 {
            self.ejected
        }
    }

    fn host(san: Option<&'static str>) -> FakeHost {
        FakeHost {
            san,
            ejected: 0,
            san_reads: 0,
        }
    }

    const SEED_002: &str = r#"{
      "version": 1,
      "local": {"cluster": "cluster-2"},
      "access": {
        "mode": "enforce",
        "route_groups": [{"name": "httpbin/httpbin-route",
          "matches": [{"name": "all", "path_regex": "/", "methods": ["GET"]}]}],
        "traffic_targets": [{"name": "httpbin/curl-to-httpbin",
          "destination": {"namespace": "httpbin", "name": "default"},
          "sources": [{"namespace": "curl", "name": "curl"}],
          "rules": [{"route_group": "httpbin/httpbin-route", "matches": ["all"]}]}]
      },
      "routes": [{"name": "httpbin", "destination": "httpbin"}],
      "destinations": [{
        "name": "httpbin",
        "hosts": ["httpbin.httpbin", "httpbin.httpbin.svc.cluster.local"],
        "policy": "ActiveActive",
        "targets": [
          {"name": "cluster-1", "cluster": "cluster-1", "envoy_cluster": "c1",
           "service_account": {"namespace": "httpbin", "name": "httpbin"},
           "path_prefix": "/cluster-1/httpbin-mesh"},
          {"name": "cluster-2", "cluster": "cluster-2", "envoy_cluster": "c2",
           "service_account": {"namespace": "httpbin", "name": "default"}},
          {"name": "cluster-3", "cluster": "cluster-3", "envoy_cluster": "c3",
           "service_account": {"namespace": "httpbin", "name": "httpbin"}}
        ]
      }]
    }"#;

    fn policy(json: &str) -> Policy {
        Policy::from_json(json.as_bytes(), &Default::default()).unwrap()
    }

    fn get<'a>(host: &'a str, path: &'a str, headers: &'a [Header<'a>]) -> Request<'a> {
        Request {
            method: "GET",
            host,
            path,
            headers,
        }
    }

    #[test]
    fn seed_002_caller_reaches_only_the_default_service_account() {
        let p = policy(SEED_002);
        let mut rng = Rng::new(1);
        let mut h = host(Some("spiffe://cluster.local/ns/curl/sa/curl"));
        for _ in 0..50 {
            let d = decide(&p, &get("httpbin.httpbin", "/", &[]), &mut h, &mut rng);
            assert_eq!(
                d,
                Decision::Forward {
                    route: 0,
                    destination: 0,
                    target: 1,
                    access: Access::Allowed
                }
            );
        }
    }

    #[test]
    fn unknown_or_missing_caller_is_denied() {
        let p = policy(SEED_002);
        let mut rng = Rng::new(1);
        let req = get("httpbin.httpbin", "/", &[]);
        let denied = |r| Decision::Reply {
            reason: ReplyReason::Denied(r),
            route: Some((0, 0)),
        };
        let mut stranger = host(Some("spiffe://cluster.local/ns/x/sa/y"));
        assert_eq!(
            decide(&p, &req, &mut stranger, &mut rng),
            denied(DenyReason::NotAllowed)
        );
        let mut anonymous = host(None);
        assert_eq!(
            decide(&p, &req, &mut anonymous, &mut rng),
            denied(DenyReason::NoIdentity)
        );
        let mut garbage = host(Some("not an identity"));
        assert_eq!(
            decide(&p, &req, &mut garbage, &mut rng),
            denied(DenyReason::NoIdentity)
        );
        let post = Request {
            method: "POST",
            ..req
        };
        let mut curl = host(Some("spiffe://cluster.local/ns/curl/sa/curl"));
        assert_eq!(
            decide(&p, &post, &mut curl, &mut rng),
            denied(DenyReason::NotAllowed)
        );
    }

    #[test]
    fn dry_run_reports_but_forwards() {
        let p = policy(&SEED_002.replace("\"enforce\"", "\"dry-run\""));
        let mut rng = Rng::new(1);
        let mut h = host(None);
        let d = decide(&p, &get("httpbin.httpbin", "/", &[]), &mut h, &mut rng);
        assert!(matches!(
            d,
            Decision::Forward {
                access: Access::DryRunDenied(DenyReason::NoIdentity),
                ..
            }
        ));
    }

    #[test]
    fn permissive_never_reads_identity() {
        let p = policy(&SEED_002.replace("\"enforce\"", "\"permissive\""));
        let mut rng = Rng::new(1);
        let mut h = host(None);
        let mut seen = 0u64;
        for _ in 0..100 {
            let mut buf = String::new();
            let req = Request::new("GET", "HTTPBIN.httpbin:8080", "/", &[], &mut buf);
            if let Decision::Forward { target, .. } = decide(&p, &req, &mut h, &mut rng) {
                seen |= 1 << target;
            }
        }
        assert_eq!(seen, 0b111);
        assert_eq!(h.san_reads, 0);
    }

    #[test]
    fn ejected_targets_are_skipped_and_none_left_is_503() {
        let p = policy(&SEED_002.replace("\"enforce\"", "\"permissive\""));
        let mut rng = Rng::new(1);
        let mut h = host(None);
        h.ejected = 0b011;
        for _ in 0..20 {
            assert!(matches!(
                decide(&p, &get("httpbin.httpbin", "/", &[]), &mut h, &mut rng),
                Decision::Forward { target: 2, .. }
            ));
        }
        h.ejected = 0b111;
        assert_eq!(
            decide(&p, &get("httpbin.httpbin", "/", &[]), &mut h, &mut rng),
            Decision::Reply {
                reason: ReplyReason::NoHealthyTarget,
                route: Some((0, 0))
            }
        );
    }

    #[test]
    fn trusted_header_identity() {
        let json = SEED_002.replace(
            "\"local\"",
            "\"identity\": {\"trusted_header\": \"x-client-id\", \"trust_domains\": [\"cluster.local\"]}, \"local\"",
        );
        let p = policy(&json);
        let mut rng = Rng::new(1);
        let mut h = host(Some("spiffe://cluster.local/ns/curl/sa/curl"));
        let ok: [Header; 1] = [("x-client-id", b"curl.curl.cluster.local")];
        assert!(matches!(
            decide(&p, &get("httpbin.httpbin", "/", &ok), &mut h, &mut rng),
            Decision::Forward { target: 1, .. }
        ));
        let foreign: [Header; 1] = [("x-client-id", b"spiffe://evil.org/ns/curl/sa/curl")];
        assert!(matches!(
            decide(&p, &get("httpbin.httpbin", "/", &foreign), &mut h, &mut rng),
            Decision::Reply { .. }
        ));
        assert!(
            matches!(
                decide(&p, &get("httpbin.httpbin", "/", &[]), &mut h, &mut rng),
                Decision::Reply { .. }
            ),
            "the peer certificate is not used when a trusted header is configured"
        );
        assert_eq!(h.san_reads, 0);
    }

    #[test]
    fn unmatched_pass_or_deny() {
        let p = policy(SEED_002);
        let mut rng = Rng::new(1);
        let mut h = host(None);
        assert_eq!(
            decide(&p, &get("other", "/", &[]), &mut h, &mut rng),
            Decision::Pass
        );
        let p = policy(&SEED_002.replace(
            "\"version\": 1,",
            "\"version\": 1, \"unmatched\": \"deny\",",
        ));
        assert_eq!(
            decide(&p, &get("other", "/", &[]), &mut h, &mut rng),
            Decision::Reply {
                reason: ReplyReason::NoRoute,
                route: None
            }
        );
    }

    #[test]
    fn sticky_cookie_keeps_a_user_on_one_target() {
        let json = SEED_002.replace("\"enforce\"", "\"permissive\"").replace(
            "\"policy\": \"ActiveActive\",",
            "\"policy\": \"ActiveActive\", \"sticky\": {\"cookie\": \"user\"},",
        );
        let p = policy(&json);
        let mut h = host(None);
        let mut spread = 0u64;
        for u in 0..30 {
            let cookie = format!("a=b; user=u{u}; c=d");
            let headers: [Header; 1] = [("cookie", cookie.as_bytes())];
            let mut first = None;
            for seed in 0..10 {
                let mut rng = Rng::new(seed);
                let Decision::Forward { target, .. } =
                    decide(&p, &get("httpbin.httpbin", "/", &headers), &mut h, &mut rng)
                else {
                    panic!("not forwarded");
                };
                assert_eq!(*first.get_or_insert(target), target);
                spread |= 1 << target;
            }
        }
        assert_eq!(spread, 0b111, "different users spread over targets");
    }

    #[test]
    fn cookie_parsing() {
        assert_eq!(
            cookie_value(b"a=1; user=bob ;x=", b"user"),
            Some(&b"bob"[..])
        );
        assert_eq!(cookie_value(b"a=1", b"user"), None);
        assert_eq!(cookie_value(b"user=", b"user"), None);
        assert_eq!(cookie_value(b"", b"user"), None);
    }

    #[test]
    fn decision_header_text() {
        let p = policy(SEED_002);
        let d = Decision::Forward {
            route: 0,
            destination: 0,
            target: 1,
            access: Access::Allowed,
        };
        assert_eq!(
            describe(&p, &d).unwrap(),
            "route=httpbin; destination=httpbin; target=cluster-2; tier=0; access=allowed"
        );
        assert_eq!(describe(&p, &Decision::Pass), None);
    }
}
