//! Numbered key variants and the env bag of one variant.
//!
//! A provider's secret variable (e.g. `ANTHROPIC_API_KEY`) may be set several
//! times in one scope: the plain name is variant 1, `ANTHROPIC_API_KEY_2` is
//! variant 2, and so on. The env bag handed to a plugin for variant `n` uses
//! the manifest's plain names; each value comes from the numbered companion
//! (`ANTHROPIC_BASE_URL_2`) when it is set, else from the plain variable.

/// The variant a variable name is of `base`: `Some(1)` for `base` itself,
/// `Some(n)` for `base_n` with n ≥ 2 (no leading zeros), else `None`.
pub fn variant_of(name: &str, base: &str) -> Option<u32> {
    if name == base {
        return Some(1);
    }
    let suffix = name.strip_prefix(base)?.strip_prefix('_')?;
    if suffix.starts_with('0') || suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    suffix.parse().ok().filter(|n| *n >= 2)
}

/// The variable name of variant `n` of `base`.
pub fn variant_name(base: &str, variant: u32) -> String {
    if variant <= 1 { base.to_owned() } else { format!("{base}_{variant}") }
}

/// For variant `n` and one manifest variable, the scope variables to read in
/// order: the numbered one first (for n ≥ 2), then the plain one. Secrets
/// never fall back: variant 2's key and secret companions are `X_2` only, so
/// one key's credentials never mix with another's.
pub fn value_sources(manifest_var: &str, variant: u32, is_secret: bool) -> Vec<String> {
    if variant <= 1 {
        vec![manifest_var.to_owned()]
    } else if is_secret {
        vec![variant_name(manifest_var, variant)]
    } else {
        vec![variant_name(manifest_var, variant), manifest_var.to_owned()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_follow_the_numbered_rule() {
        assert_eq!(variant_of("OPENAI_API_KEY", "OPENAI_API_KEY"), Some(1));
        assert_eq!(variant_of("OPENAI_API_KEY_2", "OPENAI_API_KEY"), Some(2));
        assert_eq!(variant_of("OPENAI_API_KEY_17", "OPENAI_API_KEY"), Some(17));
        for not_a_variant in [
            "OPENAI_API_KEY_1",
            "OPENAI_API_KEY_02",
            "OPENAI_API_KEY_",
            "OPENAI_API_KEYS",
            "OPENAI_API_KEY_X",
            "OPENAI_KEY",
        ] {
            assert_eq!(variant_of(not_a_variant, "OPENAI_API_KEY"), None, "{not_a_variant}");
        }
        assert_eq!(variant_name("OPENAI_API_KEY", 1), "OPENAI_API_KEY");
        assert_eq!(variant_name("OPENAI_API_KEY", 3), "OPENAI_API_KEY_3");
    }

    #[test]
    fn companions_fall_back_to_the_plain_variable_but_secrets_do_not() {
        assert_eq!(value_sources("OPENAI_API_BASE", 1, false), ["OPENAI_API_BASE"]);
        assert_eq!(
            value_sources("OPENAI_API_BASE", 2, false),
            ["OPENAI_API_BASE_2", "OPENAI_API_BASE"]
        );
        assert_eq!(value_sources("OPENAI_API_KEY", 2, true), ["OPENAI_API_KEY_2"]);
        assert_eq!(value_sources("AWS_SECRET_ACCESS_KEY", 3, true), ["AWS_SECRET_ACCESS_KEY_3"]);
    }
}
