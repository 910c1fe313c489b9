//! The shared shape of providers reached with one API key as a bearer token
//! (Mistral, Groq, DeepSeek, xAI, OpenRouter, Together, Fireworks, Cohere):
//! a probe `GET` under a versioned base URL, verdicts that read the
//! provider's own error wording, and usage read from its answers.
//!
//! A plugin describes its provider in one [`ApiKeyProvider`] and exports it
//! with [`export_api_key_provider!`](crate::export_api_key_provider).

use serde_json::Value;

use crate::{
    Credentials, HttpRequest, HttpResponse, PluginError, ProviderManifest, StatusClass, Usage,
    Verdict, base_url, classify_status, join_url, listing_verdict, model_ids_from_json,
    redacted_snippet,
};

/// How one API-key provider is probed and how it words its answers.
pub struct ApiKeyProvider {
    /// The provider's name for verdict messages, e.g. `Mistral`.
    pub name: &'static str,
    /// The path the API lives under, appended to the configured base URL
    /// unless the URL already ends with it (users paste both forms), e.g.
    /// `/v1`, `/openai/v1`; empty when the base URL is the API root.
    pub api_path: &'static str,
    /// The paths of other API versions a pasted base URL may end with,
    /// removed before [`ApiKeyProvider::api_path`] is appended (Cohere's
    /// `/v2`, the AI SDK's form, when the probe lives under `/v1`).
    pub other_api_paths: &'static [&'static str],
    /// The probe's path under the API, e.g. `models`.
    pub probe_path: &'static str,
    /// Phrases (lower case) in a 4xx error body that mean the key was
    /// refused, whatever the status (xAI answers a wrong key with 400).
    pub bad_key: &'static [&'static str],
    /// Phrases (lower case) in a 4xx error body that mean the account is out
    /// of credit, whatever the status (xAI says so with 403).
    pub no_credit: &'static [&'static str],
    /// Reads a 2xx probe answer, e.g. [`model_list_verdict`].
    pub healthy: fn(&HttpResponse) -> Verdict,
    /// Reads the tokens a response consumed, e.g. [`read_openai_usage`](crate::read_openai_usage).
    pub usage: fn(&HttpRequest, &HttpResponse) -> Option<Usage>,
}

impl ApiKeyProvider {
    /// The API's root: the configured base URL (or the manifest's default)
    /// without another version's path, with [`ApiKeyProvider::api_path`]
    /// appended unless it ends with it.
    pub fn api_root(
        &self,
        credentials: &Credentials,
        manifest: &ProviderManifest,
    ) -> Result<String, PluginError> {
        let mut base = base_url(credentials, manifest)?;
        if let Some(root) = self.other_api_paths.iter().find_map(|other| base.strip_suffix(other)) {
            base = root.to_owned();
        }
        let path = self.api_path.trim_end_matches('/');
        Ok(if path.is_empty() || base.ends_with(path) { base } else { join_url(&base, path) })
    }

    /// The probe: `GET {api root}/{probe path}`, authorized later by the host.
    pub fn probe(
        &self,
        credentials: &Credentials,
        manifest: &ProviderManifest,
    ) -> Result<HttpRequest, PluginError> {
        Ok(HttpRequest::get(join_url(&self.api_root(credentials, manifest)?, self.probe_path)))
    }

    /// Reads a probe response. Out-of-credit wording or a 402 is quota,
    /// bad-key wording or a 401/403 an invalid credential, a 429 quota
    /// (rate limit), other failures degraded; every message carries the
    /// provider's own words (redacted).
    pub fn verdict(&self, response: &HttpResponse) -> Verdict {
        let status = response.status;
        let class = classify_status(status);
        if class == StatusClass::Success {
            return (self.healthy)(response);
        }
        if class == StatusClass::Unreachable {
            return Verdict::Unreachable(format!(
                "unreachable: {}",
                redacted_snippet(&response.body)
            ));
        }
        let said =
            error_message(&response.body).map(|message| format!(": {message}")).unwrap_or_default();
        // The wording refines client errors only: a 5xx stays degraded
        // whatever it says.
        let body = String::from_utf8_lossy(&response.body).to_ascii_lowercase();
        let says = |phrases: &[&str]| {
            (400..500).contains(&status) && phrases.iter().any(|phrase| body.contains(phrase))
        };
        let name = self.name;
        if status == 402 || says(self.no_credit) {
            Verdict::QuotaLimited(format!(
                "HTTP {status}: the {name} account is out of credit{said}"
            ))
        } else if class == StatusClass::InvalidCredential || says(self.bad_key) {
            Verdict::InvalidCredential(format!("HTTP {status}: {name} refused the key{said}"))
        } else if status == 429 {
            Verdict::QuotaLimited(format!("HTTP 429: rate limited by {name}{said}"))
        } else if said.is_empty() {
            Verdict::Degraded(format!("HTTP {status}: {}", redacted_snippet(&response.body)))
        } else {
            Verdict::Degraded(format!("HTTP {status}{said}"))
        }
    }
}

/// The verdict for a 2xx models-list answer: healthy with the listed ids
/// (`{"data":[..]}`, `{"models":[..]}` or a bare array), else degraded.
pub fn model_list_verdict(response: &HttpResponse) -> Verdict {
    listing_verdict(response, model_ids_from_json(&response.body), "models")
}

/// The provider's own message in a JSON error body, redacted and on one
/// line: `error.message`, `error` as a string, `message`, `detail`, or
/// `error.type`/`code` when nothing else is said. `None` for any other body.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = &value["error"];
    let text = [
        &error["message"],
        error,
        &value["message"],
        &value["detail"],
        &error["type"],
        &error["code"],
        &value["code"],
    ]
    .into_iter()
    .find_map(|candidate| candidate.as_str().filter(|text| !text.trim().is_empty()))?;
    Some(redacted_snippet(text.as_bytes()))
}

/// Exports an [`ApiKeyProvider`] as a plugin: the manifest from
/// `include_manifest!()`, the declared auth, and the description's probe,
/// verdicts and usage. The first argument names the unit struct to define.
#[macro_export]
macro_rules! export_api_key_provider {
    ($provider:ident, $description:expr) => {
        struct $provider;

        impl $crate::Provider for $provider {
            fn manifest() -> $crate::ProviderManifest {
                $crate::include_manifest!()
            }

            fn health_probe(
                credentials: $crate::Credentials,
            ) -> ::core::result::Result<$crate::HttpRequest, $crate::PluginError> {
                $description.probe(&credentials, &Self::manifest())
            }

            fn interpret_health(response: $crate::HttpResponse) -> $crate::Verdict {
                $description.verdict(&response)
            }

            fn read_usage(
                request: $crate::HttpRequest,
                response: $crate::HttpResponse,
            ) -> ::core::result::Result<::core::option::Option<$crate::Usage>, $crate::PluginError>
            {
                Ok(($description.usage)(&request, &response))
            }
        }

        $crate::export_provider!($provider);
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EnvVar, EnvVarRole, HealthyInfo};

    fn healthy(_: &HttpResponse) -> Verdict {
        Verdict::Healthy(HealthyInfo { message: "ok".into(), models: Vec::new() })
    }

    const ACME: ApiKeyProvider = ApiKeyProvider {
        name: "Acme",
        api_path: "/v1",
        other_api_paths: &["/v2"],
        probe_path: "models",
        bad_key: &["incorrect api key"],
        no_credit: &["no credits"],
        healthy,
        usage: crate::read_openai_usage,
    };

    fn manifest(default: &str) -> ProviderManifest {
        ProviderManifest {
            slug: "acme".into(),
            display_name: "Acme".into(),
            plugin_version: "1.0.0".into(),
            env_vars: vec![EnvVar {
                name: "ACME_BASE_URL".into(),
                role: EnvVarRole::BaseUrl,
                required: false,
                description: String::new(),
                default_value: Some(default.into()),
                aliases: Vec::new(),
            }],
            auth: crate::AuthShape::Bearer("ACME_API_KEY".into()),
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

    fn class(status: u16, body: &str) -> (&'static str, String) {
        let response = HttpResponse { status, headers: Vec::new(), body: body.as_bytes().to_vec() };
        match ACME.verdict(&response) {
            Verdict::Healthy(info) => ("healthy", info.message),
            Verdict::InvalidCredential(message) => ("invalid-credential", message),
            Verdict::QuotaLimited(message) => ("quota-limited", message),
            Verdict::Unreachable(message) => ("unreachable", message),
            Verdict::Degraded(message) => ("degraded", message),
        }
    }

    #[test]
    fn the_api_root_takes_the_base_url_with_or_without_its_version() {
        let root = |base: &str| {
            let credentials = vec![("ACME_BASE_URL".to_owned(), base.to_owned())];
            ACME.api_root(&credentials, &manifest("https://api.acme.example/v1")).unwrap()
        };
        assert_eq!(root("https://api.acme.example"), "https://api.acme.example/v1");
        assert_eq!(root("https://api.acme.example/v1/"), "https://api.acme.example/v1");
        assert_eq!(root("https://api.acme.example/v2"), "https://api.acme.example/v1");
        assert_eq!(root("http://127.0.0.1:9/proxy"), "http://127.0.0.1:9/proxy/v1");
        let default = ACME.api_root(&Vec::new(), &manifest("https://api.acme.example/v1"));
        assert_eq!(default.unwrap(), "https://api.acme.example/v1");
    }

    #[test]
    fn wording_refines_client_errors_only() {
        assert_eq!(class(200, "{}").0, "healthy");
        assert_eq!(class(0, "refused"), ("unreachable", "unreachable: refused".into()));
        let (verdict, message) = class(400, r#"{"error":"Incorrect API key provided"}"#);
        assert_eq!(verdict, "invalid-credential");
        assert_eq!(message, "HTTP 400: Acme refused the key: Incorrect API key provided");
        // Out of credit wins over the status's own meaning.
        assert_eq!(class(403, r#"{"error":"The team has no credits"}"#).0, "quota-limited");
        assert_eq!(class(402, "").0, "quota-limited");
        assert_eq!(class(401, "").0, "invalid-credential");
        assert_eq!(
            class(429, r#"{"message":"slow down"}"#).1,
            "HTTP 429: rate limited by Acme: slow down"
        );
        // A server error stays degraded whatever it says.
        assert_eq!(class(500, r#"{"error":"incorrect api key store"}"#).0, "degraded");
        assert_eq!(class(502, "<html>Bad Gateway</html>").1, "HTTP 502: <html>Bad Gateway</html>");
    }

    #[test]
    fn error_messages_are_the_providers_words_redacted() {
        let key = "sk-live-0123456789abcdefghij";
        let cases = [
            (
                format!(r#"{{"error":{{"message":"bad key {key}","type":"x"}}}}"#),
                Some("bad key [redacted]"),
            ),
            (r#"{"error":"plain words"}"#.to_owned(), Some("plain words")),
            (r#"{"message":"Unauthorized"}"#.to_owned(), Some("Unauthorized")),
            (r#"{"detail":"Not found"}"#.to_owned(), Some("Not found")),
            (r#"{"error":{"type":"overloaded_error"}}"#.to_owned(), Some("overloaded_error")),
            (r#"{"error":{"message":"  "},"code":"E42"}"#.to_owned(), Some("E42")),
            (r#"{"error":{"message":7}}"#.to_owned(), None),
            ("not json".to_owned(), None),
        ];
        for (body, expected) in cases {
            assert_eq!(error_message(body.as_bytes()).as_deref(), expected, "{body}");
        }
    }
}
