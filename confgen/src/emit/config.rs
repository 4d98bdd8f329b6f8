//! The plugin config as pretty JSON.

use crate::model::Model;

/// The model's plugin config, pretty-printed, ending with a newline.
pub fn render(model: &Model) -> String {
    let mut text = serde_json::to_string_pretty(&model.config).unwrap_or_default();
    text.push('\n');
    text
}
