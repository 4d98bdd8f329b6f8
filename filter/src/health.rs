//! Passive outlier detection: consecutive errors eject a target for a while. Time is passed
//! in. Each destination's ejection table is shared between VMs (Envoy's workers) through a
//! [`SharedStore`] as bytes (see [`encode`] / [`decode`]); [`Outliers`] keeps every
//! destination's detector and does the read / compare-and-swap / write.

use std::hash::Hasher;

use crate::config::{LbPolicy, OutlierDetectionConfig};
use crate::hash::{push_hex, Fnv};
use crate::policy::Destination;

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
    /// The destination fails over by tiers: the cap never keeps a target in service while
    /// another one is in service (see [`Self::observe`]).
    failover: bool,
}

impl OutlierDetector {
    /// State for `targets` targets, none ejected; `failover` for a FailOver destination.
    pub fn new(config: OutlierDetectionConfig, targets: usize, failover: bool) -> Self {
        Self {
            config,
            counters: vec![Counters::default(); targets],
            table: vec![Ejection::default(); targets],
            ejected: 0,
            failover,
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
    ///
    /// A target on `probation` (it came back a short while ago) reaches it with its first
    /// failure. `max_ejection_percent` caps how many targets are out at once, at least one
    /// ejection always allowed; for a FailOver destination it does not apply while another
    /// target is in service, since capping would keep a dead locality in service instead of
    /// failing over to the next tier.
    pub fn observe(&mut self, i: usize, outcome: Outcome, probation: bool) -> bool {
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
        let limit = |limit: u32| if probation { limit.min(1) } else { limit };
        let hit = |n: u32, configured: u32| configured > 0 && n >= limit(configured);
        if !(hit(c.consecutive_5xx, self.config.consecutive_5xx)
            || hit(
                c.consecutive_gateway,
                self.config.consecutive_gateway_errors,
            ))
        {
            return false;
        }
        *c = Counters::default();
        self.ejected & (1 << i) == 0 && self.may_eject(i)
    }

    fn may_eject(&self, i: usize) -> bool {
        let all = if self.table.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << self.table.len()) - 1
        };
        let others_in_service = all & !self.ejected & !(1 << i) != 0;
        if self.failover && others_in_service {
            return true;
        }
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

/// Shared data as a proxy-wasm host keeps it: per key, a value and a compare-and-swap
/// token that changes on every write.
pub trait SharedStore {
    /// The value of `key` and its CAS token; `None` when the key is not set.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes `value` if the key's token is still `cas` (`None`: unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Write;
}

/// What a [`SharedStore::set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Written.
    Done,
    /// Another writer came first: read again.
    CasMismatch,
    /// The host refused for another reason.
    Failed,
}

/// How often a write that lost a CAS race is retried on top of the winner's table.
const CAS_ATTEMPTS: usize = 4;

/// One destination's detector and the shared-data key of its table.
#[derive(Debug, Clone)]
struct Tracked {
    detector: OutlierDetector,
    key: String,
}

/// The outlier state of every destination of a policy (those with `outlier_detection`).
#[derive(Debug, Clone)]
pub struct Outliers {
    destinations: Vec<Option<Tracked>>,
}

impl Outliers {
    /// State for `destinations`, nothing ejected.
    pub fn new(destinations: &[Destination]) -> Self {
        let destinations = destinations
            .iter()
            .map(|d| {
                d.outlier_detection.clone().map(|config| Tracked {
                    detector: OutlierDetector::new(
                        config,
                        d.targets.len(),
                        d.balancer.policy() == LbPolicy::FailOver,
                    ),
                    key: shared_key(&d.name, d.targets.iter().map(|t| t.name.as_str())),
                })
            })
            .collect();
        Self { destinations }
    }

    /// When each target's last ejection ended or ends (ms since epoch; 0: never ejected).
    pub fn ejection_ends(&self, d: usize) -> impl Iterator<Item = u64> + '_ {
        self.tracked(d)
            .into_iter()
            .flat_map(|t| t.detector.table().iter().map(|e| e.until_ms))
    }

    /// Bit mask of the ejected targets of destination `d`.
    pub fn ejected(&self, d: usize) -> u64 {
        self.tracked(d).map_or(0, |t| t.detector.ejected_mask())
    }

    fn tracked(&self, d: usize) -> Option<&Tracked> {
        self.destinations.get(d).and_then(Option::as_ref)
    }

    /// Records a response of target `t` of destination `d` (see [`OutlierDetector::observe`]
    /// for `probation`). When it reaches a threshold, ejects the target in the shared table
    /// (on top of other VMs' writes) and returns true, unless another VM had ejected it
    /// already.
    pub fn observe(
        &mut self,
        d: usize,
        t: usize,
        outcome: Outcome,
        probation: bool,
        store: &impl SharedStore,
        now_ms: impl FnOnce() -> u64,
    ) -> bool {
        let Some(Some(tracked)) = self.destinations.get_mut(d) else {
            return false;
        };
        if !tracked.detector.observe(t, outcome, probation) {
            return false;
        }
        let now_ms = now_ms();
        for _ in 0..CAS_ATTEMPTS {
            let (shared, cas) = match store.get(&tracked.key) {
                Some((bytes, cas)) => (decode(&bytes), Some(cas)),
                None => (None, None),
            };
            if !tracked.detector.eject(t, now_ms, shared) {
                return false;
            }
            let table = encode(tracked.detector.table());
            if store.set(&tracked.key, &table, cas) != Write::CasMismatch {
                break;
            }
        }
        true
    }

    /// Adopts other VMs' ejections and ends expired ones (at configure and on every
    /// tick). A table not shared yet is published empty, so that every later write is a
    /// compare-and-swap: Envoy cannot swap a key that does not exist, and two VMs' first
    /// ejections would overwrite each other.
    pub fn refresh(&mut self, store: &impl SharedStore, now_ms: u64) {
        for tracked in self.destinations.iter_mut().flatten() {
            let shared = store.get(&tracked.key);
            if shared.is_none() {
                store.set(&tracked.key, &encode(tracked.detector.table()), None);
            }
            match shared.and_then(|(bytes, _)| decode(&bytes)) {
                Some(table) => tracked.detector.adopt(table, now_ms),
                None => tracked.detector.expire(now_ms),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    use super::*;
    use crate::policy::Policy;

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
        let mut d = OutlierDetector::new(config(100), 3, false);
        assert!(!d.observe(1, Outcome::GatewayError, false));
        assert!(!d.observe(1, Outcome::GatewayError, false));
        assert!(d.observe(1, Outcome::GatewayError, false));
        assert!(d.eject(1, 10_000, None));
        assert_eq!(d.ejected_mask(), 0b010);
        d.expire(10_999);
        assert_eq!(d.ejected_mask(), 0b010);
        d.expire(11_000);
        assert_eq!(d.ejected_mask(), 0);
    }

    #[test]
    fn success_resets_the_count() {
        let mut d = OutlierDetector::new(config(100), 1, false);
        for _ in 0..10 {
            assert!(!d.observe(0, Outcome::GatewayError, false));
            assert!(!d.observe(0, Outcome::GatewayError, false));
            assert!(!d.observe(0, Outcome::Success, false));
        }
        for _ in 0..4 {
            assert!(!d.observe(0, Outcome::ServerError, false));
        }
        assert!(d.observe(0, Outcome::ServerError, false));
    }

    #[test]
    fn ejection_time_grows_is_capped_and_decays() {
        let mut d = OutlierDetector::new(config(100), 1, false);
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
        let mut d = OutlierDetector::new(config(10), 3, false);
        for _ in 0..3 {
            d.observe(0, Outcome::GatewayError, false);
        }
        assert!(d.eject(0, 0, None));
        for _ in 0..2 {
            assert!(!d.observe(1, Outcome::GatewayError, false));
        }
        assert!(
            !d.observe(1, Outcome::GatewayError, false),
            "10% of 3: only one"
        );
        let mut d = OutlierDetector::new(config(70), 3, false);
        d.eject(0, 0, None);
        for _ in 0..2 {
            d.observe(1, Outcome::GatewayError, false);
        }
        assert!(d.observe(1, Outcome::GatewayError, false), "2 of 3 ≤ 70%");
    }

    #[test]
    fn a_failover_destination_ejects_a_dead_locality_beyond_the_cap() {
        // Default cap 10 %: ActiveActive keeps the second dead target in service...
        let mut aa = OutlierDetector::new(config(10), 3, false);
        for _ in 0..3 {
            aa.observe(0, Outcome::GatewayError, false);
        }
        assert!(aa.eject(0, 0, None));
        for _ in 0..2 {
            aa.observe(1, Outcome::GatewayError, false);
        }
        assert!(!aa.observe(1, Outcome::GatewayError, false));
        // ...FailOver ejects it while another target is in service, but never the last.
        let mut fo = OutlierDetector::new(config(10), 3, true);
        for t in 0..2 {
            for _ in 0..2 {
                fo.observe(t, Outcome::GatewayError, false);
            }
            assert!(fo.observe(t, Outcome::GatewayError, false), "target {t}");
            assert!(fo.eject(t, 0, None));
        }
        for _ in 0..2 {
            fo.observe(2, Outcome::GatewayError, false);
        }
        assert!(
            !fo.observe(2, Outcome::GatewayError, false),
            "the last one stays"
        );
    }

    #[test]
    fn on_probation_one_failure_is_enough() {
        let mut d = OutlierDetector::new(config(100), 1, false);
        assert!(!d.observe(0, Outcome::GatewayError, false));
        assert!(d.observe(0, Outcome::GatewayError, true));
        assert!(d.observe(0, Outcome::ServerError, true));
        assert!(!d.observe(0, Outcome::Success, true));
    }

    #[test]
    fn shared_table_is_adopted_and_not_double_counted() {
        let mut a = OutlierDetector::new(config(100), 2, false);
        let mut b = OutlierDetector::new(config(100), 2, false);
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

    /// Another VM's work, run in the middle of this one's.
    type Race = Box<dyn FnOnce(&Store)>;

    /// Shared data with Envoy's CAS rules; `before_write` runs once, just before the
    /// first write, to let another VM win the race.
    #[derive(Default)]
    struct Store {
        data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        before_write: RefCell<Option<Race>>,
    }

    impl SharedStore for Store {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.data.borrow().get(key).cloned()
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Write {
            let race = self.before_write.borrow_mut().take();
            if let Some(race) = race {
                race(self);
            }
            let mut data = self.data.borrow_mut();
            let token = data.get(key).map_or(0, |(_, t)| *t);
            if cas.is_some_and(|c| c != token) {
                return Write::CasMismatch;
            }
            data.insert(key.to_owned(), (value.to_vec(), token + 1));
            Write::Done
        }
    }

    fn two_targets() -> Vec<Destination> {
        let json = r#"{"version": 1, "destinations": [{"name": "d",
            "outlier_detection": {"consecutive_gateway_errors": 1, "max_ejection_percent": 100,
                                  "base_ejection_time_ms": 1000},
            "targets": [
              {"name": "a", "cluster": "c", "envoy_cluster": "a",
               "service_account": {"namespace": "n", "name": "s"}},
              {"name": "b", "cluster": "c", "envoy_cluster": "b",
               "service_account": {"namespace": "n", "name": "s"}}]}]}"#;
        Policy::from_json(json.as_bytes(), &Default::default())
            .unwrap()
            .destinations
    }

    #[test]
    fn racing_vms_merge_their_ejections_through_cas() {
        let dests = two_targets();
        let store = Store::default();
        let mut vm1 = Outliers::new(&dests);
        let vm2 = Rc::new(RefCell::new(Outliers::new(&dests)));
        vm1.refresh(&store, 0);
        vm2.borrow_mut().refresh(&store, 0);
        // VM 2 ejects `b` between VM 1's read and VM 1's write of the table.
        let racer = Rc::clone(&vm2);
        *store.before_write.borrow_mut() = Some(Box::new(move |s: &Store| {
            assert!(racer
                .borrow_mut()
                .observe(0, 1, Outcome::GatewayError, false, s, || 100));
        }));
        assert!(vm1.observe(0, 0, Outcome::GatewayError, false, &store, || 100));
        let (bytes, cas) = store.get(&vm1.tracked(0).unwrap().key).unwrap();
        assert_eq!(
            cas, 3,
            "the empty table, VM 2's write, VM 1's retry on top of it"
        );
        let table = decode(&bytes).unwrap();
        assert!(table.iter().all(|e| e.until_ms == 1100), "{table:?}");
        assert_eq!(vm1.ejected(0), 0b11, "VM 1 adopted VM 2's ejection");
        vm2.borrow_mut().refresh(&store, 200);
        assert_eq!(vm2.borrow().ejected(0), 0b11);
    }

    #[test]
    fn a_target_ejected_by_another_vm_is_not_ejected_twice() {
        let dests = two_targets();
        let store = Store::default();
        let mut vm1 = Outliers::new(&dests);
        let vm2 = Rc::new(RefCell::new(Outliers::new(&dests)));
        vm1.refresh(&store, 0);
        let racer = Rc::clone(&vm2);
        *store.before_write.borrow_mut() = Some(Box::new(move |s: &Store| {
            assert!(racer
                .borrow_mut()
                .observe(0, 0, Outcome::GatewayError, false, s, || 100));
        }));
        assert!(
            !vm1.observe(0, 0, Outcome::GatewayError, false, &store, || 100),
            "VM 2 won: VM 1 does not count a second ejection"
        );
        let table = decode(&store.get(&vm1.tracked(0).unwrap().key).unwrap().0).unwrap();
        assert_eq!(table[0].count, 1);
        assert_eq!(vm1.ejected(0), 0b01);
    }

    #[test]
    fn refresh_expires_and_ignores_what_is_not_tracked() {
        let dests = two_targets();
        let store = Store::default();
        let mut vm = Outliers::new(&dests);
        assert!(vm.observe(0, 1, Outcome::GatewayError, false, &store, || 0));
        assert_eq!(vm.ejected(0), 0b10);
        vm.refresh(&store, 999);
        assert_eq!(vm.ejected(0), 0b10);
        vm.refresh(&store, 1000);
        assert_eq!(vm.ejected(0), 0);
        assert_eq!(vm.ejected(5), 0, "no such destination");
        assert!(!vm.observe(5, 0, Outcome::GatewayError, false, &store, || 0));
    }
}
