//! The operator's plugin policy file (`serve --plugin-policy FILE`): what
//! third-party plugins are granted beyond the names they own.
//!
//! ```toml
//! # Let the third-party plugin `openai-responses` read the OpenAI key and
//! # base URL (owned by the bundled `openai` plugin).
//! [plugins.openai-responses]
//! grant = ["OPENAI_API_KEY", "OPENAI_API_BASE"]
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    plugins: BTreeMap<String, PluginEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginEntry {
    #[serde(default)]
    grant: Vec<String>,
}

/// Parses the policy file's text; the error lists every problem, naming the
/// plugin and the name, and what is expected.
pub fn parse(text: &str) -> Result<PluginPolicy, Vec<String>> {
    let file: PolicyFile = basic_toml::from_str(text).map_err(|error| {
        vec![format!("{error}; expected [plugins.<slug>] tables with `grant = [\"NAME\", ...]`")]
    })?;
    let mut problems = Vec::new();
    let mut grants = NameGrants::new();
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
    }
    if problems.is_empty() { Ok(PluginPolicy { grants }) } else { Err(problems) }
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
    fn typos_are_errors_not_silent() {
        let problems = parse("[plugins.acme]\ngrants = [\"ACME_X\"]\n").unwrap_err();
        assert!(problems[0].contains("grants"), "{problems:?}");
        assert!(parse("[plugin.acme]\n").is_err());
    }
}
