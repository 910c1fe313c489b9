//! Near-miss hints: a variable set in the scope that is probably a typo of a
//! name a provider expects (`OPENAI_KEY` → did you mean `OPENAI_API_KEY`?).

use super::variants::variant_of;

/// The expected names `candidate` is a near miss of, best first. A name that
/// is expected, or a numbered variant of an expected name, is no miss. A
/// near miss differs by at most two edits (case aside), or has the same
/// underscore-separated words with some missing, extra or reordered.
pub fn near_misses<'a>(candidate: &str, expected: &[&'a str]) -> Vec<&'a str> {
    if expected.iter().any(|name| variant_of(candidate, name).is_some()) {
        return Vec::new();
    }
    let upper = candidate.to_ascii_uppercase();
    let mut scored: Vec<(usize, &'a str)> = expected
        .iter()
        .filter_map(|name| {
            let distance = edit_distance(&upper, name);
            (distance <= 2 || same_words(&upper, name)).then_some((distance, *name))
        })
        .collect();
    scored.sort();
    scored.into_iter().map(|(_, name)| name).collect()
}

/// Words too common to tie two names together on their own.
const GENERIC_WORDS: &[&str] = &["API", "KEY", "URL", "BASE", "TOKEN", "SECRET", "ID"];

/// Whether one name's words are a subset of the other's, sharing at least
/// two words of which one is specific (`OPENAI_KEY` vs `OPENAI_API_KEY`,
/// `API_KEY_OPENAI`; not `API_KEY` vs every `*_API_KEY`).
fn same_words(a: &str, b: &str) -> bool {
    let words = |text: &str| -> Vec<String> {
        text.split(['_', '-']).filter(|w| !w.is_empty()).map(str::to_owned).collect()
    };
    let (a, b) = (words(a), words(b));
    let shared: Vec<&String> = a.iter().filter(|word| b.contains(word)).collect();
    let specific = shared.iter().any(|word| !GENERIC_WORDS.contains(&word.as_str()));
    shared.len() >= 2 && specific && (shared.len() == a.len() || shared.len() == b.len())
}

/// Levenshtein distance over bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECTED: &[&str] =
        &["OPENAI_API_KEY", "OPENAI_API_BASE", "ANTHROPIC_API_KEY", "VOYAGE_API_KEY"];

    #[test]
    fn typical_mistakes_are_caught() {
        assert_eq!(near_misses("OPENAI_KEY", EXPECTED), ["OPENAI_API_KEY"]);
        assert_eq!(near_misses("openai_api_key", EXPECTED), ["OPENAI_API_KEY"]);
        assert_eq!(near_misses("ANTHROPIC_KEY", EXPECTED), ["ANTHROPIC_API_KEY"]);
        assert_eq!(near_misses("ANTROPIC_API_KEY", EXPECTED), ["ANTHROPIC_API_KEY"]);
        assert_eq!(near_misses("API_KEY_OPENAI", EXPECTED), ["OPENAI_API_KEY"]);
        assert_eq!(near_misses("OPENAI_API_BASE_URL", EXPECTED), ["OPENAI_API_BASE"]);
    }

    #[test]
    fn unrelated_and_exact_names_are_not_hints() {
        assert!(near_misses("DATABASE_URL", EXPECTED).is_empty());
        assert!(near_misses("OPENAI_API_KEY", EXPECTED).is_empty());
        assert!(near_misses("OPENAI_API_KEY_2", EXPECTED).is_empty(), "a variant is no miss");
        assert!(near_misses("API_KEY", EXPECTED).is_empty());
    }
}
