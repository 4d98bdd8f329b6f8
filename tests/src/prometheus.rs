//! The filter's metrics as Prometheus sees them: Envoy's `/stats/prometheus` and its
//! labelled series.

use std::collections::BTreeMap;
use std::io;

use crate::client::Client;
use crate::envoy::Envoy;

/// Envoy's `/stats/prometheus` text.
pub fn scrape(envoy: &Envoy) -> io::Result<String> {
    let admin = envoy
        .admin()
        .ok_or_else(|| io::Error::other("envoy not ready"))?;
    Ok(Client::plain(admin)
        .get("localhost", "/stats/prometheus")?
        .body)
}

/// The series of `family` in a `/stats/prometheus` text, each as its labels and value.
pub fn series(text: &str, family: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(family) else {
            continue;
        };
        let Some((labels, value)) = rest.strip_prefix('{').and_then(|r| r.rsplit_once("} ")) else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let labels = labels
            .split("\",")
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once("=\"")?;
                Some((k.to_string(), v.trim_end_matches('"').to_string()))
            })
            .collect();
        out.push((labels, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_lines_give_labels_and_values() {
        let text = "# TYPE xcluster_requests_total counter\n\
            xcluster_requests_total{destination=\"a/b\",target=\"c1/v=1\"} 42\n\
            xcluster_requests_total_other{x=\"y\"} 1\n\
            xcluster_unmatched_total{} 3\n";
        let found = series(text, "xcluster_requests_total");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0["destination"], "a/b");
        assert_eq!(found[0].0["target"], "c1/v=1");
        assert_eq!(found[0].1, 42.0);
        let bare = series(text, "xcluster_unmatched_total");
        assert!(bare[0].0.is_empty() && bare[0].1 == 3.0);
    }
}

#[cfg(test)]
mod filter_names {
    use std::collections::BTreeSet;

    use xcluster_envoy::XCLUSTER_STAT_TAGS;
    use xcluster_filter::policy::Policy;
    use xcluster_filter::stats::StatLayout;

    /// Every stat name the filter defines for a one-target config.
    fn names() -> Vec<String> {
        let config = br#"{"version": 1, "destinations": [{"name": "d", "targets": [
            {"name": "t", "cluster": "c", "envoy_cluster": "e",
             "service_account": {"namespace": "n", "name": "s"}}]}]}"#;
        let policy = Policy::from_json(config, &Default::default()).unwrap();
        StatLayout::new(&policy)
            .names(&policy)
            .into_iter()
            .map(|(_, name)| name)
            .collect()
    }

    /// `family` and the tag keys of an Istio-encoded name.
    fn split(name: &str) -> (&str, Vec<&str>) {
        let (family, tags) = name.split_once('.').unwrap_or((name, ""));
        let keys = tags
            .split(";.;")
            .filter(|t| !t.is_empty())
            .filter_map(|t| t.split_once("=.=").map(|(k, _)| k))
            .collect();
        (family, keys)
    }

    #[test]
    fn the_stats_tags_cover_every_tag_the_filter_encodes() {
        for name in names() {
            let (_, keys) = split(&name);
            for key in keys {
                assert!(XCLUSTER_STAT_TAGS.contains(&key), "{name}: tag {key}");
            }
        }
    }

    #[test]
    fn the_grafana_dashboard_queries_metrics_the_filter_keeps() {
        let path = crate::workspace_root().join("examples/grafana/xcluster-dashboard.json");
        let text = std::fs::read_to_string(path).unwrap();
        let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
        // Family → the tags its series carry.
        let mut families: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
        for name in names() {
            let (family, keys) = split(&name);
            let tags = families.entry(family.to_string()).or_default();
            tags.extend(keys.into_iter().map(String::from));
        }
        let mut used = BTreeSet::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let metrics: Vec<&str> = expr
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with("xcluster_"))
                    .collect();
                assert_eq!(metrics.len(), 1, "{expr}");
                let tags = families
                    .get(metrics[0])
                    .unwrap_or_else(|| panic!("{expr}: {} is not a filter metric", metrics[0]));
                // Grouping and selecting by labels the series have.
                let by = expr
                    .split_once("by (")
                    .map(|(_, rest)| rest.split(')').next().unwrap_or_default())
                    .unwrap_or_default();
                let selected = expr
                    .split_once('{')
                    .map(|(_, rest)| rest.split('}').next().unwrap_or_default())
                    .unwrap_or_default();
                let labels = by
                    .split(',')
                    .chain(
                        selected
                            .split(',')
                            .filter_map(|m| m.split(['=', '!']).next()),
                    )
                    .map(str::trim)
                    .filter(|l| !l.is_empty());
                for label in labels {
                    assert!(
                        tags.contains(label),
                        "{expr}: {} has no label {label}",
                        metrics[0]
                    );
                }
                used.insert(metrics[0].to_string());
            }
        }
        // Every metric the filter keeps has a panel.
        assert_eq!(used, families.keys().cloned().collect());
    }
}
