//! The load rules for what contract 0.2.0 added to the manifest: clients,
//! env var aliases and the reserved access-token name. A 0.1.0 manifest has
//! none of these and always passes. Every broken rule is reported, in words
//! that say what was found and what is expected. [`super::manifest::validate`]
//! applies them after its own.

use std::collections::HashSet;

use super::names::{is_valid_env_var_name, is_valid_slug};
use super::ownership::is_host_reserved;
use crate::provider::{
    ACCESS_TOKEN_VAR, ALL_CLIENTS, ClientSelector, EnvAlias, Manifest, ValueForm,
};

/// Checks the 0.2.0 additions of `manifest`.
pub fn validate(manifest: &Manifest) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    check_clients(manifest, &mut problems);
    check_aliases(manifest, &mut problems);
    if manifest.token_exchange && manifest.env_vars.iter().any(|var| var.name == ACCESS_TOKEN_VAR) {
        problems.push(format!(
            "env var {ACCESS_TOKEN_VAR} is reserved for the access token a token exchange gives; name the variable otherwise"
        ));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

fn check_clients(manifest: &Manifest, problems: &mut Vec<String>) {
    let mut seen = HashSet::new();
    for client in &manifest.clients {
        if !is_valid_slug(&client.id) || client.id == ALL_CLIENTS {
            problems.push(format!(
                "client id {:?} must match ^[a-z0-9][a-z0-9-]*$ and not be {ALL_CLIENTS:?}",
                client.id
            ));
        }
        if !seen.insert(client.id.as_str()) {
            problems.push(format!("client {} is declared twice", client.id));
        }
        if client.display_name.trim().is_empty() {
            problems.push(format!("client {} has an empty display name", client.id));
        }
    }
    match (&manifest.default_client, manifest.clients.is_empty()) {
        (None, false) => problems.push(
            "clients are declared but no default client: name the provider's official SDK in `default_client`"
                .to_owned(),
        ),
        (Some(default), _) if !seen.contains(default.as_str()) => problems.push(format!(
            "default client {default:?} is not among the declared clients ({})",
            declared(manifest)
        )),
        _ => {}
    }
}

fn check_aliases(manifest: &Manifest, problems: &mut Vec<String>) {
    let clients: HashSet<&str> = manifest.clients.iter().map(|client| client.id.as_str()).collect();
    let vars: HashSet<&str> = manifest.env_vars.iter().map(|var| var.name.as_str()).collect();
    let mut placed: Vec<(&str, &ClientSelector, &str)> = Vec::new();
    for var in &manifest.env_vars {
        for alias in &var.aliases {
            let at = format!("alias {} of {}", alias.name, var.name);
            if !is_valid_env_var_name(&alias.name) || alias.name == ACCESS_TOKEN_VAR {
                problems.push(format!(
                    "{at}: the name must match ^[A-Z][A-Z0-9_]*$ and not be {ACCESS_TOKEN_VAR}"
                ));
            } else if is_host_reserved(&alias.name) {
                problems.push(format!(
                    "{at}: {} belongs to the process environment (PATH, HOME, LD_*, PLATOS_*, ...); an env bag never sets it",
                    alias.name
                ));
            }
            if let ClientSelector::Only(id) = &alias.client
                && !clients.contains(id.as_str())
            {
                problems.push(format!(
                    "{at}: client {id:?} is not declared (declared: {})",
                    declared(manifest)
                ));
            }
            if alias.name == var.name && alias.client == ClientSelector::All {
                problems.push(format!(
                    "{at}: an alias repeating its variable's name must name one client (`client = \"<id>\"`), else it replaces the variable for everyone"
                ));
            } else if alias.name != var.name && vars.contains(alias.name.as_str()) {
                problems.push(format!("{at}: {} is another declared variable", alias.name));
            }
            check_form(&at, alias, problems);
            for (name, client, owner) in &placed {
                if *name == alias.name && overlap(client, &alias.client) {
                    problems.push(format!(
                        "{at}: {} is already an alias of {owner} for the same client",
                        alias.name
                    ));
                }
            }
            placed.push((alias.name.as_str(), &alias.client, var.name.as_str()));
        }
    }
}

fn check_form(at: &str, alias: &EnvAlias, problems: &mut Vec<String>) {
    match &alias.form {
        ValueForm::AppendSuffix { suffix } | ValueForm::StripSuffix { suffix }
            if suffix.is_empty() =>
        {
            problems.push(format!("{at}: the suffix is empty"));
        }
        ValueForm::HostLabelOfUrl { domain }
            if !domain.contains('.')
                || domain.starts_with('.')
                || !domain.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b)
                }) =>
        {
            problems.push(format!(
                "{at}: domain {domain:?} must be a lower-case DNS name such as openai.azure.com"
            ));
        }
        ValueForm::NoteOnly if alias.note.is_none() => {
            problems.push(format!("{at}: a note-only alias needs a note saying what to set"));
        }
        _ => {}
    }
    if let Some(note) = &alias.note
        && (note.trim().is_empty() || note.contains('\n'))
    {
        problems.push(format!("{at}: the note must be one line, not empty"));
    }
}

/// Whether two selectors reach a common client.
fn overlap(a: &ClientSelector, b: &ClientSelector) -> bool {
    match (a, b) {
        (ClientSelector::Only(a), ClientSelector::Only(b)) => a == b,
        _ => true,
    }
}

fn declared(manifest: &Manifest) -> String {
    if manifest.clients.is_empty() {
        return "none".to_owned();
    }
    manifest.clients.iter().map(|client| client.id.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{AuthShape, ClientInfo, EnvVar, EnvVarRole};

    fn var(name: &str, role: EnvVarRole, aliases: Vec<EnvAlias>) -> EnvVar {
        EnvVar {
            name: name.into(),
            role,
            required: false,
            description: String::new(),
            default_value: None,
            aliases,
        }
    }

    fn alias(name: &str, client: ClientSelector, form: ValueForm) -> EnvAlias {
        EnvAlias { name: name.into(), client, form, note: None }
    }

    fn only(id: &str) -> ClientSelector {
        ClientSelector::Only(id.into())
    }

    fn manifest(vars: Vec<EnvVar>) -> Manifest {
        Manifest {
            slug: "acme".into(),
            display_name: "Acme".into(),
            plugin_version: "1.0.0".into(),
            env_vars: vars,
            auth: AuthShape::Bearer { env_var: "ACME_API_KEY".into() },
            model_classes: Vec::new(),
            default_models: Vec::new(),
            allowed_hosts: Vec::new(),
            docs_url: String::new(),
            probe_cost: None,
            clients: vec![
                ClientInfo { id: "official".into(), display_name: "Acme SDKs".into() },
                ClientInfo { id: "ai-sdk".into(), display_name: "AI SDK".into() },
            ],
            default_client: Some("official".into()),
            token_exchange: false,
        }
    }

    fn good() -> Manifest {
        manifest(vec![
            var(
                "ACME_API_KEY",
                EnvVarRole::Secret,
                vec![alias("ACME_KEY", only("ai-sdk"), ValueForm::Verbatim)],
            ),
            var(
                "ACME_BASE_URL",
                EnvVarRole::BaseUrl,
                vec![
                    alias("ACME_API_BASE", ClientSelector::All, ValueForm::Verbatim),
                    alias(
                        "ACME_BASE_URL",
                        only("ai-sdk"),
                        ValueForm::AppendSuffix { suffix: "/v1".into() },
                    ),
                ],
            ),
        ])
    }

    fn problems(manifest: &Manifest) -> String {
        validate(manifest).unwrap_err().join("\n")
    }

    #[test]
    fn a_complete_manifest_and_a_0_1_0_one_pass() {
        validate(&good()).unwrap();
        let mut bare = manifest(vec![var("ACME_API_KEY", EnvVarRole::Secret, vec![])]);
        bare.clients.clear();
        bare.default_client = None;
        validate(&bare).unwrap();
    }

    #[test]
    fn clients_need_valid_unique_ids_and_a_declared_default() {
        let mut manifest = good();
        manifest.clients.push(ClientInfo { id: "all".into(), display_name: "x".into() });
        manifest.clients.push(ClientInfo { id: "ai-sdk".into(), display_name: " ".into() });
        manifest.default_client = Some("langchain".into());
        let text = problems(&manifest);
        for expected in [
            "client id \"all\" must match",
            "client ai-sdk is declared twice",
            "client ai-sdk has an empty display name",
            "default client \"langchain\" is not among the declared clients (official, ai-sdk, all, ai-sdk)",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in {text}");
        }
        let mut no_default = good();
        no_default.default_client = None;
        assert!(problems(&no_default).contains("no default client"));
        let mut dangling = good();
        dangling.clients.clear();
        assert!(problems(&dangling).contains("(none)"), "{}", problems(&dangling));
    }

    #[test]
    fn aliases_name_declared_clients_and_never_collide() {
        let mut manifest = good();
        let aliases = &mut manifest.env_vars[1].aliases;
        aliases.push(alias("ACME_API_BASE", only("ai-sdk"), ValueForm::Verbatim));
        aliases.push(alias("ACME_HOST", only("langchain"), ValueForm::Verbatim));
        aliases.push(alias("ACME_API_KEY", ClientSelector::All, ValueForm::Verbatim));
        aliases.push(alias("ACME_BASE_URL", ClientSelector::All, ValueForm::Verbatim));
        aliases.push(alias("acme_lower", ClientSelector::All, ValueForm::Verbatim));
        aliases.push(alias(ACCESS_TOKEN_VAR, ClientSelector::All, ValueForm::Verbatim));
        aliases.push(alias("LD_PRELOAD", ClientSelector::All, ValueForm::Verbatim));
        let text = problems(&manifest);
        for expected in [
            "alias ACME_API_BASE of ACME_BASE_URL: ACME_API_BASE is already an alias of ACME_BASE_URL for the same client",
            "alias ACME_HOST of ACME_BASE_URL: client \"langchain\" is not declared (declared: official, ai-sdk)",
            "alias ACME_API_KEY of ACME_BASE_URL: ACME_API_KEY is another declared variable",
            "alias ACME_BASE_URL of ACME_BASE_URL: an alias repeating its variable's name must name one client",
            "alias acme_lower of ACME_BASE_URL: the name must match",
            "alias PLATOS_ACCESS_TOKEN of ACME_BASE_URL: the name must match",
            "alias LD_PRELOAD of ACME_BASE_URL: LD_PRELOAD belongs to the process environment",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in {text}");
        }
        // One name for two different clients is fine.
        let mut split = good();
        split.env_vars[0].aliases.push(alias("ACME_TOKEN", only("official"), ValueForm::Verbatim));
        split.env_vars[1].aliases.push(alias("ACME_TOKEN", only("ai-sdk"), ValueForm::Verbatim));
        validate(&split).unwrap();
    }

    #[test]
    fn forms_carry_what_they_need() {
        let mut manifest = good();
        let aliases = &mut manifest.env_vars[1].aliases;
        aliases.push(alias(
            "A_SUFFIX",
            only("official"),
            ValueForm::StripSuffix { suffix: "".into() },
        ));
        aliases.push(alias(
            "A_LABEL",
            only("official"),
            ValueForm::HostLabelOfUrl { domain: "Azure".into() },
        ));
        aliases.push(alias("A_NOTE", only("official"), ValueForm::NoteOnly));
        let mut multiline = alias("A_LINES", only("official"), ValueForm::Verbatim);
        multiline.note = Some("one\ntwo".into());
        aliases.push(multiline);
        let text = problems(&manifest);
        for expected in [
            "alias A_SUFFIX of ACME_BASE_URL: the suffix is empty",
            "alias A_LABEL of ACME_BASE_URL: domain \"Azure\" must be a lower-case DNS name",
            "alias A_NOTE of ACME_BASE_URL: a note-only alias needs a note",
            "alias A_LINES of ACME_BASE_URL: the note must be one line",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in {text}");
        }
    }

    #[test]
    fn the_access_token_name_is_reserved_with_a_token_exchange() {
        let mut manifest = good();
        manifest.env_vars.push(var(ACCESS_TOKEN_VAR, EnvVarRole::Other, vec![]));
        validate(&manifest).expect("without an exchange the name is an ordinary variable");
        manifest.token_exchange = true;
        assert!(problems(&manifest).contains("PLATOS_ACCESS_TOKEN is reserved"));
    }
}
