//! `--health-check DESTINATION=PATH[,interval=5s][,timeout=1s][,healthy=2][,unhealthy=3][,status=200|204]`:
//! active health checks of a destination's targets. The inputs carry only passive
//! settings (Istio `outlierDetection`), so active checks come from this flag.

use xcluster_filter::config::{DestinationConfig, HealthCheckConfig};

use crate::load::Error;

/// One `--health-check` flag: the destination it applies to and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheckFlag {
    /// The destination's name as the config names it (`NAMESPACE/NAME`).
    pub destination: String,
    /// The health check.
    pub config: HealthCheckConfig,
}

const USAGE: &str = "expected DESTINATION=PATH[,interval=DURATION][,timeout=DURATION]\
[,healthy=N][,unhealthy=N][,status=CODE|CODE...]";

impl std::str::FromStr for HealthCheckFlag {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("--health-check {text:?}: {why}");
        let (destination, rest) = text.split_once('=').ok_or_else(|| bad(USAGE))?;
        let mut parts = rest.split(',');
        let path = parts.next().unwrap_or_default();
        if destination.is_empty() || !path.starts_with('/') {
            return Err(bad(USAGE));
        }
        let mut config = HealthCheckConfig {
            path: path.to_string(),
            interval_ms: 5_000,
            timeout_ms: 1_000,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            expected_statuses: vec![200],
        };
        for part in parts {
            let (key, value) = part.split_once('=').ok_or_else(|| bad(USAGE))?;
            let count = || {
                value
                    .parse::<u32>()
                    .map_err(|_| bad(&format!("{key}: expected a count, got {value:?}")))
            };
            match key {
                "interval" => {
                    config.interval_ms = duration_ms(value).ok_or_else(|| {
                        bad(&format!(
                            "interval: expected a duration (5s, 500ms), got {value:?}"
                        ))
                    })?
                }
                "timeout" => {
                    config.timeout_ms = duration_ms(value).ok_or_else(|| {
                        bad(&format!(
                            "timeout: expected a duration (1s, 500ms), got {value:?}"
                        ))
                    })?
                }
                "healthy" => config.healthy_threshold = count()?,
                "unhealthy" => config.unhealthy_threshold = count()?,
                "status" => {
                    config.expected_statuses = value
                        .split('|')
                        .map(|s| s.parse::<u32>())
                        .collect::<Result<_, _>>()
                        .map_err(|_| {
                            bad(&format!("status: expected CODE|CODE..., got {value:?}"))
                        })?
                }
                _ => return Err(bad(&format!("unknown setting {key:?}; {USAGE}"))),
            }
        }
        Ok(HealthCheckFlag {
            destination: destination.to_string(),
            config,
        })
    }
}

/// `5s`, `1.5s`, `500ms` or `2m` in milliseconds.
fn duration_ms(text: &str) -> Option<u64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return None;
    };
    let value: f64 = number.parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * scale).round() as u64)
}

/// Sets each flag's health check on its destination; a flag naming no destination is an
/// error that lists the destinations there are.
pub(super) fn apply(
    destinations: &mut [DestinationConfig],
    flags: &[HealthCheckFlag],
) -> Result<(), Error> {
    for flag in flags {
        let Some(dest) = destinations.iter_mut().find(|d| d.name == flag.destination) else {
            let names: Vec<&str> = destinations.iter().map(|d| d.name.as_str()).collect();
            return Err(Error::plain(format!(
                "--health-check {}: no destination of that name (there are: {})",
                flag.destination,
                names.join(", ")
            )));
        };
        dest.health_check = Some(flag.config.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_takes_the_filters_defaults_and_its_own_settings() {
        let flag: HealthCheckFlag = "bookinfo/reviews=/healthz".parse().unwrap();
        assert_eq!(flag.destination, "bookinfo/reviews");
        assert_eq!(flag.config.path, "/healthz");
        let defaults: HealthCheckConfig =
            serde_json::from_value(serde_json::json!({"path": "/healthz"})).unwrap();
        assert_eq!(flag.config, defaults);

        let flag: HealthCheckFlag =
            "a/b=/ready,interval=2s,timeout=250ms,healthy=1,unhealthy=2,status=200|204"
                .parse()
                .unwrap();
        assert_eq!(flag.config.interval_ms, 2_000);
        assert_eq!(flag.config.timeout_ms, 250);
        assert_eq!(flag.config.healthy_threshold, 1);
        assert_eq!(flag.config.unhealthy_threshold, 2);
        assert_eq!(flag.config.expected_statuses, vec![200, 204]);
    }

    #[test]
    fn a_bad_flag_names_what_is_wrong() {
        for (text, needle) in [
            ("a/b", "expected DESTINATION=PATH"),
            ("a/b=healthz", "expected DESTINATION=PATH"),
            ("a/b=/h,interval=5", "interval: expected a duration"),
            ("a/b=/h,healthy=x", "healthy: expected a count"),
            ("a/b=/h,status=ok", "status: expected"),
            ("a/b=/h,port=80", "unknown setting \"port\""),
        ] {
            let err = text.parse::<HealthCheckFlag>().unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
