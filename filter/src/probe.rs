//! Active health checks: one worker of the Envoy process probes every target from its root
//! context's tick, and every worker reads the results from shared data.
//!
//! The prober holds a [`Lease`] in shared data, renewed on each tick and taken over by
//! another worker when it lapses, so N workers do not send N probes. A target is
//! unhealthy after `unhealthy_threshold` failed probes in a row and healthy again after
//! `healthy_threshold` good ones; targets start healthy. Time is passed in.

use std::hash::Hasher;

use crate::config::HealthCheckConfig;
use crate::hash::{push_hex, Fnv};
use crate::health::{SharedStore, Write};
use crate::policy::{ConfigError, Destination};

/// The shared-data key of the prober's lease.
pub const LEASE_KEY: &str = "xcluster.hc.lease";

/// How long a lease lasts without renewal (three ticks).
pub const LEASE_MS: u64 = 3_000;

/// A probe is due this much before its time: ticks come about a second apart, not exactly,
/// and a tick a little early must not skip a round.
const DUE_SLACK_MS: u64 = 500;

/// A destination's compiled health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The path probed (each target's `path_prefix` goes before it).
    pub path: String,
    /// Time between probes of one target.
    pub interval_ms: u64,
    /// Time a probe may take.
    pub timeout_ms: u64,
    /// Good probes in a row that make an unhealthy target healthy.
    pub healthy_threshold: u32,
    /// Failed probes in a row that make a target unhealthy.
    pub unhealthy_threshold: u32,
    expected: Vec<u32>,
}

impl HealthCheck {
    /// Validates `config` (at field path `path`).
    pub fn compile(path: &str, config: &HealthCheckConfig) -> Result<Self, ConfigError> {
        let error = |field: &str, message: &str| ConfigError {
            path: format!("{path}.{field}"),
            message: message.to_owned(),
        };
        if !config.path.starts_with('/') || config.path.contains(['?', '#', ' ']) {
            return Err(error("path", "must be a path starting with `/`"));
        }
        if config.interval_ms < 1_000 {
            return Err(error("interval_ms", "must be at least 1000 (the tick)"));
        }
        if config.timeout_ms == 0 || config.timeout_ms > config.interval_ms {
            return Err(error(
                "timeout_ms",
                "must be positive and at most interval_ms",
            ));
        }
        if config.healthy_threshold == 0 {
            return Err(error("healthy_threshold", "must be positive"));
        }
        if config.unhealthy_threshold == 0 {
            return Err(error("unhealthy_threshold", "must be positive"));
        }
        if config.expected_statuses.is_empty()
            || config
                .expected_statuses
                .iter()
                .any(|s| !(100..600).contains(s))
        {
            return Err(error("expected_statuses", "must list HTTP statuses"));
        }
        Ok(Self {
            path: config.path.clone(),
            interval_ms: config.interval_ms,
            timeout_ms: config.timeout_ms,
            healthy_threshold: config.healthy_threshold,
            unhealthy_threshold: config.unhealthy_threshold,
            expected: config.expected_statuses.clone(),
        })
    }

    /// Whether a probe answered `status` (`None`: no answer) passed.
    pub fn passes(&self, status: Option<u32>) -> bool {
        status.is_some_and(|s| self.expected.contains(&s))
    }
}

/// The prober's lease: which worker probes, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The holder's token (random per worker and config).
    pub holder: u64,
    /// Held until this time (ms since epoch).
    pub until_ms: u64,
}

impl Lease {
    fn encode(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.holder.to_le_bytes());
        out[8..].copy_from_slice(&self.until_ms.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            holder: u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?),
            until_ms: u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?),
        })
    }

    /// Takes or renews the lease for `me` at `now_ms`; true when `me` holds it now. The
    /// holder renews on every tick; a lease that lapsed is taken over by whoever comes
    /// first. A key that does not exist yet is first published lapsed, since Envoy cannot
    /// compare-and-swap a missing key and two workers would both think they won.
    pub fn hold(store: &impl SharedStore, me: u64, now_ms: u64) -> bool {
        if store.get(LEASE_KEY).is_none() {
            let lapsed = Lease {
                holder: 0,
                until_ms: 0,
            };
            store.set(LEASE_KEY, &lapsed.encode(), None);
        }
        let Some((bytes, cas)) = store.get(LEASE_KEY) else {
            return false;
        };
        let current = Lease::decode(&bytes);
        let free = current.is_none_or(|l| l.holder == me || l.until_ms <= now_ms);
        let mine = Lease {
            holder: me,
            until_ms: now_ms + LEASE_MS,
        };
        free && store.set(LEASE_KEY, &mine.encode(), Some(cas)) == Write::Done
    }
}

/// A probe to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Destination index.
    pub destination: usize,
    /// Target index.
    pub target: usize,
}

/// A change of a target's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Destination index.
    pub destination: usize,
    /// Target index.
    pub target: usize,
    /// Healthy now (else unhealthy).
    pub healthy: bool,
}

/// One target as the prober and the workers see it.
#[derive(Debug, Clone, Copy, Default)]
struct TargetHealth {
    unhealthy: bool,
    /// When it became healthy again (0: never unhealthy).
    healthy_since_ms: u64,
    /// Prober only: probes in a row with the same result, next probe, one in flight.
    streak: u32,
    next_ms: u64,
    in_flight: bool,
}

#[derive(Debug, Clone)]
struct Checked {
    check: HealthCheck,
    key: String,
    targets: Vec<TargetHealth>,
}

/// The active health of every destination with a health check.
#[derive(Debug, Clone)]
pub struct ActiveHealth {
    destinations: Vec<Option<Checked>>,
}

impl ActiveHealth {
    /// State for `destinations`: every target healthy, nothing probed yet.
    pub fn new(destinations: &[Destination]) -> Self {
        let destinations = destinations
            .iter()
            .map(|d| {
                d.health_check.clone().map(|check| {
                    let mut h = Fnv::default();
                    for t in &d.targets {
                        h.write(t.name.as_bytes());
                        h.write_u8(0);
                    }
                    let mut key = format!("xcluster.hc.{}.", d.name);
                    push_hex(&mut key, h.finish(), 16);
                    Checked {
                        check,
                        key,
                        targets: vec![TargetHealth::default(); d.targets.len()],
                    }
                })
            })
            .collect();
        Self { destinations }
    }

    /// Whether any destination is checked.
    pub fn any(&self) -> bool {
        self.destinations.iter().any(Option::is_some)
    }

    /// Bit mask of destination `d`'s unhealthy targets.
    pub fn unhealthy(&self, d: usize) -> u64 {
        self.checked(d).map_or(0, |c| {
            c.targets
                .iter()
                .enumerate()
                .filter(|(_, t)| t.unhealthy)
                .fold(0, |m, (i, _)| m | 1 << i)
        })
    }

    /// When each target of `d` became healthy again (0: never unhealthy).
    pub fn healthy_since(&self, d: usize) -> impl Iterator<Item = u64> + '_ {
        self.checked(d)
            .into_iter()
            .flat_map(|c| c.targets.iter().map(|t| t.healthy_since_ms))
    }

    fn checked(&self, d: usize) -> Option<&Checked> {
        self.destinations.get(d).and_then(Option::as_ref)
    }

    /// The check of destination `d`.
    pub fn check(&self, d: usize) -> Option<&HealthCheck> {
        self.checked(d).map(|c| &c.check)
    }

    /// On every worker's tick: adopts the shared results.
    pub fn refresh(&mut self, store: &impl SharedStore) {
        for checked in self.destinations.iter_mut().flatten() {
            let Some((bytes, _)) = store.get(&checked.key) else {
                continue;
            };
            if bytes.len() != checked.targets.len() * 9 {
                continue;
            }
            for (t, chunk) in checked.targets.iter_mut().zip(bytes.chunks_exact(9)) {
                t.unhealthy = chunk[0] != 0;
                t.healthy_since_ms = chunk[1..9].try_into().map_or(0, u64::from_le_bytes);
            }
        }
    }

    /// On the prober's tick: the probes that are due at `now_ms` (within half a tick).
    pub fn due(&mut self, now_ms: u64) -> Vec<Probe> {
        let mut probes = Vec::new();
        for (d, checked) in self.destinations.iter_mut().enumerate() {
            let Some(checked) = checked else { continue };
            for (t, target) in checked.targets.iter_mut().enumerate() {
                if !target.in_flight && target.next_ms <= now_ms + DUE_SLACK_MS {
                    target.in_flight = true;
                    target.next_ms = now_ms + checked.check.interval_ms;
                    probes.push(Probe {
                        destination: d,
                        target: t,
                    });
                }
            }
        }
        probes
    }

    /// The prober records a probe's answer; a change of health is shared with the workers
    /// and returned.
    pub fn record(
        &mut self,
        probe: Probe,
        status: Option<u32>,
        store: &impl SharedStore,
        now_ms: u64,
    ) -> Option<Transition> {
        let checked = self.destinations.get_mut(probe.destination)?.as_mut()?;
        let passed = checked.check.passes(status);
        let threshold = if passed {
            checked.check.healthy_threshold
        } else {
            checked.check.unhealthy_threshold
        };
        let target = checked.targets.get_mut(probe.target)?;
        target.in_flight = false;
        // A streak counts probes that disagree with the current state.
        if passed == target.unhealthy {
            target.streak += 1;
        } else {
            target.streak = 0;
        }
        if target.streak < threshold {
            return None;
        }
        target.streak = 0;
        target.unhealthy = !passed;
        if passed {
            target.healthy_since_ms = now_ms;
        }
        let table: Vec<u8> = checked
            .targets
            .iter()
            .flat_map(|t| {
                let mut row = [0u8; 9];
                row[0] = u8::from(t.unhealthy);
                row[1..].copy_from_slice(&t.healthy_since_ms.to_le_bytes());
                row
            })
            .collect();
        store.set(&checked.key, &table, None);
        Some(Transition {
            destination: probe.destination,
            target: probe.target,
            healthy: passed,
        })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;
    use crate::policy::Policy;

    #[derive(Default)]
    struct Store(RefCell<HashMap<String, (Vec<u8>, u32)>>);

    impl SharedStore for Store {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.0.borrow().get(key).cloned()
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Write {
            let mut data = self.0.borrow_mut();
            let token = data.get(key).map_or(0, |(_, t)| *t);
            if cas.is_some_and(|c| c != token) {
                return Write::CasMismatch;
            }
            data.insert(key.to_owned(), (value.to_vec(), token + 1));
            Write::Done
        }
    }

    fn checked(extra: &str) -> Vec<Destination> {
        let json = format!(
            r#"{{"version": 1, "destinations": [{{"name": "d",
              "health_check": {{"path": "/healthz", "interval_ms": 2000{extra}}},
              "targets": [
                {{"name": "a", "cluster": "c", "envoy_cluster": "a",
                  "service_account": {{"namespace": "n", "name": "s"}}}},
                {{"name": "b", "cluster": "c", "envoy_cluster": "b",
                  "service_account": {{"namespace": "n", "name": "s"}}}}]}}]}}"#
        );
        Policy::from_json(json.as_bytes(), &Default::default())
            .unwrap()
            .destinations
    }

    #[test]
    fn one_worker_holds_the_lease_until_it_lapses() {
        let store = Store::default();
        assert!(Lease::hold(&store, 1, 0));
        assert!(!Lease::hold(&store, 2, 1_000), "held by 1");
        assert!(Lease::hold(&store, 1, 2_000), "renewed");
        assert!(!Lease::hold(&store, 2, 4_999));
        assert!(Lease::hold(&store, 2, 5_000), "lapsed: taken over");
        assert!(!Lease::hold(&store, 1, 5_500));
    }

    #[test]
    fn probes_follow_the_interval_and_wait_for_their_answer() {
        let mut health = ActiveHealth::new(&checked(""));
        let store = Store::default();
        assert_eq!(health.due(0).len(), 2);
        assert!(health.due(5_000).is_empty(), "both in flight");
        let a = Probe {
            destination: 0,
            target: 0,
        };
        health.record(a, Some(200), &store, 100);
        assert!(health.due(1_499).is_empty());
        assert_eq!(health.due(1_500), [a], "a tick a little early");
    }

    #[test]
    fn thresholds_turn_targets_unhealthy_and_back_and_every_worker_learns() {
        let dests = checked(r#", "unhealthy_threshold": 2, "healthy_threshold": 2"#);
        let mut prober = ActiveHealth::new(&dests);
        let mut worker = ActiveHealth::new(&dests);
        let store = Store::default();
        let b = Probe {
            destination: 0,
            target: 1,
        };
        assert_eq!(prober.record(b, Some(503), &store, 0), None);
        assert_eq!(
            prober.record(b, Some(200), &store, 0),
            None,
            "streak broken"
        );
        assert_eq!(prober.record(b, None, &store, 0), None);
        let down = prober.record(b, Some(500), &store, 10);
        assert_eq!(
            down,
            Some(Transition {
                destination: 0,
                target: 1,
                healthy: false
            })
        );
        worker.refresh(&store);
        assert_eq!(worker.unhealthy(0), 0b10);
        assert_eq!(prober.record(b, Some(200), &store, 20), None);
        let up = prober.record(b, Some(200), &store, 30).unwrap();
        assert!(up.healthy);
        worker.refresh(&store);
        assert_eq!(worker.unhealthy(0), 0);
        assert_eq!(worker.healthy_since(0).collect::<Vec<_>>(), [0, 30]);
    }

    #[test]
    fn bad_settings_name_their_field() {
        let error = |extra: &str| {
            let json = format!(
                r#"{{"version": 1, "destinations": [{{"name": "d",
                  "health_check": {{"path": "/h"{extra}}},
                  "targets": [{{"name": "a", "cluster": "c", "envoy_cluster": "a",
                    "service_account": {{"namespace": "n", "name": "s"}}}}]}}]}}"#
            );
            Policy::from_json(json.as_bytes(), &Default::default())
                .unwrap_err()
                .path
        };
        assert_eq!(
            error(r#", "interval_ms": 10"#),
            "destinations[0].health_check.interval_ms"
        );
        assert_eq!(
            error(r#", "timeout_ms": 60000"#),
            "destinations[0].health_check.timeout_ms"
        );
        assert_eq!(
            error(r#", "expected_statuses": [700]"#),
            "destinations[0].health_check.expected_statuses"
        );
    }
}
