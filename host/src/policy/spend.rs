//! Spend: the price a request is charged at, the most it can cost (what a
//! budget reserves before it is sent) and what its usage cost.
//!
//! A model the manifest prices is charged at its own price; a dated
//! snapshot of one (`gpt-5-2025-08-07`, `claude-sonnet-4-5-20250929`) at the
//! price of the model it snapshots; any other model at the provider's most
//! expensive priced default, and the answer says so. The most a request can
//! cost bounds its prompt by its body's length (a token covers at least one
//! byte of text) and its answer by the output cap it asks for.

use serde::Serialize;
use serde_json::Value;

use crate::provider::{MicroUsd, ModelInfo, TokenPrice, Usage};

/// How the price of a request was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", tag = "basis")]
pub enum PriceBasis {
    /// The model's own price in the manifest (or that of the model a dated
    /// snapshot names).
    Listed {
        /// The priced model.
        model: String,
    },
    /// The model is not priced (or not known): the provider's most
    /// expensive priced default stands in for it.
    MostExpensiveDefault {
        /// The model the request or its usage named, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        asked: Option<String>,
        /// The default whose price was used.
        priced_as: String,
    },
}

/// A price and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    /// Per million tokens.
    pub price: TokenPrice,
    /// Why this price.
    pub basis: PriceBasis,
}

/// The price `model` is charged at among a provider's `models`; `None` when
/// the provider prices no model at all (its spend cannot be costed).
pub fn price_for(models: &[ModelInfo], model: Option<&str>) -> Option<Priced> {
    if let Some(asked) = model
        && let Some(listed) = listed_model(models, asked)
        && let Some(price) = listed.price
    {
        return Some(Priced { price, basis: PriceBasis::Listed { model: listed.id.clone() } });
    }
    let dearest = models
        .iter()
        .filter_map(|info| Some((info, info.price?)))
        .max_by_key(|(_, price)| (price.output.0.saturating_add(price.input.0), price.input.0))?;
    Some(Priced {
        price: dearest.1,
        basis: PriceBasis::MostExpensiveDefault {
            asked: model.map(|name| name.chars().take(128).collect()),
            priced_as: dearest.0.id.clone(),
        },
    })
}

/// The model of `models` that `asked` names: the same id, or a dated
/// snapshot of it (`-YYYY-MM-DD` or `-YYYYMMDD` after the id).
fn listed_model<'a>(models: &'a [ModelInfo], asked: &str) -> Option<&'a ModelInfo> {
    if let Some(exact) = models.iter().find(|info| info.id == asked) {
        return Some(exact);
    }
    models
        .iter()
        .filter(|info| {
            asked
                .strip_prefix(info.id.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(is_date_suffix)
        })
        .max_by_key(|info| info.id.len())
}

/// `2025-08-07` or `20250807`.
fn is_date_suffix(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    match bytes.len() {
        8 => digits(0..8),
        10 => digits(0..4) && bytes[4] == b'-' && digits(5..7) && bytes[7] == b'-' && digits(8..10),
        _ => false,
    }
}

/// The model a request body names (`"model"`), if it is JSON and names one.
pub fn requested_model(body: &Value) -> Option<&str> {
    body.get("model")?.as_str()
}

/// The output-token cap a request body asks for, in any of the forms the
/// providers read: `max_tokens` (Chat Completions, Anthropic),
/// `max_completion_tokens` (OpenAI reasoning models), `max_output_tokens`
/// (Responses API), `generationConfig.maxOutputTokens` (Gemini),
/// `inferenceConfig.maxTokens` (Bedrock Converse). The largest when several
/// are given, since the provider may read any of them.
pub fn max_output_tokens(body: &Value) -> Option<u64> {
    [
        body.get("max_tokens"),
        body.get("max_completion_tokens"),
        body.get("max_output_tokens"),
        body.get("generationConfig").and_then(|config| config.get("maxOutputTokens")),
        body.get("inferenceConfig").and_then(|config| config.get("maxTokens")),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_u64)
    .max()
}

/// The most a request can cost at `price`: every byte of its body a prompt
/// token at the dearer of the input prices, plus `max_output` tokens
/// (rounded up, saturating).
pub fn max_cost(price: &TokenPrice, body_bytes: u64, max_output: u64) -> MicroUsd {
    let input = price.input.max(price.cached_input.unwrap_or(price.input));
    let bound = Usage {
        input_tokens: body_bytes,
        output_tokens: max_output,
        cached_input_tokens: 0,
        model: None,
    };
    TokenPrice { input, output: price.output, cached_input: None }.cost(&bound)
}

/// What a request's reservation holds, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    /// The amount reserved.
    pub amount: MicroUsd,
    /// The price it was computed at; `None` when the request names no
    /// output cap and the operator's default reservation stands in.
    pub priced: Option<Priced>,
}

/// The reservation a request needs: its [`max_cost`] when the provider
/// prices its model and the body caps its output, else `default`.
pub fn estimate(models: &[ModelInfo], body: &[u8], default: MicroUsd) -> Estimate {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let model = json.as_ref().and_then(requested_model);
    let cap = json.as_ref().and_then(max_output_tokens);
    match (price_for(models, model), cap) {
        (Some(priced), Some(cap)) => Estimate {
            amount: max_cost(&priced.price, body.len() as u64, cap),
            priced: Some(priced),
        },
        _ => Estimate { amount: default, priced: None },
    }
}

/// A dollar amount as given in configuration or an API body, in micro-USD:
/// finite, not negative, at most a billion dollars.
pub fn usd_to_micro(usd: f64) -> Option<MicroUsd> {
    (usd.is_finite() && (0.0..=1e9).contains(&usd)).then(|| MicroUsd((usd * 1e6).round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ModelClass;

    fn model(id: &str, price: Option<(u64, u64)>) -> ModelInfo {
        ModelInfo {
            id: id.into(),
            class: ModelClass::Chat,
            display_name: id.into(),
            context_window: None,
            price: price.map(|(input, output)| TokenPrice {
                input: MicroUsd(input),
                output: MicroUsd(output),
                cached_input: None,
            }),
        }
    }

    fn openai() -> Vec<ModelInfo> {
        vec![
            model("gpt-5", Some((1_250_000, 10_000_000))),
            model("gpt-5-mini", Some((250_000, 2_000_000))),
            model("gpt-4.1", Some((2_000_000, 8_000_000))),
            model("unpriced", None),
        ]
    }

    #[test]
    fn a_listed_model_and_its_dated_snapshots_take_its_price() {
        for (asked, listed) in [
            ("gpt-5", "gpt-5"),
            ("gpt-5-2025-08-07", "gpt-5"),
            ("gpt-5-mini", "gpt-5-mini"),
            ("gpt-5-mini-20250807", "gpt-5-mini"),
        ] {
            let priced = price_for(&openai(), Some(asked)).unwrap();
            assert_eq!(priced.basis, PriceBasis::Listed { model: listed.into() }, "{asked}");
        }
    }

    #[test]
    fn an_unknown_or_unpriced_model_is_charged_as_the_dearest_default_and_says_so() {
        for asked in [Some("gpt-5-nano"), Some("gpt-5-2025"), Some("unpriced"), None] {
            let priced = price_for(&openai(), asked).unwrap();
            assert_eq!(priced.price.output, MicroUsd(10_000_000), "{asked:?}");
            assert_eq!(
                priced.basis,
                PriceBasis::MostExpensiveDefault {
                    asked: asked.map(str::to_owned),
                    priced_as: "gpt-5".into()
                }
            );
        }
        assert_eq!(price_for(&[model("a", None)], Some("a")), None);
        assert_eq!(price_for(&[], None), None);
    }

    #[test]
    fn only_a_date_makes_a_snapshot() {
        for suffix in ["2025-08-07", "20250807"] {
            assert!(is_date_suffix(suffix), "{suffix}");
        }
        for suffix in ["5", "mini", "2025", "2025-8-07", "2025_08_07", "202508070", ""] {
            assert!(!is_date_suffix(suffix), "{suffix}");
        }
    }

    #[test]
    fn the_output_cap_is_read_in_every_providers_form() {
        for (body, cap) in [
            (r#"{"max_tokens":100}"#, Some(100)),
            (r#"{"max_completion_tokens":200}"#, Some(200)),
            (r#"{"max_output_tokens":300}"#, Some(300)),
            (r#"{"generationConfig":{"maxOutputTokens":400}}"#, Some(400)),
            (r#"{"inferenceConfig":{"maxTokens":500}}"#, Some(500)),
            (r#"{"max_tokens":10,"max_completion_tokens":20}"#, Some(20)),
            (r#"{"max_tokens":-1}"#, None),
            (r#"{"max_tokens":"100"}"#, None),
            (r#"{"model":"gpt-5"}"#, None),
            ("[]", None),
        ] {
            let value: Value = serde_json::from_str(body).unwrap();
            assert_eq!(max_output_tokens(&value), cap, "{body}");
        }
    }

    #[test]
    fn the_most_a_request_costs_bounds_the_prompt_by_its_bytes() {
        // 1,000 bytes at $1.25/M and 100 output tokens at $10/M: 1,250 + 1,000 micro-USD.
        let price = openai()[0].price.unwrap();
        assert_eq!(max_cost(&price, 1_000, 100), MicroUsd(2_250));
        // A cached-input price above the input price is the one used.
        let odd = TokenPrice { cached_input: Some(MicroUsd(2_000_000)), ..price };
        assert_eq!(max_cost(&odd, 1_000, 0), MicroUsd(2_000));
        // Any real usage of that request costs no more than the bound.
        let usage = Usage { input_tokens: 1_000, output_tokens: 100, ..Usage::default() };
        assert!(price.cost(&usage) <= max_cost(&price, 1_000, 100));
        assert_eq!(max_cost(&price, u64::MAX, u64::MAX), MicroUsd(u64::MAX));
    }

    #[test]
    fn a_request_without_an_output_cap_or_a_price_reserves_the_default() {
        let body = br#"{"model":"gpt-5-mini","max_tokens":1000}"#;
        let estimate = estimate(&openai(), body, MicroUsd(500_000));
        assert_eq!(
            estimate.amount,
            MicroUsd((body.len() as u64 * 250_000).div_ceil(1_000_000) + 2_000)
        );
        let uncapped = super::estimate(&openai(), br#"{"model":"gpt-5"}"#, MicroUsd(500_000));
        assert_eq!(uncapped, Estimate { amount: MicroUsd(500_000), priced: None });
        let not_json = super::estimate(&openai(), b"max_tokens=1", MicroUsd(7));
        assert_eq!(not_json.amount, MicroUsd(7));
        let unpriced = super::estimate(&[model("a", None)], br#"{"max_tokens":1}"#, MicroUsd(9));
        assert_eq!(unpriced.amount, MicroUsd(9));
    }

    #[test]
    fn dollar_amounts_must_be_finite_and_in_range() {
        assert_eq!(usd_to_micro(25.0), Some(MicroUsd(25_000_000)));
        assert_eq!(usd_to_micro(0.0000015), Some(MicroUsd(2)));
        assert_eq!(usd_to_micro(0.0), Some(MicroUsd(0)));
        for bad in [-0.01, f64::NAN, f64::INFINITY, 1e9 + 1.0] {
            assert_eq!(usd_to_micro(bad), None, "{bad}");
        }
    }
}
