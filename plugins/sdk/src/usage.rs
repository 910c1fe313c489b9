//! Reading the tokens a response consumed, from a JSON body or a stream of
//! server-sent events, in the OpenAI and Anthropic shapes.
//!
//! The counts are normalized as the contract's `usage` record wants them:
//! `input_tokens` are the prompt tokens not read from a cache (Anthropic's
//! cache writes included), `cached_input_tokens` those read from a cache.

use serde_json::Value;

use crate::{HttpRequest, HttpResponse, Usage};

/// One server-sent event: its `event:` type, if any, and its `data:` lines
/// joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSentEvent {
    /// The event type (`message_delta`, `response.completed`, ...).
    pub event: Option<String>,
    /// The data.
    pub data: String,
}

/// The events of a `text/event-stream` body, in order (the HTML standard's
/// rules: `\n`, `\r\n` or `\r` line ends, `:` comments, one optional space
/// after the colon, a blank line ends an event; a last event without its
/// blank line still counts, since the host may cut a long stream).
pub fn server_sent_events(body: &[u8]) -> Vec<ServerSentEvent> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n").replace('\r', "\n");
    let mut events = Vec::new();
    let mut event: Option<String> = None;
    let mut data: Option<String> = None;
    let mut dispatch = |event: &mut Option<String>, data: &mut Option<String>| {
        if let Some(data) = data.take() {
            events.push(ServerSentEvent { event: event.take(), data });
        }
        *event = None;
    };
    for line in text.split('\n') {
        if line.is_empty() {
            dispatch(&mut event, &mut data);
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some(("", _)) => continue,
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    dispatch(&mut event, &mut data);
    events
}

/// Whether `response` is a stream of server-sent events: its content type
/// says so, or its body starts like one.
pub fn is_event_stream(response: &HttpResponse) -> bool {
    let typed = response.headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("content-type")
            && value.trim().to_ascii_lowercase().starts_with("text/event-stream")
    });
    let start = response.body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
    let body = &response.body[start..];
    typed || body.starts_with(b"data:") || body.starts_with(b"event:")
}

/// The `model` a JSON request body asks for.
pub fn requested_model(request: &HttpRequest) -> Option<String> {
    let body: Value = serde_json::from_slice(request.body.as_deref()?).ok()?;
    body["model"].as_str().map(str::to_owned)
}

/// The usage in one OpenAI-style JSON object: a Chat Completions, Completions,
/// Embeddings or Responses answer, a streamed chunk carrying `usage` (or, from
/// Groq, `x_groq.usage`), or a Responses stream event carrying
/// `response.usage`. Cached prompt tokens are `*_tokens_details.cached_tokens`,
/// else DeepSeek's `prompt_cache_hit_tokens`. `None` without usage.
pub fn openai_usage_from_json(value: &Value) -> Option<Usage> {
    let object = |usage: &Value| usage.is_object();
    let (usage, model) = match value.get("usage").filter(|usage| object(usage)) {
        Some(usage) => (usage, &value["model"]),
        None => match value["x_groq"].get("usage").filter(|usage| object(usage)) {
            Some(usage) => (usage, &value["model"]),
            None => {
                let response = &value["response"];
                (response.get("usage").filter(|usage| object(usage))?, &response["model"])
            }
        },
    };
    let count = |names: &[&str]| names.iter().find_map(|name| usage[*name].as_u64());
    let prompt = count(&["prompt_tokens", "input_tokens"]);
    let completion = count(&["completion_tokens", "output_tokens"]);
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    // Mistral also spells the details `prompt_token_details`, or counts
    // `num_cached_tokens`; DeepSeek counts `prompt_cache_hit_tokens`.
    let cached = ["prompt_tokens_details", "input_tokens_details", "prompt_token_details"]
        .iter()
        .find_map(|details| usage[*details]["cached_tokens"].as_u64())
        .or_else(|| count(&["num_cached_tokens", "prompt_cache_hit_tokens"]))
        .unwrap_or(0);
    let prompt = prompt.unwrap_or(0);
    let completion = completion.unwrap_or(0);
    // OpenAI counts reasoning inside `completion_tokens`; xAI does not, and
    // its `total_tokens` shows it: then reasoning is added to the output.
    let reasoning = ["completion_tokens_details", "output_tokens_details"]
        .iter()
        .find_map(|details| usage[*details]["reasoning_tokens"].as_u64())
        .unwrap_or(0);
    let reasoning_outside = reasoning > 0
        && count(&["total_tokens"])
            == Some(prompt.saturating_add(completion).saturating_add(reasoning));
    Some(Usage {
        input_tokens: prompt.saturating_sub(cached),
        output_tokens: if reasoning_outside {
            completion.saturating_add(reasoning)
        } else {
            completion
        },
        cached_input_tokens: cached.min(prompt),
        model: model.as_str().map(str::to_owned),
    })
}

/// The usage of an OpenAI-style answer to `request`: the JSON body's, or in
/// a stream the last event's that carries usage (a Chat Completions stream
/// sends it last when asked with `stream_options.include_usage`; a Responses
/// stream in `response.completed`). The model is the answer's, else the
/// request's. `None` when the answer carries no usage.
pub fn read_openai_usage(request: &HttpRequest, response: &HttpResponse) -> Option<Usage> {
    let mut usage = if is_event_stream(response) {
        let mut last = None;
        let mut model = None;
        for event in server_sent_events(&response.body) {
            let Ok(value) = serde_json::from_str::<Value>(&event.data) else { continue };
            if let Some(name) = value["model"].as_str().or(value["response"]["model"].as_str()) {
                model = Some(name.to_owned());
            }
            if let Some(found) = openai_usage_from_json(&value) {
                last = Some(found);
            }
        }
        last.map(|usage| Usage { model: usage.model.or(model), ..usage })
    } else {
        openai_usage_from_json(&serde_json::from_slice(&response.body).ok()?)
    }?;
    usage.model = usage.model.or_else(|| requested_model(request));
    Some(usage)
}

/// Anthropic's counters as far as a message or stream has told them.
#[derive(Default)]
struct AnthropicCounts {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
    model: Option<String>,
}

impl AnthropicCounts {
    /// Takes every counter `usage` carries (later values win: a stream's
    /// counts are cumulative).
    fn merge(&mut self, usage: &Value) {
        let take = |slot: &mut Option<u64>, name: &str| {
            if let Some(count) = usage[name].as_u64() {
                *slot = Some(count);
            }
        };
        take(&mut self.input, "input_tokens");
        take(&mut self.output, "output_tokens");
        take(&mut self.cache_read, "cache_read_input_tokens");
        take(&mut self.cache_write, "cache_creation_input_tokens");
    }

    fn usage(self) -> Option<Usage> {
        if self.input.is_none() && self.output.is_none() {
            return None;
        }
        Some(Usage {
            input_tokens: self.input.unwrap_or(0).saturating_add(self.cache_write.unwrap_or(0)),
            output_tokens: self.output.unwrap_or(0),
            cached_input_tokens: self.cache_read.unwrap_or(0),
            model: self.model,
        })
    }
}

/// The usage in one Anthropic Messages answer (`{"type":"message","usage":..}`).
/// `None` without usage.
pub fn anthropic_usage_from_json(value: &Value) -> Option<Usage> {
    let mut counts = AnthropicCounts::default();
    counts.merge(value.get("usage").filter(|usage| usage.is_object())?);
    counts.model = value["model"].as_str().map(str::to_owned);
    counts.usage()
}

/// The usage of an Anthropic-style answer to `request`: the JSON body's, or
/// in a stream `message_start`'s counts updated by every `message_delta`
/// (whose counts are cumulative; the last one carries the final output). The
/// model is the answer's, else the request's. `None` without usage.
pub fn read_anthropic_usage(request: &HttpRequest, response: &HttpResponse) -> Option<Usage> {
    let mut usage = if is_event_stream(response) {
        let mut counts = AnthropicCounts::default();
        for event in server_sent_events(&response.body) {
            let Ok(value) = serde_json::from_str::<Value>(&event.data) else { continue };
            match value["type"].as_str() {
                Some("message_start") => {
                    let message = &value["message"];
                    counts.merge(&message["usage"]);
                    if let Some(model) = message["model"].as_str() {
                        counts.model = Some(model.to_owned());
                    }
                }
                Some("message_delta") => counts.merge(&value["usage"]),
                _ => {}
            }
        }
        counts.usage()
    } else {
        anthropic_usage_from_json(&serde_json::from_slice(&response.body).ok()?)
    }?;
    usage.model = usage.model.or_else(|| requested_model(request));
    Some(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event: Option<&str>, data: &str) -> ServerSentEvent {
        ServerSentEvent { event: event.map(str::to_owned), data: data.to_owned() }
    }

    #[test]
    fn server_sent_events_follow_the_standard() {
        let body = b": comment\r\nevent: a\r\ndata: one\r\ndata:two\r\n\r\nretry: 5\n\ndata: {\"x\":1}\n\nevent: cut\ndata: last";
        assert_eq!(
            server_sent_events(body),
            [event(Some("a"), "one\ntwo"), event(None, "{\"x\":1}"), event(Some("cut"), "last")]
        );
        // An event type without data is no event, and does not leak into the next.
        assert_eq!(server_sent_events(b"event: x\n\ndata: y\n\n"), [event(None, "y")]);
        assert_eq!(server_sent_events(b"\xff\xfe\n\n"), []);
    }

    #[test]
    fn a_stream_is_recognized_by_type_or_by_its_start() {
        let response = |headers: Vec<(String, String)>, body: &str| HttpResponse {
            status: 200,
            headers,
            body: body.as_bytes().to_vec(),
        };
        let typed = vec![("Content-Type".into(), " Text/Event-Stream;charset=utf-8".into())];
        assert!(is_event_stream(&response(typed, "")));
        assert!(is_event_stream(&response(vec![], "\n  event: x\n")));
        assert!(!is_event_stream(&response(vec![], "{\"data\": 1}")));
        assert!(!is_event_stream(&response(vec![], "")));
    }

    #[test]
    fn cached_tokens_never_exceed_the_prompt() {
        let value: Value = serde_json::from_str(
            r#"{"usage":{"prompt_tokens":5,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":9}}}"#,
        )
        .unwrap();
        let usage = openai_usage_from_json(&value).unwrap();
        assert_eq!((usage.input_tokens, usage.cached_input_tokens), (0, 5));
        assert!(
            openai_usage_from_json(&serde_json::json!({"usage": {"total_tokens": 3}})).is_none()
        );
        assert!(anthropic_usage_from_json(&serde_json::json!({"usage": null})).is_none());
    }

    #[test]
    fn provider_variants_of_the_openai_usage_shape() {
        let usage = |json: Value| {
            let usage = openai_usage_from_json(&json).unwrap();
            (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens)
        };
        // xAI leaves reasoning out of completion_tokens; its total shows it.
        let xai = serde_json::json!({"usage": {"prompt_tokens": 12, "completion_tokens": 1,
            "total_tokens": 241, "completion_tokens_details": {"reasoning_tokens": 228}}});
        assert_eq!(usage(xai), (12, 229, 0));
        // OpenAI (and DeepSeek) count it inside.
        let inside = serde_json::json!({"usage": {"prompt_tokens": 18, "completion_tokens": 345,
            "total_tokens": 363, "completion_tokens_details": {"reasoning_tokens": 315}}});
        assert_eq!(usage(inside), (18, 345, 0));
        let deepseek = serde_json::json!({"usage": {"prompt_tokens": 100, "completion_tokens": 2,
            "prompt_cache_hit_tokens": 64, "prompt_cache_miss_tokens": 36}});
        assert_eq!(usage(deepseek), (36, 2, 64));
        let mistral = serde_json::json!({"usage": {"prompt_tokens": 50, "completion_tokens": 5,
            "prompt_token_details": {"cached_tokens": 40}}});
        assert_eq!(usage(mistral), (10, 5, 40));
        let mistral_count = serde_json::json!({"usage": {"prompt_tokens": 50,
            "completion_tokens": 5, "num_cached_tokens": 20}});
        assert_eq!(usage(mistral_count), (30, 5, 20));
        let groq = serde_json::json!({"model": "llama-3.1-8b-instant",
            "x_groq": {"usage": {"prompt_tokens": 20, "completion_tokens": 5}}});
        assert_eq!(usage(groq), (20, 5, 0));
    }
}
