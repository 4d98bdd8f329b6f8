//! Target selection: the destination policy (Locality / FailOver / ActiveActive) over
//! locality tiers, then a weighted pick, random or sticky (weighted rendezvous hashing).
//!
//! Target sets are `u64` bit masks (a destination has at most [`MAX_TARGETS`] targets).

use crate::config::LbPolicy;
use crate::hash::hash_bytes;

/// Most targets one destination may have.
pub const MAX_TARGETS: usize = 64;

/// A fast, small PRNG (wyrand), seeded once per VM.
#[derive(Debug, Clone, Copy)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    }

    /// A uniform value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the balancer needs to know of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSlot {
    /// Relative weight.
    pub weight: u32,
    /// Locality tier (0 best) or explicit priority.
    pub tier: u32,
    /// Runs in the gateway's own cluster.
    pub local: bool,
    /// Stable per-target hash seed (from its name) for sticky picks.
    pub seed: u64,
}

/// How to pick among the candidates.
pub enum Chooser<'a> {
    /// Weighted random.
    Random(&'a mut Rng),
    /// Weighted rendezvous hash of this key.
    Sticky(&'a [u8]),
}

/// The compiled balancing policy of a destination.
#[derive(Debug, Clone)]
pub struct Balancer {
    policy: LbPolicy,
    slots: Vec<TargetSlot>,
    local_mask: u64,
    positive_mask: u64,
    /// Distinct tiers, best first, with the mask of their targets.
    tiers: Vec<(u32, u64)>,
}

impl Balancer {
    /// Builds the balancer; `slots.len() <= MAX_TARGETS` (validated by the caller).
    pub fn new(policy: LbPolicy, slots: Vec<TargetSlot>) -> Self {
        let mut local_mask = 0;
        let mut positive_mask = 0;
        let mut tiers: Vec<(u32, u64)> = Vec::new();
        for (i, s) in slots.iter().enumerate().take(MAX_TARGETS) {
            let bit = 1u64 << i;
            if s.local {
                local_mask |= bit;
            }
            if s.weight > 0 {
                positive_mask |= bit;
            }
            match tiers.binary_search_by_key(&s.tier, |&(t, _)| t) {
                Ok(at) => tiers[at].1 |= bit,
                Err(at) => tiers.insert(at, (s.tier, bit)),
            }
        }
        Self {
            policy,
            slots,
            local_mask,
            positive_mask,
            tiers,
        }
    }

    /// The policy.
    pub fn policy(&self) -> LbPolicy {
        self.policy
    }

    /// Every target.
    pub fn all(&self) -> u64 {
        if self.slots.len() >= 64 {
            u64::MAX
        } else {
            (1u64 << self.slots.len()) - 1
        }
    }

    /// The tier of target `i`.
    pub fn tier(&self, i: usize) -> u32 {
        self.slots.get(i).map_or(0, |s| s.tier)
    }

    /// Applies the policy to the available targets (eligible and healthy): the set the
    /// pick is made from, possibly empty.
    pub fn candidates(&self, available: u64) -> u64 {
        let available = available & self.positive_mask;
        match self.policy {
            LbPolicy::Locality => available & self.local_mask,
            LbPolicy::ActiveActive => available,
            LbPolicy::FailOver => self
                .tiers
                .iter()
                .map(|&(_, m)| available & m)
                .find(|&m| m != 0)
                .unwrap_or(0),
        }
    }

    /// Picks one target of `set` by weight.
    pub fn pick(&self, set: u64, chooser: Chooser<'_>) -> Option<usize> {
        self.pick_by(set, |i| u64::from(self.slots[i].weight), chooser)
    }

    /// Picks one target of `available` under the policy like [`Self::candidates`] and
    /// [`Self::pick`], with each target's weight scaled by its `ramp` (percent; targets on
    /// probation are below 100). Under FailOver a tier keeps the share of its targets'
    /// ramps and the rest spills to the next tier, so traffic moves back gradually.
    pub fn choose(
        &self,
        available: u64,
        ramp: Option<&[u8]>,
        mut chooser: Chooser<'_>,
    ) -> Option<usize> {
        let Some(ramp) = ramp else {
            return self.pick(self.candidates(available), chooser);
        };
        let ramp_of = |i: usize| u64::from(ramp.get(i).copied().unwrap_or(100));
        let weight = |i: usize| u64::from(self.slots[i].weight) * ramp_of(i);
        let available = available & self.positive_mask;
        let set = match self.policy {
            LbPolicy::Locality => available & self.local_mask,
            LbPolicy::ActiveActive => available,
            LbPolicy::FailOver => {
                let tiers: Vec<u64> = self
                    .tiers
                    .iter()
                    .map(|&(_, m)| available & m)
                    .filter(|&m| m != 0)
                    .collect();
                let draw = match &mut chooser {
                    Chooser::Random(rng) => rng.next_u64(),
                    Chooser::Sticky(key) => mix(hash_bytes(key)),
                };
                let last = tiers.len().saturating_sub(1);
                tiers
                    .iter()
                    .enumerate()
                    .find(|&(k, &m)| {
                        let share: u64 = bits(m).map(ramp_of).sum();
                        k == last || draw % (100 * u64::from(m.count_ones())) < share
                    })
                    .map_or(0, |(_, &m)| m)
            }
        };
        self.pick_by(set, weight, chooser)
    }

    fn pick_by(
        &self,
        set: u64,
        weight: impl Fn(usize) -> u64,
        chooser: Chooser<'_>,
    ) -> Option<usize> {
        if set == 0 {
            return None;
        }
        match chooser {
            Chooser::Random(rng) => {
                let total: u64 = bits(set).map(&weight).sum();
                let mut r = rng.below(total.max(1));
                bits(set).find(|&i| {
                    let w = weight(i);
                    if r < w {
                        true
                    } else {
                        r -= w;
                        false
                    }
                })
            }
            Chooser::Sticky(key) => {
                let key = hash_bytes(key);
                bits(set)
                    .map(|i| {
                        let h = mix(key ^ self.slots[i].seed);
                        // u in (0, 1): 53 random bits, never 0.
                        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                        (i, -(weight(i) as f64) / u.ln())
                    })
                    .fold(None, |best: Option<(usize, f64)>, (i, score)| match best {
                        Some((_, b)) if b >= score => best,
                        _ => Some((i, score)),
                    })
                    .map(|(i, _)| i)
            }
        }
    }
}

/// Indexes of the set bits, lowest first.
pub fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            i
        })
    })
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn slot(weight: u32, tier: u32, name: &str) -> TargetSlot {
        TargetSlot {
            weight,
            tier,
            local: tier == 0,
            seed: hash_bytes(name.as_bytes()),
        }
    }

    fn three(policy: LbPolicy) -> Balancer {
        Balancer::new(
            policy,
            vec![slot(1, 3, "c1"), slot(1, 0, "c2"), slot(1, 3, "c3")],
        )
    }

    #[test]
    fn weights_converge() {
        let b = Balancer::new(
            LbPolicy::ActiveActive,
            vec![slot(75, 3, "a"), slot(15, 0, "b"), slot(10, 0, "c")],
        );
        let mut rng = Rng::new(42);
        let mut counts = [0u32; 3];
        let n = 100_000;
        for _ in 0..n {
            let i = b
                .pick(b.candidates(b.all()), Chooser::Random(&mut rng))
                .unwrap();
            counts[i] += 1;
        }
        for (c, expected) in counts.iter().zip([0.75, 0.15, 0.10]) {
            let share = f64::from(*c) / f64::from(n);
            assert!((share - expected).abs() < 0.01, "{counts:?}");
        }
    }

    #[test]
    fn locality_serves_local_only() {
        let b = three(LbPolicy::Locality);
        assert_eq!(b.candidates(0b111), 0b010);
        assert_eq!(b.candidates(0b101), 0, "no local target: nothing to pick");
    }

    #[test]
    fn failover_moves_down_tiers_and_back() {
        let b = three(LbPolicy::FailOver);
        assert_eq!(b.candidates(0b111), 0b010);
        assert_eq!(b.candidates(0b101), 0b101, "local gone: next tier");
        assert_eq!(b.candidates(0b001), 0b001);
        assert_eq!(b.candidates(0b011), 0b010, "local back: fail back");
        assert_eq!(b.candidates(0), 0);
    }

    #[test]
    fn zero_weight_never_picked() {
        let b = Balancer::new(
            LbPolicy::FailOver,
            vec![slot(0, 0, "local"), slot(5, 1, "zone")],
        );
        assert_eq!(b.candidates(0b11), 0b10);
    }

    #[test]
    fn active_active_spreads_over_all() {
        let b = three(LbPolicy::ActiveActive);
        let mut rng = Rng::new(7);
        let mut seen = 0u64;
        for _ in 0..200 {
            seen |= 1
                << b.pick(b.candidates(0b111), Chooser::Random(&mut rng))
                    .unwrap();
        }
        assert_eq!(seen, 0b111);
    }

    #[test]
    fn sticky_keys_are_stable_and_move_minimally() {
        let b = Balancer::new(
            LbPolicy::ActiveActive,
            vec![slot(1, 0, "a"), slot(1, 0, "b"), slot(1, 0, "c")],
        );
        let keys: Vec<String> = (0..3000).map(|i| format!("user-{i}")).collect();
        let before: Vec<usize> = keys
            .iter()
            .map(|k| b.pick(0b111, Chooser::Sticky(k.as_bytes())).unwrap())
            .collect();
        let again: Vec<usize> = keys
            .iter()
            .map(|k| b.pick(0b111, Chooser::Sticky(k.as_bytes())).unwrap())
            .collect();
        assert_eq!(before, again);
        let mut counts = [0; 3];
        before.iter().for_each(|&i| counts[i] += 1);
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
        // Target 2 leaves: only its keys move.
        for (k, &was) in keys.iter().zip(&before) {
            let now = b.pick(0b011, Chooser::Sticky(k.as_bytes())).unwrap();
            if was != 2 {
                assert_eq!(now, was, "key {k} moved although its target stayed");
            }
        }
    }

    #[test]
    fn sticky_respects_weights() {
        let b = Balancer::new(
            LbPolicy::ActiveActive,
            vec![slot(90, 0, "a"), slot(10, 0, "b")],
        );
        let on_a = (0..5000)
            .filter(|i| b.pick(0b11, Chooser::Sticky(format!("k{i}").as_bytes())) == Some(0))
            .count();
        assert!((4300..4700).contains(&on_a), "{on_a}");
    }

    #[test]
    fn a_ramping_tier_keeps_its_share_and_spills_the_rest_to_the_next() {
        let b = three(LbPolicy::FailOver);
        let mut rng = Rng::new(3);
        let local_share = |ramp: &[u8], rng: &mut Rng| {
            (0..10_000)
                .filter(|_| b.choose(0b111, Some(ramp), Chooser::Random(rng)) == Some(1))
                .count() as f64
                / 10_000.0
        };
        for (pct, want) in [(10u8, 0.10), (50, 0.50), (100, 1.0)] {
            let share = local_share(&[100, pct, 100], &mut rng);
            assert!((share - want).abs() < 0.02, "ramp {pct}%: local {share}");
        }
        assert_eq!(
            b.choose(0b010, Some(&[100, 10, 100]), Chooser::Random(&mut rng)),
            Some(1),
            "no tier below: the ramping one takes it all"
        );
        assert_eq!(b.choose(0b111, None, Chooser::Random(&mut rng)), Some(1));
    }

    #[test]
    fn ramps_scale_weights_and_sticky_users_come_back_for_good() {
        let aa = Balancer::new(
            LbPolicy::ActiveActive,
            vec![slot(1, 0, "a"), slot(1, 0, "b")],
        );
        let mut rng = Rng::new(5);
        let on_a = (0..10_000)
            .filter(|_| aa.choose(0b11, Some(&[25, 100]), Chooser::Random(&mut rng)) == Some(0))
            .count();
        assert!((1800..2200).contains(&on_a), "{on_a}: a at 25% weight");
        let fo = three(LbPolicy::FailOver);
        let home = |pct: u8| -> Vec<bool> {
            (0..2000)
                .map(|u| {
                    let key = format!("user-{u}");
                    fo.choose(
                        0b111,
                        Some(&[100, pct, 100]),
                        Chooser::Sticky(key.as_bytes()),
                    ) == Some(1)
                })
                .collect()
        };
        let (early, later) = (home(30), home(60));
        assert!(
            early.iter().zip(&later).all(|(e, l)| !e || *l),
            "moved back for good"
        );
        let back = later.iter().filter(|&&b| b).count();
        assert!((1050..1350).contains(&back), "{back} of 2000 at 60%");
    }

    #[test]
    fn bits_iterates_set_bits() {
        assert_eq!(bits(0b1010_0001).collect::<Vec<_>>(), vec![0, 5, 7]);
        assert_eq!(bits(0).count(), 0);
        assert_eq!(bits(u64::MAX).count(), 64);
    }
}
