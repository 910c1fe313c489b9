//! The rules a manifest must follow for the host to load its plugin. Every
//! broken rule is reported, not just the first.

use std::collections::HashSet;

use super::hosts::HostPattern;
use super::names::{is_valid_env_var_name, is_valid_slug};
use crate::provider::{ACCESS_TOKEN_VAR, AuthShape, EnvVarRole, Manifest};

/// Checks `manifest`; the error lists every broken rule in words that say
/// what was found and what is expected.
pub fn validate(manifest: &Manifest) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if !is_valid_slug(&manifest.slug) {
        problems.push(format!(
            "slug {:?} must match ^[a-z0-9][a-z0-9-]*$ (at most 64 characters)",
            manifest.slug
        ));
    }
    if manifest.display_name.trim().is_empty() {
        problems.push("display name is empty".to_owned());
    }
    if manifest.plugin_version.trim().is_empty() {
        problems.push("plugin version is empty".to_owned());
    }

    let mut seen = HashSet::new();
    for var in &manifest.env_vars {
        if !is_valid_env_var_name(&var.name) {
            problems.push(format!(
                "env var {:?} must match ^[A-Z][A-Z0-9_]*$ (at most 128 characters)",
                var.name
            ));
        }
        if !seen.insert(var.name.as_str()) {
            problems.push(format!("env var {} is declared twice", var.name));
        }
    }
    if !manifest.env_vars.iter().any(|var| var.role == EnvVarRole::Secret) {
        problems.push("no env var has role `secret`: at least one is expected".to_owned());
    }
    let base_vars: Vec<_> =
        manifest.env_vars.iter().filter(|var| var.role == EnvVarRole::BaseUrl).collect();
    if base_vars.len() > 1 {
        problems.push(format!(
            "{} env vars have role `base-url`: at most one is expected",
            base_vars.len()
        ));
    }
    for var in &base_vars {
        if let Some(default) = &var.default_value
            && !(default.starts_with("https://") || default.starts_with("http://"))
        {
            problems.push(format!("default of {} must be an http(s) URL", var.name));
        }
    }

    let auth_var = match &manifest.auth {
        AuthShape::Bearer { env_var }
        | AuthShape::Header { env_var, .. }
        | AuthShape::Query { env_var, .. } => Some(env_var),
        AuthShape::Custom { .. } => None,
    };
    // With a token exchange, the shape may name the access token the host
    // hands `authorize`; it is no declared variable.
    let names_the_token = auth_var.is_some_and(|var| var == ACCESS_TOKEN_VAR);
    if names_the_token && !manifest.token_exchange {
        problems.push(format!(
            "auth uses {ACCESS_TOKEN_VAR}, which only a manifest with token_exchange = true gets"
        ));
    }
    if let Some(auth_var) = auth_var.filter(|_| !names_the_token) {
        match manifest.env_vars.iter().find(|var| &var.name == auth_var) {
            None => problems.push(format!("auth uses {auth_var}, which is not a declared env var")),
            Some(var) if var.role != EnvVarRole::Secret => {
                problems.push(format!("auth uses {auth_var}, whose role is not `secret`"))
            }
            Some(_) => {}
        }
    }
    if let AuthShape::Header { header, .. } | AuthShape::Query { param: header, .. } =
        &manifest.auth
        && header.trim().is_empty()
    {
        problems.push("auth names an empty header or query parameter".to_owned());
    }

    for pattern in &manifest.allowed_hosts {
        if let Err(error) = HostPattern::parse(pattern) {
            problems.push(error.to_string());
        }
    }
    if manifest.allowed_hosts.is_empty() && base_vars.is_empty() {
        problems
            .push("no allowed hosts and no base-url env var: requests could go nowhere".to_owned());
    }

    if manifest.model_classes.is_empty() {
        problems.push("model classes are empty: at least one is expected".to_owned());
    }
    if manifest.default_models.is_empty() {
        problems.push("default models are empty: at least one is expected".to_owned());
    }
    let mut model_ids = HashSet::new();
    for model in &manifest.default_models {
        if model.id.trim().is_empty() {
            problems.push("a default model has an empty id".to_owned());
        } else if !model_ids.insert(model.id.as_str()) {
            problems.push(format!("default model {} is listed twice", model.id));
        }
        if !manifest.model_classes.contains(&model.class) {
            problems.push(format!(
                "default model {} has class {:?}, which is not among the model classes",
                model.id, model.class
            ));
        }
    }
    if !manifest.docs_url.starts_with("https://") {
        problems.push(format!("docs URL {:?} must be an https:// URL", manifest.docs_url));
    }
    problems.extend(super::manifest_additions::validate(manifest).err().unwrap_or_default());
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{EnvVar, ModelClass, ModelInfo};

    fn good() -> Manifest {
        Manifest {
            slug: "acme".into(),
            display_name: "Acme".into(),
            plugin_version: "1.0.0".into(),
            env_vars: vec![EnvVar {
                name: "ACME_API_KEY".into(),
                role: EnvVarRole::Secret,
                required: true,
                description: "key".into(),
                default_value: None,
                aliases: Vec::new(),
            }],
            auth: AuthShape::Bearer { env_var: "ACME_API_KEY".into() },
            model_classes: vec![ModelClass::Chat],
            default_models: vec![ModelInfo {
                id: "acme-1".into(),
                class: ModelClass::Chat,
                display_name: "Acme 1".into(),
                context_window: None,
                price: None,
            }],
            allowed_hosts: vec!["api.acme.com".into()],
            docs_url: "https://acme.com/keys".into(),
            probe_cost: None,
            clients: Vec::new(),
            default_client: None,
            token_exchange: false,
        }
    }

    #[test]
    fn a_good_manifest_passes() {
        validate(&good()).unwrap();
    }

    #[test]
    fn every_broken_rule_is_reported() {
        let mut manifest = good();
        manifest.slug = "Acme!".into();
        manifest.env_vars[0].role = EnvVarRole::Other;
        manifest.env_vars.push(manifest.env_vars[0].clone());
        manifest.env_vars.push(EnvVar { name: "acme_key".into(), ..manifest.env_vars[0].clone() });
        manifest.allowed_hosts = vec!["https://api.acme.com".into()];
        manifest.default_models.clear();
        let problems = validate(&manifest).unwrap_err();
        let text = problems.join("\n");
        for expected in [
            "slug \"Acme!\"",
            "declared twice",
            "\"acme_key\" must match",
            "no env var has role `secret`",
            "whose role is not `secret`",
            "scheme or a path",
            "default models are empty",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn auth_must_name_a_declared_secret() {
        let mut manifest = good();
        manifest.auth = AuthShape::Header { header: "x-api-key".into(), env_var: "NOPE".into() };
        let problems = validate(&manifest).unwrap_err();
        assert_eq!(problems, ["auth uses NOPE, which is not a declared env var"]);
    }

    #[test]
    fn only_a_token_exchange_may_put_the_access_token_in_its_auth_shape() {
        let mut manifest = good();
        manifest.auth = AuthShape::Bearer { env_var: ACCESS_TOKEN_VAR.into() };
        let problems = validate(&manifest).unwrap_err();
        assert_eq!(
            problems,
            [
                "auth uses PLATOS_ACCESS_TOKEN, which only a manifest with token_exchange = true gets"
            ]
        );
        manifest.token_exchange = true;
        assert_eq!(validate(&manifest), Ok(()));
    }

    #[test]
    fn model_class_must_be_declared() {
        let mut manifest = good();
        manifest.default_models[0].class = ModelClass::Embedding;
        let problems = validate(&manifest).unwrap_err();
        assert!(problems[0].contains("not among the model classes"), "{problems:?}");
    }
}
