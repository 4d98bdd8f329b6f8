//! Passive outlier detection: consecutive errors eject a target for a while. Time is passed
//! in; the ejection table is shared between VMs as bytes (see [`encode`] / [`decode`]).

use std::hash::Hasher;

use crate::config::OutlierDetectionConfig;
use crate::matcher::{push_hex, Fnv};

/// What a response says about the target's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not a 5xx.
    Success,
    /// A 5xx that is not a gateway error.
    ServerError,
    /// 502, 503, 504 or an upstream connect failure.
    GatewayError,
}

/// Envoy `response.flags` bits that mean the upstream could not be reached or reset:
/// UpstreamConnectionFailure (0x20), UpstreamConnectionTermination (0x40),
/// UpstreamRemoteReset (0x10), UpstreamRequestTimeout (0x4).
pub const GATEWAY_FAILURE_FLAGS: u64 = 0x4 | 0x10 | 0x20 | 0x40;

/// Classifies a response by its status; `flags` (Envoy `response.flags`) is consulted
/// only for a 5xx that is not already a gateway error, so callers may read it lazily.
pub fn classify(status: u32, flags: impl FnOnce() -> u64) -> Outcome {
    match status {
        502..=504 => Outcome::GatewayError,
        500..=599 if flags() & GATEWAY_FAILURE_FLAGS != 0 => Outcome::GatewayError,
        500..=599 => Outcome::ServerError,
        _ => Outcome::Success,
    }
}

/// One target's ejection record, shared across VMs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ejection {
    /// Times ejected (the ejection-time multiplier), before decay.
    pub count: u32,
    /// Ejected until this time (ms since epoch); 0 or past means not ejected.
    pub until_ms: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
}

/// Outlier state of one destination's targets.
#[derive(Debug, Clone)]
pub struct OutlierDetector {
    config: OutlierDetectionConfig,
    counters: Vec<Counters>,
    table: Vec<Ejection>,
    ejected: u64,
}

impl OutlierDetector {
    /// State for `targets` targets, none ejected.
    pub fn new(config: OutlierDetectionConfig, targets: usize) -> Self {
        Self {
            config,
            counters: vec![Counters::default(); targets],
            table: vec![Ejection::default(); targets],
            ejected: 0,
        }
    }

    /// Bit `i` set ⇔ target `i` is ejected.
    pub fn ejected_mask(&self) -> u64 {
        self.ejected
    }

    /// The ejection table (to share).
    pub fn table(&self) -> &[Ejection] {
        &self.table
    }

    /// Records a response of target `i`. Returns true when the target has reached a
    /// threshold and may be ejected: the caller then calls [`Self::eject`] with the time.
    pub fn observe(&mut self, i: usize, outcome: Outcome) -> bool {
        let Some(c) = self.counters.get_mut(i) else {
            return false;
        };
        match outcome {
            Outcome::Success => {
                *c = Counters::default();
                return false;
            }
            Outcome::ServerError => {
                c.consecutive_5xx += 1;
                c.consecutive_gateway = 0;
            }
            Outcome::GatewayError => {
                c.consecutive_5xx += 1;
                c.consecutive_gateway += 1;
            }
        }
        let hit = |n: u32, limit: u32| limit > 0 && n >= limit;
        if !(hit(c.consecutive_5xx, self.config.consecutive_5xx)
            || hit(
                c.consecutive_gateway,
                self.config.consecutive_gateway_errors,
            ))
        {
            return false;
        }
        *c = Counters::default();
        self.ejected & (1 << i) == 0 && self.may_eject_one_more()
    }

    fn may_eject_one_more(&self) -> bool {
        let ejected = u64::from(self.ejected.count_ones());
        let n = self.table.len() as u64;
        ejected == 0 || (ejected + 1) * 100 <= u64::from(self.config.max_ejection_percent) * n
    }

    /// Ejects target `i` at `now_ms`, on top of `shared` (the table other VMs wrote, if
    /// any, adopted first). Returns false if it was already ejected there.
    pub fn eject(&mut self, i: usize, now_ms: u64, shared: Option<Vec<Ejection>>) -> bool {
        if let Some(table) = shared {
            self.adopt(table, now_ms);
        }
        let base = self.config.base_ejection_time_ms;
        let max = self.config.max_ejection_time_ms;
        let Some(e) = self.table.get_mut(i) else {
            return false;
        };
        if e.until_ms > now_ms {
            return false;
        }
        let decayed = now_ms
            .saturating_sub(e.until_ms)
            .checked_div(base)
            .unwrap_or(0);
        let count = u64::from(e.count).saturating_sub(decayed) + 1;
        *e = Ejection {
            count: count.min(u64::from(u32::MAX)) as u32,
            until_ms: now_ms.saturating_add(base.saturating_mul(count).min(max)),
        };
        self.ejected |= 1 << i;
        true
    }

    /// Adopts a shared table (ignored if its size differs) and expires ejections.
    pub fn adopt(&mut self, table: Vec<Ejection>, now_ms: u64) {
        if table.len() == self.table.len() {
            self.table = table;
        }
        self.expire(now_ms);
    }

    /// Ends the ejections that are over at `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        self.ejected = self
            .table
            .iter()
            .enumerate()
            .take(64)
            .filter(|(_, e)| e.until_ms > now_ms)
            .fold(0, |m, (i, _)| m | 1 << i);
    }
}

/// The shared-data key of a destination's ejection table:
/// `xcluster.outlier.<destination>.<hash of its target names>`, so a config that changes
/// the targets never reads a table written for other targets.
pub fn shared_key<'a>(destination: &str, targets: impl Iterator<Item = &'a str>) -> String {
    let mut h = Fnv::default();
    for t in targets {
        h.write(t.as_bytes());
        h.write_u8(0);
    }
    let mut key = format!("xcluster.outlier.{destination}.");
    push_hex(&mut key, h.finish(), 16);
    key
}

/// Serializes an ejection table: per target, `count` (u32 LE) and `until_ms` (u64 LE).
pub fn encode(table: &[Ejection]) -> Vec<u8> {
    let mut out = Vec::with_capacity(table.len() * 12);
    for e in table {
        out.extend_from_slice(&e.count.to_le_bytes());
        out.extend_from_slice(&e.until_ms.to_le_bytes());
    }
    out
}

/// Parses [`encode`]'s output; `None` if malformed.
pub fn decode(bytes: &[u8]) -> Option<Vec<Ejection>> {
    if !bytes.len().is_multiple_of(12) {
        return None;
    }
    bytes
        .chunks_exact(12)
        .map(|c| {
            Some(Ejection {
                count: u32::from_le_bytes(c[..4].try_into().ok()?),
                until_ms: u64::from_le_bytes(c[4..].try_into().ok()?),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_percent: u32) -> OutlierDetectionConfig {
        OutlierDetectionConfig {
            consecutive_5xx: 5,
            consecutive_gateway_errors: 3,
            base_ejection_time_ms: 1000,
            max_ejection_time_ms: 2500,
            max_ejection_percent: max_percent,
        }
    }

    #[test]
    fn shared_keys_follow_the_target_list() {
        let key = |targets: &[&str]| shared_key("d", targets.iter().copied());
        assert_eq!(key(&["a", "b"]), key(&["a", "b"]));
        assert!(key(&["a", "b"]).starts_with("xcluster.outlier.d."));
        assert_ne!(key(&["a", "b"]), key(&["b", "a"]));
        assert_ne!(key(&["ab"]), key(&["a", "b"]));
    }

    #[test]
    fn classification() {
        assert_eq!(classify(200, || unreachable!()), Outcome::Success);
        assert_eq!(classify(503, || unreachable!()), Outcome::GatewayError);
        assert_eq!(classify(500, || 0), Outcome::ServerError);
        assert_eq!(classify(500, || 0x20), Outcome::GatewayError);
    }

    #[test]
    fn gateway_errors_eject_then_expire() {
        let mut d = OutlierDetector::new(config(100), 3);
        assert!(!d.observe(1, Outcome::GatewayError));
        assert!(!d.observe(1, Outcome::GatewayError));
        assert!(d.observe(1, Outcome::GatewayError));
        assert!(d.eject(1, 10_000, None));
        assert_eq!(d.ejected_mask(), 0b010);
        d.expire(10_999);
        assert_eq!(d.ejected_mask(), 0b010);
        d.expire(11_000);
        assert_eq!(d.ejected_mask(), 0);
    }

    #[test]
    fn success_resets_the_count() {
        let mut d = OutlierDetector::new(config(100), 1);
        for _ in 0..10 {
            assert!(!d.observe(0, Outcome::GatewayError));
            assert!(!d.observe(0, Outcome::GatewayError));
            assert!(!d.observe(0, Outcome::Success));
        }
        for _ in 0..4 {
            assert!(!d.observe(0, Outcome::ServerError));
        }
        assert!(d.observe(0, Outcome::ServerError));
    }

    #[test]
    fn ejection_time_grows_is_capped_and_decays() {
        let mut d = OutlierDetector::new(config(100), 1);
        assert!(d.eject(0, 0, None));
        assert_eq!(d.table()[0].until_ms, 1000);
        assert!(d.eject(0, 1000, None));
        assert_eq!(d.table()[0].until_ms, 3000);
        assert!(d.eject(0, 3000, None));
        assert_eq!(d.table()[0].until_ms, 5500, "capped at max_ejection_time");
        // Healthy for two base periods: multiplier 3 decays to 1, next is 2.
        assert!(d.eject(0, 7500, None));
        assert_eq!(
            d.table()[0],
            Ejection {
                count: 2,
                until_ms: 9500
            }
        );
    }

    #[test]
    fn max_ejection_percent_allows_at_least_one() {
        let mut d = OutlierDetector::new(config(10), 3);
        for _ in 0..3 {
            d.observe(0, Outcome::GatewayError);
        }
        assert!(d.eject(0, 0, None));
        for _ in 0..2 {
            assert!(!d.observe(1, Outcome::GatewayError));
        }
        assert!(!d.observe(1, Outcome::GatewayError), "10% of 3: only one");
        let mut d = OutlierDetector::new(config(70), 3);
        d.eject(0, 0, None);
        for _ in 0..2 {
            d.observe(1, Outcome::GatewayError);
        }
        assert!(d.observe(1, Outcome::GatewayError), "2 of 3 ≤ 70%");
    }

    #[test]
    fn shared_table_is_adopted_and_not_double_counted() {
        let mut a = OutlierDetector::new(config(100), 2);
        let mut b = OutlierDetector::new(config(100), 2);
        assert!(a.eject(1, 100, None));
        let shared = decode(&encode(a.table())).unwrap();
        b.adopt(shared.clone(), 200);
        assert_eq!(b.ejected_mask(), 0b10);
        assert!(!b.eject(1, 300, Some(shared)), "already ejected by VM a");
        assert_eq!(b.table()[1].count, 1);
        assert_eq!(decode(&[1, 2, 3]), None);
        b.adopt(vec![Ejection::default(); 5], 0);
        assert_eq!(b.table().len(), 2, "a table of another size is ignored");
    }
}
