//! Allowed hosts: the patterns a manifest declares, and the check every
//! request a plugin describes must pass before the host sends it.
//!
//! A pattern is a plain DNS name in lower case, like `api.openai.com`, where a
//! label may be `*` to stand for exactly one label: `bedrock.*.amazonaws.com`
//! matches `bedrock.us-east-1.amazonaws.com` and nothing deeper. No scheme, no
//! port, no path: requests to manifest hosts go over `https` on port 443. The
//! host of a configured base URL (e.g. `OPENAI_API_BASE`) is allowed in
//! addition, with exactly that URL's scheme and port.

use std::fmt;

use url::Url;

use super::bounds::truncate_chars;
use super::redaction::Redactor;

/// Characters of a refused header name a message quotes.
const MAX_QUOTED_NAME_CHARS: usize = 64;

/// A parsed allowed-host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    labels: Vec<Label>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Label {
    Any,
    Exact(String),
}

/// Why an allowed-host pattern is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "allowed host {pattern:?} is malformed: {reason}; expected a lower-case DNS name such as `api.openai.com`, where `*` may stand for one label"
)]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl HostPattern {
    /// Parses a pattern, with a message naming the problem.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        let fail = |reason| PatternError { pattern: pattern.to_owned(), reason };
        if pattern.contains("://") || pattern.contains('/') {
            return Err(fail("it has a scheme or a path"));
        }
        if pattern.contains(':') {
            return Err(fail("it has a port"));
        }
        let labels: Vec<&str> = pattern.split('.').collect();
        if labels.len() < 2 {
            return Err(fail("it needs at least two labels"));
        }
        let mut parsed = Vec::with_capacity(labels.len());
        for label in &labels {
            if *label == "*" {
                parsed.push(Label::Any);
                continue;
            }
            let valid = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                return Err(fail(
                    "a label is empty, too long, or not lower-case letters, digits and inner hyphens",
                ));
            }
            parsed.push(Label::Exact((*label).to_owned()));
        }
        let literal = parsed.iter().filter(|label| matches!(label, Label::Exact(_))).count();
        if literal < 2 || matches!(parsed.last(), Some(Label::Any)) {
            return Err(fail("a wildcard may not stand for the top-level or registrable domain"));
        }
        if labels.iter().all(|label| label.bytes().all(|b| b.is_ascii_digit())) {
            return Err(fail("it is an IP address; use a base-URL variable for fixed addresses"));
        }
        Ok(HostPattern { labels: parsed })
    }

    /// Whether `host` (a DNS name) matches this pattern, case-insensitively.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        let labels: Vec<&str> = host.split('.').collect();
        labels.len() == self.labels.len()
            && self.labels.iter().zip(&labels).all(|(pattern, label)| match pattern {
                Label::Any => !label.is_empty(),
                Label::Exact(exact) => exact.eq_ignore_ascii_case(label),
            })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<&str> = self
            .labels
            .iter()
            .map(|label| match label {
                Label::Any => "*",
                Label::Exact(exact) => exact.as_str(),
            })
            .collect();
        f.write_str(&labels.join("."))
    }
}

/// Why a request may not be sent. Messages never contain the URL's query,
/// which may carry a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundRefusal {
    /// The URL does not parse or is not absolute.
    #[error("the request URL is not an absolute http(s) URL")]
    MalformedUrl,
    /// The URL carries a user name or password.
    #[error("the request URL carries credentials in its authority (user:password@)")]
    UserInfo,
    /// The host is not allowed.
    #[error("host {host:?} is not allowed; allowed: {allowed}")]
    ForeignHost {
        /// The refused host.
        host: String,
        /// The allowed hosts, for the message.
        allowed: String,
    },
    /// An allowed manifest host over a scheme or port other than https:443.
    #[error("host {host:?} is allowed only over https on port 443")]
    InsecureScheme {
        /// The host.
        host: String,
    },
    /// A header name or value that cannot go on the wire.
    #[error(
        "header {:?} has a name or value that is not valid HTTP",
        truncate_chars(name, MAX_QUOTED_NAME_CHARS)
    )]
    MalformedHeader {
        /// The header name (never its value); shown cut to 64 characters.
        name: String,
    },
}

impl OutboundRefusal {
    /// The refusal with the host or header name it quotes redacted: a
    /// plugin can put a secret into either (`https://<key>.evil.example/`).
    pub fn redacted(self, redactor: &Redactor) -> Self {
        match self {
            OutboundRefusal::ForeignHost { host, allowed } => {
                OutboundRefusal::ForeignHost { host: redactor.redact(&host), allowed }
            }
            OutboundRefusal::InsecureScheme { host } => {
                OutboundRefusal::InsecureScheme { host: redactor.redact(&host) }
            }
            OutboundRefusal::MalformedHeader { name } => {
                OutboundRefusal::MalformedHeader { name: redactor.redact(&name) }
            }
            other @ (OutboundRefusal::MalformedUrl | OutboundRefusal::UserInfo) => other,
        }
    }
}

/// The set of destinations one key's requests may go to: the manifest's
/// patterns plus the origin of a configured base URL.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    patterns: Vec<HostPattern>,
    base_origin: Option<url::Origin>,
}

impl AllowedHosts {
    /// Builds the set. Malformed patterns are reported (the manifest check
    /// refuses them at load, so this only fails on an unvalidated manifest).
    pub fn new(patterns: &[String], base_url: Option<&str>) -> Result<Self, PatternError> {
        let patterns =
            patterns.iter().map(|pattern| HostPattern::parse(pattern)).collect::<Result<_, _>>()?;
        let base_origin = base_url
            .and_then(|base| Url::parse(base).ok())
            .filter(|base| matches!(base.scheme(), "http" | "https") && base.host().is_some())
            .map(|base| base.origin());
        Ok(AllowedHosts { patterns, base_origin })
    }

    /// Checks a request's URL and headers before it is sent.
    pub fn check(&self, url: &str, headers: &[(String, String)]) -> Result<(), OutboundRefusal> {
        let parsed = Url::parse(url).map_err(|_| OutboundRefusal::MalformedUrl)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OutboundRefusal::MalformedUrl);
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(OutboundRefusal::UserInfo);
        }
        let host = parsed.host_str().ok_or(OutboundRefusal::MalformedUrl)?.to_ascii_lowercase();
        for (name, value) in headers {
            if !is_header_name(name) || !is_header_value(value) {
                return Err(OutboundRefusal::MalformedHeader { name: name.clone() });
            }
        }
        if self.base_origin.as_ref() == Some(&parsed.origin()) {
            return Ok(());
        }
        let domain = matches!(parsed.host(), Some(url::Host::Domain(_)));
        if domain && self.patterns.iter().any(|pattern| pattern.matches(&host)) {
            if parsed.scheme() != "https" || parsed.port_or_known_default() != Some(443) {
                return Err(OutboundRefusal::InsecureScheme { host });
            }
            return Ok(());
        }
        Err(OutboundRefusal::ForeignHost { host, allowed: self.describe() })
    }

    /// The allowed destinations, for messages.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.patterns.iter().map(ToString::to_string).collect();
        if let Some(origin) = &self.base_origin {
            parts.push(format!("{} (base URL)", origin.ascii_serialization()));
        }
        if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(patterns: &[&str], base: Option<&str>) -> AllowedHosts {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        AllowedHosts::new(&patterns, base).unwrap()
    }

    #[test]
    fn pattern_parsing() {
        for good in ["api.openai.com", "bedrock.*.amazonaws.com", "*.openai.azure.com"] {
            HostPattern::parse(good).unwrap();
        }
        for (bad, reason) in [
            ("https://api.openai.com", "scheme"),
            ("api.openai.com:443", "port"),
            ("localhost", "two labels"),
            ("*.com", "wildcard"),
            ("api.*", "wildcard"),
            ("API.openai.com", "lower-case"),
            ("api..com", "lower-case"),
            ("-api.openai.com", "lower-case"),
            ("10.0.0.1", "IP address"),
        ] {
            let error = HostPattern::parse(bad).unwrap_err();
            assert!(error.to_string().contains(reason), "{bad}: {error}");
        }
    }

    #[test]
    fn wildcard_matches_one_label_only() {
        let pattern = HostPattern::parse("bedrock.*.amazonaws.com").unwrap();
        assert!(pattern.matches("bedrock.us-east-1.amazonaws.com"));
        assert!(pattern.matches("BEDROCK.eu-west-1.amazonaws.com."));
        assert!(!pattern.matches("bedrock.a.b.amazonaws.com"));
        assert!(!pattern.matches("bedrock.amazonaws.com"));
        assert!(!pattern.matches("evil-bedrock.us-east-1.amazonaws.com"));
    }

    #[test]
    fn manifest_hosts_need_https_443() {
        let hosts = allowed(&["api.openai.com"], None);
        hosts.check("https://api.openai.com/v1/models", &[]).unwrap();
        hosts.check("https://API.openai.com:443/v1/models", &[]).unwrap();
        assert!(matches!(
            hosts.check("http://api.openai.com/v1/models", &[]),
            Err(OutboundRefusal::InsecureScheme { .. })
        ));
        assert!(matches!(
            hosts.check("https://api.openai.com:8443/", &[]),
            Err(OutboundRefusal::InsecureScheme { .. })
        ));
    }

    #[test]
    fn foreign_hosts_are_refused_without_leaking_the_query() {
        let hosts = allowed(&["api.openai.com"], None);
        for url in [
            "https://evil.example.net/collect?k=CANARY",
            "https://api.openai.com.evil.net/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
        ] {
            let error = hosts.check(url, &[]).unwrap_err();
            assert!(matches!(error, OutboundRefusal::ForeignHost { .. }), "{url}: {error}");
            assert!(!error.to_string().contains("CANARY"));
            assert!(error.to_string().contains("api.openai.com"));
        }
        assert_eq!(
            hosts.check("https://user:pw@api.openai.com/", &[]),
            Err(OutboundRefusal::UserInfo)
        );
        assert_eq!(hosts.check("ftp://api.openai.com/", &[]), Err(OutboundRefusal::MalformedUrl));
        assert_eq!(hosts.check("/v1/models", &[]), Err(OutboundRefusal::MalformedUrl));
    }

    #[test]
    fn base_url_origin_is_allowed_with_its_own_scheme_and_port() {
        let hosts = allowed(&["api.openai.com"], Some("http://127.0.0.1:11434/v1"));
        hosts.check("http://127.0.0.1:11434/v1/models", &[]).unwrap();
        assert!(hosts.check("http://127.0.0.1:11435/v1/models", &[]).is_err());
        assert!(hosts.check("https://127.0.0.1:11434/v1/models", &[]).is_err());
        assert!(hosts.describe().contains("http://127.0.0.1:11434 (base URL)"));
    }

    #[test]
    fn refusals_redact_what_they_quote() {
        let hosts = allowed(&["api.openai.com"], None);
        let redactor = Redactor::new([("KEY", "Sk-Canary-1234")]);
        let refusal = hosts.check("https://sk-canary-1234.evil.example/", &[]).unwrap_err();
        assert!(refusal.to_string().contains("sk-canary-1234"), "the check itself quotes");
        let redacted = refusal.redacted(&redactor).to_string();
        assert!(redacted.contains("\"[redacted].evil.example\""), "{redacted}");
        let header = vec![("x-Sk-Canary-1234 ".to_owned(), "v".to_owned())];
        let refusal = hosts.check("https://api.openai.com/", &header).unwrap_err();
        assert!(!refusal.redacted(&redactor).to_string().to_lowercase().contains("canary"));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let hosts = allowed(&["api.openai.com"], None);
        let url = "https://api.openai.com/v1/models";
        let bad_value = vec![("authorization".to_owned(), "Bearer a\r\nx: y".to_owned())];
        let bad_name = vec![("bad header".to_owned(), "v".to_owned())];
        assert!(matches!(
            hosts.check(url, &bad_value),
            Err(OutboundRefusal::MalformedHeader { .. })
        ));
        assert!(matches!(
            hosts.check(url, &bad_name),
            Err(OutboundRefusal::MalformedHeader { .. })
        ));
    }
}
