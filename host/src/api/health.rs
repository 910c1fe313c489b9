//! Health rounds for operators: start one, follow its progress.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use super::extract::params::RoundIdParam;
use super::extract::{OperatorCaller, PathId};
use crate::health::rounds::{RoundTarget, RoundTrigger, RoundView};

/// The example round of the answers below.
macro_rules! example_round {
    ($state:literal, $finished:tt, $probed:literal, $verdicts:tt) => {
        serde_json::json!({
            "id": 2, "target": { "kind": "all" }, "trigger": "operator", "state": $state,
            "started_at": 1767225600000u64, "finished_at": $finished,
            "keys": 3, "probed": $probed, "shared": 0, "verdicts": $verdicts, "error": null
        })
    };
}

/// The answer of `POST /v1/health/rounds`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedRound {
    /// The round: the new one, or the one already running.
    pub round: RoundView,
    /// Whether this request started it.
    pub started: bool,
}

/// `POST /v1/health/rounds`: probes every linked key of every scope now, in
/// the background. 202 with the new round; 200 with the running one when a
/// round is already under way.
#[utoipa::path(
    post,
    path = "/v1/health/rounds",
    tag = "health",
    operation_id = "startHealthRound",
    summary = "Start a health round",
    description = "Probes every linked key of every scope now, in the background; badges change as each probe finishes. When a round is already running, answers 200 with it instead of starting another. Operator token.",
    responses(
        (status = 202, description = "Started.", body = StartedRound,
            example = json!({ "round": example_round!("running", null, 0, {}), "started": true })),
        (status = 200, description = "A round was running already: that one.", body = StartedRound,
            example = json!({ "round": example_round!("running", null, 1, { "healthy": 1 }), "started": false })),
    ),
)]
pub async fn start(
    OperatorCaller(caller): OperatorCaller,
    State(state): State<ApiState>,
) -> (StatusCode, Json<StartedRound>) {
    let (round, started) = state.health().start_round(RoundTarget::All, RoundTrigger::Operator);
    tracing::info!(round = round.id, started, by = %caller.token_id, "health round asked for");
    let status = if started { StatusCode::ACCEPTED } else { StatusCode::OK };
    (status, Json(StartedRound { round, started }))
}

/// The answer of `GET /v1/health/rounds`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoundList {
    /// The kept rounds, newest first.
    pub rounds: Vec<RoundView>,
}

/// `GET /v1/health/rounds`: the kept rounds, newest first.
#[utoipa::path(
    get,
    path = "/v1/health/rounds",
    tag = "health",
    operation_id = "listHealthRounds",
    summary = "Health rounds",
    description = "The kept rounds (the last 16 and every running one), newest first: what each probes (every key, or one provider's keys in a scope after a change), why it started, how many keys it has probed and their verdicts, and how many it skipped because another node sharing the database probed them in this interval (`shared`: rounds at start and on the schedule only). Operator token.",
    responses((status = 200, description = "The rounds.", body = RoundList, example = json!({
        "rounds": [example_round!("done", 1767225601250u64, 3, { "healthy": 2, "invalid-credential": 1 })]
    }))),
)]
pub async fn list(
    OperatorCaller(_): OperatorCaller,
    State(state): State<ApiState>,
) -> Json<RoundList> {
    Json(RoundList { rounds: state.health().rounds() })
}

/// The answer of `GET /v1/health/rounds/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoundAnswer {
    /// The round.
    pub round: RoundView,
}

/// `GET /v1/health/rounds/{id}`: one round's progress.
#[utoipa::path(
    get,
    path = "/v1/health/rounds/{id}",
    tag = "health",
    operation_id = "getHealthRound",
    summary = "One health round",
    description = "Its progress: keys, probed, verdicts so far, state. Operator token.",
    params(RoundIdParam),
    responses((status = 200, description = "The round.", body = RoundAnswer, example = json!({
        "round": example_round!("done", 1767225601250u64, 3, { "healthy": 2, "invalid-credential": 1 })
    }))),
)]
pub async fn show(
    OperatorCaller(_): OperatorCaller,
    State(state): State<ApiState>,
    PathId(id): PathId,
) -> Result<Json<RoundAnswer>, ApiError> {
    let round = id.parse::<u64>().ok().and_then(|id| state.health().round(id));
    match round {
        Some(round) => Ok(Json(RoundAnswer { round })),
        None => Err(ApiError::not_found(
            "round_not_found",
            "no kept health round has this id: GET /v1/health/rounds lists the kept ones",
        )),
    }
}
