//! Times compiling the 10,000-rule benchmark policy natively (parse, then compile).
use std::time::Instant;

fn main() {
    let rules = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let cfg = xcluster_bench::policy::xcluster_config(rules);
    let json = serde_json::to_vec(&cfg).expect("serialize");
    println!("{rules} rules, config {} bytes", json.len());
    for _ in 0..3 {
        let t = Instant::now();
        let parsed = xcluster_filter::policy::parse_config(&json).expect("parse");
        let parse = t.elapsed();
        let policy = xcluster_filter::policy::Policy::compile(parsed, &Default::default());
        assert!(policy.is_ok());
        println!("parse {parse:?}, parse + compile {:?}", t.elapsed());
    }
}
