//! Reading the tokens a response consumed, from a JSON body or a stream of
//! server-sent events, in the OpenAI, Anthropic, Gemini and Bedrock Converse
//! shapes, and the input tokens of an embeddings or rerank answer.
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

/// Whether `response` is a 2xx: a failed request reports no usage, whatever
/// its body says.
pub fn succeeded(response: &HttpResponse) -> bool {
    (200..300).contains(&response.status)
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
    if !succeeded(response) {
        return None;
    }
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
    if !succeeded(response) {
        return None;
    }
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

/// The usage in one Gemini `GenerateContentResponse` (Google AI and Vertex
/// AI): `usageMetadata.promptTokenCount` includes the cached tokens
/// (`cachedContentTokenCount`); output is the candidates' tokens plus the
/// thinking tokens (`thoughtsTokenCount`, billed as output). The model is
/// `modelVersion`. `None` without usage.
pub fn gemini_usage_from_json(value: &Value) -> Option<Usage> {
    let meta = value.get("usageMetadata").filter(|meta| meta.is_object())?;
    let count = |name: &str| meta[name].as_u64();
    let prompt = count("promptTokenCount");
    let candidates = count("candidatesTokenCount");
    if prompt.is_none() && candidates.is_none() {
        return None;
    }
    let cached = count("cachedContentTokenCount").unwrap_or(0).min(prompt.unwrap_or(0));
    Some(Usage {
        input_tokens: prompt.unwrap_or(0) - cached,
        output_tokens: candidates
            .unwrap_or(0)
            .saturating_add(count("thoughtsTokenCount").unwrap_or(0)),
        cached_input_tokens: cached,
        model: value["modelVersion"].as_str().map(str::to_owned),
    })
}

/// The model a Gemini request's URL names: `.../models/<model>:<method>`.
fn gemini_model_in_url(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let (_, rest) = path.rsplit_once("/models/")?;
    let model = rest.split(':').next()?;
    (!model.is_empty() && !model.contains('/')).then(|| model.to_owned())
}

/// The usage of a Gemini answer to `request`: a JSON body, a streamed JSON
/// array (`streamGenerateContent`) or server-sent events (`?alt=sse`); in a
/// stream the last chunk carrying `usageMetadata` holds the totals. The
/// model is the answer's, else the one the URL names. `None` without usage.
pub fn read_gemini_usage(request: &HttpRequest, response: &HttpResponse) -> Option<Usage> {
    if !succeeded(response) {
        return None;
    }
    let mut usage = if is_event_stream(response) {
        server_sent_events(&response.body).iter().rev().find_map(|event| {
            gemini_usage_from_json(&serde_json::from_str::<Value>(&event.data).ok()?)
        })
    } else {
        match serde_json::from_slice::<Value>(&response.body).ok()? {
            Value::Array(chunks) => chunks.iter().rev().find_map(gemini_usage_from_json),
            value => gemini_usage_from_json(&value),
        }
    }?;
    usage.model = usage.model.or_else(|| gemini_model_in_url(&request.url));
    Some(usage)
}

/// The usage in a Bedrock answer: Converse's `usage` (`inputTokens`,
/// `outputTokens`, `cacheReadInputTokens`, `cacheWriteInputTokens`), or an
/// InvokeModel answer of an Anthropic model (Anthropic's shape). `None`
/// without usage.
pub fn bedrock_usage_from_json(value: &Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|usage| usage.is_object())?;
    if usage.get("input_tokens").is_some() || usage.get("output_tokens").is_some() {
        return anthropic_usage_from_json(value);
    }
    let count = |name: &str| usage[name].as_u64();
    let (input, output) = (count("inputTokens"), count("outputTokens"));
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input_tokens: input
            .unwrap_or(0)
            .saturating_add(count("cacheWriteInputTokens").unwrap_or(0)),
        output_tokens: output.unwrap_or(0),
        cached_input_tokens: count("cacheReadInputTokens").unwrap_or(0),
        model: None,
    })
}

/// The model id a Bedrock runtime URL names (`/model/<id>/converse`),
/// percent-decoded (`anthropic.claude-3-haiku-20240307-v1%3A0` is
/// `...-v1:0`).
pub fn bedrock_model_in_url(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let (_, rest) = path.split_once("/model/")?;
    let encoded = rest.split('/').next()?;
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut input = encoded.bytes();
    while let Some(byte) = input.next() {
        if byte == b'%' {
            let hex = [input.next()?, input.next()?];
            bytes.push(u8::from_str_radix(core::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(byte);
        }
    }
    String::from_utf8(bytes).ok().filter(|model| !model.is_empty())
}

/// The input tokens of an embeddings or rerank answer that reports only a
/// total (`usage.total_tokens`, Voyage's shape); the model is the answer's,
/// else the request's. `None` without usage.
pub fn read_total_tokens_usage(request: &HttpRequest, response: &HttpResponse) -> Option<Usage> {
    if !succeeded(response) {
        return None;
    }
    let value: Value = serde_json::from_slice(&response.body).ok()?;
    let total = value["usage"]["total_tokens"].as_u64()?;
    Some(Usage {
        input_tokens: total,
        output_tokens: 0,
        cached_input_tokens: 0,
        model: value["model"].as_str().map(str::to_owned).or_else(|| requested_model(request)),
    })
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

    fn request(url: &str, body: &str) -> HttpRequest {
        HttpRequest {
            method: crate::Method::Post,
            url: url.to_owned(),
            headers: Vec::new(),
            body: Some(body.as_bytes().to_vec()),
        }
    }

    fn answer(content_type: &str, body: &str) -> HttpResponse {
        HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    fn counts(usage: &Usage) -> (u64, u64, u64, Option<&str>) {
        (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.model.as_deref())
    }

    #[test]
    fn gemini_usage_from_a_body_an_array_and_an_event_stream() {
        let url = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent";
        let body = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}],
            "usageMetadata":{"promptTokenCount":120,"candidatesTokenCount":7,"thoughtsTokenCount":30,
            "cachedContentTokenCount":100,"totalTokenCount":157},"modelVersion":"gemini-2.5-flash-001"}"#;
        let usage =
            read_gemini_usage(&request(url, "{}"), &answer("application/json", body)).unwrap();
        assert_eq!(counts(&usage), (20, 37, 100, Some("gemini-2.5-flash-001")));
        // streamGenerateContent without alt=sse: a JSON array, totals in the last chunk.
        let stream = r#"[{"candidates":[],"usageMetadata":{"promptTokenCount":9}},
            {"candidates":[],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":4}}]"#;
        let streamed = url.replace(":generateContent", ":streamGenerateContent");
        let usage =
            read_gemini_usage(&request(&streamed, "{}"), &answer("application/json", stream))
                .unwrap();
        assert_eq!(counts(&usage), (9, 4, 0, Some("gemini-2.5-flash")));
        let sse = "data: {\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":1}}\r\n\r\ndata: {\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":6},\"modelVersion\":\"gemini-2.5-pro\"}\r\n\r\n";
        let usage = read_gemini_usage(
            &request(&format!("{streamed}?alt=sse"), "{}"),
            &answer("text/event-stream", sse),
        )
        .unwrap();
        assert_eq!(counts(&usage), (9, 6, 0, Some("gemini-2.5-pro")));
        // Vertex AI's URL names the model the same way.
        let vertex = "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent";
        assert_eq!(gemini_model_in_url(vertex).as_deref(), Some("gemini-2.0-flash"));
        assert!(
            read_gemini_usage(
                &request(url, "{}"),
                &answer("application/json", "{\"candidates\":[]}")
            )
            .is_none()
        );
    }

    #[test]
    fn bedrock_usage_from_converse_and_from_an_anthropic_model() {
        let converse = serde_json::json!({"output": {}, "usage": {"inputTokens": 30, "outputTokens": 5,
            "cacheReadInputTokens": 12, "cacheWriteInputTokens": 3, "totalTokens": 50}});
        let usage = bedrock_usage_from_json(&converse).unwrap();
        assert_eq!(counts(&usage), (33, 5, 12, None));
        let invoke = serde_json::json!({"type": "message", "model": "claude-3-haiku-20240307",
            "usage": {"input_tokens": 10, "output_tokens": 2}});
        assert_eq!(
            counts(&bedrock_usage_from_json(&invoke).unwrap()),
            (10, 2, 0, Some("claude-3-haiku-20240307"))
        );
        assert!(bedrock_usage_from_json(&serde_json::json!({"usage": {}})).is_none());
        let url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
        assert_eq!(
            bedrock_model_in_url(url).as_deref(),
            Some("anthropic.claude-3-haiku-20240307-v1:0")
        );
        assert_eq!(bedrock_model_in_url("https://x/model/bad%zz/converse"), None);
    }

    #[test]
    fn embeddings_report_their_total_as_input() {
        let body =
            r#"{"object":"list","data":[],"model":"voyage-3.5","usage":{"total_tokens":42}}"#;
        let usage = read_total_tokens_usage(
            &request("https://api.voyageai.com/v1/embeddings", "{}"),
            &answer("application/json", body),
        )
        .unwrap();
        assert_eq!(counts(&usage), (42, 0, 0, Some("voyage-3.5")));
        let unnamed = read_total_tokens_usage(
            &request("https://api.voyageai.com/v1/rerank", r#"{"model":"rerank-2.5"}"#),
            &answer("application/json", r#"{"usage":{"total_tokens":7}}"#),
        )
        .unwrap();
        assert_eq!(unnamed.model.as_deref(), Some("rerank-2.5"));
        assert!(
            read_total_tokens_usage(&request("u", "{}"), &answer("application/json", "{}"))
                .is_none()
        );
    }
}
