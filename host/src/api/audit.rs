//! The audit trail through the API: `GET /v1/audit` (an operator, any scope;
//! an admin token, its own scope), and what every audited handler shares:
//! who the caller is in a record, and running a change under its record
//! (refused → a `refused` record; allowed → an `ok` record first, then the
//! change; a change the store then failed → a `failed` record).

use std::future::Future;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::auth::{Caller, Grant, Pins, TokenInfo};
use super::error::ApiError;
use super::extract::{Authed, QueryParams};
use crate::audit::{AuditDraft, AuditError};
use crate::provider::HttpRequest;
use crate::resolution::leases::Lease;
use crate::scope::Scope;
use crate::store::audit::{AUDIT_ID_LEN, ActorKind, MAX_AUDIT_PAGE};
use crate::store::{AuditAction, AuditActor, AuditQuery, AuditRecord, ProviderVars, UnixMillis};
use crate::store::{key_var, variant_of};

/// The records' actor for `caller`: its kind and its token's public id.
pub fn actor(caller: &Caller) -> AuditActor {
    let kind = match caller.grant {
        Grant::Operator => ActorKind::Operator,
        Grant::Admin(_) => ActorKind::Admin,
        Grant::Agent(_) => ActorKind::Agent,
    };
    AuditActor { kind, token_id: Some(caller.token_id.clone()) }
}

/// A draft of `action` by `caller`.
pub fn draft(action: AuditAction, caller: &Caller) -> AuditDraft {
    AuditDraft::new(action, actor(caller))
}

/// `draft` with the provider and variant `name` is a key variable of, if
/// it is one of a loaded plugin.
pub fn key_fields(state: &ApiState, draft: AuditDraft, name: &str) -> AuditDraft {
    let manifests = state.resolver().registry().iter().map(|plugin| plugin.manifest());
    draft.linked(name, &ProviderVars::from_manifests(manifests))
}

/// `draft` with what `lease` holds: the provider, the key, its variant (from
/// the provider's own manifest: no mapping of every plugin on this path) and
/// the version of its variable.
pub fn lease_fields(state: &ApiState, draft: AuditDraft, lease: &Lease) -> AuditDraft {
    let mut draft = draft.provider(&lease.provider).variable(&lease.key_id);
    let plugin = state.resolver().registry().get(&lease.provider);
    let base = plugin.and_then(|plugin| key_var(plugin.manifest()));
    if let Some(variant) = base.and_then(|base| variant_of(&lease.key_id, base)) {
        draft = draft.variant(variant);
    }
    match lease.versions.iter().find(|var| var.source == lease.key_id) {
        Some(var) => draft.version(var.version),
        None => draft,
    }
}

/// `draft` with where `request` goes: its method and host (never its path's
/// query or a header, which may carry a secret).
pub fn request_fields(draft: AuditDraft, request: &HttpRequest) -> AuditDraft {
    let host = url::Url::parse(&request.url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default();
    draft.detail("method", reqwest::Method::from(request.method).as_str()).detail("host", host)
}

/// `draft` about the token `info` describes: its id, kind, scope, label and
/// pins (key ids, never a token).
pub fn token_draft(draft: AuditDraft, info: &TokenInfo) -> AuditDraft {
    let mut draft = draft
        .subject(&info.id)
        .detail("kind", info.kind.name())
        .detail("label", info.label.clone())
        .detail("pins", pins_text(&info.pins));
    if let Some(scope) = info.scope.as_deref().and_then(|scope| scope.parse::<Scope>().ok()) {
        draft = draft.scope(&scope);
    }
    draft
}

/// Pins as a record shows them: `openai=OPENAI_API_KEY_2,…` (empty: none).
fn pins_text(pins: &Pins) -> String {
    pins.iter().map(|(provider, key)| format!("{provider}={key}")).collect::<Vec<_>>().join(",")
}

/// The answer when a record cannot be written: 503 `audit_unavailable`, or
/// `store_unavailable` when the store that holds the trail cannot be reached
/// (what a client retries either way); nothing was done.
pub fn audit_unavailable(error: &AuditError) -> ApiError {
    tracing::error!(%error, "an action was refused: its audit record could not be written");
    if let AuditError::Trail { unavailable: true, .. } = error {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store cannot be reached right now (the database is down or restarting), so this request's audit record could not be written; nothing was done, retry shortly",
        );
    }
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        format!(
            "{error}; nothing was done: this host refuses what it cannot record (--audit-on-error refuse). Free the audit log's disk or fix the store, then retry"
        ),
    )
}

impl ApiState {
    /// `result` as is; an error is recorded as `draft` refused with its code.
    pub(crate) async fn refuse_on<T>(
        &self,
        draft: &AuditDraft,
        result: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        if let Err(error) = &result {
            self.audit().refuse(draft, error.code).await;
        }
        result
    }

    /// Records `draft` as allowed, then runs `change`; nothing runs if the
    /// record cannot be written (503 `audit_unavailable`). A change that then
    /// fails gets a `failed` record with its code.
    pub(crate) async fn audited<T>(
        &self,
        draft: &AuditDraft,
        change: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        self.audit().allow(draft).await.map_err(|error| audit_unavailable(&error))?;
        let result = change.await;
        if let Err(error) = &result {
            self.audit().fail(draft, error.code).await;
        }
        result
    }
}

/// The query of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only this scope's records, `organization/project/environment`. An
    /// admin token reads its own scope's, with or without it.
    #[param(example = "acme/shop/prod")]
    scope: Option<String>,
    /// Only records at or after this time, Unix milliseconds (default: all
    /// the retention holds).
    #[param(value_type = Option<u64>, example = 1767225600000u64)]
    since: Option<UnixMillis>,
    /// The previous page's `next`: the records after it.
    #[param(example = "1767225600000-3f2a9c01b7de4a55")]
    after: Option<String>,
    /// At most this many records, 1 to 1000 (default 100).
    #[param(example = 100)]
    limit: Option<usize>,
}

/// The answer of `GET /v1/audit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Whether this host records actions (`--audit on`).
    pub enabled: bool,
    /// The records, oldest first.
    pub records: Vec<AuditRecord>,
    /// Pass as `after` for the next page; absent when this page is the last.
    pub next: Option<String>,
}

/// A page's cursor: `{at}-{id}`.
fn cursor(record: &AuditRecord) -> String {
    format!("{}-{}", record.at, record.id)
}

/// The `(at, id)` of a cursor.
fn parse_cursor(text: &str) -> Result<(UnixMillis, String), ApiError> {
    text.split_once('-')
        .and_then(|(at, id)| {
            let valid = id.len() == AUDIT_ID_LEN
                && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            Some((at.parse().ok()?, id.to_owned())).filter(|_| valid)
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "invalid `after`: expected the `next` of a previous page (`{at}-{id}`)",
            )
        })
}

/// The scope a caller may read the trail of: an operator any (or all), an
/// admin token its own; an agent token none.
fn readable_scope(caller: &Caller, asked: Option<Scope>) -> Result<Option<Scope>, ApiError> {
    match (&caller.grant, asked) {
        (Grant::Operator, asked) => Ok(asked),
        (Grant::Admin(own), None) => Ok(Some(own.clone())),
        (Grant::Admin(own), Some(asked)) if &asked == own => Ok(Some(asked)),
        (Grant::Admin(_), Some(_)) | (Grant::Agent(_), _) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_only",
            "the audit trail is for an operator token (any scope) or an admin token (its own scope)",
        )),
    }
}

/// `GET /v1/audit?scope=…&since=…&after=…&limit=…`.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    operation_id = "listAudit",
    summary = "The audit trail",
    description = "Records of every change to a variable, key row, budget or token, every resolve, authorize and forward, and every plugin loaded or refused, oldest first: who (token id, never the token), what, which scope, provider, key variant and value version, and how it ended (`ok`, `refused` with the error code, `failed` when the store failed after the record). Never a value. An operator token reads every scope (or one, with `scope`); an admin token reads its own scope's.",
    params(AuditParams),
    responses((status = 200, description = "A page of records.", body = AuditPage, example = json!({
        "enabled": true,
        "records": [{
            "id": "3f2a9c01b7de4a55", "request": "3f2a9c01b7de4a55", "at": 1767225600000u64,
            "action": "resolve", "outcome": "ok",
            "actor": { "kind": "agent", "token_id": "8c41d2e0a9f3" },
            "scope": "acme/shop/prod", "provider": "openai", "variable": "OPENAI_API_KEY_2",
            "variant": 2, "version": 3, "detail": { "chosen_by": "pin" }
        }],
        "next": null
    }))),
)]
pub async fn list(
    Authed(caller): Authed,
    State(state): State<ApiState>,
    QueryParams(params): QueryParams<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let asked = match params.scope.as_deref() {
        None | Some("") => None,
        Some(text) => Some(text.parse::<Scope>().map_err(|error| {
            ApiError::bad_request("invalid_scope", format!("invalid `scope`: {error}"))
        })?),
    };
    let scope = readable_scope(&caller, asked)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("invalid `limit` {limit}: expected 1 to {MAX_AUDIT_PAGE}"),
        ));
    }
    let after = params.after.as_deref().map(parse_cursor).transpose()?;
    let Some(trail) = state.audit().trail() else {
        return Ok(Json(AuditPage { enabled: false, records: Vec::new(), next: None }));
    };
    let query = AuditQuery {
        scope: scope.map(|scope| scope.to_string()),
        since: params.since.unwrap_or(0),
        after,
        limit,
    };
    let records = trail.query(&query).await?;
    let next = (records.len() == limit).then(|| records.last().map(cursor)).flatten();
    Ok(Json(AuditPage { enabled: true, records, next }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tokens::Pins;

    fn caller(grant: Grant) -> Caller {
        Caller { token_id: "t1".into(), grant, pins: Pins::new() }
    }

    #[test]
    fn operators_read_any_scope_admins_their_own_agents_none() {
        let own: Scope = "a/b/c".parse().unwrap();
        let other: Scope = "a/b/d".parse().unwrap();
        assert_eq!(readable_scope(&caller(Grant::Operator), None).unwrap(), None);
        assert_eq!(
            readable_scope(&caller(Grant::Operator), Some(other.clone())).unwrap(),
            Some(other.clone())
        );
        let admin = caller(Grant::Admin(own.clone()));
        assert_eq!(readable_scope(&admin, None).unwrap(), Some(own.clone()));
        assert_eq!(readable_scope(&admin, Some(own.clone())).unwrap(), Some(own.clone()));
        assert_eq!(readable_scope(&admin, Some(other)).unwrap_err().code, "admin_only");
        let agent = caller(Grant::Agent(own.clone()));
        assert_eq!(readable_scope(&agent, Some(own)).unwrap_err().code, "admin_only");
        assert_eq!(actor(&agent).kind, ActorKind::Agent);
        assert_eq!(actor(&agent).token_id.as_deref(), Some("t1"));
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let record = AuditDraft::new(AuditAction::Resolve, AuditActor::of_kind(ActorKind::Host))
            .ok_at(1767225600000);
        let (at, id) = parse_cursor(&cursor(&record)).unwrap();
        assert_eq!((at, id.as_str()), (record.at, record.id.as_str()));
        for bad in ["", "12", "x-3f2a9c01b7de4a55", "12-3F2A9C01B7DE4A55", "12-3f2a", "-1-abc"] {
            assert_eq!(parse_cursor(bad).unwrap_err().code, "invalid_query", "{bad}");
        }
    }
}
