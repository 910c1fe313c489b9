//! Size bounds on what plugins return and on the text that quotes it: how
//! a value's size is counted, and how lists and messages are cut.
//!
//! The per-call limits themselves are [`crate::runtime::CallLimits`]; the
//! bounds of a stored health record are [`MAX_RECORD_MESSAGE_CHARS`] and
//! [`MAX_RECORD_MODEL_BYTES`].

/// What each string and each list element counts on top of its bytes when a
/// plugin's output is measured: the canonical ABI's pointer and length, and
/// the host's allocation for it. So a list of millions of empty strings is
/// as large as it is in memory, not zero bytes.
pub const ELEMENT_OVERHEAD: usize = 16;

/// Items an error message lists before it says how many more there are.
pub const MAX_LISTED_ITEMS: usize = 20;

/// Characters one listed item keeps.
pub const MAX_ITEM_CHARS: usize = 200;

/// Characters of a verdict message a stored health record keeps.
pub const MAX_RECORD_MESSAGE_CHARS: usize = 1_000;

/// Bytes of model ids (with [`ELEMENT_OVERHEAD`] each) a stored health
/// record keeps; ids past it are dropped.
pub const MAX_RECORD_MODEL_BYTES: usize = 256 << 10;

/// The size of `text` as plugin output: its bytes plus one element's overhead.
pub fn string_size(text: &str) -> usize {
    text.len() + ELEMENT_OVERHEAD
}

/// The size of a list of strings as plugin output.
pub fn strings_size<'a>(items: impl IntoIterator<Item = &'a String>) -> usize {
    items.into_iter().map(|item| string_size(item)).sum()
}

/// `text` cut to `max` characters, with `…` when cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The first [`MAX_LISTED_ITEMS`] of `items`, each cut to
/// [`MAX_ITEM_CHARS`], then `... and K more` when there are more.
pub fn listed(items: &[String]) -> Vec<String> {
    let mut out: Vec<String> = items
        .iter()
        .take(MAX_LISTED_ITEMS)
        .map(|item| truncate_chars(item, MAX_ITEM_CHARS))
        .collect();
    if items.len() > MAX_LISTED_ITEMS {
        out.push(format!("... and {} more", items.len() - MAX_LISTED_ITEMS));
    }
    out
}

/// The leading `models` that fit [`MAX_RECORD_MODEL_BYTES`], for a stored
/// health record.
pub fn record_models(models: &[String]) -> Vec<String> {
    let mut used = 0;
    models
        .iter()
        .take_while(|model| {
            used += string_size(model);
            used <= MAX_RECORD_MODEL_BYTES
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_strings_still_count() {
        let empty = vec![String::new(); 1000];
        assert_eq!(strings_size(&empty), 1000 * ELEMENT_OVERHEAD);
        assert_eq!(string_size("abc"), 3 + ELEMENT_OVERHEAD);
    }

    #[test]
    fn lists_are_cut_with_a_count() {
        let items: Vec<String> = (0..25).map(|index| format!("problem {index}")).collect();
        let shown = listed(&items);
        assert_eq!(shown.len(), MAX_LISTED_ITEMS + 1);
        assert_eq!(shown[0], "problem 0");
        assert_eq!(shown.last().unwrap(), "... and 5 more");
        assert_eq!(listed(&items[..3]), items[..3]);
        let long = vec!["é".repeat(500)];
        assert_eq!(listed(&long)[0].chars().count(), MAX_ITEM_CHARS + 1);
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hé", 2), "hé");
    }

    #[test]
    fn record_models_fit_the_budget() {
        let models = vec!["m".repeat(1000); 1000];
        let kept = record_models(&models);
        assert_eq!(kept.len(), MAX_RECORD_MODEL_BYTES / (1000 + ELEMENT_OVERHEAD));
        assert_eq!(record_models(&models[..3]).len(), 3);
    }
}
