//! The provider contract in domain terms: manifests, requests, responses,
//! verdicts and credentials, independent of any WIT version. The WIT bindings
//! convert to and from these types in one place (`runtime::wit`).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::policy::bounds::{ELEMENT_OVERHEAD, string_size, strings_size};
use crate::policy::redaction::Redactor;

/// What an environment variable holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EnvVarRole {
    /// A credential. Its value is never logged or shown.
    Secret,
    /// The provider's base URL; its host is allowed in addition to the manifest's.
    BaseUrl,
    /// Any other setting.
    Other,
}

/// One environment variable a provider reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EnvVar {
    /// `^[A-Z][A-Z0-9_]*$`.
    pub name: String,
    /// What it holds.
    pub role: EnvVarRole,
    /// Whether a key is unusable without it.
    pub required: bool,
    /// One line for people.
    pub description: String,
    /// The value used when unset (`default` in the manifest file).
    #[serde(rename = "default", skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
    /// The other names client libraries read this value under (contract
    /// 0.2.0; empty for 0.1.0 plugins).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<EnvAlias>,
}

/// The credential name under which a token-exchange provider's `authorize`
/// gets the current access token. No manifest may declare it.
pub const ACCESS_TOKEN_VAR: &str = "PLATOS_ACCESS_TOKEN";

/// The client selector that stands for every client; no client id may be it.
pub const ALL_CLIENTS: &str = "all";

/// Which clients an alias is for; serialized as `"all"` or the client's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSelector {
    /// Every client, and a request naming none.
    All,
    /// Only the client with this id.
    Only(String),
}

impl ClientSelector {
    /// Whether the alias applies to the client `id`.
    pub fn includes(&self, id: &str) -> bool {
        match self {
            ClientSelector::All => true,
            ClientSelector::Only(only) => only == id,
        }
    }
}

impl Serialize for ClientSelector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ClientSelector::All => serializer.serialize_str(ALL_CLIENTS),
            ClientSelector::Only(id) => serializer.serialize_str(id),
        }
    }
}

/// How an alias's value is derived from its variable's stored value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "form", rename_all = "kebab-case")]
pub enum ValueForm {
    /// Unchanged.
    Verbatim,
    /// With `suffix` appended unless it already ends with it.
    AppendSuffix {
        /// E.g. `/v1`.
        suffix: String,
    },
    /// Without `suffix` if it ends with it.
    StripSuffix {
        /// E.g. `/v1`.
        suffix: String,
    },
    /// The first DNS label of the URL's host, when the host is that label
    /// followed by `.` and `domain`; else not derivable.
    HostLabelOfUrl {
        /// E.g. `openai.azure.com`.
        domain: String,
    },
    /// Never derivable: the alias's note says what to do.
    NoteOnly,
}

impl ValueForm {
    /// The alias's value for the stored `value`, as the WIT defines each
    /// form; `None` when it cannot be derived (the alias's note says why).
    pub fn derive(&self, value: &str) -> Option<String> {
        match self {
            ValueForm::Verbatim => Some(value.to_owned()),
            ValueForm::AppendSuffix { suffix } => {
                let base = value.trim_end_matches('/');
                Some(if base.ends_with(suffix.as_str()) {
                    base.to_owned()
                } else {
                    format!("{base}{suffix}")
                })
            }
            ValueForm::StripSuffix { suffix } => {
                let base = value.trim_end_matches('/');
                Some(base.strip_suffix(suffix.as_str()).unwrap_or(base).to_owned())
            }
            ValueForm::HostLabelOfUrl { domain } => {
                let url = url::Url::parse(value).ok()?;
                let host = url.host_str()?.to_ascii_lowercase();
                let label = host.strip_suffix(domain.as_str())?.strip_suffix('.')?;
                (!label.is_empty() && !label.contains('.')).then(|| label.to_owned())
            }
            ValueForm::NoteOnly => None,
        }
    }
}

/// Another name a client library reads a variable's value under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EnvAlias {
    /// The alias name; may repeat its variable's name for one client.
    pub name: String,
    /// The clients that read it: `all`, or one client's id.
    #[schema(value_type = String)]
    pub client: ClientSelector,
    /// How its value is derived.
    #[serde(flatten)]
    pub form: ValueForm,
    /// Said when the value cannot be derived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A client library a manifest's aliases name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ClientInfo {
    /// `^[a-z0-9][a-z0-9-]*$`, not `all`.
    pub id: String,
    /// A name for people.
    pub display_name: String,
}

/// How a provider's requests are authorized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AuthShape {
    /// `Authorization: Bearer <env_var>`.
    Bearer {
        /// The variable holding the secret.
        env_var: String,
    },
    /// `<header>: <env_var>`.
    Header {
        /// The header name.
        header: String,
        /// The variable holding the secret.
        env_var: String,
    },
    /// `?<param>=<env_var>`.
    Query {
        /// The query parameter name.
        param: String,
        /// The variable holding the secret.
        env_var: String,
    },
    /// The plugin signs requests itself.
    Custom {
        /// How, in words.
        description: String,
    },
}

/// The kind of work a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ModelClass {
    Chat,
    Completion,
    Embedding,
    Rerank,
    Image,
    Audio,
    Moderation,
}

/// A model a provider offers by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// The provider's id.
    pub id: String,
    /// What it does.
    pub class: ModelClass,
    /// A name for people.
    pub display_name: String,
    /// Tokens, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// The list price, where known (contract 0.2.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<TokenPrice>,
}

/// An amount of US dollars in millionths (micro-USD), exact for adding up
/// spend. Serialized as dollars (`1250000` as `1.25`), as manifests write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MicroUsd(pub u64);

impl Serialize for MicroUsd {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0 as f64 / 1_000_000.0)
    }
}

/// What a model costs per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenPrice {
    /// Per million input tokens not served from a prompt cache, in US dollars.
    #[schema(value_type = f64)]
    pub input: MicroUsd,
    /// Per million output tokens, in US dollars.
    #[schema(value_type = f64)]
    pub output: MicroUsd,
    /// Per million cached input tokens; `input` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub cached_input: Option<MicroUsd>,
}

impl TokenPrice {
    /// What `usage` costs at this price, in micro-USD (rounded up, saturating).
    pub fn cost(&self, usage: &Usage) -> MicroUsd {
        let cached = self.cached_input.unwrap_or(self.input);
        let millionths = u128::from(usage.input_tokens) * u128::from(self.input.0)
            + u128::from(usage.output_tokens) * u128::from(self.output.0)
            + u128::from(usage.cached_input_tokens) * u128::from(cached.0);
        MicroUsd(u64::try_from(millionths.div_ceil(1_000_000)).unwrap_or(u64::MAX))
    }
}

/// The tokens one response consumed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Usage {
    /// Prompt tokens not served from a cache (cache writes included).
    pub input_tokens: u64,
    /// Completion tokens, reasoning included.
    pub output_tokens: u64,
    /// Prompt tokens served from a cache.
    pub cached_input_tokens: u64,
    /// The model that served it, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A short-lived access token a token exchange gave. The value is secret:
/// redacted in `Debug`, zeroed on drop, never serialized.
#[derive(Clone)]
pub struct AccessToken {
    /// The token.
    pub value: SecretString,
    /// Its expiry, Unix seconds.
    pub expires_at: u64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A provider's manifest, as its plugin declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Manifest {
    /// `^[a-z0-9][a-z0-9-]*$`.
    pub slug: String,
    /// A name for people.
    pub display_name: String,
    /// The plugin's version.
    pub plugin_version: String,
    /// The variables of one key.
    pub env_vars: Vec<EnvVar>,
    /// How requests are authorized.
    pub auth: AuthShape,
    /// The classes of its models.
    pub model_classes: Vec<ModelClass>,
    /// The models offered by default.
    pub default_models: Vec<ModelInfo>,
    /// Host patterns requests may go to.
    pub allowed_hosts: Vec<String>,
    /// Where people learn about keys.
    pub docs_url: String,
    /// Whether a probe is billed, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_cost: Option<String>,
    /// The client libraries the aliases name (contract 0.2.0).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientInfo>,
    /// The client whose form a resolve naming none gets (contract 0.2.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_client: Option<String>,
    /// Whether the secret is traded for short-lived access tokens (contract 0.2.0).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub token_exchange: bool,
}

impl Manifest {
    /// The variable holding the base URL, if the provider has one.
    pub fn base_url_var(&self) -> Option<&EnvVar> {
        self.env_vars.iter().find(|var| var.role == EnvVarRole::BaseUrl)
    }

    /// The base URL for a key: its configured value, else the manifest default.
    pub fn base_url<'a>(&'a self, credentials: &'a Credentials) -> Option<&'a str> {
        let var = self.base_url_var()?;
        credentials.get(&var.name).or(var.default_value.as_deref())
    }
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl From<Method> for reqwest::Method {
    fn from(method: Method) -> Self {
        match method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        }
    }
}

/// An HTTP request a plugin describes and the host may send.
///
/// Its `Debug` shows header names only: after `authorize` the values carry
/// secrets.
#[derive(Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// The absolute URL.
    pub url: String,
    /// Header names and values, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body.
    #[serde(default)]
    pub body: Option<Vec<u8>>,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &"[redacted]")
            .field("header_names", &names)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

impl HttpRequest {
    /// A `GET` of `url` with no headers and no body.
    pub fn get(url: impl Into<String>) -> Self {
        HttpRequest { method: Method::Get, url: url.into(), headers: Vec::new(), body: None }
    }

    /// The values of the header `name` (case-insensitive).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// An HTTP response handed to a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HttpResponse {
    /// The status; 0 for a transport failure (the body says why).
    pub status: u16,
    /// Header names and values.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body, capped by the host.
    #[serde(default)]
    pub body: Vec<u8>,
}

/// What a probe says about a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The key works; the models the probe listed.
    Healthy {
        /// For people.
        message: String,
        /// Discovered model ids.
        models: Vec<String>,
    },
    /// The provider refused the key.
    InvalidCredential {
        /// For people.
        message: String,
    },
    /// Out of quota or rate limited.
    QuotaLimited {
        /// For people.
        message: String,
    },
    /// The provider could not be reached.
    Unreachable {
        /// For people.
        message: String,
    },
    /// The provider failed on its side.
    Degraded {
        /// For people.
        message: String,
    },
}

impl Verdict {
    /// The verdict's message.
    pub fn message(&self) -> &str {
        match self {
            Verdict::Healthy { message, .. }
            | Verdict::InvalidCredential { message }
            | Verdict::QuotaLimited { message }
            | Verdict::Unreachable { message }
            | Verdict::Degraded { message } => message,
        }
    }
}

/// The env bag of one key: variable names and secret values.
///
/// Values are [`SecretString`]s: zeroed on drop, redacted in `Debug`, never
/// serialized.
#[derive(Clone, Default)]
pub struct Credentials {
    entries: Vec<(String, SecretString)>,
}

impl Credentials {
    /// An empty bag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces `name`.
    pub fn insert(&mut self, name: impl Into<String>, value: SecretString) {
        let name = name.into();
        self.entries.retain(|(existing, _)| *existing != name);
        self.entries.push((name, value));
    }

    /// Builder form of [`Credentials::insert`] for plain strings.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, SecretString::from(value.into()));
        self
    }

    /// The value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.expose_secret())
            .filter(|value| !value.is_empty())
    }

    /// Names and exposed values, for handing to a plugin.
    pub fn expose(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(name, value)| (name.as_str(), value.expose_secret()))
    }

    /// The entries whose names `keep` takes.
    pub fn only(&self, keep: impl Fn(&str) -> bool) -> Credentials {
        Credentials {
            entries: self.entries.iter().filter(|(name, _)| keep(name)).cloned().collect(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries.iter().map(|(name, _)| (name, "[redacted]"))).finish()
    }
}

/// What the host does with every value a plugin returns, in the runtime,
/// before anyone else sees it: measure it and redact it.
pub trait PluginOutput {
    /// The bytes of every string and list in the value, recursively, each
    /// string and list element counting [`ELEMENT_OVERHEAD`] more.
    fn payload_size(&self) -> usize;

    /// The model ids the value carries (discovered or default models).
    fn model_ids(&self) -> usize {
        0
    }

    /// Redacts the call's secrets from the text in the value meant for
    /// people and storage. An authorized request keeps its secrets: the auth
    /// shape check decides where they may be.
    fn redact(&mut self, redactor: &Redactor);
}

impl PluginOutput for HttpRequest {
    fn payload_size(&self) -> usize {
        let headers: usize =
            self.headers.iter().map(|(name, value)| string_size(name) + string_size(value)).sum();
        string_size(&self.url) + headers + self.body.as_ref().map_or(0, Vec::len)
    }

    fn redact(&mut self, _redactor: &Redactor) {}
}

impl PluginOutput for Verdict {
    fn payload_size(&self) -> usize {
        let models = match self {
            Verdict::Healthy { models, .. } => strings_size(models),
            _ => 0,
        };
        string_size(self.message()) + models
    }

    fn model_ids(&self) -> usize {
        match self {
            Verdict::Healthy { models, .. } => models.len(),
            _ => 0,
        }
    }

    fn redact(&mut self, redactor: &Redactor) {
        match self {
            Verdict::Healthy { message, models } => {
                redactor.redact_in_place(message);
                for model in models {
                    redactor.redact_in_place(model);
                }
            }
            Verdict::InvalidCredential { message }
            | Verdict::QuotaLimited { message }
            | Verdict::Unreachable { message }
            | Verdict::Degraded { message } => {
                redactor.redact_in_place(message);
            }
        }
    }
}

impl PluginOutput for Manifest {
    fn payload_size(&self) -> usize {
        let vars: usize = self
            .env_vars
            .iter()
            .map(|var| {
                string_size(&var.name)
                    + string_size(&var.description)
                    + var.default_value.as_deref().map_or(0, string_size)
                    + var
                        .aliases
                        .iter()
                        .map(|alias| alias.payload_size() + ELEMENT_OVERHEAD)
                        .sum::<usize>()
            })
            .sum();
        let clients: usize = self
            .clients
            .iter()
            .map(|client| string_size(&client.id) + string_size(&client.display_name))
            .sum::<usize>()
            + self.default_client.as_deref().map_or(0, string_size);
        let models: usize = self
            .default_models
            .iter()
            .map(|model| string_size(&model.id) + string_size(&model.display_name))
            .sum();
        let auth = match &self.auth {
            AuthShape::Bearer { env_var } => string_size(env_var),
            AuthShape::Header { header, env_var } | AuthShape::Query { param: header, env_var } => {
                string_size(header) + string_size(env_var)
            }
            AuthShape::Custom { description } => string_size(description),
        };
        string_size(&self.slug)
            + string_size(&self.display_name)
            + string_size(&self.plugin_version)
            + string_size(&self.docs_url)
            + self.probe_cost.as_deref().map_or(0, string_size)
            + vars
            + models
            + clients
            + strings_size(&self.allowed_hosts)
            + auth
            + self.model_classes.len() * ELEMENT_OVERHEAD
    }

    fn model_ids(&self) -> usize {
        self.default_models.len()
    }

    /// A manifest is read at load, with no credentials: nothing to redact.
    fn redact(&mut self, _redactor: &Redactor) {}
}

impl EnvAlias {
    /// The alias's size as plugin output.
    fn payload_size(&self) -> usize {
        let client = match &self.client {
            ClientSelector::All => 0,
            ClientSelector::Only(id) => string_size(id),
        };
        let form = match &self.form {
            ValueForm::AppendSuffix { suffix } | ValueForm::StripSuffix { suffix } => {
                string_size(suffix)
            }
            ValueForm::HostLabelOfUrl { domain } => string_size(domain),
            ValueForm::Verbatim | ValueForm::NoteOnly => 0,
        };
        string_size(&self.name) + client + form + self.note.as_deref().map_or(0, string_size)
    }
}

impl PluginOutput for Option<Usage> {
    fn payload_size(&self) -> usize {
        self.as_ref().and_then(|usage| usage.model.as_deref()).map_or(0, string_size)
    }

    fn redact(&mut self, redactor: &Redactor) {
        if let Some(model) = self.as_mut().and_then(|usage| usage.model.as_mut()) {
            redactor.redact_in_place(model);
        }
    }
}

impl PluginOutput for Result<AccessToken, Verdict> {
    fn payload_size(&self) -> usize {
        match self {
            Ok(token) => string_size(token.value.expose_secret()),
            Err(verdict) => verdict.payload_size(),
        }
    }

    fn model_ids(&self) -> usize {
        self.as_ref().err().map_or(0, PluginOutput::model_ids)
    }

    /// The token is the answer (a secret for `authorize`, never shown); a
    /// failure's verdict is redacted like any verdict.
    fn redact(&mut self, redactor: &Redactor) {
        if let Err(verdict) = self {
            verdict.redact(redactor);
        }
    }
}

/// Why a plugin refused a request, in its own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderErrorCode {
    /// A required variable is missing or empty.
    MissingCredential,
    /// A variable is malformed.
    InvalidCredential,
    /// The request cannot be authorized.
    InvalidRequest,
    /// The provider does not offer the function called (contract 0.2.0).
    Unsupported,
    /// Anything else.
    Internal,
}

/// An error a plugin returned. Its message has been redacted by the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message} ({code:?})")]
pub struct ProviderError {
    /// The class.
    pub code: ProviderErrorCode,
    /// For people.
    pub message: String,
}

impl PluginOutput for ProviderError {
    fn payload_size(&self) -> usize {
        string_size(&self.message)
    }

    fn redact(&mut self, redactor: &Redactor) {
        redactor.redact_in_place(&mut self.message);
    }
}

impl<T: PluginOutput> PluginOutput for Result<T, ProviderError> {
    fn payload_size(&self) -> usize {
        match self {
            Ok(value) => value.payload_size(),
            Err(error) => error.payload_size(),
        }
    }

    fn model_ids(&self) -> usize {
        self.as_ref().map_or(0, PluginOutput::model_ids)
    }

    fn redact(&mut self, redactor: &Redactor) {
        match self {
            Ok(value) => value.redact(redactor),
            Err(error) => error.redact(redactor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_model_ids_are_not_free() {
        let verdict = Verdict::Healthy { message: "m".into(), models: vec![String::new(); 1000] };
        assert_eq!(verdict.payload_size(), (1 + ELEMENT_OVERHEAD) + 1000 * ELEMENT_OVERHEAD);
        assert_eq!(verdict.model_ids(), 1000);
        let failed: Result<Verdict, ProviderError> =
            Err(ProviderError { code: ProviderErrorCode::Internal, message: "abc".into() });
        assert_eq!((failed.payload_size(), failed.model_ids()), (3 + ELEMENT_OVERHEAD, 0));
    }

    #[test]
    fn verdicts_and_errors_are_redacted_requests_are_not() {
        let redactor = Redactor::new([("KEY", "sk-Secret-1234")]);
        let mut verdict = Verdict::Healthy {
            message: "for sk-secret-1234".into(),
            models: vec!["gpt-5".into(), "ft:sk-Secret-1234".into()],
        };
        verdict.redact(&redactor);
        assert_eq!(
            verdict,
            Verdict::Healthy {
                message: "for [redacted]".into(),
                models: vec!["gpt-5".into(), "ft:[redacted]".into()]
            }
        );
        let mut degraded = Verdict::Degraded { message: "sk-Secret-1234".into() };
        degraded.redact(&redactor);
        assert_eq!(degraded.message(), "[redacted]");
        let mut failed: Result<HttpRequest, ProviderError> = Err(ProviderError {
            code: ProviderErrorCode::Internal,
            message: "sk-Secret-1234".into(),
        });
        failed.redact(&redactor);
        assert_eq!(failed.unwrap_err().message, "[redacted]");
        let mut request = HttpRequest::get("https://a.example/");
        request.headers.push(("authorization".into(), "Bearer sk-Secret-1234".into()));
        let before = request.clone();
        request.redact(&redactor);
        assert_eq!(request, before, "the auth shape check governs an authorized request");
    }

    #[test]
    fn a_price_costs_usage_exactly_and_rounds_up() {
        let price = TokenPrice {
            input: MicroUsd(1_250_000),
            output: MicroUsd(10_000_000),
            cached_input: Some(MicroUsd(125_000)),
        };
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 2_000,
            cached_input_tokens: 9,
            model: None,
        };
        // $1.25 + 2000 * $0.00001 + 9 * $0.000000125 = $1.270001125, rounded up.
        assert_eq!(price.cost(&usage), MicroUsd(1_270_002));
        // Without a cached price, cached input costs the input price.
        let flat = TokenPrice { cached_input: None, ..price };
        let cached_only = Usage { cached_input_tokens: 1_000_000, ..Usage::default() };
        assert_eq!(flat.cost(&cached_only), MicroUsd(1_250_000));
        assert_eq!(price.cost(&Usage::default()), MicroUsd(0));
        let huge = Usage { output_tokens: u64::MAX, ..Usage::default() };
        assert_eq!(price.cost(&huge), MicroUsd(u64::MAX), "saturates, never wraps");
    }

    #[test]
    fn prices_selectors_and_forms_serialize_as_manifest_files_write_them() {
        let price =
            TokenPrice { input: MicroUsd(150_000), output: MicroUsd(600_000), cached_input: None };
        assert_eq!(
            serde_json::to_value(price).unwrap(),
            serde_json::json!({"input": 0.15, "output": 0.6})
        );
        let alias = EnvAlias {
            name: "ANTHROPIC_BASE_URL".into(),
            client: ClientSelector::Only("ai-sdk".into()),
            form: ValueForm::AppendSuffix { suffix: "/v1".into() },
            note: None,
        };
        assert_eq!(
            serde_json::to_value(&alias).unwrap(),
            serde_json::json!({"name": "ANTHROPIC_BASE_URL", "client": "ai-sdk", "form": "append-suffix", "suffix": "/v1"})
        );
        assert!(alias.client.includes("ai-sdk") && !alias.client.includes("official"));
        assert!(ClientSelector::All.includes("anything"));
    }

    #[test]
    fn value_forms_derive_as_the_contract_says() {
        let append = ValueForm::AppendSuffix { suffix: "/v1".into() };
        for (stored, expected) in [
            ("https://api.anthropic.com", "https://api.anthropic.com/v1"),
            ("https://api.anthropic.com/", "https://api.anthropic.com/v1"),
            ("https://proxy.example/v1/", "https://proxy.example/v1"),
        ] {
            assert_eq!(append.derive(stored).as_deref(), Some(expected), "{stored}");
        }
        let strip = ValueForm::StripSuffix { suffix: "/v1".into() };
        assert_eq!(strip.derive("https://a.example/v1/").as_deref(), Some("https://a.example"));
        assert_eq!(strip.derive("https://a.example").as_deref(), Some("https://a.example"));
        let label = ValueForm::HostLabelOfUrl { domain: "openai.azure.com".into() };
        assert_eq!(label.derive("https://Acme-1.openai.azure.com/").as_deref(), Some("acme-1"));
        for underivable in [
            "https://gateway.example.com",
            "https://a.b.openai.azure.com",
            "https://openai.azure.com",
            "https://evilopenai.azure.com",
            "not a url",
        ] {
            assert_eq!(label.derive(underivable), None, "{underivable}");
        }
        assert_eq!(ValueForm::Verbatim.derive("x").as_deref(), Some("x"));
        assert_eq!(ValueForm::NoteOnly.derive("x"), None);
    }

    #[test]
    fn an_access_token_never_shows_its_value() {
        let token =
            AccessToken { value: SecretString::from("at-canary-81xYwV".to_owned()), expires_at: 7 };
        let shown = format!("{token:?}");
        assert!(!shown.contains("at-canary-81xYwV") && shown.contains("expires_at: 7"), "{shown}");
    }
}
