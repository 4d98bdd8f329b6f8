//! A small YAML writer for JSON values: block style, strings quoted whenever a plain
//! scalar could be read back as something else, multi-line strings as literal blocks.

use serde_json::Value;

/// Renders `value` as one YAML document (ends with a newline).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, value, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, value, 0),
        other => {
            out.push_str(&scalar(other, 0));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, value: &Value, indent: usize) {
    let Value::Object(map) = value else { return };
    // Sorted, so the output does not depend on serde_json's `preserve_order` feature.
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    for (key, v) in entries {
        out.push_str(&" ".repeat(indent));
        out.push_str(&key_text(key));
        out.push(':');
        write_value(out, v, indent);
    }
}

fn write_seq(out: &mut String, value: &Value, indent: usize) {
    let Value::Array(items) = value else { return };
    for item in items {
        let mut inner = String::new();
        match item {
            Value::Object(m) if !m.is_empty() => write_map(&mut inner, item, indent + 2),
            Value::Array(a) if !a.is_empty() => write_seq(&mut inner, item, indent + 2),
            other => {
                inner.push_str(&" ".repeat(indent + 2));
                inner.push_str(&scalar(other, indent + 2));
                inner.push('\n');
            }
        }
        out.push_str(&" ".repeat(indent));
        out.push_str("- ");
        out.push_str(&inner[indent + 2..]);
    }
}

/// Writes what follows `key:` (a space and a scalar, or a nested block).
fn write_value(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, v, indent + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_seq(out, v, indent + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, indent + 2));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value, indent: usize) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_text(s, indent),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

fn key_text(key: &str) -> String {
    if is_plain(key) {
        key.to_string()
    } else {
        quoted(key)
    }
}

fn string_text(s: &str, indent: usize) -> String {
    if is_plain(s) {
        return s.to_string();
    }
    if let Some(block) = literal_block(s, indent) {
        return block;
    }
    quoted(s)
}

fn quoted(s: &str) -> String {
    // JSON string escapes are valid YAML double-quoted escapes.
    serde_json::to_string(s).unwrap_or_default()
}

/// A `|` / `|-` block for multi-line text, when it can be written exactly.
fn literal_block(s: &str, indent: usize) -> Option<String> {
    if !s.contains('\n') || s.ends_with("\n\n") || s.starts_with([' ', '\n']) {
        return None;
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        return None;
    }
    let (body, chomp) = match s.strip_suffix('\n') {
        Some(b) => (b, "|"),
        None => (s, "|-"),
    };
    let pad = " ".repeat(indent);
    let mut out = chomp.to_string();
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    Some(out)
}

/// Whether `s` reads back as the same string when written without quotes.
fn is_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let safe = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'));
    let lower = s.to_ascii_lowercase();
    let reserved = matches!(
        lower.as_str(),
        "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
    );
    let numeric = s.parse::<f64>().is_ok()
        || s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_digit() || c == '_')
        || lower.starts_with("0x")
        || lower.starts_with("0o")
        || lower.starts_with(".inf")
        || lower.starts_with("-.inf")
        || lower == ".nan";
    safe && (first.is_ascii_alphanumeric() || first == '/' || first == '_') && !reserved && !numeric
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::parse_documents;

    fn round_trip(v: &Value) {
        let text = to_yaml(v);
        let docs = parse_documents("out.yaml", &text).unwrap();
        assert_eq!(&docs[0].root.to_json(), v, "YAML was:\n{text}");
    }

    #[test]
    fn tricky_values_read_back_unchanged() {
        let v = serde_json::json!({
            "@type": "type.googleapis.com/x.y.v3.Wasm",
            "plain": "reviews.bookinfo.svc",
            "bools": ["true", "no", "on", true, false],
            "numbers": ["8080", "1e3", "0x1F", "1_000", ".5", 8080, -1.5],
            "specials": ["xc|cluster-1|gateway", "a: b", "#x", "- y", "", " lead", "tab\tx", "quote\"s"],
            "json": "{\n  \"version\": 1,\n  \"routes\": []\n}",
            "trailing": "line one\nline two\n",
            "empty": {"m": {}, "a": []},
            "nested": [[1, 2], [{"k": "v", "l": [{"deep": null}]}]],
        });
        round_trip(&v);
    }

    #[test]
    fn blocks_and_sequences_use_block_style() {
        let v = serde_json::json!({"a": [{"b": 1, "c": "x"}], "s": "p\nq"});
        assert_eq!(to_yaml(&v), "a:\n  - b: 1\n    c: x\ns: |-\n  p\n  q\n");
    }
}
