//! The model picker: the providers with a usable key in a scope, and their
//! models (the manifest's defaults plus what the last healthy probe listed).
//! A provider without a key, or whose every key a probe found invalid, shows
//! no models.

use std::collections::BTreeSet;

use serde::Serialize;

use super::Resolver;
use crate::policy::models::infer_class;
use crate::provider::ModelClass;
use crate::scope::Scope;
use crate::store::{HealthVerdict, KeyStatus, ProviderKey, StoreError};

/// Whether a turn could spend `key`: it is active and no probe found it
/// invalid (never probed, unreachable or rate-limited keys keep the benefit
/// of the doubt).
pub fn usable(key: &ProviderKey) -> bool {
    key.status == KeyStatus::Active
        && key
            .health
            .as_ref()
            .is_none_or(|health| health.verdict != HealthVerdict::InvalidCredential)
}

/// One model in the picker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogModel {
    /// The provider's slug.
    pub provider: String,
    /// The model id.
    pub id: String,
    /// Its class.
    pub class: ModelClass,
    /// A name for people (the id, for discovered models).
    pub display_name: String,
    /// Tokens, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// `default` (from the manifest) or `discovered` (from a probe).
    pub source: &'static str,
}

impl Resolver {
    /// The slugs of the loaded providers with at least one [`usable`] key
    /// in `scope`.
    pub async fn usable_providers(&self, scope: &Scope) -> Result<Vec<String>, StoreError> {
        let keys = self.store().list_provider_keys(scope).await?;
        Ok(self.usable_providers_of(&keys))
    }

    /// The slugs of the loaded providers with at least one [`usable`] key
    /// among `keys`.
    fn usable_providers_of(&self, keys: &[ProviderKey]) -> Vec<String> {
        let usable: BTreeSet<&str> = keys
            .iter()
            .filter(|key| usable(key) && self.registry().get(&key.provider).is_some())
            .map(|key| key.provider.as_str())
            .collect();
        usable.into_iter().map(str::to_owned).collect()
    }

    /// The picker's models for `scope`, optionally of one class.
    pub async fn models(
        &self,
        scope: &Scope,
        class: Option<ModelClass>,
    ) -> Result<Vec<CatalogModel>, StoreError> {
        let keys = self.store().list_provider_keys(scope).await?;
        let mut models = Vec::new();
        for provider in self.usable_providers_of(&keys) {
            let Some(plugin) = self.registry().get(&provider) else { continue };
            let manifest = plugin.manifest();
            let mut seen = BTreeSet::new();
            for model in &manifest.default_models {
                seen.insert(model.id.clone());
                models.push(CatalogModel {
                    provider: provider.clone(),
                    id: model.id.clone(),
                    class: model.class,
                    display_name: model.display_name.clone(),
                    context_window: model.context_window,
                    source: "default",
                });
            }
            let discovered = keys
                .iter()
                .filter(|key| key.provider == provider && key.status == KeyStatus::Active)
                .filter_map(|key| key.health.as_ref())
                .filter(|health| health.verdict == HealthVerdict::Healthy)
                .flat_map(|health| health.models.iter());
            for id in discovered {
                if seen.insert(id.clone()) {
                    models.push(CatalogModel {
                        provider: provider.clone(),
                        id: id.clone(),
                        class: infer_class(id, manifest),
                        display_name: id.clone(),
                        context_window: None,
                        source: "discovered",
                    });
                }
            }
        }
        if let Some(class) = class {
            models.retain(|model| model.class == class);
        }
        Ok(models)
    }
}
