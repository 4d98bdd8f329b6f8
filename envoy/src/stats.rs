//! The bootstrap's `stats_config`: tags extracted from stat names, and which stats Envoy
//! keeps.

use serde_json::{json, Value};

/// The tags the xcluster filter encodes in its stat names, as Istio encodes the
/// `extraStatTags` of its own metrics: `xcluster_requests_total.destination=.=D;.;target=.=T;.;`
/// (`to`: the health a target changed to).
pub const XCLUSTER_STAT_TAGS: [&str; 4] = ["destination", "target", "reason", "to"];

/// `stats_config` (`envoy.config.metrics.v3.StatsConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsConfig {
    /// `stats_tags`, in order (Envoy's default tags stay on).
    pub stats_tags: Vec<StatsTag>,
    /// `stats_matcher.inclusion_list` prefixes; empty keeps every stat.
    pub inclusion_prefixes: Vec<String>,
}

impl StatsConfig {
    /// The xcluster filter's tags ([`XCLUSTER_STAT_TAGS`]), so that `/stats/prometheus`
    /// prints `xcluster_requests_total{destination="D",target="T"}`.
    pub fn xcluster() -> Self {
        Self {
            stats_tags: XCLUSTER_STAT_TAGS
                .iter()
                .map(|t| StatsTag::istio(t))
                .collect(),
            inclusion_prefixes: Vec::new(),
        }
    }

    /// The `stats_config` object.
    pub fn render(&self) -> Value {
        let tags: Vec<Value> = self
            .stats_tags
            .iter()
            .map(|t| json!({ "tag_name": t.tag_name, "regex": t.regex }))
            .collect();
        let mut config = json!({ "stats_tags": tags });
        if !self.inclusion_prefixes.is_empty() {
            let patterns: Vec<Value> = self
                .inclusion_prefixes
                .iter()
                .map(|p| json!({ "prefix": p }))
                .collect();
            config["stats_matcher"] = json!({ "inclusion_list": { "patterns": patterns } });
        }
        config
    }
}

/// A tag Envoy extracts from stat names (`envoy.config.metrics.v3.TagSpecifier`): the
/// regex's first group is cut from the name, its second is the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsTag {
    /// `tag_name`.
    pub tag_name: String,
    /// `regex`.
    pub regex: String,
}

impl StatsTag {
    /// The tag `name` in Istio's encoding `name=.=VALUE;.;`, with the regex Istio's
    /// bootstrap generates for each `extraStatTags` entry: `(name=\.=(.*?);\.;)`.
    pub fn istio(name: &str) -> Self {
        Self {
            tag_name: name.to_string(),
            regex: format!(r"({name}=\.=(.*?);\.;)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xcluster_tags_use_istios_encoding() {
        let config = StatsConfig::xcluster().render();
        assert_eq!(
            config,
            json!({ "stats_tags": [
                { "tag_name": "destination", "regex": r"(destination=\.=(.*?);\.;)" },
                { "tag_name": "target", "regex": r"(target=\.=(.*?);\.;)" },
                { "tag_name": "reason", "regex": r"(reason=\.=(.*?);\.;)" },
                { "tag_name": "to", "regex": r"(to=\.=(.*?);\.;)" },
            ] })
        );
    }

    #[test]
    fn inclusion_prefixes_become_a_stats_matcher() {
        let config = StatsConfig {
            stats_tags: Vec::new(),
            inclusion_prefixes: vec!["wasm".into(), "server".into()],
        }
        .render();
        assert_eq!(
            config["stats_matcher"],
            json!({ "inclusion_list": { "patterns": [{ "prefix": "wasm" }, { "prefix": "server" }] } })
        );
    }
}
