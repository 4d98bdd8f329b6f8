//! The dry-run request profile (YAML or JSON): what traffic to simulate and which
//! targets fail. Pure data and validation.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// What `xcluster-sim` simulates.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Total requests (1 ..= 1,000,000).
    pub requests: u64,
    /// Virtual time between two requests, in ms (default 10). Ejections expire and
    /// ticks fire as this time passes.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Envoy workers (VMs sharing state); requests go round-robin (default 1).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Seed of the filter's random numbers (default 1).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Envoy node properties the filter falls back to when its config has no `local`.
    #[serde(default)]
    pub node: Node,
    /// Request classes, mixed by weight. `{i}` in a path or header value is replaced by
    /// the request's number (for example to vary a sticky key).
    pub traffic: Vec<Traffic>,
    /// Targets whose upstream answers with an error.
    #[serde(default)]
    pub failures: Vec<Failure>,
}

fn default_interval_ms() -> u64 {
    10
}
fn default_workers() -> usize {
    1
}
fn default_seed() -> u64 {
    1
}

/// Envoy node properties.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// `node.metadata.CLUSTER_ID`.
    #[serde(default)]
    pub cluster: Option<String>,
    /// `node.locality.region`.
    #[serde(default)]
    pub region: Option<String>,
    /// `node.locality.zone`.
    #[serde(default)]
    pub zone: Option<String>,
}

/// One class of requests.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Name shown in the report (default `traffic[<n>]`).
    #[serde(default)]
    pub name: Option<String>,
    /// Relative share of the requests (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// HTTP method (default GET).
    #[serde(default = "default_method")]
    pub method: String,
    /// `:authority`.
    pub host: String,
    /// `:path` (default `/`).
    #[serde(default = "default_path")]
    pub path: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The caller's mTLS identity (peer certificate URI SAN), if any.
    #[serde(default)]
    pub caller: Option<String>,
}

fn default_weight() -> u32 {
    1
}
fn default_method() -> String {
    "GET".into()
}
fn default_path() -> String {
    "/".into()
}

/// A target whose upstream fails for a range of requests.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// Target name (or its Envoy cluster).
    pub target: String,
    /// Status the upstream answers (default 503).
    #[serde(default = "default_status")]
    pub status: u16,
    /// Envoy response flags to report with it (e.g. 32 = UF, connect failure).
    #[serde(default)]
    pub flags: u64,
    /// First failing request number (default 0).
    #[serde(default)]
    pub from: u64,
    /// First request number that succeeds again (default: never).
    #[serde(default)]
    pub until: Option<u64>,
    /// Virtual time (ms since the run started) from which it fails (default 0).
    #[serde(default)]
    pub from_ms: u64,
    /// Virtual time from which it succeeds again (default: never).
    #[serde(default)]
    pub until_ms: Option<u64>,
}

fn default_status() -> u16 {
    503
}

impl Failure {
    /// Whether request number `i` to this target, at `ms` into the run, fails (every
    /// request then: a replay of it, a health-check probe).
    pub fn active(&self, i: u64, ms: u64) -> bool {
        i >= self.from
            && self.until.is_none_or(|u| i < u)
            && ms >= self.from_ms
            && self.until_ms.is_none_or(|u| ms < u)
    }
}

impl Profile {
    /// Parses a profile (YAML, of which JSON is a subset); errors name `origin` and the
    /// line and column, or the field.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, String> {
        let profile: Profile = crate::yaml::from_str(text, origin)?;
        profile
            .validate()
            .map_err(|e| format!("{}: {e}", origin.display()))?;
        Ok(profile)
    }

    fn validate(&self) -> Result<(), String> {
        if !(1..=1_000_000).contains(&self.requests) {
            return Err("requests: must be between 1 and 1000000".into());
        }
        if !(1..=64).contains(&self.workers) {
            return Err("workers: must be between 1 and 64".into());
        }
        if self.traffic.is_empty() {
            return Err("traffic: needs at least one request class".into());
        }
        if self.traffic.iter().all(|t| t.weight == 0) {
            return Err("traffic: every weight is 0".into());
        }
        for (i, f) in self.failures.iter().enumerate() {
            if !(100..=599).contains(&f.status) {
                return Err(format!(
                    "failures[{i}].status: {} is not an HTTP status",
                    f.status
                ));
            }
        }
        Ok(())
    }

    /// The traffic class of request number `i`: classes take turns in proportion to
    /// their weights (deterministic).
    pub fn class_of(&self, i: u64) -> usize {
        let total: u64 = self.traffic.iter().map(|t| u64::from(t.weight)).sum();
        let mut slot = i % total.max(1);
        for (n, t) in self.traffic.iter().enumerate() {
            if slot < u64::from(t.weight) {
                return n;
            }
            slot -= u64::from(t.weight);
        }
        0
    }

    /// The report name of traffic class `n`.
    pub fn class_name(&self, n: usize) -> String {
        self.traffic[n]
            .name
            .clone()
            .unwrap_or_else(|| format!("traffic[{n}]"))
    }
}

impl Traffic {
    /// The request headers of request number `i`.
    pub fn headers(&self, i: u64) -> Vec<(String, String)> {
        let n = i.to_string();
        let mut out = vec![
            (":method".to_string(), self.method.clone()),
            (":path".to_string(), self.path.replace("{i}", &n)),
            (":authority".to_string(), self.host.clone()),
            (":scheme".to_string(), "https".to_string()),
        ];
        out.extend(
            self.headers
                .iter()
                .map(|(k, v)| (k.clone(), v.replace("{i}", &n))),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
requests: 10
traffic:
  - name: a
    weight: 3
    host: svc
    headers: {x-user: "u-{i}"}
  - host: svc
    path: /p/{i}
failures:
  - target: t1
    from: 2
    until: 4
"#;

    #[test]
    fn parses_yaml_with_defaults() {
        let p = Profile::parse(YAML, Path::new("p.yaml")).unwrap();
        assert_eq!((p.interval_ms, p.workers, p.seed), (10, 1, 1));
        assert_eq!(p.failures[0].status, 503);
        let classes: Vec<usize> = (0..8).map(|i| p.class_of(i)).collect();
        assert_eq!(classes, vec![0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(p.class_name(1), "traffic[1]");
        assert!(p.traffic[0]
            .headers(7)
            .contains(&("x-user".into(), "u-7".into())));
        assert_eq!(p.traffic[1].headers(5)[1].1, "/p/5");
        let f = &p.failures[0];
        assert_eq!(
            (
                f.active(1, 0),
                f.active(2, 0),
                f.active(3, 0),
                f.active(4, 0)
            ),
            (false, true, true, false)
        );
        let by_time = crate::profile::Failure {
            from_ms: 2000,
            until_ms: Some(3000),
            ..f.clone()
        };
        assert_eq!(
            (
                by_time.active(2, 1999),
                by_time.active(2, 2000),
                by_time.active(2, 3000)
            ),
            (false, true, false)
        );
    }

    #[test]
    fn json_is_accepted_too() {
        let p = Profile::parse(
            r#"{"requests": 1, "traffic": [{"host": "h"}]}"#,
            Path::new("p.json"),
        )
        .unwrap();
        assert_eq!(p.traffic[0].method, "GET");
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let e = Profile::parse("requests: 1\ntraffic: []\n", Path::new("x.yaml")).unwrap_err();
        assert_eq!(e, "x.yaml: traffic: needs at least one request class");
        let e = Profile::parse("requests: 1\ntrafic: []\n", Path::new("x.yaml")).unwrap_err();
        assert!(e.starts_with("x.yaml:2:1: unknown field `trafic`"), "{e}");
        let e =
            Profile::parse("requests: 0\ntraffic: [{host: h}]\n", Path::new("x.yaml")).unwrap_err();
        assert!(e.contains("requests"), "{e}");
    }
}
