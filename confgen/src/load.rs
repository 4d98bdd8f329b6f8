//! Reading input: files, directories and stdin → YAML documents with source locations.
//!
//! Every document is first read into a [`Node`] tree that keeps the line and column of
//! each value. Typed resources are then deserialized from that tree (through
//! `serde_json::Value` and `serde_path_to_error`), so any error can name the file, the
//! line and column, and the field path.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::{Localizer, SnippetMode, UserMessageFormatter};

/// An error with its place in the input: `file:line:column: field.path: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// File name as given (`-` for stdin); empty when the error has no place.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column (0 when unknown).
    pub column: u32,
    /// Field path inside the document (`spec.targets[1].clusterKey`), possibly empty.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Error {
    /// An error that belongs to no input location (command line, I/O).
    pub fn plain(message: impl Into<String>) -> Self {
        Error {
            file: String::new(),
            line: 0,
            column: 0,
            path: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.is_empty() {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A YAML value with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// The value.
    pub value: Value,
}

/// A YAML value; mapping keys are kept as strings in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer too large for `i64`.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping.
    Map(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            line: spanned.referenced.line() as u32,
            column: spanned.referenced.column() as u32,
            value: spanned.value,
        })
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::UInt(v), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key.0, value));
        }
        Ok(Value::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

/// A mapping key: any scalar, kept as its text.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Str(s) => Ok(Key(s)),
            Value::Bool(b) => Ok(Key(b.to_string())),
            Value::Int(i) => Ok(Key(i.to_string())),
            Value::UInt(u) => Ok(Key(u.to_string())),
            Value::Float(x) => Ok(Key(x.to_string())),
            Value::Null => Ok(Key(String::new())),
            Value::Seq(_) | Value::Map(_) => Err(de::Error::custom("mapping keys must be scalars")),
        }
    }
}

impl Node {
    /// The value as plain JSON (for typed deserialization).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::UInt(u) => J::from(*u),
            Value::Float(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The mapping entry `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string at `key`, if present and a string.
    pub fn str_at(&self, key: &str) -> Option<&str> {
        match self.get(key).map(|n| &n.value) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The deepest node along a field path such as `spec.targets[1].clusterKey`.
    pub fn locate(&self, path: &str) -> &Node {
        let mut node = self;
        for segment in path_segments(path) {
            let next = match (&node.value, segment) {
                (Value::Map(entries), Segment::Key(k)) => {
                    entries.iter().find(|(key, _)| key == k).map(|(_, v)| v)
                }
                (Value::Seq(items), Segment::Index(i)) => items.get(i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `a.b[2].c` into `a`, `b`, `2`, `c`.
fn path_segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Segment::Index(i));
            }
        }
    }
    out
}

/// One YAML document of one input file.
#[derive(Debug)]
pub struct Doc {
    /// The file it came from (`-` for stdin).
    pub file: String,
    /// Its content.
    pub root: Node,
}

impl Doc {
    /// An error at the node found by `path` (the deepest existing node along it).
    pub fn error(&self, path: &str, message: impl Into<String>) -> Error {
        let node = self.root.locate(path);
        Error {
            file: self.file.clone(),
            line: node.line,
            column: node.column,
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// `file:line:column` of the document start.
    pub fn place(&self) -> String {
        format!("{}:{}:{}", self.file, self.root.line, self.root.column)
    }

    /// Deserializes the subtree at top-level key `path` (e.g. `spec`; `""` = the whole
    /// document) into `T`; a missing subtree reads as an empty mapping.
    pub fn parse<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let node = if path.is_empty() {
            Some(&self.root)
        } else {
            self.root.get(path)
        };
        let json = node.map_or_else(|| serde_json::json!({}), Node::to_json);
        serde_path_to_error::deserialize(json).map_err(|e| {
            let inner = e.path().to_string();
            let full = match (path.is_empty(), inner.as_str()) {
                (true, _) => inner.clone(),
                (false, ".") => path.to_string(),
                (false, _) => format!("{path}.{inner}"),
            };
            let full = if full == "." { String::new() } else { full };
            self.error(&full, e.into_inner().to_string())
        })
    }
}

/// Reads YAML documents from each path in order: a file, a directory (its `*.yaml` and
/// `*.yml` files, sorted by name, not recursive) or `-` for stdin.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Rc<Doc>>, Error> {
    let mut docs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::plain(format!("-: cannot read stdin: {e}")))?;
            docs.extend(parse_documents("-", &text)?);
        } else if path.is_dir() {
            for file in yaml_files(path)? {
                docs.extend(load_file(&file)?);
            }
        } else {
            docs.extend(load_file(path)?);
        }
    }
    Ok(docs)
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::plain(format!("{}: cannot read directory: {e}", dir.display())))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|e| Error::plain(format!("{}: cannot read directory: {e}", dir.display())))?;
        let path = entry.path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if is_yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn load_file(path: &Path) -> Result<Vec<Rc<Doc>>, Error> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::plain(format!("{name}: cannot read: {e}")))?;
    parse_documents(&name, &text)
}

/// Parses the YAML documents of one input; empty documents are skipped.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Rc<Doc>>, Error> {
    let nodes: Vec<Node> = serde_saphyr::from_multiple(text).map_err(|e| {
        let formatter = UserMessageFormatter.with_localizer(&NoLocation);
        let (line, column) = e
            .location()
            .map_or((0, 0), |l| (l.line() as u32, l.column() as u32));
        Error {
            file: file.to_string(),
            line,
            column,
            path: String::new(),
            message: first_line(&e.render_with_options(serde_saphyr::render_options! {
                formatter: &formatter,
                snippets: SnippetMode::Off,
            })),
        }
    })?;
    Ok(nodes
        .into_iter()
        .filter(|n| n.value != Value::Null)
        .map(|root| {
            Rc::new(Doc {
                file: file.to_string(),
                root,
            })
        })
        .collect())
}

/// serde-saphyr's wording without its " at line L, column C": [`Error`] puts the place first.
struct NoLocation;

impl Localizer for NoLocation {
    fn attach_location<'a>(&self, base: Cow<'a, str>, _: serde_saphyr::Location) -> Cow<'a, str> {
        base
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_keep_line_and_column() {
        let docs = parse_documents(
            "a.yaml",
            "kind: A\nspec:\n  x:\n    - 1\n    - two\n---\n---\nkind: B\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let item = docs[0].root.locate("spec.x[1]");
        assert_eq!((item.line, item.column), (5, 7));
        assert_eq!(item.value, Value::Str("two".into()));
        assert_eq!(docs[1].root.str_at("kind"), Some("B"));
        assert_eq!(docs[1].root.line, 8);
    }

    #[test]
    fn typed_errors_name_file_line_column_and_path() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Spec {
            targets: Vec<Target>,
        }
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Target {
            weight: u32,
        }
        let docs = parse_documents(
            "f.yaml",
            "spec:\n  targets:\n  - weight: 1\n  - weight: heavy\n",
        )
        .unwrap();
        let err = docs[0].parse::<Spec>("spec").unwrap_err();
        assert_eq!(err.path, "spec.targets[1].weight");
        assert_eq!((err.line, err.column), (4, 13));
        assert!(err
            .to_string()
            .starts_with("f.yaml:4:13: spec.targets[1].weight: invalid type"));
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let err = parse_documents("bad.yaml", "a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(err.file, "bad.yaml");
        assert!(err.line >= 1, "{err}");
        assert!(!err.message.is_empty());
    }

    #[test]
    fn syntax_errors_speak_to_users_and_name_the_place_once() {
        let err = parse_documents("dup.yaml", "metadata:\n  name: a\n  name: b\n").unwrap_err();
        assert_eq!((err.line, err.column), (3, 3));
        assert_eq!(
            err.to_string(),
            "dup.yaml:3:3: duplicate mapping key `name` is not allowed here"
        );
        let err = parse_documents("open.yaml", "a: [\n").unwrap_err();
        assert!(err.to_string().starts_with("open.yaml:1:4: "), "{err}");
        assert!(!err.message.contains("line"), "{err}");
    }
}
