//! YAML inputs (request profiles, plugin configs) whose errors read
//! `file:line:column: message`, as `xcluster-gen` reports its inputs' errors.

use std::borrow::Cow;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_saphyr::{Localizer, Location, SnippetMode, UserMessageFormatter};

/// Deserializes `text` (YAML, of which JSON is a subset); an error names `origin`, then the
/// line and column where known, then what is wrong in serde-saphyr's user wording.
pub fn from_str<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T, String> {
    serde_saphyr::from_str(text).map_err(|e| {
        let formatter = UserMessageFormatter.with_localizer(&NoLocation);
        let message = e.render_with_options(serde_saphyr::render_options! {
            formatter: &formatter,
            snippets: SnippetMode::Off,
        });
        let message = message.lines().next().unwrap_or_default().trim();
        match e.location() {
            Some(l) => format!(
                "{}:{}:{}: {message}",
                origin.display(),
                l.line(),
                l.column()
            ),
            None => format!("{}: {message}", origin.display()),
        }
    })
}

/// The wording without serde-saphyr's " at line L, column C": [`from_str`] puts it first.
struct NoLocation;

impl Localizer for NoLocation {
    fn attach_location<'a>(&self, base: Cow<'a, str>, _: Location) -> Cow<'a, str> {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Profile {
        requests: u64,
    }

    #[test]
    fn errors_read_file_line_column_message() {
        let e = from_str::<Profile>("requests: 1\nrequestz: 2\n", Path::new("p.yaml")).unwrap_err();
        assert_eq!(
            e,
            "p.yaml:2:1: unknown field `requestz`, expected one of requests"
        );
        let e = from_str::<Profile>("requests: [\n", Path::new("p.yaml")).unwrap_err();
        assert!(e.starts_with("p.yaml:1:11: "), "{e}");
        assert!(!e.contains("line") && !e.contains('\n'), "{e}");
    }
}
