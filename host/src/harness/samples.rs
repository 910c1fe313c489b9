//! Sample env bags for a manifest: canary secrets generated per run, and
//! defaults or sample values for every other variable.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::policy::redaction::Redactor;
use crate::provider::{ACCESS_TOKEN_VAR, Credentials, EnvVarRole, Manifest};

/// An env bag the harness built, with the plain values it needs to look for
/// leaks and to redact its own report.
#[derive(Clone)]
pub(crate) struct SampleBag {
    /// What the plugin is handed.
    pub credentials: Credentials,
    /// Every secret variable that was set: (name, value).
    pub secrets: Vec<(String, String)>,
}

impl SampleBag {
    /// The value of secret `name`, if it was set.
    pub fn secret(&self, name: &str) -> Option<&str> {
        self.secrets.iter().find(|(var, _)| var == name).map(|(_, value)| value.as_str())
    }

    /// `text` with every secret value, in any form the host searches for,
    /// replaced by `<NAME>`, so a report can quote what the plugin returned
    /// without showing a secret.
    pub fn redact(&self, text: &str) -> String {
        self.redactor().redact_named(text)
    }

    /// The redactor of the bag's secrets.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.secrets.iter().map(|(name, value)| (name.as_str(), value.as_str())))
    }

    /// The same bag without any secret (nor an access token), for the
    /// missing-credential check.
    pub fn without_secrets(&self, manifest: &Manifest) -> Credentials {
        let mut bag = Credentials::new();
        for (name, value) in self.credentials.expose() {
            let secret = name == ACCESS_TOKEN_VAR
                || manifest
                    .env_vars
                    .iter()
                    .any(|var| var.name == name && var.role == EnvVarRole::Secret);
            if !secret {
                bag = bag.with(name, value);
            }
        }
        bag
    }
}

/// A fresh canary value for a secret variable: unique per call and per run,
/// made of letters, digits and hyphens so it needs no encoding anywhere.
pub(crate) fn canary() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let mut words = [0u64; 2];
    for (index, word) in words.iter_mut().enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(nanos);
        hasher.write_u64(count);
        hasher.write_usize(index);
        *word = hasher.finish();
    }
    format!("hc-{:016x}{:016x}", words[0], words[1])
}

/// The host a sample URL uses for the manifest: the first allowed pattern
/// with every `*` replaced by `example`, else `plugin-test.example`.
pub(crate) fn sample_host(manifest: &Manifest) -> String {
    manifest
        .allowed_hosts
        .first()
        .map(|pattern| {
            pattern.split('.').map(|l| if l == "*" { "example" } else { l }).collect::<Vec<_>>()
        })
        .map(|labels| labels.join("."))
        .unwrap_or_else(|| "plugin-test.example".to_owned())
}

/// A sample value for a non-secret, non-URL variable without a default.
fn sample_other(name: &str) -> String {
    if name.contains("REGION") {
        "us-east-1".to_owned()
    } else if name.contains("VERSION") {
        "2024-10-21".to_owned()
    } else {
        "sample".to_owned()
    }
}

/// The harness's env bag for `manifest`:
///
/// - every `secret` variable gets a fresh canary (or the value in `given`);
/// - the `base-url` variable stays unset when it has a default (so the
///   default is used); without a default it is set to `https://` plus a host
///   matching the first allowed pattern (`*` replaced by `example`), or
///   `https://plugin-test.example` when there are no patterns;
/// - `other` variables get their default, a value from `given`, or (when
///   required) a sample (`us-east-1` for a region, `sample` otherwise).
///
/// Values in `given` win over everything for the variables they name.
pub(crate) fn sample_bag(manifest: &Manifest, given: &BTreeMap<String, String>) -> SampleBag {
    let mut credentials = Credentials::new();
    let mut secrets = Vec::new();
    for var in &manifest.env_vars {
        let value = match (given.get(&var.name), var.role) {
            (Some(value), _) => Some(value.clone()),
            (None, EnvVarRole::Secret) => Some(canary()),
            (None, EnvVarRole::BaseUrl) => {
                if var.default_value.is_some() {
                    None
                } else if var.required || manifest.allowed_hosts.is_empty() {
                    Some(format!("https://{}", sample_host(manifest)))
                } else {
                    None
                }
            }
            (None, EnvVarRole::Other) => {
                var.default_value.clone().or_else(|| var.required.then(|| sample_other(&var.name)))
            }
        };
        if let Some(value) = value {
            if var.role == EnvVarRole::Secret {
                secrets.push((var.name.clone(), value.clone()));
            }
            credentials = credentials.with(var.name.clone(), value);
        }
    }
    // A token exchange's `authorize` gets the access token the host's
    // exchange gave: a canary stands in for it, a secret like the others.
    if manifest.token_exchange {
        let token = given.get(ACCESS_TOKEN_VAR).cloned().unwrap_or_else(canary);
        secrets.push((ACCESS_TOKEN_VAR.to_owned(), token.clone()));
        credentials = credentials.with(ACCESS_TOKEN_VAR, token);
    }
    SampleBag { credentials, secrets }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{AuthShape, EnvVar, ModelClass, ModelInfo};

    fn var(name: &str, role: EnvVarRole, required: bool, default: Option<&str>) -> EnvVar {
        EnvVar {
            name: name.into(),
            role,
            required,
            description: String::new(),
            default_value: default.map(Into::into),
            aliases: Vec::new(),
        }
    }

    fn manifest(env_vars: Vec<EnvVar>, hosts: &[&str]) -> Manifest {
        Manifest {
            slug: "acme".into(),
            display_name: "Acme".into(),
            plugin_version: "1.0.0".into(),
            env_vars,
            auth: AuthShape::Bearer { env_var: "ACME_KEY".into() },
            model_classes: vec![ModelClass::Chat],
            default_models: vec![ModelInfo {
                id: "a".into(),
                class: ModelClass::Chat,
                display_name: "A".into(),
                context_window: None,
                price: None,
            }],
            allowed_hosts: hosts.iter().map(|host| host.to_string()).collect(),
            docs_url: "https://example.com".into(),
            probe_cost: None,
            clients: Vec::new(),
            default_client: None,
            token_exchange: false,
        }
    }

    #[test]
    fn canaries_are_fresh_and_need_no_encoding() {
        let (a, b) = (canary(), canary());
        assert_ne!(a, b);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{a}");
    }

    #[test]
    fn bags_follow_the_roles() {
        let m = manifest(
            vec![
                var("ACME_KEY", EnvVarRole::Secret, true, None),
                var("ACME_BASE", EnvVarRole::BaseUrl, true, None),
                var("ACME_REGION", EnvVarRole::Other, true, None),
                var("ACME_MODE", EnvVarRole::Other, false, None),
                var("ACME_VERSION", EnvVarRole::Other, false, Some("v9")),
            ],
            &["*.acme.example.com"],
        );
        let bag = sample_bag(&m, &BTreeMap::new());
        let secret = bag.secret("ACME_KEY").unwrap().to_owned();
        assert!(secret.starts_with("hc-"));
        assert_eq!(bag.credentials.get("ACME_BASE"), Some("https://example.acme.example.com"));
        assert_eq!(bag.credentials.get("ACME_REGION"), Some("us-east-1"));
        assert_eq!(bag.credentials.get("ACME_MODE"), None);
        assert_eq!(bag.credentials.get("ACME_VERSION"), Some("v9"));
        assert_eq!(bag.redact(&format!("Bearer {secret}")), "Bearer <ACME_KEY>");
        assert_eq!(bag.without_secrets(&m).get("ACME_KEY"), None);

        let defaulted = manifest(
            vec![
                var("ACME_KEY", EnvVarRole::Secret, true, None),
                var("ACME_BASE", EnvVarRole::BaseUrl, false, Some("https://api.acme.com")),
            ],
            &[],
        );
        assert_eq!(sample_bag(&defaulted, &BTreeMap::new()).credentials.get("ACME_BASE"), None);
        let no_hosts = manifest(vec![var("ACME_BASE", EnvVarRole::BaseUrl, false, None)], &[]);
        assert_eq!(
            sample_bag(&no_hosts, &BTreeMap::new()).credentials.get("ACME_BASE"),
            Some("https://plugin-test.example")
        );
    }
}
