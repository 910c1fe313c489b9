//! Which variables are provider keys: pure rules, no storage.
//!
//! A provider's key lives in one variable, its *base* name (for OpenAI,
//! `OPENAI_API_KEY`). Further keys of the same provider use numbered
//! variants: `OPENAI_API_KEY_2`, `OPENAI_API_KEY_3`, … The plain name is
//! variant 1 ([`variant_of`], from [`crate::policy::variants`]). The scope
//! default of a provider is the active key an operator chose, else its
//! lowest active variant ([`super::default_key`]).

use super::ProviderKey;
pub use crate::policy::variants::{variant_name, variant_of};
use crate::provider::{AuthShape, EnvVarRole, Manifest};

/// The variable that links a provider's key: the one a person must set for
/// the provider to work. That is the required variable its auth shape names,
/// else its first required secret, else its first required variable of any
/// role (an OpenAI-compatible server without auth is its base URL), else
/// the variable the auth shape names, else its first secret. (A token
/// exchange's shape may name the access token, which is no variable: its key
/// is the secret traded for it.)
pub fn key_var(manifest: &Manifest) -> Option<&str> {
    let declared = |name: &str| manifest.env_vars.iter().find(|var| var.name == name);
    let from_auth = match &manifest.auth {
        AuthShape::Bearer { env_var }
        | AuthShape::Header { env_var, .. }
        | AuthShape::Query { env_var, .. } => declared(env_var),
        AuthShape::Custom { .. } => None,
    };
    let secrets = || manifest.env_vars.iter().filter(|var| var.role == EnvVarRole::Secret);
    from_auth
        .filter(|var| var.required)
        .or_else(|| secrets().find(|var| var.required))
        .or_else(|| manifest.env_vars.iter().find(|var| var.required))
        .or(from_auth)
        .or_else(|| secrets().next())
        .map(|var| var.name.as_str())
}

/// The row a newly linked key starts as: `fresh`, unless the same scope had
/// a row of the same provider and variant under another variable (the
/// provider's key variable changed between releases). Then the person's
/// metadata carries over, so an upgrade loses no label, status, default
/// choice, link date or last use; health is not carried: it belongs to the
/// old variable's value and is probed again.
pub fn carried_row(fresh: ProviderKey, predecessor: Option<&ProviderKey>) -> ProviderKey {
    match predecessor {
        Some(old) if old.provider == fresh.provider && old.variant == fresh.variant => {
            ProviderKey {
                label: if old.label == old.env_var { fresh.label } else { old.label.clone() },
                created_at: old.created_at,
                last_used_at: old.last_used_at,
                status: old.status,
                chosen_default_at: old.chosen_default_at,
                ..fresh
            }
        }
        _ => fresh,
    }
}

/// That a variable is (a variant of) a provider's key variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLink {
    /// The provider's slug.
    pub provider: String,
    /// The provider's base key variable.
    pub base: String,
    /// The variant: 1 for the base name, `n` for `{base}_{n}`.
    pub variant: u32,
}

/// The mapping from key variables to providers that the store uses to keep
/// provider-key rows in step with variables. The host derives it from the
/// plugin manifests ([`ProviderVars::from_manifests`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderVars {
    /// `(base variable, provider slug)`, without duplicates.
    bases: Vec<(String, String)>,
}

impl ProviderVars {
    /// An empty mapping: no variable is a provider key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `base` as the key variable of `provider`.
    pub fn insert(&mut self, base: impl Into<String>, provider: impl Into<String>) {
        let entry = (base.into(), provider.into());
        if !self.bases.contains(&entry) {
            self.bases.push(entry);
        }
    }

    /// Builder form of [`ProviderVars::insert`].
    pub fn with(mut self, base: impl Into<String>, provider: impl Into<String>) -> Self {
        self.insert(base, provider);
        self
    }

    /// The key variable ([`key_var`]) of every manifest.
    pub fn from_manifests<'a>(manifests: impl IntoIterator<Item = &'a Manifest>) -> Self {
        let mut vars = ProviderVars::new();
        for manifest in manifests {
            if let Some(base) = key_var(manifest) {
                vars.insert(base, manifest.slug.clone());
            }
        }
        vars
    }

    /// `(base variable, provider slug)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.bases.iter().map(|(base, provider)| (base.as_str(), provider.as_str()))
    }

    /// Whether `provider` has a key variable in this mapping.
    pub fn has_provider(&self, provider: &str) -> bool {
        self.bases.iter().any(|(_, slug)| slug == provider)
    }

    /// Whether no variable is a provider key.
    pub fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }

    /// The providers `var_name` is a key of, with its variant. Usually one;
    /// several if providers share a key variable.
    pub fn links(&self, var_name: &str) -> Vec<KeyLink> {
        self.bases
            .iter()
            .filter_map(|(base, provider)| {
                variant_of(var_name, base).map(|variant| KeyLink {
                    provider: provider.clone(),
                    base: base.clone(),
                    variant,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::EnvVar;

    fn manifest(slug: &str, auth: AuthShape, vars: &[(&str, EnvVarRole, bool)]) -> Manifest {
        Manifest {
            slug: slug.into(),
            display_name: slug.into(),
            plugin_version: "1.0.0".into(),
            env_vars: vars
                .iter()
                .map(|(name, role, required)| EnvVar {
                    name: (*name).into(),
                    role: *role,
                    required: *required,
                    description: String::new(),
                    default_value: None,
                    aliases: Vec::new(),
                })
                .collect(),
            auth,
            model_classes: Vec::new(),
            default_models: Vec::new(),
            allowed_hosts: Vec::new(),
            docs_url: String::new(),
            probe_cost: None,
            clients: Vec::new(),
            default_client: None,
            token_exchange: false,
        }
    }

    #[test]
    fn key_vars_from_manifests() {
        let openai = manifest(
            "openai",
            AuthShape::Bearer { env_var: "OPENAI_API_KEY".into() },
            &[
                ("OPENAI_API_KEY", EnvVarRole::Secret, true),
                ("OPENAI_API_BASE", EnvVarRole::BaseUrl, false),
            ],
        );
        let custom = manifest(
            "signer",
            AuthShape::Custom { description: "signs".into() },
            &[
                ("SIGNER_REGION", EnvVarRole::Other, true),
                ("SIGNER_SESSION", EnvVarRole::Secret, false),
                ("SIGNER_SECRET", EnvVarRole::Secret, true),
            ],
        );
        let optional = manifest(
            "opt",
            AuthShape::Custom { description: String::new() },
            &[("OPT_TOKEN", EnvVarRole::Secret, false)],
        );
        let none = manifest("none", AuthShape::Custom { description: String::new() }, &[]);
        let exchange = manifest(
            "exchange",
            AuthShape::Bearer { env_var: crate::provider::ACCESS_TOKEN_VAR.into() },
            &[
                ("EXCHANGE_CLIENT_ID", EnvVarRole::Other, true),
                ("EXCHANGE_CLIENT_SECRET", EnvVarRole::Secret, true),
            ],
        );
        let keyless = manifest(
            "compatible",
            AuthShape::Bearer { env_var: "COMPATIBLE_API_KEY".into() },
            &[
                ("COMPATIBLE_BASE_URL", EnvVarRole::BaseUrl, true),
                ("COMPATIBLE_API_KEY", EnvVarRole::Secret, false),
            ],
        );
        assert_eq!(
            key_var(&keyless),
            Some("COMPATIBLE_BASE_URL"),
            "a server without auth links on what must be set: its URL"
        );
        let optional_bearer = manifest(
            "optional-bearer",
            AuthShape::Bearer { env_var: "OB_TOKEN".into() },
            &[("OB_REGION", EnvVarRole::Other, false), ("OB_TOKEN", EnvVarRole::Secret, false)],
        );
        assert_eq!(
            key_var(&optional_bearer),
            Some("OB_TOKEN"),
            "nothing required: the auth variable"
        );
        assert_eq!(key_var(&exchange), Some("EXCHANGE_CLIENT_SECRET"), "the token is no variable");
        assert_eq!(key_var(&openai), Some("OPENAI_API_KEY"));
        assert_eq!(key_var(&custom), Some("SIGNER_SECRET"));
        assert_eq!(key_var(&optional), Some("OPT_TOKEN"));
        assert_eq!(key_var(&none), None);

        let vars = ProviderVars::from_manifests([&openai, &custom, &optional, &none]);
        assert_eq!(
            vars.iter().collect::<Vec<_>>(),
            [("OPENAI_API_KEY", "openai"), ("SIGNER_SECRET", "signer"), ("OPT_TOKEN", "opt")]
        );
        assert_eq!(
            vars.links("OPENAI_API_KEY_3"),
            [KeyLink { provider: "openai".into(), base: "OPENAI_API_KEY".into(), variant: 3 }]
        );
        assert!(vars.links("OPENAI_API_BASE").is_empty());
        assert!(vars.links("SIGNER_REGION").is_empty());
    }

    fn row(env_var: &str, variant: u32) -> ProviderKey {
        ProviderKey {
            provider: "compatible".into(),
            env_var: env_var.into(),
            variant,
            label: env_var.into(),
            created_at: 5,
            last_used_at: None,
            status: super::super::KeyStatus::Active,
            health: None,
            chosen_default_at: None,
        }
    }

    #[test]
    fn metadata_carries_over_when_the_key_variable_changes() {
        let old = ProviderKey {
            label: "the lab's vLLM".into(),
            created_at: 1,
            last_used_at: Some(3),
            status: super::super::KeyStatus::Disabled,
            chosen_default_at: Some(2),
            health: Some(crate::store::HealthRecord {
                verdict: crate::store::HealthVerdict::Healthy,
                message: "ok".into(),
                checked_at: 4,
                latency_ms: 1,
                models: Vec::new(),
            }),
            ..row("COMPATIBLE_API_KEY_2", 2)
        };
        let carried = carried_row(row("COMPATIBLE_BASE_URL_2", 2), Some(&old));
        assert_eq!(carried.env_var, "COMPATIBLE_BASE_URL_2");
        assert_eq!(
            (carried.label.as_str(), carried.created_at, carried.last_used_at),
            ("the lab's vLLM", 1, Some(3))
        );
        assert_eq!(carried.status, super::super::KeyStatus::Disabled);
        assert_eq!(carried.chosen_default_at, Some(2));
        assert_eq!(carried.health, None, "health belongs to the old value");
        // A label that was only the old name takes the new name.
        let unlabelled = row("COMPATIBLE_API_KEY", 1);
        assert_eq!(
            carried_row(row("COMPATIBLE_BASE_URL", 1), Some(&unlabelled)).label,
            "COMPATIBLE_BASE_URL"
        );
        // Another variant or provider is no predecessor.
        let fresh = row("COMPATIBLE_BASE_URL_3", 3);
        assert_eq!(carried_row(fresh.clone(), Some(&old)), fresh);
        let other = ProviderKey { provider: "other".into(), ..old.clone() };
        assert_eq!(
            carried_row(row("COMPATIBLE_BASE_URL_2", 2), Some(&other)).label,
            "COMPATIBLE_BASE_URL_2"
        );
        assert_eq!(carried_row(fresh.clone(), None), fresh);
    }

    #[test]
    fn shared_and_duplicate_bases() {
        let vars = ProviderVars::new()
            .with("OPENAI_API_KEY", "openai")
            .with("OPENAI_API_KEY", "openai")
            .with("OPENAI_API_KEY", "openai-embeddings");
        assert_eq!(vars.iter().count(), 2);
        assert!(vars.has_provider("openai-embeddings") && !vars.has_provider("anthropic"));
        let providers: Vec<String> =
            vars.links("OPENAI_API_KEY_2").into_iter().map(|link| link.provider).collect();
        assert_eq!(providers, ["openai", "openai-embeddings"]);
        assert!(vars.links("OPENAI_API_KEY_1").is_empty());
        assert!(vars.links("OPENAI_API_KEY_02").is_empty());
        assert!(ProviderVars::new().is_empty());
    }
}
