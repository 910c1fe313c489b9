//! The one way the host sends a request a plugin described: the allowed-host
//! check again, DNS resolution with every address checked against the
//! [`AddressPolicy`], a connection only to a checked address, no redirects, a
//! timeout and a cap on the response body. Transport failures become a
//! synthetic response with status 0 and the reason in the body, which is what
//! `interpret-health` expects.
//!
//! [`Outbound::send`] reads the whole answer under one timeout;
//! [`Outbound::send_streaming`] hands the answer over as it arrives, under a
//! time-to-first-byte and an idle timeout instead (a long stream is not cut
//! at a fixed length) and a byte cap. Both build the request through the one
//! checking path, `Outbound::checked_request`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::policy::addresses::{AddressPolicy, check_address};
use crate::policy::hosts::AllowedHosts;
use crate::provider::{HttpRequest, HttpResponse};

/// How outbound requests are bounded.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// Which addresses beyond public ones may be reached.
    pub addresses: AddressPolicy,
    /// The whole request, connect to last body byte.
    pub timeout: Duration,
    /// Response body bytes kept; the rest is dropped.
    pub max_body_bytes: usize,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            addresses: AddressPolicy::default(),
            timeout: Duration::from_secs(10),
            max_body_bytes: 2 << 20,
        }
    }
}

/// How a streamed answer ([`Outbound::send_streaming`]) is bounded.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// From sending the request to the answer's status and headers.
    pub first_byte: Duration,
    /// The longest wait for the next body chunk.
    pub idle: Duration,
    /// Body bytes relayed at most: past it the body fails.
    pub max_bytes: u64,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(60),
            max_bytes: 64 << 20,
        }
    }
}

/// Why a request was not sent or got no answer. The reason never holds the
/// URL's query or a header value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The request breaks the allowed hosts or the address policy, or its
    /// URL is malformed: nothing was sent.
    #[error("{0}")]
    Refused(String),
    /// The transport failed before an answer (DNS, connect, timeout).
    #[error("{0}")]
    Transport(String),
}

/// A streamed answer: status and headers as received, the body to read.
/// Header values may echo a secret: redact before showing them.
pub struct StreamingResponse {
    /// The HTTP status.
    pub status: u16,
    /// At most 100 headers whose values are text, in order.
    pub headers: Vec<(String, String)>,
    /// The body, chunk by chunk.
    pub body: UpstreamBody,
}

impl std::fmt::Debug for StreamingResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingResponse").field("status", &self.status).finish_non_exhaustive()
    }
}

/// The body of a [`StreamingResponse`], read under the idle timeout and the
/// byte cap of its [`StreamLimits`].
pub struct UpstreamBody {
    response: reqwest::Response,
    idle: Duration,
    remaining: u64,
}

impl UpstreamBody {
    /// The next chunk as it arrives; `None` at the end. An error says why
    /// the body broke off: no chunk within the idle timeout, more than the
    /// byte cap, or a transport failure.
    pub async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, String> {
        let chunk = tokio::time::timeout(self.idle, self.response.chunk())
            .await
            .map_err(|_| format!("no body chunk within {:?}", self.idle))?
            .map_err(describe_error)?;
        let Some(chunk) = chunk else { return Ok(None) };
        let size = chunk.len() as u64;
        if size > self.remaining {
            return Err("the answer is larger than the host relays".to_owned());
        }
        self.remaining -= size;
        Ok(Some(chunk))
    }
}

/// Sends plugin-described requests. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    /// For whole answers: one timeout over the whole request.
    client: reqwest::Client,
    /// For streamed answers: only the connect timeout; the first-byte and
    /// idle timeouts are applied per request.
    streaming: reqwest::Client,
    config: OutboundConfig,
}

/// A DNS resolver that drops every address the policy refuses; a name with
/// no address left fails to resolve, so nothing connects to it.
struct CheckedResolver {
    policy: AddressPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = checked_addresses(&host, resolved, policy)?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The addresses of a DNS answer for `host` that the policy allows; an
/// answer with none left is an error naming every refusal, so nothing
/// connects to the name.
fn checked_addresses(
    host: &str,
    resolved: Vec<SocketAddr>,
    policy: AddressPolicy,
) -> Result<Vec<SocketAddr>, String> {
    let mut refusals = Vec::new();
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|address| match check_address(address.ip(), policy) {
            Ok(()) => true,
            Err(refusal) => {
                refusals.push(refusal.to_string());
                false
            }
        })
        .collect();
    if !allowed.is_empty() {
        Ok(allowed)
    } else if refusals.is_empty() {
        Err(format!("{host} has no address"))
    } else {
        Err(format!("{host} resolves only to refused addresses: {}", refusals.join("; ")))
    }
}

impl Outbound {
    /// A sender with its own connection pool.
    pub fn new(config: OutboundConfig) -> anyhow::Result<Self> {
        let client = Self::client_builder(&config).timeout(config.timeout).build()?;
        let streaming = Self::client_builder(&config).build()?;
        Ok(Outbound { client, streaming, config })
    }

    /// What both clients share: no redirects, no proxy, checked DNS answers,
    /// the connect timeout.
    fn client_builder(config: &OutboundConfig) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.timeout)
            .dns_resolver(Arc::new(CheckedResolver { policy: config.addresses }))
            .user_agent(concat!("platos-host/", env!("CARGO_PKG_VERSION")))
    }

    /// The configuration in force.
    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// Sends `request` if `allowed` and the address policy let it; any
    /// failure is a status-0 response whose body says why (never the URL's
    /// query or a header value, which may carry a secret).
    pub async fn send(&self, request: &HttpRequest, allowed: &AllowedHosts) -> HttpResponse {
        match self.try_send(request, allowed).await {
            Ok(response) => response,
            Err(reason) => {
                HttpResponse { status: 0, headers: Vec::new(), body: reason.into_bytes() }
            }
        }
    }

    async fn try_send(
        &self,
        request: &HttpRequest,
        allowed: &AllowedHosts,
    ) -> Result<HttpResponse, String> {
        let builder = self
            .checked_request(&self.client, request, allowed)
            .map_err(|error| error.to_string())?;
        let mut response = builder.send().await.map_err(describe_error)?;
        let status = response.status().as_u16();
        let headers = text_headers(&response);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe_error)? {
            let room = self.config.max_body_bytes - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() >= room {
                break;
            }
        }
        Ok(HttpResponse { status, headers, body })
    }

    /// Sends `request` if `allowed` and the address policy let it (the same
    /// checks as [`Outbound::send`]) and answers as soon as the status and
    /// headers arrive, within `limits.first_byte`; the body is read chunk by
    /// chunk ([`UpstreamBody::next_chunk`]).
    pub async fn send_streaming(
        &self,
        request: &HttpRequest,
        allowed: &AllowedHosts,
        limits: StreamLimits,
    ) -> Result<StreamingResponse, SendError> {
        let builder = self.checked_request(&self.streaming, request, allowed)?;
        let response = tokio::time::timeout(limits.first_byte, builder.send())
            .await
            .map_err(|_| SendError::Transport(format!("no answer within {:?}", limits.first_byte)))?
            .map_err(|error| SendError::Transport(describe_error(error)))?;
        Ok(StreamingResponse {
            status: response.status().as_u16(),
            headers: text_headers(&response),
            body: UpstreamBody { response, idle: limits.idle, remaining: limits.max_bytes },
        })
    }

    /// The one checking path of both sends: the allowed-host check, the URL
    /// parsed, a literal address checked against the address policy, then
    /// the request built on `client` with its headers and body.
    fn checked_request(
        &self,
        client: &reqwest::Client,
        request: &HttpRequest,
        allowed: &AllowedHosts,
    ) -> Result<reqwest::RequestBuilder, SendError> {
        let refused = |reason: String| SendError::Refused(reason);
        allowed
            .check(&request.url, &request.headers)
            .map_err(|refusal| refused(refusal.to_string()))?;
        let url =
            reqwest::Url::parse(&request.url).map_err(|_| refused("malformed URL".to_owned()))?;
        // Literal addresses skip DNS, so check them here. The URL parser has
        // already turned every IPv4 spelling (`2852039166`, `0xa9fe.0xa9fe`,
        // `0251.0376.0251.0376`, `169.254.43518`) into its address.
        if let Some(address) = literal_address(&url) {
            check_address(address, self.config.addresses)
                .map_err(|refusal| refused(refusal.to_string()))?;
        }
        let mut builder = client.request(request.method.into(), url);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        Ok(builder)
    }
}

/// The first 100 headers of `response` whose values are text.
fn text_headers(response: &reqwest::Response) -> Vec<(String, String)> {
    response
        .headers()
        .iter()
        .take(100)
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// The address of a URL whose host is an IP literal.
fn literal_address(url: &reqwest::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(address) => Some(IpAddr::V4(address)),
        url::Host::Ipv6(address) => Some(IpAddr::V6(address)),
        url::Host::Domain(_) => None,
    }
}

/// A transport error in words, without the URL (its query may hold a key).
fn describe_error(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "failed while reading the response"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() { kind.to_owned() } else { format!("{kind}: {detail}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOSED: AddressPolicy = AddressPolicy { allow_loopback: false, allow_private: false };

    fn socket(text: &str) -> SocketAddr {
        SocketAddr::new(text.parse().unwrap(), 0)
    }

    #[test]
    fn every_dns_answer_is_checked_and_refused_ones_are_dropped() {
        let answer = vec![
            socket("64:ff9b::a9fe:a9fe"),
            socket("8.8.8.8"),
            socket("::ffff:127.0.0.1"),
            socket("2001:db8::1"),
            socket("2606:4700::1"),
        ];
        assert_eq!(
            checked_addresses("api.example", answer, CLOSED).unwrap(),
            [socket("8.8.8.8"), socket("2606:4700::1")]
        );
        let hostile = vec![socket("2002:a9fe:a9fe::1"), socket("::a9fe:a9fe")];
        let reason = checked_addresses("evil.example", hostile, CLOSED).unwrap_err();
        assert!(reason.starts_with("evil.example resolves only to refused addresses"), "{reason}");
        assert_eq!(reason.matches("169.254.169.254").count(), 2, "{reason}");
        assert_eq!(
            checked_addresses("empty.example", Vec::new(), CLOSED).unwrap_err(),
            "empty.example has no address"
        );
    }

    #[test]
    fn every_ipv4_and_ipv6_spelling_reaches_the_check_as_an_address() {
        for (url, address) in [
            ("http://2852039166/", "169.254.169.254"),
            ("http://0xa9.0xfe.0xa9fe/", "169.254.169.254"),
            ("http://0xa9.0xfea9fe/", "169.254.169.254"),
            ("http://0xA9.0xFE.0xA9.0xFE/", "169.254.169.254"),
            ("http://0251.0376.0251.0376/", "169.254.169.254"),
            ("http://169.254.43518/", "169.254.169.254"),
            ("http://169.16689662/", "169.254.169.254"),
            ("http://0xa9fea9fe/", "169.254.169.254"),
            ("http://169.254.169.254./", "169.254.169.254"),
            ("http://127.1/", "127.0.0.1"),
            ("http://0/", "0.0.0.0"),
            ("http://%31%32%37.0.0.1/", "127.0.0.1"),
            ("http://[::ffff:a9fe:a9fe]/", "::ffff:169.254.169.254"),
            ("http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254"),
            ("http://[64:ff9b::169.254.169.254]/", "64:ff9b::a9fe:a9fe"),
            ("http://[0:0:0:0:0:0:0:1]/", "::1"),
        ] {
            let parsed = reqwest::Url::parse(url).unwrap_or_else(|error| panic!("{url}: {error}"));
            assert_eq!(literal_address(&parsed), Some(address.parse().unwrap()), "{url}");
            assert!(check_address(address.parse().unwrap(), CLOSED).is_err(), "{url}");
        }
        let parsed = reqwest::Url::parse("https://api.openai.com/v1").unwrap();
        assert_eq!(literal_address(&parsed), None);
        // Spellings the parser rejects never become a request at all.
        for url in [
            "http://0xa9fe.0xa9fe/",
            "http://256.0.0.1/",
            "http://1.2.3.4.5/",
            "http://[::ffff:1.2.3]/",
        ] {
            assert!(reqwest::Url::parse(url).is_err(), "{url}");
        }
    }
}
