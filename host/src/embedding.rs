//! The embedding track: memory extraction and RAG writes need an embedding
//! key of their own (`PLATOS_EMBEDDING_PROVIDER` = `voyage` or `openai`).
//! Without one every remember call fails at write time and multi-turn agents
//! look stateless, so the host says so loudly at start and per scope.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::resolution::Resolver;
use crate::resolution::catalog::usable;
use crate::scope::Scope;
use crate::store::{KeyStatus, ProviderKey, StoreError};

/// The variable choosing the embedding provider.
pub const EMBEDDING_PROVIDER_VAR: &str = "PLATOS_EMBEDDING_PROVIDER";

/// The providers the embedding track supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingProvider {
    /// Voyage AI (`VOYAGE_API_KEY`); the default.
    Voyage,
    /// OpenAI (`OPENAI_API_KEY`).
    Openai,
}

impl EmbeddingProvider {
    /// The provider's plugin slug.
    pub fn slug(self) -> &'static str {
        match self {
            EmbeddingProvider::Voyage => "voyage",
            EmbeddingProvider::Openai => "openai",
        }
    }

    /// The variable its key lives in.
    pub fn key_var(self) -> &'static str {
        match self {
            EmbeddingProvider::Voyage => "VOYAGE_API_KEY",
            EmbeddingProvider::Openai => "OPENAI_API_KEY",
        }
    }
}

impl fmt::Display for EmbeddingProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

impl FromStr for EmbeddingProvider {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "voyage" => Ok(EmbeddingProvider::Voyage),
            "openai" => Ok(EmbeddingProvider::Openai),
            other => Err(format!(
                "{EMBEDDING_PROVIDER_VAR}={other:?} is not supported: expected `voyage` or `openai`"
            )),
        }
    }
}

/// Whether memory and RAG writes can work in a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmbeddingStatus {
    /// The configured provider.
    pub provider: EmbeddingProvider,
    /// Whether it has a usable key in the scope.
    pub ready: bool,
    /// What is missing, in words, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

/// The embedding status of `scope` for `provider`: ready when the provider
/// has a usable key (active, and not found invalid by its last probe).
pub async fn status(
    resolver: &Resolver,
    scope: &Scope,
    provider: EmbeddingProvider,
) -> Result<EmbeddingStatus, StoreError> {
    let keys: Vec<ProviderKey> = resolver
        .store()
        .list_provider_keys(scope)
        .await?
        .into_iter()
        .filter(|key| key.provider == provider.slug())
        .collect();
    let ready = resolver.registry().get(provider.slug()).is_some() && keys.iter().any(usable);
    let consequence = "until then memory extraction and remember calls fail at write time";
    let missing = (!ready).then(|| {
        if keys.is_empty() {
            format!(
                "no {} key in {scope}: set {} ({EMBEDDING_PROVIDER_VAR}={provider}); {consequence}",
                provider.slug(),
                provider.key_var()
            )
        } else {
            let why: Vec<String> = keys
                .iter()
                .map(|key| {
                    let state = if key.status != KeyStatus::Active {
                        "disabled"
                    } else {
                        "invalid at its last probe"
                    };
                    format!("{} is {state}", key.env_var)
                })
                .collect();
            format!(
                "no usable {} key in {scope} ({}): enable one or set a working {}; {consequence}",
                provider.slug(),
                why.join(", "),
                provider.key_var()
            )
        }
    });
    Ok(EmbeddingStatus { provider, ready, missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_parse_with_a_clear_error() {
        assert_eq!("voyage".parse::<EmbeddingProvider>(), Ok(EmbeddingProvider::Voyage));
        assert_eq!(" OpenAI ".parse::<EmbeddingProvider>(), Ok(EmbeddingProvider::Openai));
        assert_eq!("".parse::<EmbeddingProvider>(), Ok(EmbeddingProvider::Voyage));
        let error = "cohere".parse::<EmbeddingProvider>().unwrap_err();
        assert!(error.contains("expected `voyage` or `openai`"), "{error}");
    }
}
