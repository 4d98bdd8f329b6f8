//! The filter's logic per callback, as plain Rust. [`Engine`] owns the compiled policy,
//! the outlier state and the random generator, and answers each callback with an outcome
//! (see [`crate::outcome`]) that the adapter executes.
//!
//! One request: [`Engine::on_request_headers`] strips the filter's own headers, builds the
//! [`Request`] view, runs [`decide`] and turns the decision into header operations or a
//! local reply, stats, a log event and an [`Observe`]; [`Engine::on_response_headers`]
//! feeds the response to outlier detection and adds the decision header.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;

use log::Level;

use crate::authorizer::DenyReason;
use crate::balancer::Rng;
use crate::config::PathNormalization;
use crate::decision::{decide, decide_excluding, describe, Access, Decision, Host, ReplyReason};
use crate::header_map::{as_str, header, parse_header_map, Header};
use crate::health::{self, Outliers, SharedStore};
use crate::matcher::{path_without_query, Request};
use crate::outcome::{
    Caller, HeaderOp, LocalReply, LogEvent, Message, Observe, ProbeCall, ProbeResult, ReplayCall,
    ReplayResult, RequestOutcome, ResponseOutcome, TickOutcome,
};
use crate::path::{self, PathIssue};
use crate::policy::Policy;
use crate::probe::{ActiveHealth, Lease, Probe};
use crate::replay::{self, Replay};
use crate::stats::{DestinationStat, GlobalStat, Stat, StatLayout, TargetStat};

/// The caller's mTLS identity, read from the host only when access control needs it.
pub trait Peer {
    /// The peer certificate's URI SAN (`connection.uri_san_peer_certificate`). The host
    /// reads it at most once per request and returns the same bytes on later calls.
    fn uri_san(&mut self) -> Option<&[u8]>;
}

/// The filter's state for one plugin config, shared by the VM's streams.
#[derive(Debug)]
pub struct Engine {
    policy: Policy,
    stats: StatLayout,
    outliers: RefCell<Outliers>,
    /// Per destination, the ejected-targets gauge as last set.
    ejected_gauges: RefCell<Vec<u32>>,
    /// Per destination, the weights (percent) of its targets when some are on probation,
    /// as of the last tick.
    ramps: RefCell<Vec<Option<Vec<u8>>>>,
    /// Active health checks.
    health: RefCell<ActiveHealth>,
    /// This worker's token for the prober's lease.
    token: u64,
    rng: Cell<Rng>,
}

impl Engine {
    /// An engine for `policy`, its random generator seeded with `seed`.
    pub fn new(policy: Policy, seed: u64) -> Self {
        Self {
            stats: StatLayout::new(&policy),
            outliers: RefCell::new(Outliers::new(&policy.destinations)),
            ejected_gauges: RefCell::new(vec![0; policy.destinations.len()]),
            ramps: RefCell::new(vec![None; policy.destinations.len()]),
            health: RefCell::new(ActiveHealth::new(&policy.destinations)),
            token: Rng::new(seed ^ 0x5eed_1ea5e).next_u64() | 1,
            rng: Cell::new(Rng::new(seed)),
            policy,
        }
    }

    /// The compiled policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The layout of the policy's stats (the adapter defines them in this order).
    pub fn stats(&self) -> &StatLayout {
        &self.stats
    }

    /// The log line of a configure that succeeded.
    pub fn configured(&self) -> LogEvent<'_> {
        LogEvent {
            level: Level::Info,
            message: Message::Configured {
                routes: self.policy.routes.routes().len(),
                destinations: self.policy.destinations.len(),
                mode: self.policy.authorizer.mode(),
            },
        }
    }

    /// Adopts other VMs' ejections and ends expired ones, and the health checks' results
    /// (at configure and on every tick); the outcome sets the gauges that changed and, on
    /// the one worker that holds the prober's lease, sends the probes that are due.
    pub fn on_tick(&self, store: &impl SharedStore, now_ms: u64) -> TickOutcome<'_> {
        self.refresh(store, now_ms, true)
    }

    /// What [`Self::on_tick`] does but probing: at configure, on a VM that may be Envoy's
    /// throw-away canary (which never ticks, and must not hold the prober's lease).
    pub fn on_configure(&self, store: &impl SharedStore, now_ms: u64) -> TickOutcome<'_> {
        self.refresh(store, now_ms, false)
    }

    fn refresh(&self, store: &impl SharedStore, now_ms: u64, probe: bool) -> TickOutcome<'_> {
        let mut out = TickOutcome::default();
        if let Ok(mut active) = self.health.try_borrow_mut() {
            if active.any() {
                active.refresh(store);
                if probe && Lease::hold(store, self.token, now_ms) {
                    for probe in active.due(now_ms) {
                        out.probes.extend(self.probe_call(&active, probe));
                    }
                }
            }
        }
        if let Ok(mut outliers) = self.outliers.try_borrow_mut() {
            outliers.refresh(store, now_ms);
            for d in 0..self.policy.destinations.len() {
                out.gauges.extend(self.ejected_gauge(&outliers, d));
            }
            if let Ok(mut ramps) = self.ramps.try_borrow_mut() {
                for (d, ramp) in ramps.iter_mut().enumerate() {
                    *ramp = self.ramp(&outliers, d, now_ms);
                }
            }
        }
        out
    }

    /// A probe's callout: `GET` the check's path (after the target's `path_prefix`) on the
    /// target's Envoy cluster, with its `authority` (else, as Envoy, the cluster's name).
    fn probe_call(&self, health: &ActiveHealth, probe: Probe) -> Option<ProbeCall<'_>> {
        let check = health.check(probe.destination)?;
        let t = self
            .policy
            .destinations
            .get(probe.destination)?
            .targets
            .get(probe.target)?;
        let path = match &t.path_prefix {
            Some(prefix) => join_path(prefix, &check.path),
            None => check.path.clone(),
        };
        let authority = t
            .authority
            .clone()
            .unwrap_or_else(|| t.envoy_cluster.clone());
        Some(ProbeCall {
            probe,
            cluster: &t.envoy_cluster,
            headers: vec![
                (":method", "GET".to_owned()),
                (":path", path),
                (":authority", authority),
                ("user-agent", "xcluster-health-check".to_owned()),
            ],
            timeout_ms: check.timeout_ms,
        })
    }

    /// The prober records a probe's answer (`None`: no answer): a failed probe is counted,
    /// and a change of health is shared with every worker, counted and logged.
    pub fn on_probe_response(
        &self,
        probe: Probe,
        status: Option<u32>,
        store: &impl SharedStore,
        now_ms: u64,
    ) -> ProbeResult<'_> {
        let mut out = ProbeResult::default();
        let Ok(mut health) = self.health.try_borrow_mut() else {
            return out;
        };
        let (d, t) = (probe.destination as u32, probe.target as u32);
        if !health
            .check(probe.destination)
            .is_some_and(|c| c.passes(status))
        {
            out.stats
                .push(Stat::Target(TargetStat::HealthCheckFailed, d, t));
        }
        let Some(change) = health.record(probe, status, store, now_ms) else {
            return out;
        };
        drop(health);
        // A target healthy again starts its probation now, not at the next tick.
        if let (Ok(outliers), Ok(mut ramps)) =
            (self.outliers.try_borrow(), self.ramps.try_borrow_mut())
        {
            if let Some(ramp) = ramps.get_mut(probe.destination) {
                *ramp = self.ramp(&outliers, probe.destination, now_ms);
            }
        }
        let stat = if change.healthy {
            TargetStat::BecameHealthy
        } else {
            TargetStat::BecameUnhealthy
        };
        out.stats.push(Stat::Target(stat, d, t));
        let dest = &self.policy.destinations[probe.destination];
        out.log = Some(LogEvent {
            level: if change.healthy {
                Level::Info
            } else {
                Level::Warn
            },
            message: Message::HealthChanged {
                target: &dest.targets[probe.target].name,
                destination: &dest.name,
                healthy: change.healthy,
            },
        });
        out
    }

    /// Destination `d`'s target weights in percent at `now_ms`, if some target is on
    /// probation: within `slow_start.window_ms` after its ejection ended or it became
    /// healthy again, ramping linearly from `min_weight_percent`.
    fn ramp(&self, outliers: &Outliers, d: usize, now_ms: u64) -> Option<Vec<u8>> {
        let slow = self.policy.destinations.get(d)?.slow_start.as_ref()?;
        let active = self.health.try_borrow().ok()?;
        let targets = self.policy.destinations[d].targets.len();
        let mut returned: Vec<u64> = outliers.ejection_ends(d).collect();
        returned.resize(targets, 0);
        for (r, since) in returned.iter_mut().zip(active.healthy_since(d)) {
            *r = (*r).max(since);
        }
        let ramp: Vec<u8> = returned
            .into_iter()
            .map(|end| {
                let since = now_ms
                    .checked_sub(end)
                    .filter(|&s| end > 0 && s < slow.window_ms);
                since.map_or(100, |s| {
                    let pct = (100 * s / slow.window_ms).max(u64::from(slow.min_weight_percent));
                    pct.min(100) as u8
                })
            })
            .collect();
        ramp.iter().any(|&p| p < 100).then_some(ramp)
    }

    /// The weight, in percent, of target `t` of destination `d` if it is on probation.
    fn probation(&self, d: usize, t: usize) -> Option<u8> {
        let ramps = self.ramps.try_borrow().ok()?;
        let pct = *ramps.get(d)?.as_ref()?.get(t)?;
        (pct < 100).then_some(pct)
    }

    /// Whether target `t` of destination `d` is on probation.
    fn on_probation(&self, d: usize, t: usize) -> bool {
        self.probation(d, t).is_some()
    }

    /// The ejected-targets gauge of destination `d`, if it changed since last set.
    fn ejected_gauge(&self, outliers: &Outliers, d: usize) -> Option<(Stat, u64)> {
        let mut reported = self.ejected_gauges.try_borrow_mut().ok()?;
        let now = outliers.ejected(d).count_ones();
        let last = reported.get_mut(d)?;
        (*last != now).then(|| {
            *last = now;
            let stat = Stat::Destination(DestinationStat::EjectedTargets, d as u32);
            (stat, u64::from(now))
        })
    }

    /// The outcome of a request whose headers the host could not hand over.
    pub fn on_unreadable_request(&self) -> RequestOutcome<'_> {
        self.internal_error("request headers unavailable")
    }

    /// Decides what to do with a request from its headers (names lower-case).
    pub fn on_request_headers<'a>(
        &'a self,
        headers: &'a [Header<'a>],
        peer: &'a mut impl Peer,
    ) -> RequestOutcome<'a> {
        let policy = &self.policy;
        let mut out = RequestOutcome::default();
        let line = RequestLine::read(headers, policy);
        if line.cluster_header {
            out.headers.push(HeaderOp::Remove(&policy.cluster_header));
        }
        if let (true, Some(h)) = (line.decision_header, &policy.decision_header) {
            out.headers.push(HeaderOp::Remove(h));
        }
        // The path decided on: the request's, or in `normalize` mode its resolved form.
        let raw = line.path;
        let (path, path_len, issue) = self.resolve_path(raw);
        let rewrite_path = matches!(path, Cow::Owned(_));
        let path = path.as_ref();
        let mut host_buf = String::new();
        let without_query = path.get(..path_len).unwrap_or(path);
        let req = Request::new(
            line.method,
            line.authority,
            without_query,
            headers,
            &mut host_buf,
        );
        if let Some(issue) = issue {
            if let Some(reply) = self.reject_path(&req, raw, issue, headers, &mut out) {
                out.reply = Some(reply);
                return out;
            }
        }
        let (Ok(outliers), Ok(active), Ok(ramps)) = (
            self.outliers.try_borrow(),
            self.health.try_borrow(),
            self.ramps.try_borrow(),
        ) else {
            let mut err = self.internal_error("outlier state in use");
            err.headers = out.headers;
            return err;
        };
        let mut rng = self.rng.replace(Rng::new(0));
        let decision = decide(
            policy,
            &req,
            &mut DecideHost {
                peer: &mut *peer,
                outliers: &outliers,
                health: &active,
                ramps: &ramps,
            },
            &mut rng,
        );
        self.rng.set(rng);
        match decision {
            Decision::Pass => out.stats.push(Stat::Global(GlobalStat::Unmatched)),
            Decision::Forward {
                route,
                destination,
                target,
                access,
            } => {
                let dest = &policy.destinations[destination];
                let t = &dest.targets[target];
                out.headers.push(HeaderOp::Set(
                    &policy.cluster_header,
                    Cow::Borrowed(&t.envoy_cluster),
                ));
                if let Some(authority) = &t.authority {
                    out.headers
                        .push(HeaderOp::Set(":authority", Cow::Borrowed(authority)));
                }
                match &t.path_prefix {
                    Some(prefix) => out
                        .headers
                        .push(HeaderOp::Set(":path", Cow::Owned(join_path(prefix, path)))),
                    None if rewrite_path => out
                        .headers
                        .push(HeaderOp::Set(":path", Cow::Owned(path.to_owned()))),
                    None => {}
                }
                // Envoy picks the route before this filter runs: make it look again (or
                // leave that to a host that does it on a header change).
                out.clear_route_cache = policy.clear_route_cache;
                let (d, t) = (destination as u32, target as u32);
                out.stats.push(Stat::Target(TargetStat::Routed, d, t));
                if let Access::DryRunDenied(reason) = access {
                    let stat = match reason {
                        DenyReason::NoIdentity => DestinationStat::DryRunNoIdentity,
                        DenyReason::NotAllowed => DestinationStat::DryRunNotAllowed,
                    };
                    out.stats.push(Stat::Destination(stat, d));
                    out.log = Some(LogEvent {
                        level: Level::Info,
                        message: Message::DryRunDenied {
                            destination: &dest.name,
                            caller: Caller(caller(policy, headers, peer)),
                            reason,
                        },
                    });
                }
                let replay = policy.replays[route]
                    .as_ref()
                    .is_some_and(|r| r.replays(line.method));
                out.observe = Some(Observe {
                    decision,
                    status: dest.outlier_detection.is_some() || replay,
                    replay,
                });
            }
            Decision::Reply { reason, route } => {
                if let Some((r, d)) = route {
                    let stat = match reason {
                        ReplyReason::Denied(DenyReason::NoIdentity) => {
                            Some(DestinationStat::DeniedNoIdentity)
                        }
                        ReplyReason::Denied(DenyReason::NotAllowed) => {
                            Some(DestinationStat::DeniedNotAllowed)
                        }
                        ReplyReason::NoHealthyTarget => Some(DestinationStat::NoHealthy),
                        ReplyReason::NoRoute
                        | ReplyReason::InternalError
                        | ReplyReason::PathNotNormal(_) => None,
                    };
                    if let Some(stat) = stat {
                        out.stats.push(Stat::Destination(stat, d as u32));
                    }
                    if let ReplyReason::Denied(why) = reason {
                        out.log = Some(LogEvent {
                            level: Level::Debug,
                            message: Message::Denied {
                                route: &policy.routes.routes()[r].name,
                                destination: &policy.destinations[d].name,
                                caller: Caller(caller(policy, headers, peer)),
                                reason: why,
                            },
                        });
                    }
                }
                out.reply = Some(self.reply(reason, &decision, headers));
            }
        }
        out
    }

    /// Feeds a forwarded request's response to outlier detection (`status` is read only
    /// when [`Observe::status`] asks; `flags` is Envoy's `response.flags`, read lazily) and
    /// adds the decision header.
    ///
    /// `replay` is the request's replay state, if it is kept: a failure it may be replayed
    /// on sets [`ResponseOutcome::replay`] (the decision header is then for the answer).
    pub fn on_response_headers(
        &self,
        observe: &Observe,
        status: u32,
        flags: impl FnOnce() -> u64,
        store: &impl SharedStore,
        now_ms: impl FnOnce() -> u64,
        replay: Option<&Replay>,
    ) -> ResponseOutcome<'_> {
        let mut out = ResponseOutcome::default();
        let Decision::Forward {
            route,
            destination,
            target,
            ..
        } = observe.decision
        else {
            return out;
        };
        out.replay = replay.is_some_and(Replay::can_replay)
            && self.policy.replays[route]
                .as_ref()
                .is_some_and(|p| p.fails(status));
        if self.policy.destinations[destination]
            .outlier_detection
            .is_some()
        {
            let outcome = health::classify(status, flags);
            match self.outliers.try_borrow_mut() {
                Ok(mut outliers) => {
                    let probation = self.on_probation(destination, target);
                    if outliers.observe(destination, target, outcome, probation, store, now_ms) {
                        out.gauge = self.ejected_gauge(&outliers, destination);
                        let dest = &self.policy.destinations[destination];
                        out.stat = Some(Stat::Target(
                            TargetStat::Ejected,
                            destination as u32,
                            target as u32,
                        ));
                        out.log = Some(LogEvent {
                            level: Level::Warn,
                            message: Message::Ejected {
                                target: &dest.targets[target].name,
                                destination: &dest.name,
                                status,
                            },
                        });
                    }
                }
                Err(_) => {
                    out.stat = Some(Stat::Global(GlobalStat::InternalError));
                    out.log = Some(internal_error_log("outlier state in use"));
                }
            }
        }
        if let Some(name) = &self.policy.decision_header {
            if let Some(mut value) = describe(&self.policy, &observe.decision) {
                if let Some(pct) = self.probation(destination, target) {
                    let _ = write!(value, "; probation={pct}%");
                }
                out.header = Some(HeaderOp::Add(name, Cow::Owned(value)));
            }
        }
        out
    }

    /// The replay state of a request forwarded by `observe`, if its route replays it; the
    /// adapter hands over the request header map it read.
    pub fn start_replay(&self, observe: &Observe, headers: Vec<u8>) -> Option<Replay> {
        let Decision::Forward {
            route,
            destination,
            target,
            ..
        } = observe.decision
        else {
            return None;
        };
        let policy = self.policy.replays.get(route)?.as_ref()?;
        observe
            .replay
            .then(|| Replay::new(route, destination, target, policy, headers))
    }

    /// The next attempt of a replayed request: the decision run again on the saved request
    /// without the targets tried, and the callout to its target. `None` when no target is
    /// left (or the request cannot be sent again as it was).
    pub fn replay_call(&self, replay: &mut Replay, peer: &mut impl Peer) -> Option<ReplayCall<'_>> {
        if !replay.can_replay() {
            return None;
        }
        let policy = &self.policy;
        let saved = parse_header_map(replay.header_bytes())?;
        let line = RequestLine::read(&saved, policy);
        let (path, path_len, issue) = self.resolve_path(line.path);
        if issue.is_some() {
            return None;
        }
        let mut host_buf = String::new();
        let without_query = path.get(..path_len).unwrap_or(&path);
        let req = Request::new(
            line.method,
            line.authority,
            without_query,
            &saved,
            &mut host_buf,
        );
        let outliers = self.outliers.try_borrow().ok()?;
        let active = self.health.try_borrow().ok()?;
        let ramps = self.ramps.try_borrow().ok()?;
        let mut rng = self.rng.replace(Rng::new(0));
        let decision = decide_excluding(
            policy,
            &req,
            &mut DecideHost {
                peer,
                outliers: &outliers,
                health: &active,
                ramps: &ramps,
            },
            &mut rng,
            replay.tried,
        );
        self.rng.set(rng);
        let Decision::Forward {
            destination,
            target,
            ..
        } = decision
        else {
            return None;
        };
        let t = policy.destinations.get(destination)?.targets.get(target)?;
        let path = match &t.path_prefix {
            Some(prefix) => join_path(prefix, &path),
            None => path.into_owned(),
        };
        let own: Vec<&str> = [
            Some(&policy.cluster_header),
            policy.decision_header.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
        let authority = t.authority.as_deref().unwrap_or(line.authority);
        let Some(headers) = replay::callout_headers(&saved, &own, &path, authority) else {
            replay.spoil();
            return None;
        };
        replay.tried |= 1 << target;
        replay.attempts_left -= 1;
        replay.current = Some(target);
        let timeout_ms = policy.replays[replay.route].as_ref()?.timeout_ms;
        Some(ReplayCall {
            cluster: &t.envoy_cluster,
            headers,
            timeout_ms,
            stat: Stat::Target(TargetStat::Replayed, destination as u32, target as u32),
        })
    }

    /// The answer of a replayed attempt: its status (`None`: the call failed without
    /// one) feeds outlier detection of its target; [`ReplayResult::again`] when it failed
    /// too and attempts are left (whether a target is left, [`Self::replay_call`] tells).
    pub fn on_replay_response(
        &self,
        replay: &mut Replay,
        status: Option<u32>,
        store: &impl SharedStore,
        now_ms: impl FnOnce() -> u64,
    ) -> ReplayResult<'_> {
        let mut out = ReplayResult::default();
        let failed = self.policy.replays[replay.route]
            .as_ref()
            .is_none_or(|p| status.is_none_or(|s| p.fails(s)));
        let (d, Some(t)) = (replay.destination, replay.current.take()) else {
            return out;
        };
        let outcome = status.map_or(health::Outcome::GatewayError, |s| health::classify(s, || 0));
        if let Ok(mut outliers) = self.outliers.try_borrow_mut() {
            let probation = self.on_probation(d, t);
            if outliers.observe(d, t, outcome, probation, store, now_ms) {
                out.gauge = self.ejected_gauge(&outliers, d);
                out.stat = Some(Stat::Target(TargetStat::Ejected, d as u32, t as u32));
                let dest = &self.policy.destinations[d];
                out.log = Some(LogEvent {
                    level: Level::Warn,
                    message: Message::Ejected {
                        target: &dest.targets[t].name,
                        destination: &dest.name,
                        status: status.unwrap_or(0),
                    },
                });
            }
        }
        out.failed = failed;
        out.again = failed && replay.can_replay();
        out
    }

    /// The stat of a replayed request that is answered with a failure after all.
    pub fn replay_failed(&self, replay: &Replay) -> Stat {
        Stat::Destination(DestinationStat::ReplayFailures, replay.destination as u32)
    }

    /// The decision header of a replayed request's answer, naming the target that answered.
    pub fn replayed_decision_header(
        &self,
        observe: &Observe,
        answered_by: usize,
    ) -> Option<(&str, String)> {
        let name = self.policy.decision_header.as_ref()?;
        let mut value = describe(&self.policy, &observe.decision)?;
        let Decision::Forward { destination, .. } = observe.decision else {
            return None;
        };
        let target = &self
            .policy
            .destinations
            .get(destination)?
            .targets
            .get(answered_by)?
            .name;
        value.push_str("; replayed=");
        value.push_str(target);
        Some((name, value))
    }

    /// The path to decide on: `raw`, or in `normalize` mode the path an upstream would
    /// resolve it to (query kept), with the length of its part before the query; and why
    /// `raw` has no normal form, if it has none.
    fn resolve_path<'p>(&self, raw: &'p str) -> (Cow<'p, str>, usize, Option<PathIssue>) {
        let without_query = path_without_query(raw);
        let Some(issue) = path::check(without_query) else {
            return (Cow::Borrowed(raw), without_query.len(), None);
        };
        if self.policy.path_normalization == PathNormalization::Normalize {
            let normal = path::normalize(without_query);
            if path::check(&normal).is_none() {
                let len = normal.len();
                return (Cow::Owned(normal + &raw[without_query.len()..]), len, None);
            }
        }
        (Cow::Borrowed(raw), without_query.len(), Some(issue))
    }

    /// The 400 for a path not in normal form that a route would take, on its own path or
    /// on the path an upstream would resolve it to; `None` when no route would (then the
    /// request is not the filter's: unmatched).
    fn reject_path(
        &self,
        req: &Request<'_>,
        raw: &str,
        issue: PathIssue,
        headers: &[Header<'_>],
        out: &mut RequestOutcome<'_>,
    ) -> Option<LocalReply<'_>> {
        let routes = &self.policy.routes;
        let route = routes.find(req).or_else(|| {
            let resolved = path::normalize(path_without_query(raw));
            routes.find(&Request {
                path: &resolved,
                ..*req
            })
        })?;
        out.stats.push(Stat::Global(match issue {
            PathIssue::DotSegment => GlobalStat::RejectedDotSegment,
            PathIssue::EncodedCharacter => GlobalStat::RejectedEncodedCharacter,
            PathIssue::Backslash => GlobalStat::RejectedBackslash,
        }));
        let destination = routes.routes()[route].destination;
        let reason = ReplyReason::PathNotNormal(issue);
        Some(self.reply(
            reason,
            &Decision::Reply {
                reason,
                route: Some((route, destination)),
            },
            headers,
        ))
    }

    /// The local reply for `reason`; a gRPC request (`content-type: application/grpc…`)
    /// gets the matching gRPC status too.
    fn reply(
        &self,
        reason: ReplyReason,
        decision: &Decision,
        headers: &[Header<'_>],
    ) -> LocalReply<'_> {
        let decision_header =
            self.policy.decision_header.as_ref().and_then(|name| {
                describe(&self.policy, decision).map(|value| (name.as_str(), value))
            });
        let grpc =
            header(headers, "content-type").is_some_and(|v| v.starts_with(b"application/grpc"));
        LocalReply {
            status: reason.status(),
            details: reason.details(),
            body: reason.body(),
            header: decision_header,
            grpc_status: grpc.then(|| reason.grpc_status()),
        }
    }

    fn internal_error(&self, what: &'static str) -> RequestOutcome<'_> {
        let mut out = RequestOutcome::default();
        let decision = Decision::Reply {
            reason: ReplyReason::InternalError,
            route: None,
        };
        out.reply = Some(self.reply(ReplyReason::InternalError, &decision, &[]));
        out.stats.push(Stat::Global(GlobalStat::InternalError));
        out.log = Some(internal_error_log(what));
        out
    }
}

fn internal_error_log(what: &'static str) -> LogEvent<'static> {
    LogEvent {
        level: Level::Error,
        message: Message::InternalError(what),
    }
}

/// What [`decide`] reads of the host: the peer identity, the ejected targets and those on
/// probation.
struct DecideHost<'a, P> {
    peer: &'a mut P,
    outliers: &'a Outliers,
    health: &'a ActiveHealth,
    ramps: &'a [Option<Vec<u8>>],
}

impl<P: Peer> Host for DecideHost<'_, P> {
    fn peer_uri_san(&mut self) -> Option<&[u8]> {
        self.peer.uri_san()
    }

    fn ejected(&self, d: usize) -> u64 {
        self.outliers.ejected(d) | self.health.unhealthy(d)
    }

    fn ramp(&self, d: usize) -> Option<&[u8]> {
        self.ramps.get(d)?.as_deref()
    }
}

/// The caller's identity as presented, for a log line about access: the trusted header,
/// or the peer certificate (which authorization has read already; the host keeps it).
fn caller<'a>(
    policy: &Policy,
    headers: &'a [Header<'a>],
    peer: &'a mut impl Peer,
) -> Option<&'a [u8]> {
    match &policy.identity.trusted_header {
        Some(h) => header(headers, h),
        None => peer.uri_san(),
    }
}

/// What one pass over the request headers finds: the pseudo-headers the decision needs
/// (empty when absent or not UTF-8) and whether the filter's own headers came in.
struct RequestLine<'a> {
    method: &'a str,
    authority: &'a str,
    path: &'a str,
    cluster_header: bool,
    decision_header: bool,
}

impl<'a> RequestLine<'a> {
    fn read(headers: &[Header<'a>], policy: &Policy) -> Self {
        let mut pseudo: [Option<&'a str>; 3] = [None; 3];
        let (mut cluster_header, mut decision_header) = (false, false);
        for &(name, value) in headers {
            if name.starts_with(':') {
                let slot = match name {
                    ":method" => 0,
                    ":authority" => 1,
                    ":path" => 2,
                    _ => continue,
                };
                if pseudo[slot].is_none() {
                    pseudo[slot] = Some(as_str(value).unwrap_or(""));
                }
            } else if name.eq_ignore_ascii_case(&policy.cluster_header) {
                cluster_header = true;
            } else if policy
                .decision_header
                .as_ref()
                .is_some_and(|h| name.eq_ignore_ascii_case(h))
            {
                decision_header = true;
            }
        }
        let [method, authority, path] = pseudo.map(|v| v.unwrap_or(""));
        Self {
            method,
            authority,
            path,
            cluster_header,
            decision_header,
        }
    }
}

/// `prefix` + `path`, without doubling the `/` between them.
pub fn join_path(prefix: &str, path: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + path.len() + 1);
    out.push_str(prefix);
    if !path.starts_with('/') {
        out.push('/');
    }
    out.push_str(path);
    out
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::collections::HashMap;

    use super::*;
    use crate::health::Write;

    #[derive(Default)]
    struct FakePeer {
        san: Option<Vec<u8>>,
    }

    impl Peer for FakePeer {
        fn uri_san(&mut self) -> Option<&[u8]> {
            self.san.as_deref()
        }
    }

    #[derive(Default)]
    struct Store(RefCell<HashMap<String, (Vec<u8>, u32)>>);

    impl SharedStore for Store {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.0.borrow().get(key).cloned()
        }
        fn set(&self, key: &str, value: &[u8], _: Option<u32>) -> Write {
            let mut m = self.0.borrow_mut();
            let token = m.get(key).map_or(0, |(_, t)| *t) + 1;
            m.insert(key.into(), (value.to_vec(), token));
            Write::Done
        }
    }

    const CONFIG: &str = r#"{
      "version": 1,
      "decision_header": "x-decision",
      "access": {
        "mode": "enforce",
        "route_groups": [{"name": "g", "matches": [{"name": "all", "path_regex": "/"}]}],
        "traffic_targets": [{"name": "t", "destination": {"namespace": "b", "name": "b"},
          "sources": [{"namespace": "a", "name": "a"}],
          "rules": [{"route_group": "g"}]}]
      },
      "routes": [{"name": "r", "destination": "d"}],
      "destinations": [{"name": "d", "hosts": ["svc"],
        "outlier_detection": {"consecutive_gateway_errors": 1, "max_ejection_percent": 100},
        "targets": [{"name": "t", "cluster": "c", "envoy_cluster": "e",
          "authority": "svc.remote", "path_prefix": "/c/svc",
          "service_account": {"namespace": "b", "name": "b"}}]}]
    }"#;

    fn engine() -> Engine {
        Engine::new(
            Policy::from_json(CONFIG.as_bytes(), &Default::default()).unwrap(),
            1,
        )
    }

    fn headers<'a>(path: &'a str, extra: &[Header<'a>]) -> Vec<Header<'a>> {
        let mut h: Vec<Header<'a>> = vec![
            (":method", b"GET"),
            (":authority", b"svc"),
            (":path", path.as_bytes()),
        ];
        h.extend_from_slice(extra);
        h
    }

    fn caller() -> FakePeer {
        FakePeer {
            san: Some(b"spiffe://td/ns/a/sa/a".to_vec()),
        }
    }

    #[test]
    fn a_forwarded_request_sets_the_cluster_and_rewrites() {
        let e = engine();
        let h = headers(
            "/x?q",
            &[("x-xcluster-cluster", b"evil"), ("x-decision", b"f")],
        );
        let mut peer = caller();
        let out = e.on_request_headers(&h, &mut peer);
        let ops: Vec<_> = out.headers.iter().cloned().collect();
        assert_eq!(
            ops,
            [
                HeaderOp::Remove("x-xcluster-cluster"),
                HeaderOp::Remove("x-decision"),
                HeaderOp::Set("x-xcluster-cluster", "e".into()),
                HeaderOp::Set(":authority", "svc.remote".into()),
                HeaderOp::Set(":path", "/c/svc/x?q".into()),
            ]
        );
        assert!(out.clear_route_cache && out.reply.is_none() && out.log.is_none());
        assert_eq!(
            out.stats.iter().copied().collect::<Vec<_>>(),
            [Stat::Target(TargetStat::Routed, 0, 0)]
        );
        assert!(out.observe.is_some_and(|o| o.status));
    }

    #[test]
    fn a_denial_is_a_local_reply_with_a_debug_line_naming_the_caller() {
        let e = engine();
        let h = headers("/", &[]);
        let mut peer = FakePeer {
            san: Some(b"spiffe://td/ns/x/sa/y".to_vec()),
        };
        let out = e.on_request_headers(&h, &mut peer);
        let reply = out.reply.clone().unwrap();
        assert_eq!((reply.status, reply.body), (403, "access denied"));
        assert_eq!(reply.details, "xcluster_denied_not_allowed");
        assert_eq!(
            reply.header.as_ref().map(|(n, v)| (*n, v.as_str())),
            Some((
                "x-decision",
                "route=r; destination=d; target=-; result=denied"
            ))
        );
        let log = out.log.unwrap();
        assert_eq!(log.level, Level::Debug);
        assert_eq!(
            log.message.to_string(),
            "xcluster: deny route=r destination=d caller=spiffe://td/ns/x/sa/y reason=not_allowed"
        );
        assert_eq!(
            out.stats.iter().copied().collect::<Vec<_>>(),
            [Stat::Destination(DestinationStat::DeniedNotAllowed, 0)]
        );
        assert!(out.observe.is_none() && !out.clear_route_cache);
    }

    #[test]
    fn responses_feed_outlier_detection_and_the_decision_header() {
        let e = engine();
        let store = Store::default();
        e.on_tick(&store, 0);
        let h = headers("/", &[]);
        let mut peer = caller();
        let observe = e.on_request_headers(&h, &mut peer).observe.unwrap();
        let out = e.on_response_headers(
            &observe,
            200,
            || unreachable!(),
            &store,
            || unreachable!("no clock for a success"),
            None,
        );
        assert!(out.stat.is_none() && out.log.is_none());
        assert_eq!(
            out.header.as_ref(),
            Some(&HeaderOp::Add(
                "x-decision",
                "route=r; destination=d; target=t; tier=3; access=allowed".into()
            ))
        );
        let out = e.on_response_headers(&observe, 503, || 0, &store, || 1_000, None);
        assert_eq!(out.stat, Some(Stat::Target(TargetStat::Ejected, 0, 0)));
        let gauge = Stat::Destination(DestinationStat::EjectedTargets, 0);
        assert_eq!(out.gauge, Some((gauge, 1)));
        let log = out.log.unwrap();
        assert_eq!(log.level, Level::Warn);
        assert_eq!(
            log.message.to_string(),
            "xcluster: ejected target=t destination=d after status=503"
        );
        let mut peer = caller();
        let out = e.on_request_headers(&h, &mut peer);
        assert_eq!(
            out.reply.map(|r| r.status),
            Some(503),
            "the only target is out"
        );
    }

    #[test]
    fn a_busy_outlier_state_is_an_internal_error_not_a_503() {
        let e = engine();
        let h = headers("/", &[("x-xcluster-cluster", b"evil")]);
        let _held = e.outliers.borrow_mut();
        let mut peer = caller();
        let out = e.on_request_headers(&h, &mut peer);
        let reply = out.reply.clone().unwrap();
        assert_eq!(
            (reply.status, reply.details),
            (500, "xcluster_internal_error")
        );
        assert_eq!(
            out.headers.iter().next(),
            Some(&HeaderOp::Remove("x-xcluster-cluster")),
            "still sanitized"
        );
        assert_eq!(
            out.stats.iter().copied().collect::<Vec<_>>(),
            [Stat::Global(GlobalStat::InternalError)]
        );
        assert_eq!(out.log.map(|l| l.level), Some(Level::Error));
        assert_eq!(e.on_unreadable_request().reply.map(|r| r.status), Some(500));
    }

    #[test]
    fn a_path_not_in_normal_form_is_refused_when_a_route_would_take_it() {
        let e = engine();
        let mut peer = caller();
        for path in ["/public/..;/private", "/x/%2e%2e/y", "/a\\b"] {
            let h = headers(path, &[]);
            let out = e.on_request_headers(&h, &mut peer);
            let reply = out
                .reply
                .clone()
                .unwrap_or_else(|| panic!("{path} forwarded"));
            assert_eq!(
                (reply.status, reply.details, reply.body),
                (400, "xcluster_path_not_normalized", "bad request"),
                "{path}"
            );
            assert!(out.observe.is_none());
        }
        let h = headers("/public/..;/private", &[]);
        let out = e.on_request_headers(&h, &mut peer);
        assert_eq!(
            out.stats.iter().copied().collect::<Vec<_>>(),
            [Stat::Global(GlobalStat::RejectedDotSegment)]
        );
        // No route would take it: not the filter's request.
        let other: Vec<Header> = vec![
            (":method", b"GET"),
            (":authority", b"elsewhere"),
            (":path", b"/a/../b"),
        ];
        let out = e.on_request_headers(&other, &mut peer);
        assert!(out.reply.is_none());
        assert_eq!(
            out.stats.iter().copied().collect::<Vec<_>>(),
            [Stat::Global(GlobalStat::Unmatched)]
        );
    }

    #[test]
    fn normalize_mode_decides_on_and_forwards_the_resolved_path() {
        let json = CONFIG.replace(
            r#""version": 1,"#,
            r#""version": 1, "path_normalization": "normalize","#,
        );
        let e = Engine::new(
            Policy::from_json(json.as_bytes(), &Default::default()).unwrap(),
            1,
        );
        let mut peer = caller();
        let h = headers("/a/./b/../%63?q=..", &[]);
        let out = e.on_request_headers(&h, &mut peer);
        assert!(out.reply.is_none());
        assert!(out
            .headers
            .iter()
            .any(|op| *op == HeaderOp::Set(":path", "/c/svc/a/c?q=..".into())));
        let h = headers("/a/%zz/b", &[]);
        let out = e.on_request_headers(&h, &mut peer);
        assert_eq!(
            out.reply.map(|r| r.status),
            Some(400),
            "a malformed escape has no normal form"
        );
        let no_prefix = json.replace(r#""path_prefix": "/c/svc","#, "");
        let e = Engine::new(
            Policy::from_json(no_prefix.as_bytes(), &Default::default()).unwrap(),
            1,
        );
        let h = headers("/x/../y", &[]);
        let out = e.on_request_headers(&h, &mut peer);
        assert!(out
            .headers
            .iter()
            .any(|op| *op == HeaderOp::Set(":path", "/y".into())));
        let h = headers("/y", &[]);
        let out = e.on_request_headers(&h, &mut peer);
        assert!(
            !out.headers
                .iter()
                .any(|op| matches!(op, HeaderOp::Set(":path", _))),
            "a normal path is forwarded as it is"
        );
    }

    #[test]
    fn grpc_requests_get_grpc_statuses() {
        let e = engine();
        let grpc: [Header; 1] = [("content-type", b"application/grpc+proto")];
        let mut stranger = FakePeer {
            san: Some(b"spiffe://td/ns/x/sa/y".to_vec()),
        };
        let h = headers("/pkg.Svc/Call", &grpc);
        let reply = e.on_request_headers(&h, &mut stranger).reply.unwrap();
        assert_eq!((reply.status, reply.grpc_status), (403, Some(7)));
        let h = headers("/pkg.Svc/Call", &[]);
        let reply = e.on_request_headers(&h, &mut stranger).reply.unwrap();
        assert_eq!(reply.grpc_status, None, "not gRPC");
        let store = Store::default();
        let mut peer = caller();
        let h = headers("/pkg.Svc/Call", &grpc);
        let observe = e.on_request_headers(&h, &mut peer).observe.unwrap();
        e.on_response_headers(&observe, 503, || 0, &store, || 1_000, None);
        let reply = e.on_request_headers(&h, &mut peer).reply.unwrap();
        assert_eq!((reply.status, reply.grpc_status), (503, Some(14)));
    }

    /// FailOver over three targets (t and u local, v remote), replayed on the route; the
    /// caller may reach t and v (ServiceAccount b/b) and u only as `spiffe://td/ns/a/sa/u`.
    const REPLAY: &str = r#"{
      "version": 1,
      "local": {"cluster": "c1"},
      "access": {
        "mode": "enforce",
        "route_groups": [{"name": "g", "matches": [{"name": "all", "path_regex": "/"}]}],
        "traffic_targets": [
          {"name": "tb", "destination": {"namespace": "b", "name": "b"},
           "sources": [{"namespace": "a", "name": "a"}, {"namespace": "a", "name": "u"}],
           "rules": [{"route_group": "g"}]},
          {"name": "tu", "destination": {"namespace": "b", "name": "u"},
           "sources": [{"namespace": "a", "name": "u"}], "rules": [{"route_group": "g"}]}]
      },
      "routes": [{"name": "r", "destination": "d", "replay": {"attempts": 2}}],
      "destinations": [{"name": "d", "hosts": ["svc"], "policy": "FailOver",
        "targets": [
          {"name": "t", "cluster": "c1", "envoy_cluster": "et",
           "service_account": {"namespace": "b", "name": "b"}},
          {"name": "u", "cluster": "c1", "envoy_cluster": "eu",
           "service_account": {"namespace": "b", "name": "u"}},
          {"name": "v", "cluster": "c9", "envoy_cluster": "ev", "authority": "svc.c9",
           "path_prefix": "/c9/svc", "service_account": {"namespace": "b", "name": "b"}}]}]
    }"#;

    fn replay_engine() -> Engine {
        Engine::new(
            Policy::from_json(REPLAY.as_bytes(), &Default::default()).unwrap(),
            1,
        )
    }

    /// Serializes headers as the host hands them over.
    fn bytes(headers: &[Header<'_>]) -> Vec<u8> {
        crate::header_map::serialize_header_map(headers)
    }

    fn first_attempt(e: &Engine, h: &[Header<'_>], peer: &mut FakePeer) -> (Observe, usize) {
        let observe = e.on_request_headers(h, peer).observe.unwrap();
        let Decision::Forward { target, .. } = observe.decision else {
            panic!("not forwarded");
        };
        (observe, target)
    }

    #[test]
    fn a_failed_request_goes_to_the_next_target_the_caller_may_use() {
        let e = replay_engine();
        let store = Store::default();
        let h = headers("/x?q=1", &[("x-request-id", b"r1")]);
        let mut peer = caller();
        let (observe, first) = first_attempt(&e, &h, &mut peer);
        assert_eq!(first, 0, "FailOver: t serves first (u is not the caller's)");
        assert!(observe.replay && observe.status);
        let out = e.on_response_headers(&observe, 503, || 0, &store, || 1, None);
        assert!(!out.replay, "no replay state kept: nothing to replay");
        let mut replay = e.start_replay(&observe, bytes(&h)).unwrap();
        let out = e.on_response_headers(&observe, 503, || 0, &store, || 1, Some(&replay));
        assert!(out.replay);
        assert!(
            !e.on_response_headers(&observe, 200, || 0, &store, || 1, Some(&replay))
                .replay
        );
        // u is in t's tier but the caller may not use it: v, with v's rewrites.
        let call = e.replay_call(&mut replay, &mut peer).unwrap();
        assert_eq!(call.cluster, "ev");
        assert_eq!(call.stat, Stat::Target(TargetStat::Replayed, 0, 2));
        let get = |name: &str| {
            call.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get(":path"), Some("/c9/svc/x?q=1"));
        assert_eq!(get(":authority"), Some("svc.c9"));
        assert_eq!(get("x-request-id"), Some("r1"));
        assert_eq!(get(":method"), Some("GET"));
        let result = e.on_replay_response(&mut replay, Some(503), &store, || 1);
        assert!(result.failed && result.again, "one attempt left");
        assert!(
            e.replay_call(&mut replay, &mut peer).is_none(),
            "but no target left the caller may use"
        );
        assert_eq!(
            e.replay_failed(&replay),
            Stat::Destination(DestinationStat::ReplayFailures, 0)
        );
        let ok = e.on_replay_response(&mut replay, Some(200), &store, || 1);
        assert!(!ok.failed && !ok.again);
    }

    #[test]
    fn replays_try_the_same_tier_first_and_stop_after_the_attempts() {
        let e = replay_engine();
        let store = Store::default();
        let h = headers("/", &[]);
        let mut peer = FakePeer {
            san: Some(b"spiffe://td/ns/a/sa/u".to_vec()),
        };
        let (observe, first) = first_attempt(&e, &h, &mut peer);
        let mut replay = e.start_replay(&observe, bytes(&h)).unwrap();
        let order: Vec<&str> = std::iter::from_fn(|| {
            let call = e.replay_call(&mut replay, &mut peer)?;
            let cluster = call.cluster;
            let again = e.on_replay_response(&mut replay, None, &store, || 1).again;
            Some((cluster, again))
        })
        .scan(true, |go, (cluster, again)| {
            let emit = go.then_some(cluster);
            *go = again;
            emit
        })
        .collect();
        let same_tier = if first == 0 { "eu" } else { "et" };
        assert_eq!(
            order,
            [same_tier, "ev"],
            "the local tier first, then the remote one"
        );
        assert!(!replay.can_replay(), "two attempts, as configured");
        let answered = e.replayed_decision_header(&observe, 2);
        assert_eq!(answered, None, "no decision header configured");
    }

    #[test]
    fn a_post_is_not_replayed_unless_the_route_says_so() {
        let e = replay_engine();
        let mut h = headers("/", &[]);
        h[0] = (":method", b"POST");
        let mut peer = caller();
        let observe = e.on_request_headers(&h, &mut peer).observe.unwrap();
        assert!(!observe.replay);
        assert!(e.start_replay(&observe, bytes(&h)).is_none());
        let json = REPLAY.replace(r#""attempts": 2"#, r#""methods": ["GET", "POST"]"#);
        let e = Engine::new(
            Policy::from_json(json.as_bytes(), &Default::default()).unwrap(),
            1,
        );
        let observe = e.on_request_headers(&h, &mut peer).observe.unwrap();
        let mut replay = e.start_replay(&observe, bytes(&h)).unwrap();
        replay.buffer_body(b"{}");
        assert_eq!(replay.body(), Some(&b"{}"[..]));
        assert_eq!(
            e.replay_call(&mut replay, &mut peer).map(|c| c.cluster),
            Some("ev")
        );
    }

    #[test]
    fn path_join() {
        assert_eq!(
            join_path("/cluster-1/httpbin-mesh", "/"),
            "/cluster-1/httpbin-mesh/"
        );
        assert_eq!(join_path("/p", "/a?b=1"), "/p/a?b=1");
        assert_eq!(join_path("/p", "*"), "/p/*");
    }
}
