//! The env bag in a client library's form: the manifest's plain names plus
//! every alias the chosen client reads, each value derived by its alias's
//! form (contract 0.2.0), and a warning for every value the client cannot be
//! given, so that a private base URL is never dropped silently.
//!
//! Pure: the resolver calls [`choose_client`] and [`client_form`] on a bag it
//! has read; nothing here touches the store or a plugin.

use secrecy::SecretString;
use serde::Serialize;

use crate::provider::{ClientInfo, Credentials, EnvAlias, EnvVar, EnvVarRole, Manifest, ValueForm};

/// A resolve named a client the provider's manifest does not list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{provider} has no client {requested:?}; its clients: {}", if known.is_empty() { "none (leave client out)".to_owned() } else { known.join(", ") })]
pub struct UnknownClient {
    /// The provider's slug.
    pub provider: String,
    /// The client id asked for (cut to 64 characters).
    pub requested: String,
    /// The ids the manifest lists.
    pub known: Vec<String>,
}

/// The client whose form a resolve gets: `requested` when the manifest lists
/// it, else (when none is requested) the manifest's default client. `None`
/// for a manifest without clients (a 0.1.0 plugin): plain names and the
/// aliases for every client.
pub fn choose_client<'m>(
    manifest: &'m Manifest,
    requested: Option<&str>,
) -> Result<Option<&'m ClientInfo>, UnknownClient> {
    let wanted = match requested {
        Some(id) => Some(id),
        None => manifest.default_client.as_deref(),
    };
    let Some(wanted) = wanted else { return Ok(None) };
    manifest.clients.iter().find(|client| client.id == wanted).map(Some).ok_or_else(|| {
        UnknownClient {
            provider: manifest.slug.clone(),
            requested: wanted.chars().take(64).collect(),
            known: manifest.clients.iter().map(|client| client.id.clone()).collect(),
        }
    })
}

/// What kind of value a client could not be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnvWarningCode {
    /// A base URL other than the provider's default that the client cannot
    /// read from its environment: it would send the request, and the key, to
    /// its own default endpoint.
    BaseUrlIgnored,
    /// Another value the client reads under a name whose form cannot be
    /// derived from the stored value.
    ValueNotDerivable,
}

/// A value the bag cannot carry in the client's form. Never holds a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EnvWarning {
    /// Which kind.
    pub code: EnvWarningCode,
    /// The manifest variable whose value it is.
    pub variable: String,
    /// The name the client reads it under.
    pub alias: String,
    /// The client's id.
    pub client: String,
    /// What happens and what to do, for people.
    pub message: String,
}

/// The bag in one client's form.
#[derive(Debug, Clone, Default)]
pub struct ClientBag {
    /// The names and values the client reads.
    pub env: Credentials,
    /// What could not be given to it.
    pub warnings: Vec<EnvWarning>,
}

/// `bag` (values under the manifest's plain names) in the form of `client`:
/// every plain name, except where an alias repeating that name for this
/// client replaces its value (a note-only alias never does), plus every
/// alias that applies to the client
/// (all-client aliases only, when `client` is `None`). An alias whose value
/// cannot be derived is left out and reported; a base URL is reported only
/// when it differs from the manifest's default, since a client falling back
/// to its own default then sends the request where the user meant it to go.
pub fn client_form(
    manifest: &Manifest,
    client: Option<&ClientInfo>,
    bag: &Credentials,
) -> ClientBag {
    let mut out = ClientBag::default();
    let applies = |alias: &EnvAlias| match client {
        Some(client) => alias.client.includes(&client.id),
        None => alias.client == crate::provider::ClientSelector::All,
    };
    for var in &manifest.env_vars {
        let Some(value) = bag.get(&var.name) else { continue };
        let aliases: Vec<&EnvAlias> = var.aliases.iter().filter(|alias| applies(alias)).collect();
        if !aliases.iter().any(|alias| replaces(alias, var)) {
            out.env.insert(var.name.clone(), SecretString::from(value.to_owned()));
        }
        for alias in aliases {
            match alias.form.derive(value) {
                Some(derived) => out.env.insert(alias.name.clone(), SecretString::from(derived)),
                None => {
                    if let Some(warning) = not_derivable(var, alias, client, value) {
                        out.warnings.push(warning);
                    }
                }
            }
        }
    }
    out
}

/// The warning for `alias` of `var` when its value cannot be derived from
/// `value`; `None` for a base URL left at its default.
fn not_derivable(
    var: &EnvVar,
    alias: &EnvAlias,
    client: Option<&ClientInfo>,
    value: &str,
) -> Option<EnvWarning> {
    let is_base_url = var.role == EnvVarRole::BaseUrl;
    if is_base_url && var.default_value.as_deref().is_some_and(|default| same_url(default, value)) {
        return None;
    }
    let client_name = client.map_or("every client", |client| client.display_name.as_str());
    let client_id = client.map_or(crate::provider::ALL_CLIENTS, |client| client.id.as_str());
    let note = alias.note.as_deref().map(|note| format!(": {note}")).unwrap_or_default();
    let (code, message) = if is_base_url {
        (
            EnvWarningCode::BaseUrlIgnored,
            format!(
                "{client_name} cannot read the base URL in {} from its environment{note}; started with this env alone it sends requests, and the key, to its default endpoint instead",
                var.name
            ),
        )
    } else {
        (
            EnvWarningCode::ValueNotDerivable,
            format!(
                "{client_name} reads {} as {}, which cannot be derived from its value{note}",
                var.name, alias.name
            ),
        )
    };
    Some(EnvWarning {
        code,
        variable: var.name.clone(),
        alias: alias.name.clone(),
        client: client_id.to_owned(),
        message,
    })
}

/// One name a client's bag carries, and where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BagName {
    /// The name the client reads.
    pub name: String,
    /// The manifest variable its value is derived from.
    pub variable: String,
    /// How (`verbatim` for the plain name; `note-only` is never set).
    #[serde(flatten)]
    pub form: ValueForm,
    /// What to do when the value cannot be derived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The names one client's bag carries, for the providers page, the
/// providers API and `.env.example`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ClientNames {
    /// The client's id, for `"client"` in a resolve.
    pub id: String,
    /// Its name for people.
    pub display_name: String,
    /// Whether a resolve naming no client gets this form.
    pub default: bool,
    /// The names, in manifest order.
    pub names: Vec<BagName>,
}

/// The names each of `manifest`'s clients reads, the same rule as
/// [`client_form`] applied to the manifest alone. Empty for a manifest
/// without clients (its bag has the plain names and all-client aliases).
pub fn client_names(manifest: &Manifest) -> Vec<ClientNames> {
    manifest
        .clients
        .iter()
        .map(|client| {
            let mut names = Vec::new();
            for var in &manifest.env_vars {
                let aliases: Vec<&EnvAlias> =
                    var.aliases.iter().filter(|alias| alias.client.includes(&client.id)).collect();
                if !aliases.iter().any(|alias| replaces(alias, var)) {
                    names.push(BagName {
                        name: var.name.clone(),
                        variable: var.name.clone(),
                        form: ValueForm::Verbatim,
                        note: None,
                    });
                }
                names.extend(aliases.into_iter().map(|alias| BagName {
                    name: alias.name.clone(),
                    variable: var.name.clone(),
                    form: alias.form.clone(),
                    note: alias.note.clone(),
                }));
            }
            ClientNames {
                id: client.id.clone(),
                display_name: client.display_name.clone(),
                default: manifest.default_client.as_deref() == Some(client.id.as_str()),
                names,
            }
        })
        .collect()
}

/// Whether `alias` gives its client `var`'s own name in another form. A
/// note-only alias does not: the client cannot read the value from its
/// environment, so the bag keeps it under the plain name for the agent to
/// pass in code, as the warning says.
fn replaces(alias: &EnvAlias, var: &EnvVar) -> bool {
    alias.name == var.name && alias.form != ValueForm::NoteOnly
}

/// Whether two URLs are the same but for trailing slashes and letter case.
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/').eq_ignore_ascii_case(b.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{AuthShape, ClientSelector};

    fn alias(name: &str, client: ClientSelector, form: ValueForm, note: Option<&str>) -> EnvAlias {
        EnvAlias { name: name.into(), client, form, note: note.map(str::to_owned) }
    }

    fn only(id: &str) -> ClientSelector {
        ClientSelector::Only(id.into())
    }

    fn var(name: &str, role: EnvVarRole, default: Option<&str>, aliases: Vec<EnvAlias>) -> EnvVar {
        EnvVar {
            name: name.into(),
            role,
            required: false,
            description: String::new(),
            default_value: default.map(str::to_owned),
            aliases,
        }
    }

    fn client(id: &str) -> ClientInfo {
        ClientInfo { id: id.into(), display_name: format!("{id} SDK") }
    }

    /// A manifest shaped like Anthropic's and Azure's together.
    fn manifest() -> Manifest {
        Manifest {
            slug: "acme".into(),
            display_name: "Acme".into(),
            plugin_version: "0.2.0".into(),
            env_vars: vec![
                var(
                    "ACME_API_KEY",
                    EnvVarRole::Secret,
                    None,
                    vec![alias("ACME_KEY", only("ai-sdk"), ValueForm::Verbatim, None)],
                ),
                var(
                    "ACME_BASE_URL",
                    EnvVarRole::BaseUrl,
                    Some("https://api.acme.test"),
                    vec![
                        alias(
                            "ACME_BASE_URL",
                            only("ai-sdk"),
                            ValueForm::AppendSuffix { suffix: "/v1".into() },
                            None,
                        ),
                        alias("ACME_API_URL", ClientSelector::All, ValueForm::Verbatim, None),
                        alias(
                            "ACME_RESOURCE",
                            only("ai-sdk"),
                            ValueForm::HostLabelOfUrl { domain: "acme.test".into() },
                            Some("pass baseURL to createAcme"),
                        ),
                        alias(
                            "ACME_BASE_URL",
                            only("voyager"),
                            ValueForm::NoteOnly,
                            Some("pass base_url= to Client()"),
                        ),
                    ],
                ),
                var(
                    "ACME_VERSION",
                    EnvVarRole::Other,
                    Some("2024-01-01"),
                    vec![alias("ACME_API_VERSION", only("official"), ValueForm::Verbatim, None)],
                ),
            ],
            auth: AuthShape::Bearer { env_var: "ACME_API_KEY".into() },
            model_classes: vec![],
            default_models: vec![],
            allowed_hosts: vec![],
            docs_url: String::new(),
            probe_cost: None,
            clients: vec![client("official"), client("ai-sdk"), client("voyager")],
            default_client: Some("official".into()),
            token_exchange: false,
        }
    }

    fn names(bag: &ClientBag) -> Vec<(String, String)> {
        let mut names: Vec<_> =
            bag.env.expose().map(|(name, value)| (name.to_owned(), value.to_owned())).collect();
        names.sort();
        names
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
    }

    fn bag(base_url: &str) -> Credentials {
        Credentials::new()
            .with("ACME_API_KEY", "canary-key")
            .with("ACME_BASE_URL", base_url)
            .with("ACME_VERSION", "2024-01-01")
    }

    #[test]
    fn no_client_named_gets_the_default_client_and_an_unknown_one_is_refused() {
        let manifest = manifest();
        assert_eq!(choose_client(&manifest, None).unwrap().unwrap().id, "official");
        assert_eq!(choose_client(&manifest, Some("ai-sdk")).unwrap().unwrap().id, "ai-sdk");
        let error = choose_client(&manifest, Some("all")).unwrap_err();
        assert_eq!(error.known, ["official", "ai-sdk", "voyager"]);
        assert_eq!(
            error.to_string(),
            "acme has no client \"all\"; its clients: official, ai-sdk, voyager"
        );
        let mut old = manifest.clone();
        old.clients.clear();
        old.default_client = None;
        assert_eq!(choose_client(&old, None).unwrap(), None);
        assert!(
            choose_client(&old, Some("official"))
                .unwrap_err()
                .to_string()
                .ends_with("its clients: none (leave client out)")
        );
    }

    #[test]
    fn each_client_gets_its_own_names_and_forms() {
        let manifest = manifest();
        let official =
            client_form(&manifest, Some(&client("official")), &bag("https://eu.acme.test/"));
        assert_eq!(
            names(&official),
            pairs(&[
                ("ACME_API_KEY", "canary-key"),
                ("ACME_API_URL", "https://eu.acme.test/"),
                ("ACME_API_VERSION", "2024-01-01"),
                ("ACME_BASE_URL", "https://eu.acme.test/"),
                ("ACME_VERSION", "2024-01-01"),
            ])
        );
        assert!(official.warnings.is_empty());

        let ai_sdk = client_form(&manifest, Some(&client("ai-sdk")), &bag("https://eu.acme.test/"));
        assert_eq!(
            names(&ai_sdk),
            pairs(&[
                ("ACME_API_KEY", "canary-key"),
                ("ACME_API_URL", "https://eu.acme.test/"),
                ("ACME_BASE_URL", "https://eu.acme.test/v1"),
                ("ACME_KEY", "canary-key"),
                ("ACME_RESOURCE", "eu"),
                ("ACME_VERSION", "2024-01-01"),
            ])
        );
        assert!(ai_sdk.warnings.is_empty());
    }

    #[test]
    fn a_base_url_a_client_cannot_read_is_warned_about_unless_it_is_the_default() {
        let manifest = manifest();
        let voyager = client_form(&manifest, Some(&client("voyager")), &bag("http://10.0.0.7/v1"));
        // The bag keeps the value for the agent to pass in code, and warns.
        assert_eq!(voyager.env.get("ACME_BASE_URL"), Some("http://10.0.0.7/v1"));
        assert_eq!(voyager.warnings.len(), 1);
        let warning = &voyager.warnings[0];
        assert_eq!(warning.code, EnvWarningCode::BaseUrlIgnored);
        assert_eq!(
            (warning.variable.as_str(), warning.client.as_str()),
            ("ACME_BASE_URL", "voyager")
        );
        assert!(warning.message.contains("voyager SDK cannot read the base URL in ACME_BASE_URL"));
        assert!(warning.message.contains("pass base_url= to Client()"));
        assert!(!warning.message.contains("10.0.0.7"), "a warning never repeats a value");

        let public =
            client_form(&manifest, Some(&client("voyager")), &bag("https://API.acme.test/"));
        assert!(public.warnings.is_empty(), "{:?}", public.warnings);

        // A host the AI SDK cannot name by resource: a warning, no resource name.
        let ai_sdk =
            client_form(&manifest, Some(&client("ai-sdk")), &bag("https://gw.example.test"));
        assert!(ai_sdk.env.get("ACME_RESOURCE").is_none());
        assert_eq!(ai_sdk.warnings.len(), 1);
        assert_eq!(ai_sdk.warnings[0].alias, "ACME_RESOURCE");
        assert!(ai_sdk.warnings[0].message.contains("pass baseURL to createAcme"));
    }

    #[test]
    fn without_clients_only_plain_names_and_all_client_aliases() {
        let manifest = manifest();
        let plain = client_form(&manifest, None, &bag("https://eu.acme.test"));
        assert_eq!(
            names(&plain),
            pairs(&[
                ("ACME_API_KEY", "canary-key"),
                ("ACME_API_URL", "https://eu.acme.test"),
                ("ACME_BASE_URL", "https://eu.acme.test"),
                ("ACME_VERSION", "2024-01-01"),
            ])
        );
        // Unset values stay unset under every name.
        let partial = client_form(
            &manifest,
            Some(&client("ai-sdk")),
            &Credentials::new().with("ACME_API_KEY", "k"),
        );
        assert_eq!(names(&partial), pairs(&[("ACME_API_KEY", "k"), ("ACME_KEY", "k")]));
    }

    #[test]
    fn a_value_other_than_a_base_url_that_cannot_be_derived_is_reported() {
        let mut manifest = manifest();
        manifest.env_vars[2].aliases.push(alias(
            "ACME_REGION",
            only("official"),
            ValueForm::NoteOnly,
            Some("set region= in code"),
        ));
        let official =
            client_form(&manifest, Some(&client("official")), &bag("https://api.acme.test"));
        assert_eq!(official.warnings.len(), 1);
        assert_eq!(official.warnings[0].code, EnvWarningCode::ValueNotDerivable);
        assert_eq!(
            official.warnings[0].message,
            "official SDK reads ACME_VERSION as ACME_REGION, which cannot be derived from its value: set region= in code"
        );
    }

    #[test]
    fn the_names_each_client_reads_agree_with_the_bag_it_gets() {
        let manifest = manifest();
        let listed = client_names(&manifest);
        assert_eq!(
            listed.iter().map(|c| (c.id.as_str(), c.default)).collect::<Vec<_>>(),
            [("official", true), ("ai-sdk", false), ("voyager", false)]
        );
        for (entry, info) in listed.iter().zip(&manifest.clients) {
            let bag = client_form(&manifest, Some(info), &bag("https://eu.acme.test"));
            let mut carried: Vec<&str> = entry
                .names
                .iter()
                .filter(|name| name.form != ValueForm::NoteOnly)
                .map(|name| name.name.as_str())
                .collect();
            carried.sort_unstable();
            carried.dedup();
            let mut got: Vec<&str> = bag.env.expose().map(|(name, _)| name).collect();
            got.sort_unstable();
            assert_eq!(carried, got, "{}", entry.id);
        }
        let voyager = &listed[2].names;
        let base = voyager
            .iter()
            .find(|name| name.name == "ACME_BASE_URL" && name.form == ValueForm::NoteOnly)
            .unwrap();
        assert!(
            voyager
                .iter()
                .any(|name| name.name == "ACME_BASE_URL" && name.form == ValueForm::Verbatim),
            "the plain name stays for the agent"
        );
        assert_eq!(
            (&base.form, base.note.as_deref()),
            (&ValueForm::NoteOnly, Some("pass base_url= to Client()"))
        );
    }
}
