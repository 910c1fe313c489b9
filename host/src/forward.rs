//! Forwarding by lease: the host sends the request its plugin authorized and
//! relays the answer as it arrives, so the agent never holds the key.
//!
//! - [`with_stream_usage`] asks an OpenAI-style chat completions stream for
//!   its usage (`stream_options.include_usage`), and [`UsageEventFilter`]
//!   takes the extra usage event back out when the agent did not ask for it.
//! - [`Relay`] is the body on its way: every chunk passes the leased
//!   credentials' redaction ([`StreamRedaction`]), a bounded copy
//!   ([`BodyCapture`]) is kept for the plugin's `read-usage`, and the
//!   [`ForwardMeter`] hears how it ended.
//! - [`safe_headers`] is which upstream headers reach the agent.
//!
//! Metering: [`MeterGuard::start`] is the one call before the request is
//! sent (after authorize and the budget reservation,
//! [`crate::metering::reserve`]), and [`MeterGuard::finish`] the one call
//! after (usage known, or the upstream failed: the reservation is settled
//! before the agent sees the end of the body; the agent went away: the
//! guard's `Drop` reports a cancel and settles in a task).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::metering::Reserved;
use crate::outbound::UpstreamBody;
use crate::policy::redaction::{Redactor, StreamRedaction};
use crate::provider::{HttpRequest, HttpResponse, Usage};
use crate::resolution::leases::Lease;
use crate::runtime::Plugin;

/// Bytes of the body's start kept for `read-usage` (a stream's first events
/// name the model; Anthropic's carry the input tokens).
pub const USAGE_HEAD_BYTES: usize = 64 << 10;

/// Bytes of the body's end kept for `read-usage` (a stream's last events
/// carry the usage).
pub const USAGE_TAIL_BYTES: usize = 64 << 10;

/// Whether `url` is an OpenAI-style chat completions call (its path ends in
/// `/chat/completions`), whose stream reports usage only when asked.
pub fn is_chat_completions(url: &str) -> bool {
    url::Url::parse(url)
        .is_ok_and(|url| url.path().trim_end_matches('/').ends_with("/chat/completions"))
}

/// The body of a chat completions request with `"stream": true` that did
/// not ask for usage, rewritten to ask (`stream_options.include_usage`
/// true, other options kept); `None` when there is nothing to change: not a
/// JSON object, not streaming, usage already asked for, or `stream_options`
/// not an object (the provider refuses that itself).
pub fn with_stream_usage(body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    if object.get("stream") != Some(&Value::Bool(true)) {
        return None;
    }
    match object.get_mut("stream_options") {
        Some(Value::Object(options)) => {
            if options.get("include_usage") == Some(&Value::Bool(true)) {
                return None;
            }
            options.insert("include_usage".to_owned(), Value::Bool(true));
        }
        None | Some(Value::Null) => {
            object
                .insert("stream_options".to_owned(), serde_json::json!({ "include_usage": true }));
        }
        Some(_) => return None,
    }
    serde_json::to_vec(&value).ok()
}

/// Takes the usage-only event (`data: {..., "choices": [], "usage": {...}}`)
/// out of a server-sent event stream, passing every other event through
/// whole, as soon as its blank line arrives.
#[derive(Debug, Default)]
pub struct UsageEventFilter {
    pending: Vec<u8>,
}

impl UsageEventFilter {
    /// Takes the next bytes; answers the complete events to pass on. Only
    /// the new bytes (and the two before them, which may start a blank
    /// line) are searched, and the pending bytes move once per call, so a
    /// large event in small chunks costs linear time.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut from = self.pending.len().saturating_sub(2);
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(end) = event_end(&self.pending, from.max(start)) {
            let event = &self.pending[start..end];
            if !is_usage_event(event) {
                out.extend_from_slice(event);
            }
            start = end;
            from = end;
        }
        self.pending.drain(..start);
        out
    }

    /// The rest at the end of the stream (a last event without its blank
    /// line), unless it is the usage event.
    pub fn finish(self) -> Vec<u8> {
        if is_usage_event(&self.pending) { Vec::new() } else { self.pending }
    }
}

/// Where the first event of `bytes` whose blank line (`\n\n` or
/// `\r\n\r\n`) starts at or after `from` ends, if there is one.
fn event_end(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len()).find_map(|at| match &bytes[at..] {
        [b'\n', b'\n', ..] => Some(at + 2),
        [b'\n', b'\r', b'\n', ..] => Some(at + 3),
        _ => None,
    })
}

/// Whether `event` is an OpenAI-style usage-only chunk: its data is a JSON
/// object with an empty `choices` and a `usage` object.
fn is_usage_event(event: &[u8]) -> bool {
    let text = String::from_utf8_lossy(event);
    let data: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| data.strip_prefix(' ').unwrap_or(data))
        .collect();
    if data.is_empty() {
        return false;
    }
    let Ok(value) = serde_json::from_str::<Value>(&data.join("\n")) else { return false };
    value["choices"].as_array().is_some_and(Vec::is_empty) && value["usage"].is_object()
}

/// A bounded copy of a body for `read-usage`: its first
/// [`USAGE_HEAD_BYTES`] and its last [`USAGE_TAIL_BYTES`].
#[derive(Debug, Default)]
pub struct BodyCapture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    dropped: bool,
}

impl BodyCapture {
    /// Takes the next bytes of the body.
    pub fn push(&mut self, bytes: &[u8]) {
        let room = USAGE_HEAD_BYTES - self.head.len();
        let (head, rest) = bytes.split_at(bytes.len().min(room));
        self.head.extend_from_slice(head);
        self.tail.extend(rest);
        if self.tail.len() > USAGE_TAIL_BYTES {
            self.tail.drain(..self.tail.len() - USAGE_TAIL_BYTES);
            self.dropped = true;
        }
    }

    /// The body as kept: whole when it fit, else the head, a blank line (so
    /// a half event of the head is not joined to a half line of the tail)
    /// and the tail.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + self.tail.len() + 2);
        out.extend_from_slice(&self.head);
        if self.dropped {
            out.extend_from_slice(b"\n\n");
        }
        out.extend(&self.tail);
        out
    }
}

/// Upstream headers never relayed: hop-by-hop ones (RFC 9110 7.6.1), the
/// length (the body is re-chunked and redaction may change it) and cookies.
const DROPPED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "set-cookie",
    "set-cookie2",
];

/// The upstream headers the agent gets: all but [`DROPPED_HEADERS`], each
/// value passed through `redactor` (an upstream may echo the key).
pub fn safe_headers(headers: &[(String, String)], redactor: &Redactor) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            !DROPPED_HEADERS.iter().any(|dropped| name.eq_ignore_ascii_case(dropped))
        })
        .map(|(name, value)| (name.clone(), redactor.redact(value)))
        .collect()
}

/// How a forward ended, for the [`ForwardMeter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardOutcome {
    /// The whole answer was relayed; the usage the plugin read from it
    /// (`None`: none reported, or the plugin reads none).
    Completed {
        /// The upstream's status.
        status: u16,
        /// The tokens it consumed.
        usage: Option<Usage>,
    },
    /// No answer: the upstream was refused or could not be reached.
    Unreachable {
        /// Why, without the URL's query or a header value.
        reason: String,
    },
    /// The answer broke off (transport failure, idle timeout, byte cap).
    Interrupted {
        /// The upstream's status.
        status: u16,
        /// Why.
        reason: String,
    },
    /// The agent went away before the end of the answer.
    Cancelled,
}

impl ForwardOutcome {
    /// A short name for metrics: `completed`, `unreachable`,
    /// `interrupted` or `cancelled`.
    pub fn name(&self) -> &'static str {
        match self {
            ForwardOutcome::Completed { .. } => "completed",
            ForwardOutcome::Unreachable { .. } => "unreachable",
            ForwardOutcome::Interrupted { .. } => "interrupted",
            ForwardOutcome::Cancelled => "cancelled",
        }
    }
}

/// Hears every forward: once before it is sent, once when it ended. Calls
/// are synchronous because the end may be a `Drop` (the agent went away);
/// a meter with slow work (settling a budget in the store) spawns it.
pub trait ForwardMeter: Send + Sync {
    /// The request with `lease` was authorized and is about to be sent.
    fn started(&self, lease: &Lease);
    /// The forward [`ForwardMeter::started`] with `lease` ended so.
    /// Called exactly once per start.
    fn finished(&self, lease: &Lease, outcome: &ForwardOutcome);
}

/// One started forward: reports its end to the meter exactly once, and
/// settles its budget reservation; [`ForwardOutcome::Cancelled`] if dropped
/// before [`MeterGuard::finish`] (the settlement then runs in a task).
pub struct MeterGuard {
    meter: Arc<dyn ForwardMeter>,
    lease: Lease,
    reserved: Option<Reserved>,
    finished: bool,
}

impl MeterGuard {
    /// Tells `meter` the forward with `lease`, holding `reserved`, starts.
    pub fn start(meter: Arc<dyn ForwardMeter>, lease: Lease, reserved: Option<Reserved>) -> Self {
        meter.started(&lease);
        MeterGuard { meter, lease, reserved, finished: false }
    }

    /// Tells the meter how the forward ended and settles its reservation,
    /// durably before it returns (a failed settlement is logged: the
    /// reservation then holds until its TTL).
    pub async fn finish(mut self, outcome: ForwardOutcome) {
        self.finished = true;
        self.meter.finished(&self.lease, &outcome);
        if let Some(reserved) = self.reserved.take()
            && let Err(error) = reserved.settle(&outcome).await
        {
            tracing::warn!(%error, "a forward's reservation could not be settled; it holds until its TTL");
        }
    }
}

impl Drop for MeterGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.meter.finished(&self.lease, &ForwardOutcome::Cancelled);
            if let Some(reserved) = self.reserved.take() {
                reserved.settle_in_background(ForwardOutcome::Cancelled);
            }
        }
    }
}

/// Reads the usage of the relayed answer with the provider's plugin.
pub struct UsageReader {
    /// The provider's plugin.
    pub plugin: Plugin,
    /// The agent's request, before authorization (no credentials in it).
    pub request: HttpRequest,
}

/// The body of a forwarded answer on its way to the agent: each upstream
/// chunk redacted ([`StreamRedaction`]), copied into a [`BodyCapture`],
/// stripped of the usage event if the host asked for it
/// ([`UsageEventFilter`]) and passed on; at the end the plugin reads the
/// usage and the meter hears the outcome.
pub struct Relay {
    body: UpstreamBody,
    status: u16,
    headers: Vec<(String, String)>,
    redaction: Option<StreamRedaction>,
    filter: Option<UsageEventFilter>,
    capture: BodyCapture,
    usage: UsageReader,
    guard: Option<MeterGuard>,
}

impl Relay {
    /// The relay of an answer with `status` and (already safe) `headers`.
    /// `strip_usage_event`: the host asked for the usage event, the agent
    /// did not.
    pub fn new(
        body: UpstreamBody,
        status: u16,
        headers: Vec<(String, String)>,
        redactor: Redactor,
        strip_usage_event: bool,
        usage: UsageReader,
        guard: MeterGuard,
    ) -> Self {
        Relay {
            body,
            status,
            headers,
            redaction: Some(StreamRedaction::new(redactor)),
            filter: strip_usage_event.then(UsageEventFilter::default),
            capture: BodyCapture::default(),
            usage,
            guard: Some(guard),
        }
    }

    /// The next bytes for the agent; `None` at the end. After the last
    /// bytes, the usage is read and the meter told, before `None`.
    pub async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            self.guard.as_ref()?;
            let Some(redaction) = self.redaction.as_mut() else {
                self.settle().await;
                return None;
            };
            match self.body.next_chunk().await {
                Ok(Some(chunk)) => {
                    let redacted = redaction.push(&chunk);
                    let out = self.pass(redacted);
                    if !out.is_empty() {
                        return Some(Ok(out.into()));
                    }
                }
                Ok(None) => {
                    let rest =
                        self.redaction.take().map(StreamRedaction::finish).unwrap_or_default();
                    let mut out = self.pass(rest);
                    if let Some(filter) = self.filter.take() {
                        out.extend(filter.finish());
                    }
                    if !out.is_empty() {
                        return Some(Ok(out.into()));
                    }
                }
                Err(reason) => {
                    if let Some(guard) = self.guard.take() {
                        guard
                            .finish(ForwardOutcome::Interrupted {
                                status: self.status,
                                reason: reason.clone(),
                            })
                            .await;
                    }
                    return Some(Err(std::io::Error::other(reason)));
                }
            }
        }
    }

    /// The relay as a stream of chunks, for a response body.
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures_util::stream::unfold(self, |mut relay| async move {
            relay.next().await.map(|item| (item, relay))
        })
    }

    /// Keeps a copy of redacted bytes and filters them for the agent.
    fn pass(&mut self, redacted: Vec<u8>) -> Vec<u8> {
        self.capture.push(&redacted);
        match &mut self.filter {
            Some(filter) => filter.push(&redacted),
            None => redacted,
        }
    }

    /// Reads the usage from the kept copy and tells the meter.
    async fn settle(&mut self) {
        let Some(guard) = self.guard.take() else { return };
        let response = HttpResponse {
            status: self.status,
            headers: std::mem::take(&mut self.headers),
            body: self.capture.bytes(),
        };
        let usage = match self.usage.plugin.read_usage(&self.usage.request, &response).await {
            Ok(usage) => usage,
            Err(error) => {
                tracing::debug!(%error, "no usage read from a forwarded answer");
                None
            }
        };
        guard.finish(ForwardOutcome::Completed { status: self.status, usage }).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(body: &str) -> Option<Value> {
        with_stream_usage(body.as_bytes()).map(|body| serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn a_stream_without_usage_asked_is_asked_for_it() {
        let asked = rewritten(r#"{"model":"gpt-5","stream":true}"#).unwrap();
        assert_eq!(asked["stream_options"], serde_json::json!({ "include_usage": true }));
        assert_eq!(asked["model"], "gpt-5");
        let null = rewritten(r#"{"stream":true,"stream_options":null}"#).unwrap();
        assert_eq!(null["stream_options"]["include_usage"], true);
    }

    #[test]
    fn other_stream_options_are_kept_and_a_false_include_usage_turned_on() {
        let kept =
            rewritten(r#"{"stream":true,"stream_options":{"include_obfuscation":false}}"#).unwrap();
        assert_eq!(
            kept["stream_options"],
            serde_json::json!({ "include_obfuscation": false, "include_usage": true })
        );
        let off = rewritten(r#"{"stream":true,"stream_options":{"include_usage":false}}"#).unwrap();
        assert_eq!(off["stream_options"]["include_usage"], true);
    }

    #[test]
    fn bodies_that_already_ask_do_not_stream_or_are_not_json_are_left_alone() {
        for body in [
            r#"{"stream":true,"stream_options":{"include_usage":true}}"#,
            r#"{"model":"gpt-5","stream":false}"#,
            r#"{"model":"gpt-5"}"#,
            r#"{"stream":"true"}"#,
            r#"{"stream":true,"stream_options":"yes"}"#,
            r#"[{"stream":true}]"#,
            "stream=true",
            "",
        ] {
            assert_eq!(rewritten(body), None, "{body}");
        }
    }

    #[test]
    fn only_chat_completions_paths_are_asked_for_stream_usage() {
        assert!(is_chat_completions("https://api.openai.com/v1/chat/completions"));
        assert!(is_chat_completions("http://127.0.0.1:9/v1/chat/completions/?x=1"));
        assert!(!is_chat_completions("https://api.openai.com/v1/responses"));
        assert!(!is_chat_completions("https://api.anthropic.com/v1/messages"));
        assert!(!is_chat_completions("not a url/chat/completions"));
    }

    const STREAM: &str = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\r\n\r\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn the_usage_event_is_stripped_however_the_stream_is_cut() {
        let expected = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: [DONE]\n\n"
        );
        for cut in 0..STREAM.len() {
            let mut filter = UsageEventFilter::default();
            let mut out = filter.push(&STREAM.as_bytes()[..cut]);
            out.extend(filter.push(&STREAM.as_bytes()[cut..]));
            out.extend(filter.finish());
            assert_eq!(String::from_utf8(out).unwrap(), expected, "cut at {cut}");
        }
        // One byte at a time: every blank line split across pushes.
        let mut filter = UsageEventFilter::default();
        let mut out: Vec<u8> = STREAM.bytes().flat_map(|byte| filter.push(&[byte])).collect();
        out.extend(filter.finish());
        assert_eq!(String::from_utf8(out).unwrap(), expected, "byte by byte");
        let mut filter = UsageEventFilter::default();
        assert!(filter.push(b"data: {\"choices\":[],\"usage\":{}}").is_empty());
        assert!(filter.finish().is_empty(), "a last usage event without its blank line");
    }

    #[test]
    fn the_capture_keeps_a_small_body_whole_and_a_large_one_head_and_tail() {
        let mut small = BodyCapture::default();
        small.push(b"abc");
        small.push(b"def");
        assert_eq!(small.bytes(), b"abcdef");
        let mut large = BodyCapture::default();
        for _ in 0..10 {
            large.push(&vec![b'x'; USAGE_HEAD_BYTES / 2]);
        }
        large.push(b"the end");
        let kept = large.bytes();
        assert_eq!(kept.len(), USAGE_HEAD_BYTES + 2 + USAGE_TAIL_BYTES);
        assert!(kept.ends_with(b"xthe end"));
        assert_eq!(&kept[USAGE_HEAD_BYTES..USAGE_HEAD_BYTES + 2], b"\n\n");
    }

    #[test]
    fn hop_by_hop_length_and_cookie_headers_are_dropped_and_values_redacted() {
        let redactor = Redactor::new([("OPENAI_API_KEY", "sk-canary-secret")]);
        let headers = [
            ("Content-Type", "text/event-stream"),
            ("Transfer-Encoding", "chunked"),
            ("content-length", "12"),
            ("Connection", "keep-alive"),
            ("set-cookie", "session=1"),
            ("x-echo", "Bearer sk-canary-secret"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        assert_eq!(
            safe_headers(&headers, &redactor),
            [
                ("Content-Type".to_owned(), "text/event-stream".to_owned()),
                ("x-echo".to_owned(), "Bearer [redacted]".to_owned()),
            ]
        );
    }

    struct Counting(std::sync::Mutex<Vec<String>>);

    impl ForwardMeter for Counting {
        fn started(&self, _: &Lease) {
            self.0.lock().unwrap().push("started".to_owned());
        }
        fn finished(&self, _: &Lease, outcome: &ForwardOutcome) {
            self.0.lock().unwrap().push(outcome.name().to_owned());
        }
    }

    #[tokio::test]
    async fn a_guard_dropped_before_its_end_reports_a_cancel_once() {
        let lease = Lease {
            id: crate::resolution::leases::LeaseId([0; crate::resolution::leases::LEASE_ID_LEN]),
            scope: "acme/shop/prod".parse().unwrap(),
            provider: "openai".to_owned(),
            key_id: "OPENAI_API_KEY".to_owned(),
            versions: Vec::new(),
            issued_at: 0,
            expires_at: 1,
        };
        let meter = Arc::new(Counting(Default::default()));
        drop(MeterGuard::start(meter.clone(), lease.clone(), None));
        MeterGuard::start(meter.clone(), lease, None)
            .finish(ForwardOutcome::Completed { status: 200, usage: None })
            .await;
        assert_eq!(*meter.0.lock().unwrap(), ["started", "cancelled", "started", "completed"]);
    }
}
