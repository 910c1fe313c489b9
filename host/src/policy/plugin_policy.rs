//! The operator's plugin policy file (`serve --plugin-policy FILE`): what
//! third-party plugins are granted beyond the names they own.
//!
//! ```toml
//! # Refuse every third-party plugin that is not pinned below.
//! require_pins = true
//!
//! # Let the third-party plugin `openai-responses` read the OpenAI key and
//! # base URL (owned by the bundled `openai` plugin), and load it only with
//! # these exact bytes (`platos-host plugin inspect FILE` prints the hash).
//! [plugins.openai-responses]
//! grant = ["OPENAI_API_KEY", "OPENAI_API_BASE"]
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! ```
//!
//! Unknown tables or keys are errors, so a typo never silently grants
//! nothing; names of the host's own environment cannot be granted.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::names::{is_valid_env_var_name, is_valid_slug};
use super::ownership::{NameGrants, is_host_reserved};

/// The parsed policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginPolicy {
    /// Names granted per plugin slug.
    pub grants: NameGrants,
    /// The sha256 (lowercase hex) a third-party plugin's bytes must have,
    /// per slug.
    pub pins: BTreeMap<String, String>,
    /// Whether a third-party plugin without a pin is refused.
    pub require_pins: bool,
}

/// Why a third-party plugin's bytes are not the ones the policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinProblem {
    /// The policy pins other bytes.
    Mismatch {
        /// The pinned sha256.
        expected: String,
    },
    /// `require_pins` is on and the plugin has no pin.
    Unpinned,
}

impl PluginPolicy {
    /// Whether the third-party plugin `slug` with bytes of sha256 `found`
    /// may load (bundled plugins are part of the host's own build).
    pub fn check_pin(&self, slug: &str, found: &str) -> Result<(), PinProblem> {
        match self.pins.get(slug) {
            Some(expected) if expected.eq_ignore_ascii_case(found) => Ok(()),
            Some(expected) => Err(PinProblem::Mismatch { expected: expected.clone() }),
            None if self.require_pins => Err(PinProblem::Unpinned),
            None => Ok(()),
        }
    }

    /// The slugs the policy names (grants or pins).
    pub fn slugs(&self) -> std::collections::BTreeSet<&str> {
        self.grants.slugs().chain(self.pins.keys().map(String::as_str)).collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    require_pins: bool,
    #[serde(default)]
    plugins: BTreeMap<String, PluginEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginEntry {
    #[serde(default)]
    grant: Vec<String>,
    #[serde(default)]
    sha256: Option<String>,
}

/// Whether `text` is a sha256 in hex (64 hex digits).
fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Parses the policy file's text; the error lists every problem, naming the
/// plugin and the name, and what is expected.
pub fn parse(text: &str) -> Result<PluginPolicy, Vec<String>> {
    let file: PolicyFile = basic_toml::from_str(text).map_err(|error| {
        vec![format!(
            "{error}; expected `require_pins = true|false` and [plugins.<slug>] tables with `grant = [\"NAME\", ...]` and `sha256 = \"<64 hex digits>\"`"
        )]
    })?;
    let mut problems = Vec::new();
    let mut grants = NameGrants::new();
    let mut pins = BTreeMap::new();
    for (slug, entry) in file.plugins {
        if !is_valid_slug(&slug) {
            problems.push(format!(
                "[plugins.{slug}]: {slug:?} is not a plugin slug (expected ^[a-z0-9][a-z0-9-]*$)"
            ));
            continue;
        }
        for name in entry.grant {
            if !is_valid_env_var_name(&name) {
                problems.push(format!(
                    "[plugins.{slug}] grant {name:?}: not a variable name (expected ^[A-Z][A-Z0-9_]*$)"
                ));
            } else if is_host_reserved(&name) {
                problems.push(format!(
                    "[plugins.{slug}] grant {name}: belongs to the host's own environment and cannot be granted"
                ));
            } else {
                grants.grant(slug.clone(), name);
            }
        }
        match entry.sha256 {
            Some(hash) if is_sha256_hex(&hash) => {
                pins.insert(slug, hash.to_ascii_lowercase());
            }
            Some(hash) => problems.push(format!(
                "[plugins.{slug}] sha256 {:?}: expected 64 hex digits (`platos-host plugin inspect FILE` prints the hash)",
                hash.chars().take(80).collect::<String>()
            )),
            None => {}
        }
    }
    if problems.is_empty() {
        Ok(PluginPolicy { grants, pins, require_pins: file.require_pins })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_read_per_plugin() {
        let policy = parse(
            "[plugins.openai-responses]\ngrant = [\"OPENAI_API_KEY\", \"OPENAI_API_BASE\"]\n\n[plugins.acme]\n",
        )
        .unwrap();
        assert!(policy.grants.allows("openai-responses", "OPENAI_API_KEY"));
        assert!(policy.grants.allows("openai-responses", "OPENAI_API_BASE"));
        assert!(!policy.grants.allows("acme", "OPENAI_API_KEY"));
        assert_eq!(parse("").unwrap(), PluginPolicy::default());
    }

    #[test]
    fn every_problem_is_reported() {
        let problems = parse(
            "[plugins.Bad_Slug]\ngrant = [\"X\"]\n[plugins.ok]\ngrant = [\"lower\", \"PATH\", \"LD_PRELOAD\"]\n",
        )
        .unwrap_err();
        let text = problems.join("\n");
        assert_eq!(problems.len(), 4, "{text}");
        for expected in [
            "\"Bad_Slug\" is not a plugin slug",
            "\"lower\": not a variable name",
            "grant PATH",
            "grant LD_PRELOAD",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in {text}");
        }
    }

    #[test]
    fn pins_are_read_checked_and_enforced() {
        let hash = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
        let policy = parse(&format!("[plugins.acme]\nsha256 = \"{hash}\"\n")).unwrap();
        assert_eq!(policy.pins["acme"], hash.to_ascii_lowercase());
        assert_eq!(policy.check_pin("acme", &hash.to_ascii_lowercase()), Ok(()));
        assert_eq!(
            policy.check_pin("acme", &"0".repeat(64)),
            Err(PinProblem::Mismatch { expected: hash.to_ascii_lowercase() })
        );
        assert_eq!(policy.check_pin("other", &"0".repeat(64)), Ok(()), "unpinned loads by default");
        assert_eq!(policy.slugs().into_iter().collect::<Vec<_>>(), ["acme"]);
        let strict = parse("require_pins = true\n").unwrap();
        assert_eq!(strict.check_pin("other", &"0".repeat(64)), Err(PinProblem::Unpinned));
        for bad in ["abc", &"g".repeat(64), &"0".repeat(65)] {
            let problems = parse(&format!("[plugins.acme]\nsha256 = \"{bad}\"\n")).unwrap_err();
            assert!(problems[0].contains("expected 64 hex digits"), "{problems:?}");
        }
        assert!(parse("require_pins = \"yes\"\n").is_err());
    }

    #[test]
    fn typos_are_errors_not_silent() {
        let problems = parse("[plugins.acme]\ngrants = [\"ACME_X\"]\n").unwrap_err();
        assert!(problems[0].contains("grants"), "{problems:?}");
        assert!(parse("[plugin.acme]\n").is_err());
    }
}
