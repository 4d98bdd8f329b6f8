//! The deterministic companion of `make bench`: the filter's wasm instructions per request
//! (wasmi fuel in host-sim) at 10, 1,000 and 10,000 authorization rules must stay within
//! a budget, and the 10,000-rule cost within 1.2 × the 10-rule cost, so a regression fails
//! CI even on a noisy machine. The budgets are the measured figures plus about 10 %.
#![cfg(test)]

use xcluster_bench::sim::{self, RequestKind, SimCost};

/// (rules, allowed budget, denied budget, on_configure budget), in wasm instructions.
const BUDGETS: [(usize, u64, u64, u64); 3] = [
    (10, 19_000, 16_500, 930_000),
    (1_000, 19_500, 16_500, 38_000_000),
    (10_000, 19_600, 16_500, 380_000_000),
];

/// Requests per kind and policy size.
const REQUESTS: usize = 20;

fn per_request(cost: &SimCost, kind: RequestKind) -> u64 {
    cost.request(kind).map(|r| r.total).unwrap()
}

#[test]
fn instructions_per_request_stay_within_budget_and_do_not_grow_with_rules() {
    let wasm = xcluster_host_sim::filter_wasm().unwrap();
    let host = sim::load(&wasm).unwrap();
    let mut costs = Vec::new();
    for (rules, allowed, denied, configure) in BUDGETS {
        let cost = sim::measure(&host, rules, REQUESTS, 1).unwrap();
        let (a, d) = (
            per_request(&cost, RequestKind::Allowed),
            per_request(&cost, RequestKind::Denied),
        );
        println!(
            "{rules:>6} rules: allowed {a} (budget {allowed}), denied {d} (budget {denied}), \
             on_configure {} (budget {configure}) instructions",
            cost.configure_instructions
        );
        costs.push((
            rules,
            a,
            d,
            cost.configure_instructions,
            allowed,
            denied,
            configure,
        ));
    }
    for (rules, a, d, c, allowed, denied, configure) in &costs {
        assert!(
            a <= allowed,
            "{rules} rules: allowed request costs {a} > budget {allowed}"
        );
        assert!(
            d <= denied,
            "{rules} rules: denied request costs {d} > budget {denied}"
        );
        assert!(
            c <= configure,
            "{rules} rules: on_configure costs {c} > budget {configure}"
        );
    }
    let (small, large) = (&costs[0], &costs[costs.len() - 1]);
    // Flat: within 1.2 ×, in integers.
    assert!(
        large.1 * 5 <= small.1 * 6,
        "allowed: {} rules cost {} > 1.2 × {} ({} rules)",
        large.0,
        large.1,
        small.1,
        small.0
    );
    assert!(
        large.2 * 5 <= small.2 * 6,
        "denied: {} rules cost {} > 1.2 × {} ({} rules)",
        large.0,
        large.2,
        small.2,
        small.0
    );
}
