//! What the engine decided for one callback, as data: header operations, a local reply,
//! the stats to bump, a log event and what to observe on the response. The adapter
//! executes an outcome and nothing else; every log line's text is written here.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use log::Level;

use crate::authorizer::DenyReason;
use crate::config::AccessMode;
use crate::decision::Decision;
use crate::policy::ConfigError;
use crate::probe::Probe;
use crate::stats::Stat;

/// A list of at most `N` items kept inline (an outcome never allocates for its lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T, const N: usize> {
    items: [Option<T>; N],
    len: usize,
}

impl<T, const N: usize> Default for List<T, N> {
    fn default() -> Self {
        Self {
            items: [const { None }; N],
            len: 0,
        }
    }
}

impl<T, const N: usize> List<T, N> {
    /// Appends `item`. The capacities are sized for what one callback can produce, so a
    /// full list is a bug: debug builds panic, release builds drop the item.
    #[inline(never)]
    pub fn push(&mut self, item: T) {
        debug_assert!(self.len < N, "outcome list full");
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = Some(item);
            self.len += 1;
        }
    }

    /// The items, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map_while(Option::as_ref)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A header operation, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp<'a> {
    /// Remove every value of the header.
    Remove(&'a str),
    /// Replace every value of the header with this one.
    Set(&'a str, Cow<'a, str>),
    /// Add a value to the header.
    Add(&'a str, Cow<'a, str>),
}

/// A reply the filter sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply<'a> {
    /// HTTP status.
    pub status: u32,
    /// Envoy response code details (`%RESPONSE_CODE_DETAILS%`): why, for access logs.
    pub details: &'static str,
    /// The body: never any policy detail.
    pub body: &'static str,
    /// An extra response header (the decision header, when configured).
    pub header: Option<(&'a str, String)>,
    /// The gRPC status, for a gRPC request (the host then answers the gRPC way).
    pub grpc_status: Option<u32>,
}

/// What the adapter must remember of a forwarded request for its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observe {
    /// The decision the request was forwarded by.
    pub decision: Decision,
    /// Whether the response's `:status` is needed (outlier detection, replay).
    pub status: bool,
    /// Whether the route replays this request on a failure: the adapter keeps it.
    pub replay: bool,
}

/// Header operations of one callback.
pub type HeaderOps<'a> = List<HeaderOp<'a>, 5>;

/// Stats of one callback.
pub type Stats = List<Stat, 2>;

/// The outcome of the request headers.
#[derive(Debug, Clone, Default)]
pub struct RequestOutcome<'a> {
    /// Request header operations (the filter's own headers removed, the cluster header
    /// set, rewrites), applied first in every case.
    pub headers: HeaderOps<'a>,
    /// Ask the host to pick the route again (the headers it routes on changed).
    pub clear_route_cache: bool,
    /// Answer locally instead of forwarding.
    pub reply: Option<LocalReply<'a>>,
    /// Stats to bump by one.
    pub stats: Stats,
    /// A line to log.
    pub log: Option<LogEvent<'a>>,
    /// What to observe on the response, for a forwarded request.
    pub observe: Option<Observe>,
}

/// The outcome of the response headers.
#[derive(Debug, Clone, Default)]
pub struct ResponseOutcome<'a> {
    /// A response header operation (the decision header).
    pub header: Option<HeaderOp<'a>>,
    /// A stat to bump by one.
    pub stat: Option<Stat>,
    /// A gauge to set.
    pub gauge: Option<(Stat, u64)>,
    /// A line to log.
    pub log: Option<LogEvent<'a>>,
    /// The response is a failure the request is replayed on: hold it, and send the
    /// request to the next target ([`crate::engine::Engine::replay_call`]).
    pub replay: bool,
}

/// A replayed attempt to send: the callout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayCall<'a> {
    /// The Envoy cluster of the target.
    pub cluster: &'a str,
    /// The request headers, pseudo-headers first.
    pub headers: Vec<(String, String)>,
    /// How long the attempt may take.
    pub timeout_ms: u64,
    /// The stat to bump (the replay).
    pub stat: Stat,
}

/// What a replayed attempt's answer means.
#[derive(Debug, Clone, Default)]
pub struct ReplayResult<'a> {
    /// The attempt failed too.
    pub failed: bool,
    /// It failed and attempts are left: try the next target.
    pub again: bool,
    /// The target's ejection, if the answer tipped it.
    pub stat: Option<Stat>,
    /// The ejected-targets gauge, if it changed.
    pub gauge: Option<(Stat, u64)>,
    /// A line to log.
    pub log: Option<LogEvent<'a>>,
}

/// The outcome of a tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickOutcome<'a> {
    /// Gauges to set (those that changed).
    pub gauges: Vec<(Stat, u64)>,
    /// Health-check probes to send (on the worker that holds the prober's lease).
    pub probes: Vec<ProbeCall<'a>>,
}

/// A health-check probe to send: the callout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeCall<'a> {
    /// Which target it checks (hand it back with the answer).
    pub probe: Probe,
    /// The target's Envoy cluster.
    pub cluster: &'a str,
    /// The request headers.
    pub headers: Vec<(&'static str, String)>,
    /// How long it may take.
    pub timeout_ms: u64,
}

/// What a probe's answer changed.
#[derive(Debug, Clone, Default)]
pub struct ProbeResult<'a> {
    /// Stats to bump.
    pub stats: Stats,
    /// A line to log (a change of health).
    pub log: Option<LogEvent<'a>>,
}

/// A log line: its level and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent<'a> {
    /// Level (the host's log level filters it).
    pub level: Level,
    /// The line.
    pub message: Message<'a>,
}

/// The lines the filter logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// A config was accepted.
    Configured {
        /// Routes.
        routes: usize,
        /// Destinations.
        destinations: usize,
        /// Access mode.
        mode: AccessMode,
    },
    /// A config was rejected.
    InvalidConfig(&'a ConfigError),
    /// A request was denied (debug, as Envoy's RBAC: counters and response code details
    /// carry the reason, and a denial storm must not flood the log).
    Denied {
        /// Route name.
        route: &'a str,
        /// Destination name.
        destination: &'a str,
        /// The caller's identity as presented.
        caller: Caller<'a>,
        /// Why.
        reason: DenyReason,
    },
    /// Dry-run mode forwarded a request enforce mode would deny (info: reporting these is
    /// what the mode is for).
    DryRunDenied {
        /// Destination name.
        destination: &'a str,
        /// The caller's identity as presented.
        caller: Caller<'a>,
        /// Why it would be denied.
        reason: DenyReason,
    },
    /// Outlier detection ejected a target.
    Ejected {
        /// Target name.
        target: &'a str,
        /// Destination name.
        destination: &'a str,
        /// The response status that tipped it.
        status: u32,
    },
    /// Active health checks changed a target's health.
    HealthChanged {
        /// Target name.
        target: &'a str,
        /// Destination name.
        destination: &'a str,
        /// Healthy now (else unhealthy).
        healthy: bool,
    },
    /// The filter could not decide.
    InternalError(&'static str),
}

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Configured {
                routes,
                destinations,
                mode,
            } => write!(
                f,
                "xcluster: configured {routes} routes, {destinations} destinations, access mode {}",
                mode.as_str()
            ),
            Self::InvalidConfig(e) => write!(f, "xcluster: invalid plugin config: {e}"),
            Self::Denied {
                route,
                destination,
                caller,
                reason,
            } => {
                write!(f, "xcluster: deny route={route} ")?;
                access_tail(f, destination, caller, *reason)
            }
            Self::DryRunDenied {
                destination,
                caller,
                reason,
            } => {
                f.write_str("xcluster: dry-run deny ")?;
                access_tail(f, destination, caller, *reason)
            }
            Self::Ejected {
                target,
                destination,
                status,
            } => write!(
                f,
                "xcluster: ejected target={target} destination={destination} after status={status}"
            ),
            Self::HealthChanged {
                target,
                destination,
                healthy,
            } => write!(
                f,
                "xcluster: health check: target={target} destination={destination} is {}",
                if *healthy { "healthy" } else { "unhealthy" }
            ),
            Self::InternalError(what) => write!(f, "xcluster: internal error: {what}"),
        }
    }
}

/// The end of a line about access: `destination=… caller=… reason=…`.
fn access_tail(
    f: &mut fmt::Formatter<'_>,
    destination: &str,
    caller: &Caller<'_>,
    reason: DenyReason,
) -> fmt::Result {
    write!(
        f,
        "destination={destination} caller={caller} reason={}",
        reason.as_str()
    )
}

/// A caller identity as it may appear in a log line: `-` when absent, and never control
/// characters or unbounded length (it comes from the client or its certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a>(pub Option<&'a [u8]>);

impl fmt::Display for Caller<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 256;
        let raw = match self.0 {
            None | Some([]) => return f.write_str("-"),
            Some(raw) => raw,
        };
        for &b in raw.iter().take(MAX) {
            f.write_char(if b.is_ascii_graphic() { b as char } else { '?' })?;
        }
        if raw.len() > MAX {
            f.write_str("...")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn printable_identities() {
        let printable = |raw| Caller(raw).to_string();
        assert_eq!(printable(None), "-");
        assert_eq!(printable(Some(b"")), "-");
        assert_eq!(
            printable(Some(b"spiffe://td/ns/a/sa/b")),
            "spiffe://td/ns/a/sa/b"
        );
        assert_eq!(printable(Some(b"a b\n\xff")), "a?b??");
        assert_eq!(printable(Some(&[b'x'; 300])).len(), 259);
    }

    #[test]
    fn lists_keep_order_and_capacity() {
        let mut l: List<u32, 2> = List::default();
        assert!(l.is_empty());
        l.push(7);
        l.push(9);
        assert_eq!(l.iter().copied().collect::<Vec<_>>(), [7, 9]);
    }

    #[test]
    fn log_lines() {
        let line = |m: Message<'_>| m.to_string();
        assert_eq!(
            line(Message::Denied {
                route: "r",
                destination: "d",
                caller: Caller(Some(b"spiffe://td/ns/a/sa/b\n")),
                reason: DenyReason::NotAllowed
            }),
            "xcluster: deny route=r destination=d caller=spiffe://td/ns/a/sa/b? reason=not_allowed"
        );
        assert_eq!(
            line(Message::DryRunDenied {
                destination: "d",
                caller: Caller(None),
                reason: DenyReason::NoIdentity
            }),
            "xcluster: dry-run deny destination=d caller=- reason=no_identity"
        );
        assert_eq!(
            line(Message::Ejected {
                target: "t",
                destination: "d",
                status: 503
            }),
            "xcluster: ejected target=t destination=d after status=503"
        );
        assert_eq!(
            line(Message::Configured {
                routes: 1,
                destinations: 2,
                mode: AccessMode::DryRun
            }),
            "xcluster: configured 1 routes, 2 destinations, access mode dry-run"
        );
        let e = ConfigError {
            path: "routes[0].destination".into(),
            message: "no destination named \"x\"".into(),
        };
        assert_eq!(
            line(Message::InvalidConfig(&e)),
            "xcluster: invalid plugin config: routes[0].destination: no destination named \"x\""
        );
    }
}
