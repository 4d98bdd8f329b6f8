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
