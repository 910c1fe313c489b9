//! Health rounds for operators: start one, follow its progress.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use super::extract::{OperatorCaller, PathId};
use crate::health::rounds::{RoundTarget, RoundTrigger};

/// `POST /v1/health/rounds`: probes every linked key of every scope now, in
/// the background. 202 with the new round; 200 with the running one when a
/// round is already under way.
pub async fn start(
    OperatorCaller(caller): OperatorCaller,
    State(state): State<ApiState>,
) -> Response {
    let (round, started) = state.health().start_round(RoundTarget::All, RoundTrigger::Operator);
    tracing::info!(round = round.id, started, by = %caller.token_id, "health round asked for");
    let status = if started { StatusCode::ACCEPTED } else { StatusCode::OK };
    (status, Json(json!({ "round": round, "started": started }))).into_response()
}

/// `GET /v1/health/rounds`: the kept rounds, newest first.
pub async fn list(OperatorCaller(_): OperatorCaller, State(state): State<ApiState>) -> Json<Value> {
    Json(json!({ "rounds": state.health().rounds() }))
}

/// `GET /v1/health/rounds/{id}`: one round's progress.
pub async fn show(
    OperatorCaller(_): OperatorCaller,
    State(state): State<ApiState>,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let round = id.parse::<u64>().ok().and_then(|id| state.health().round(id));
    match round {
        Some(round) => Ok(Json(json!({ "round": round }))),
        None => Err(ApiError::not_found(
            "round_not_found",
            "no kept health round has this id: GET /v1/health/rounds lists the kept ones",
        )),
    }
}
