//! The config reference's JSON examples compile, and its rejection example is what the
//! filter really logs.
#![cfg(test)]

use xcluster_filter::config::LocalConfig;
use xcluster_filter::policy::Policy;

fn reference() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md");
    std::fs::read_to_string(path).expect("docs/config.md")
}

fn blocks<'a>(doc: &'a str, lang: &str) -> Vec<&'a str> {
    let fence = format!("```{lang}\n");
    doc.split(&fence)
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect()
}

#[test]
fn every_json_example_compiles() {
    let doc = reference();
    let examples = blocks(&doc, "json");
    assert!(examples.len() >= 4, "one example per seed scenario");
    for (i, json) in examples.iter().enumerate() {
        if let Err(e) = Policy::from_json(json.as_bytes(), &LocalConfig::default()) {
            panic!("docs/config.md JSON example {i} is rejected: {e}\n{json}");
        }
    }
}

#[test]
fn rejection_example_names_the_field_path() {
    let doc = reference();
    let line = blocks(&doc, "text")
        .into_iter()
        .find(|b| b.contains("invalid plugin config"))
        .expect("a rejection example");
    let mut config: serde_json::Value =
        serde_json::from_str(blocks(&doc, "json")[0]).expect("first example");
    config["destinations"][0]["targets"][1]["weight"] = serde_json::json!(-15);
    let err = Policy::from_json(config.to_string().as_bytes(), &LocalConfig::default())
        .expect_err("negative weight");
    let documented = line
        .split("invalid plugin config: ")
        .nth(1)
        .unwrap_or_default();
    let (documented_path, documented_message) = documented.split_once(": ").unwrap_or_default();
    assert_eq!(err.path, documented_path);
    let message_head = documented_message
        .split(" at line")
        .next()
        .unwrap_or_default();
    assert!(
        err.message.starts_with(message_head),
        "{err} vs {documented}"
    );
}
