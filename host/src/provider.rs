//! The provider contract in domain terms: manifests, requests, responses,
//! verdicts and credentials, independent of any WIT version. The WIT bindings
//! convert to and from these types in one place (`runtime::wit`).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

/// What an environment variable holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}

/// How a provider's requests are authorized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}

/// A provider's manifest, as its plugin declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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

    /// Replaces in `text` every value (of at least four characters) of the
    /// variables `is_secret` selects with `[redacted]`, so plugin output can
    /// be logged and returned.
    pub fn redact(&self, text: &str, is_secret: impl Fn(&str) -> bool) -> String {
        let mut out = text.to_owned();
        for (name, value) in self.expose() {
            if is_secret(name) && value.len() >= 4 && out.contains(value) {
                out = out.replace(value, "[redacted]");
            }
        }
        out
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries.iter().map(|(name, _)| (name, "[redacted]"))).finish()
    }
}

/// The number of bytes of strings and lists a value carries, to bound what a
/// plugin may return.
pub trait PayloadSize {
    /// The bytes of every string and list in the value, recursively.
    fn payload_size(&self) -> usize;
}

fn pairs_size(pairs: &[(String, String)]) -> usize {
    pairs.iter().map(|(name, value)| name.len() + value.len()).sum()
}

impl PayloadSize for HttpRequest {
    fn payload_size(&self) -> usize {
        self.url.len() + pairs_size(&self.headers) + self.body.as_ref().map_or(0, Vec::len)
    }
}

impl PayloadSize for Verdict {
    fn payload_size(&self) -> usize {
        let models = match self {
            Verdict::Healthy { models, .. } => models.iter().map(String::len).sum(),
            _ => 0,
        };
        self.message().len() + models
    }
}

impl PayloadSize for Manifest {
    fn payload_size(&self) -> usize {
        let vars: usize = self
            .env_vars
            .iter()
            .map(|var| {
                var.name.len()
                    + var.description.len()
                    + var.default_value.as_ref().map_or(0, String::len)
            })
            .sum();
        let models: usize =
            self.default_models.iter().map(|model| model.id.len() + model.display_name.len()).sum();
        let hosts: usize = self.allowed_hosts.iter().map(String::len).sum();
        self.slug.len()
            + self.display_name.len()
            + self.plugin_version.len()
            + self.docs_url.len()
            + self.probe_cost.as_ref().map_or(0, String::len)
            + vars
            + models
            + hosts
            + self.model_classes.len()
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

impl PayloadSize for ProviderError {
    fn payload_size(&self) -> usize {
        self.message.len()
    }
}

impl<T: PayloadSize> PayloadSize for Result<T, ProviderError> {
    fn payload_size(&self) -> usize {
        match self {
            Ok(value) => value.payload_size(),
            Err(error) => error.payload_size(),
        }
    }
}
