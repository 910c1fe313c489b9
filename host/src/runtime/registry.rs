//! The loaded plugins, by slug.

use std::collections::BTreeMap;
use std::path::Path;

use super::{LoadError, Plugin, PluginHost};

/// The loaded plugins, by slug.
#[derive(Clone, Default)]
pub struct PluginRegistry {
    plugins: BTreeMap<String, Plugin>,
}

impl PluginRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a plugin; a second plugin with the same slug is an error naming both.
    pub fn insert(&mut self, plugin: Plugin) -> Result<(), LoadError> {
        if let Some(existing) = self.plugins.get(plugin.slug()) {
            return Err(LoadError::DuplicateSlug {
                slug: plugin.slug().to_owned(),
                first: existing.origin().to_owned(),
                second: plugin.origin().to_owned(),
            });
        }
        self.plugins.insert(plugin.slug().to_owned(), plugin);
        Ok(())
    }

    /// The plugin for `slug`.
    pub fn get(&self, slug: &str) -> Option<&Plugin> {
        self.plugins.get(slug)
    }

    /// Every plugin, by slug.
    pub fn iter(&self) -> impl Iterator<Item = &Plugin> {
        self.plugins.values()
    }

    /// How many are loaded.
    pub fn len(&self) -> usize {
        self.plugins.len()
    }

    /// Whether none is loaded.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Loads every `*.wasm` file of `dir` (sorted by name) into the registry.
    pub async fn load_dir(&mut self, host: &PluginHost, dir: &Path) -> Result<usize, LoadError> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|source| LoadError::Read { path: dir.to_owned(), source })?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
            .collect();
        paths.sort();
        for path in &paths {
            self.insert(host.load_file(path).await?)?;
        }
        Ok(paths.len())
    }
}
