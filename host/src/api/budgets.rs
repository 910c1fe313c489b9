//! Budgets and spend of a provider key or a whole scope
//! (`.../providers/{provider}/keys/{key}/budget`, `.../budget`, and the
//! `.../spend` of both). Setting or removing a budget needs an admin token
//! of the scope or an operator token; an agent token reads. A key's routes
//! need the provider loaded and (to set or read) the key's row, as the other
//! key routes do; removing a key's budget does not need the row, so the
//! budget of a key whose variable was unset can still be removed.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::params::{KeyParam, ProviderParam};
use super::extract::{AdminScoped, JsonBody, Scoped};
use super::scopes::{find_key, plugin};
use super::{ApiState, audit};
use crate::provider::MicroUsd;
use crate::store::{
    AuditAction, Budget, BudgetStatus, BudgetTarget, Period, SpendWindows, Windows, now_millis,
};

/// The largest budget accepted, in US dollars.
pub const MAX_LIMIT_USD: f64 = 1e9;

/// The body of `PUT .../budget`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBudget {
    /// The cap, in US dollars: a finite number from 0 to 1e9 (micro-dollar
    /// precision; 0 refuses every reservation).
    #[schema(minimum = 0, maximum = 1000000000)]
    limit_usd: f64,
    /// Which window it caps: the UTC `day`, the UTC `month`, or the `total`.
    #[schema(value_type = Period)]
    period: String,
}

/// What was spent in the current windows, in US dollars.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpendUsd {
    /// In the current UTC day.
    #[schema(value_type = f64)]
    pub day_usd: MicroUsd,
    /// In the current UTC month.
    #[schema(value_type = f64)]
    pub month_usd: MicroUsd,
    /// Ever.
    #[schema(value_type = f64)]
    pub total_usd: MicroUsd,
}

impl From<SpendWindows> for SpendUsd {
    fn from(spend: SpendWindows) -> Self {
        SpendUsd { day_usd: spend.day, month_usd: spend.month, total_usd: spend.total }
    }
}

/// A budget and what counts against it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetAnswer {
    /// `organization/project/environment` for a scope,
    /// `organization/project/environment/provider/KEY_ID` for a key.
    pub target: String,
    /// The cap in US dollars (`null`: no budget).
    #[schema(value_type = Option<f64>)]
    pub limit_usd: Option<MicroUsd>,
    /// The window it caps (`null`: no budget).
    pub period: Option<Period>,
    /// Spent in the period's current window (the total without a budget).
    #[schema(value_type = f64)]
    pub spent_usd: MicroUsd,
    /// Held by requests in flight (live reservations).
    #[schema(value_type = f64)]
    pub reserved_usd: MicroUsd,
    /// The cap less what is spent and reserved, never below 0 (`null`: no
    /// budget).
    #[schema(value_type = Option<f64>)]
    pub left_usd: Option<MicroUsd>,
    /// Spent in each current window.
    pub spend: SpendUsd,
}

fn budget_answer(target: &BudgetTarget, status: BudgetStatus) -> BudgetAnswer {
    BudgetAnswer {
        target: target.storage_key(),
        limit_usd: status.budget.map(|budget| budget.limit),
        period: status.budget.map(|budget| budget.period),
        spent_usd: status.spent,
        reserved_usd: status.reserved,
        left_usd: status.left(),
        spend: status.spend.into(),
    }
}

/// What a target spent in the current windows.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpendAnswer {
    /// As in [`BudgetAnswer::target`].
    pub target: String,
    /// The current UTC day (`2026-12-03`).
    pub day: String,
    /// The current UTC month (`2026-12`).
    pub month: String,
    /// Spent in each.
    pub spend: SpendUsd,
}

/// The budget a body asks for, or 400 `invalid_budget` saying which field
/// is wrong and what it takes.
fn parse_budget(body: &SetBudget) -> Result<Budget, ApiError> {
    let limit = body.limit_usd;
    if !limit.is_finite() || !(0.0..=MAX_LIMIT_USD).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_budget",
            "invalid limit_usd: expected a number of US dollars from 0 to 1000000000",
        ));
    }
    let period: Period = body.period.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_budget",
            "invalid period: expected \"day\", \"month\" or \"total\"",
        )
    })?;
    let micros = (limit * 1_000_000.0).round() as u64;
    Ok(Budget { limit: MicroUsd(micros), period })
}

/// The key of the path, after checking its provider is loaded and (when
/// `row_needed`) the key has a row in the scope.
async fn key_of(
    state: &ApiState,
    scoped: &Scoped,
    row_needed: bool,
) -> Result<BudgetTarget, ApiError> {
    let provider = plugin(state, scoped.param("provider"))?.slug().to_owned();
    let key = scoped.param("key").to_owned();
    if row_needed {
        find_key(state, &scoped.scope, &provider, &key).await?;
    } else {
        super::scopes::check_key_name(&key)?;
    }
    Ok(BudgetTarget::key(scoped.scope.clone(), provider, key))
}

async fn status(state: &ApiState, target: &BudgetTarget) -> Result<Json<BudgetAnswer>, ApiError> {
    let status = state.resolver().store().budget_status(target, now_millis()).await?;
    Ok(Json(budget_answer(target, status)))
}

/// Sets (`Some`) or removes (`None`) the budget `checked` holds, under its
/// audit record; a `checked` error is recorded as refused.
async fn set(
    state: &ApiState,
    scoped: &Scoped,
    checked: Result<(BudgetTarget, Option<Budget>), ApiError>,
) -> Result<Json<BudgetAnswer>, ApiError> {
    let removing = matches!(checked, Ok((_, None)));
    let action = if removing { AuditAction::BudgetRemove } else { AuditAction::BudgetSet };
    let mut draft = audit::draft(action, &scoped.caller).scope(&scoped.scope);
    let key = scoped.params.contains_key("key");
    if key {
        draft = draft.provider(scoped.param("provider")).variable(scoped.param("key"));
    }
    let (target, budget) = state.refuse_on(&draft, checked).await?;
    if let Some(budget) = &budget {
        draft = draft
            .detail("limit_usd", format!("{:.6}", budget.limit.0 as f64 / 1_000_000.0))
            .detail("period", budget.period.as_str());
    }
    state
        .audited(&draft, async { Ok(state.resolver().store().set_budget(&target, budget).await?) })
        .await?;
    status(state, &target).await
}

async fn spend(state: &ApiState, target: &BudgetTarget) -> Result<Json<SpendAnswer>, ApiError> {
    let now = now_millis();
    let status = state.resolver().store().budget_status(target, now).await?;
    let Windows { day, month } = Windows::of(now);
    Ok(Json(SpendAnswer { target: target.storage_key(), day, month, spend: status.spend.into() }))
}

/// The example answer of the key's budget routes.
macro_rules! example_key_budget {
    () => {
        serde_json::json!({
            "target": "acme/shop/prod/openai/OPENAI_API_KEY", "limit_usd": 25.0,
            "period": "month", "spent_usd": 3.5, "reserved_usd": 0.25, "left_usd": 21.25,
            "spend": { "day_usd": 0.5, "month_usd": 3.5, "total_usd": 12.0 }
        })
    };
}

/// The example answer of the scope's budget routes.
macro_rules! example_scope_budget {
    () => {
        serde_json::json!({
            "target": "acme/shop/prod", "limit_usd": 100.0, "period": "day",
            "spent_usd": 0.5, "reserved_usd": 0.25, "left_usd": 99.25,
            "spend": { "day_usd": 0.5, "month_usd": 3.5, "total_usd": 12.0 }
        })
    };
}

/// `PUT .../providers/{provider}/keys/{key}/budget`.
#[utoipa::path(
    put,
    path = scoped!("/providers/{provider}/keys/{key}/budget"),
    tag = "budgets",
    operation_id = "setKeyBudget",
    summary = "Set a key's budget",
    description = "Caps what requests through the key may spend in the current UTC day, UTC month, or in total; it replaces the key's budget, if any. A request reserves its most expensive outcome against the key's budget and its scope's, and is refused when that does not fit. Admin token of the scope or operator token.",
    params(ProviderParam, KeyParam),
    request_body(content = SetBudget, description = "The cap and its period.",
        example = json!({ "limit_usd": 25.0, "period": "month" })),
    responses((status = 200, description = "The budget and what counts against it now.",
        body = BudgetAnswer, example = json!(example_key_budget!()))),
)]
pub async fn set_key_budget(
    AdminScoped(scoped): AdminScoped,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<SetBudget>,
) -> Result<Json<BudgetAnswer>, ApiError> {
    let checked = async { Ok((key_of(&state, &scoped, true).await?, Some(parse_budget(&body)?))) };
    set(&state, &scoped, checked.await).await
}

/// `GET .../providers/{provider}/keys/{key}/budget`.
#[utoipa::path(
    get,
    path = scoped!("/providers/{provider}/keys/{key}/budget"),
    tag = "budgets",
    operation_id = "keyBudget",
    summary = "A key's budget",
    description = "The key's budget (`null` fields without one), what is spent in its period's current window, what requests in flight hold, and what is left.",
    params(ProviderParam, KeyParam),
    responses((status = 200, description = "The budget and what counts against it now.",
        body = BudgetAnswer, example = json!(example_key_budget!()))),
)]
pub async fn key_budget(
    scoped: Scoped,
    State(state): State<ApiState>,
) -> Result<Json<BudgetAnswer>, ApiError> {
    let target = key_of(&state, &scoped, true).await?;
    status(&state, &target).await
}

/// `DELETE .../providers/{provider}/keys/{key}/budget`.
#[utoipa::path(
    delete,
    path = scoped!("/providers/{provider}/keys/{key}/budget"),
    tag = "budgets",
    operation_id = "removeKeyBudget",
    summary = "Remove a key's budget",
    description = "The key is no longer capped on its own (its scope's budget still applies); its spend is kept. Works for a key whose variable is unset too. Admin token of the scope or operator token.",
    params(ProviderParam, KeyParam),
    responses((status = 200, description = "The key without a budget.", body = BudgetAnswer,
        example = json!({
            "target": "acme/shop/prod/openai/OPENAI_API_KEY", "limit_usd": null,
            "period": null, "spent_usd": 12.0, "reserved_usd": 0.0, "left_usd": null,
            "spend": { "day_usd": 0.5, "month_usd": 3.5, "total_usd": 12.0 }
        }))),
)]
pub async fn remove_key_budget(
    AdminScoped(scoped): AdminScoped,
    State(state): State<ApiState>,
) -> Result<Json<BudgetAnswer>, ApiError> {
    let checked = key_of(&state, &scoped, false).await.map(|target| (target, None));
    set(&state, &scoped, checked).await
}

/// `PUT .../budget`.
#[utoipa::path(
    put,
    path = scoped!("/budget"),
    tag = "budgets",
    operation_id = "setScopeBudget",
    summary = "Set a scope's budget",
    description = "Caps what requests through every key of the scope together may spend in the current UTC day, UTC month, or in total; it replaces the scope's budget, if any. Admin token of the scope or operator token.",
    request_body(content = SetBudget, description = "The cap and its period.",
        example = json!({ "limit_usd": 100.0, "period": "day" })),
    responses((status = 200, description = "The budget and what counts against it now.",
        body = BudgetAnswer, example = json!(example_scope_budget!()))),
)]
pub async fn set_scope_budget(
    AdminScoped(scoped): AdminScoped,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<SetBudget>,
) -> Result<Json<BudgetAnswer>, ApiError> {
    let checked =
        parse_budget(&body).map(|budget| (BudgetTarget::Scope(scoped.scope.clone()), Some(budget)));
    set(&state, &scoped, checked).await
}

/// `GET .../budget`.
#[utoipa::path(
    get,
    path = scoped!("/budget"),
    tag = "budgets",
    operation_id = "scopeBudget",
    summary = "A scope's budget",
    description = "The scope's budget (`null` fields without one) and what every key of the scope together spent and holds against it.",
    responses((status = 200, description = "The budget and what counts against it now.",
        body = BudgetAnswer, example = json!(example_scope_budget!()))),
)]
pub async fn scope_budget(
    scoped: Scoped,
    State(state): State<ApiState>,
) -> Result<Json<BudgetAnswer>, ApiError> {
    status(&state, &BudgetTarget::Scope(scoped.scope)).await
}

/// `DELETE .../budget`.
#[utoipa::path(
    delete,
    path = scoped!("/budget"),
    tag = "budgets",
    operation_id = "removeScopeBudget",
    summary = "Remove a scope's budget",
    description = "The scope is no longer capped as a whole (its keys' budgets still apply); its spend is kept. Admin token of the scope or operator token.",
    responses((status = 200, description = "The scope without a budget.", body = BudgetAnswer,
        example = json!({
            "target": "acme/shop/prod", "limit_usd": null, "period": null,
            "spent_usd": 12.0, "reserved_usd": 0.0, "left_usd": null,
            "spend": { "day_usd": 0.5, "month_usd": 3.5, "total_usd": 12.0 }
        }))),
)]
pub async fn remove_scope_budget(
    AdminScoped(scoped): AdminScoped,
    State(state): State<ApiState>,
) -> Result<Json<BudgetAnswer>, ApiError> {
    let checked = Ok((BudgetTarget::Scope(scoped.scope.clone()), None));
    set(&state, &scoped, checked).await
}

/// The example answer of the spend routes.
macro_rules! example_spend {
    ($target:literal) => {
        serde_json::json!({
            "target": $target, "day": "2026-12-03", "month": "2026-12",
            "spend": { "day_usd": 0.5, "month_usd": 3.5, "total_usd": 12.0 }
        })
    };
}

/// `GET .../providers/{provider}/keys/{key}/spend`.
#[utoipa::path(
    get,
    path = scoped!("/providers/{provider}/keys/{key}/spend"),
    tag = "budgets",
    operation_id = "keySpend",
    summary = "What a key spent",
    description = "What requests through the key spent in the current UTC day and month, and in total, in US dollars.",
    params(ProviderParam, KeyParam),
    responses((status = 200, description = "The spend.", body = SpendAnswer,
        example = json!(example_spend!("acme/shop/prod/openai/OPENAI_API_KEY")))),
)]
pub async fn key_spend(
    scoped: Scoped,
    State(state): State<ApiState>,
) -> Result<Json<SpendAnswer>, ApiError> {
    let target = key_of(&state, &scoped, true).await?;
    spend(&state, &target).await
}

/// `GET .../spend`.
#[utoipa::path(
    get,
    path = scoped!("/spend"),
    tag = "budgets",
    operation_id = "scopeSpend",
    summary = "What a scope spent",
    description = "What requests through every key of the scope spent in the current UTC day and month, and in total, in US dollars.",
    responses((status = 200, description = "The spend.", body = SpendAnswer,
        example = json!(example_spend!("acme/shop/prod")))),
)]
pub async fn scope_spend(
    scoped: Scoped,
    State(state): State<ApiState>,
) -> Result<Json<SpendAnswer>, ApiError> {
    spend(&state, &BudgetTarget::Scope(scoped.scope)).await
}
