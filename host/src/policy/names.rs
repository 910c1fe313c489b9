//! Name rules for provider slugs and environment variable names.

/// The longest slug accepted.
pub const MAX_SLUG_LEN: usize = 64;
/// The longest environment variable name accepted.
pub const MAX_ENV_VAR_LEN: usize = 128;

/// [`is_valid_slug`] as an ECMA-262 regular expression (the OpenAPI
/// document's `pattern`).
pub fn slug_pattern() -> String {
    format!("^[a-z0-9][a-z0-9-]{{0,{}}}$", MAX_SLUG_LEN - 1)
}

/// [`is_valid_env_var_name`] as an ECMA-262 regular expression (the
/// OpenAPI document's `pattern`).
pub fn env_var_name_pattern() -> String {
    format!("^[A-Z][A-Z0-9_]{{0,{}}}$", MAX_ENV_VAR_LEN - 1)
}

/// Whether `slug` matches `^[a-z0-9][a-z0-9-]*$` and is at most [`MAX_SLUG_LEN`] long.
pub fn is_valid_slug(slug: &str) -> bool {
    let mut bytes = slug.bytes();
    let Some(first) = bytes.next() else { return false };
    slug.len() <= MAX_SLUG_LEN
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && bytes.all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

/// Whether `name` matches `^[A-Z][A-Z0-9_]*$` and is at most [`MAX_ENV_VAR_LEN`] long.
pub fn is_valid_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else { return false };
    name.len() <= MAX_ENV_VAR_LEN
        && first.is_ascii_uppercase()
        && bytes.all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patterns_accept_what_the_rules_accept() {
        let slug = regex::Regex::new(&slug_pattern()).unwrap();
        let name = regex::Regex::new(&env_var_name_pattern()).unwrap();
        let mut samples: Vec<String> = [
            "",
            "a",
            "A",
            "0",
            "_",
            "-",
            "openai",
            "azure-openai",
            "x9-",
            "-openai",
            "OpenAI",
            "open_ai",
            "OPENAI_API_KEY",
            "_KEY",
            "2KEY",
            "OPENAI-KEY",
            "KEY ",
            "ópen",
            "a\n",
        ]
        .iter()
        .map(|text| (*text).to_owned())
        .collect();
        for length in [MAX_SLUG_LEN, MAX_SLUG_LEN + 1, MAX_ENV_VAR_LEN, MAX_ENV_VAR_LEN + 1] {
            samples.push("a".repeat(length));
            samples.push("A".repeat(length));
        }
        for sample in &samples {
            assert_eq!(slug.is_match(sample), is_valid_slug(sample), "{sample:?}");
            assert_eq!(name.is_match(sample), is_valid_env_var_name(sample), "{sample:?}");
        }
    }

    #[test]
    fn slugs() {
        for good in ["openai", "a", "0", "azure-openai", "x9-"] {
            assert!(is_valid_slug(good), "{good} should be valid");
        }
        for bad in ["", "-openai", "OpenAI", "open_ai", "open ai", "ópen", &"a".repeat(65)] {
            assert!(!is_valid_slug(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn env_var_names() {
        for good in ["OPENAI_API_KEY", "A", "AWS_REGION", "X_2"] {
            assert!(is_valid_env_var_name(good), "{good} should be valid");
        }
        for bad in ["", "_KEY", "2KEY", "openai_api_key", "OPENAI-KEY", "KEY ", &"A".repeat(129)] {
            assert!(!is_valid_env_var_name(bad), "{bad} should be invalid");
        }
    }
}
