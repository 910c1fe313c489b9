//! The loaded plugins, by slug.

use std::collections::BTreeMap;
use std::path::Path;

use super::{LoadError, Plugin, PluginHost};
use crate::policy::ownership::{self, Claim, NameGrants};
use crate::policy::plugin_policy::{PinProblem, PluginPolicy};

/// A plugin that was not loaded, and why (for the log, `GET /v1/plugins`,
/// the providers page and `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RefusedPlugin {
    /// Where it came from (its file).
    pub origin: String,
    /// A stable code ([`LoadError::code`]).
    pub code: &'static str,
    /// Why, in words (it names the file once).
    pub message: String,
}

impl RefusedPlugin {
    fn new(error: &LoadError) -> Self {
        RefusedPlugin { origin: error.origin(), code: error.code(), message: error.to_string() }
    }
}

/// The loaded plugins, by slug, and the plugins refused on the way.
#[derive(Clone, Default)]
pub struct PluginRegistry {
    plugins: BTreeMap<String, Entry>,
    refused: Vec<RefusedPlugin>,
}

#[derive(Clone)]
struct Entry {
    plugin: Plugin,
    bundled: bool,
}

impl PluginRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a third-party plugin; a second plugin with the same slug is an
    /// error naming both.
    pub fn insert(&mut self, plugin: Plugin) -> Result<(), LoadError> {
        self.insert_entry(Entry { plugin, bundled: false })
    }

    /// Adds a plugin bundled in the host: it owns the names it declares.
    pub fn insert_bundled(&mut self, plugin: Plugin) -> Result<(), LoadError> {
        self.insert_entry(Entry { plugin, bundled: true })
    }

    fn insert_entry(&mut self, entry: Entry) -> Result<(), LoadError> {
        let plugin = &entry.plugin;
        if let Some(existing) = self.plugins.get(plugin.slug()) {
            return Err(LoadError::DuplicateSlug {
                slug: plugin.slug().to_owned(),
                first: existing.plugin.origin().to_owned(),
                second: plugin.origin().to_owned(),
            });
        }
        self.plugins.insert(plugin.slug().to_owned(), entry);
        Ok(())
    }

    /// The plugin for `slug`.
    pub fn get(&self, slug: &str) -> Option<&Plugin> {
        self.plugins.get(slug).map(|entry| &entry.plugin)
    }

    /// Whether `slug` is a bundled plugin.
    pub fn is_bundled(&self, slug: &str) -> bool {
        self.plugins.get(slug).is_some_and(|entry| entry.bundled)
    }

    /// Every plugin, by slug.
    pub fn iter(&self) -> impl Iterator<Item = &Plugin> {
        self.plugins.values().map(|entry| &entry.plugin)
    }

    /// How many are loaded.
    pub fn len(&self) -> usize {
        self.plugins.len()
    }

    /// Whether none is loaded.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// The plugins refused by [`PluginRegistry::load_dir`] and
    /// [`PluginRegistry::enforce_ownership`], in the order they were met.
    pub fn refused(&self) -> &[RefusedPlugin] {
        &self.refused
    }

    /// Loads every `*.wasm` file of `dir` (sorted by name). A file that does
    /// not load (or repeats a slug) is refused, logged once and listed in
    /// [`PluginRegistry::refused`]; the others load. Only an unreadable
    /// directory is an error. Returns how many loaded.
    pub async fn load_dir(&mut self, host: &PluginHost, dir: &Path) -> Result<usize, LoadError> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|source| LoadError::Read { path: dir.to_owned(), source })?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
            .collect();
        paths.sort();
        let mut loaded = 0;
        for path in &paths {
            let outcome = match host.load_file(path).await {
                Ok(plugin) => self.insert(plugin),
                Err(error) => Err(error),
            };
            match outcome {
                Ok(()) => loaded += 1,
                Err(error) => self.refuse(&error),
            }
        }
        Ok(loaded)
    }

    /// Applies the name-ownership rules ([`crate::policy::ownership`]) to
    /// every loaded plugin at once: a third-party plugin that declares a
    /// name it neither owns nor was granted is removed and refused, with
    /// every offending name and its owner. A bundled plugin that breaks a
    /// rule (two bundled plugins declaring one name) is a build defect: an
    /// error, nothing removed.
    pub fn enforce_ownership(&mut self, grants: &NameGrants) -> Result<(), LoadError> {
        let problems = {
            let claims: Vec<Claim<'_>> = self
                .plugins
                .values()
                .map(|entry| Claim {
                    slug: entry.plugin.slug(),
                    bundled: entry.bundled,
                    names: entry
                        .plugin
                        .manifest()
                        .env_vars
                        .iter()
                        .map(|var| var.name.as_str())
                        .collect(),
                })
                .collect();
            ownership::check(&claims, grants)
        };
        let failures: Vec<(String, LoadError, bool)> = self
            .plugins
            .iter()
            .zip(problems)
            .filter(|(_, problems)| !problems.is_empty())
            .map(|((slug, entry), problems)| {
                let error = LoadError::NameOwnership {
                    plugin: entry.plugin.id().to_owned(),
                    origin: entry.plugin.origin().to_owned(),
                    problems: problems.iter().map(ToString::to_string).collect(),
                };
                (slug.clone(), error, entry.bundled)
            })
            .collect();
        for (slug, error, bundled) in failures {
            if bundled {
                return Err(error);
            }
            self.plugins.remove(&slug);
            self.refuse(&error);
        }
        Ok(())
    }

    /// Applies the policy's hash pins ([`PluginPolicy::check_pin`]): a
    /// third-party plugin whose bytes differ from its pin, or that has none
    /// while pins are required, is removed and refused. Bundled plugins are
    /// part of this binary and are not pinned.
    pub fn enforce_pins(&mut self, policy: &PluginPolicy) {
        let refused: Vec<(String, LoadError)> = self
            .plugins
            .iter()
            .filter(|(_, entry)| !entry.bundled)
            .filter_map(|(slug, entry)| {
                let plugin = &entry.plugin;
                let problem = policy.check_pin(slug, plugin.sha256()).err()?;
                let expected = match problem {
                    PinProblem::Mismatch { expected } => Some(expected),
                    PinProblem::Unpinned => None,
                };
                let error = LoadError::HashPin {
                    plugin: plugin.id().to_owned(),
                    origin: plugin.origin().to_owned(),
                    found: plugin.sha256().to_owned(),
                    expected,
                };
                Some((slug.clone(), error))
            })
            .collect();
        for (slug, error) in refused {
            self.plugins.remove(&slug);
            self.refuse(&error);
        }
    }

    fn refuse(&mut self, error: &LoadError) {
        tracing::error!(code = error.code(), "plugin refused: {error}");
        self.refused.push(RefusedPlugin::new(error));
    }
}
