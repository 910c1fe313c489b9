//! An [`AuditDraft`]: the fields of one action's record, gathered before the
//! action runs, and the record for each way it can end. Pure: no I/O.

use crate::scope::Scope;
use crate::store::audit::{AUDIT_ID_LEN, ActorKind};
use crate::store::{
    AuditAction, AuditActor, AuditOutcome, AuditRecord, KeyStatus, KeyUpdate, ProviderVars,
    UnixMillis, now_millis,
};

/// The most characters a record keeps of one text field (a label, a path's
/// provider): what a caller sent can be long or hold control characters.
pub const MAX_FIELD_CHARS: usize = 200;

/// `text` without control characters, at most [`MAX_FIELD_CHARS`].
fn bounded(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(MAX_FIELD_CHARS).collect()
}

/// A fresh record id: [`AUDIT_ID_LEN`] lowercase hex digits.
fn new_record_id() -> String {
    let id = hex::encode(crate::crypto::random_bytes::<{ AUDIT_ID_LEN / 2 }>());
    debug_assert_eq!(id.len(), AUDIT_ID_LEN);
    id
}

/// The fields of one action's record, before it is known how it ends.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    record: AuditRecord,
}

impl AuditDraft {
    /// A draft of `action` by `actor`, with a new id.
    pub fn new(action: AuditAction, actor: AuditActor) -> Self {
        // The writer gives each record its own id and time ([`super::Stamp`]).
        AuditDraft { record: AuditRecord::new(action, actor, new_record_id(), 0) }
    }

    /// The action.
    pub fn action(&self) -> AuditAction {
        self.record.action
    }

    /// With the scope.
    pub fn scope(mut self, scope: &Scope) -> Self {
        self.record.scope = Some(scope.to_string());
        self
    }

    /// With the provider's slug.
    pub fn provider(mut self, provider: &str) -> Self {
        self.record.provider = Some(bounded(provider));
        self
    }

    /// With the variable (a key's id).
    pub fn variable(mut self, variable: &str) -> Self {
        self.record.variable = Some(bounded(variable));
        self
    }

    /// With the variable `name` and, when `vars` makes it a provider's key
    /// variable, that provider and the key's variant.
    pub fn linked(self, name: &str, vars: &ProviderVars) -> Self {
        let draft = self.variable(name);
        match vars.links(name).first() {
            Some(link) => draft.provider(&link.provider).variant(link.variant),
            None => draft,
        }
    }

    /// With the key's variant.
    pub fn variant(mut self, variant: u32) -> Self {
        self.record.variant = Some(variant);
        self
    }

    /// With the value's version.
    pub fn version(mut self, version: u64) -> Self {
        self.record.version = Some(version);
        self
    }

    /// With what the action is about (a token's id, a plugin).
    pub fn subject(mut self, subject: &str) -> Self {
        self.record.subject = Some(bounded(subject));
        self
    }

    /// With one more detail. Only names the host chose: never a value.
    pub fn detail(mut self, name: &str, text: impl Into<String>) -> Self {
        self.record.detail.insert(name.to_owned(), bounded(&text.into()));
        self
    }

    /// The record of the action allowed, at `now`.
    pub fn ok_at(&self, now: UnixMillis) -> AuditRecord {
        AuditRecord { at: now, ..self.record.clone() }
    }

    /// The record of the action allowed, now.
    pub fn ok(&self) -> AuditRecord {
        self.ok_at(now_millis())
    }

    /// The record of the action refused with `code`: nothing was done.
    pub fn refused(&self, code: &str) -> AuditRecord {
        AuditRecord {
            at: now_millis(),
            outcome: AuditOutcome::Refused,
            code: Some(code.to_owned()),
            ..self.record.clone()
        }
    }

    /// The record that follows the `ok` one when the store then failed with
    /// `code`: the same request.
    pub fn failed(&self, code: &str) -> AuditRecord {
        AuditRecord {
            at: now_millis(),
            outcome: AuditOutcome::Failed,
            code: Some(code.to_owned()),
            ..self.record.clone()
        }
    }
}

/// The action an operator's key update is, with its detail; `None` for the
/// updates the host makes itself (last use, health), which are not audited.
pub fn key_update_action(update: &KeyUpdate) -> Option<(AuditAction, &'static str, String)> {
    match update {
        KeyUpdate::Used { .. } | KeyUpdate::Health(_) => None,
        KeyUpdate::Label(label) => Some((AuditAction::KeyLabel, "label", label.clone())),
        KeyUpdate::Status(KeyStatus::Disabled) => {
            Some((AuditAction::KeyDisable, "status", KeyStatus::Disabled.to_string()))
        }
        KeyUpdate::Status(KeyStatus::Active) => {
            Some((AuditAction::KeyEnable, "status", KeyStatus::Active.to_string()))
        }
        KeyUpdate::ChosenDefault(at) => {
            Some((AuditAction::KeyDefault, "scope_default", at.is_some().to_string()))
        }
    }
}

/// The actor of a command-line change.
pub fn cli_actor() -> AuditActor {
    AuditActor::of_kind(ActorKind::Cli)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_ends_ok_refused_or_failed_with_one_request() {
        let scope: Scope = "acme/shop/prod".parse().unwrap();
        let draft = AuditDraft::new(AuditAction::VarSet, cli_actor())
            .scope(&scope)
            .variable("OPENAI_API_KEY")
            .detail("source", "cli");
        let ok = draft.ok_at(42);
        assert_eq!((ok.at, ok.outcome, ok.code.as_deref()), (42, AuditOutcome::Ok, None));
        assert_eq!(ok.request.len(), AUDIT_ID_LEN);
        assert!(ok.request.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(ok.scope.as_deref(), Some("acme/shop/prod"));
        let refused = draft.refused("managed_by_self_host");
        assert_eq!(refused.outcome, AuditOutcome::Refused);
        assert_eq!(refused.code.as_deref(), Some("managed_by_self_host"));
        let failed = draft.failed("store_error");
        assert_eq!(failed.request, ok.request);
        assert_ne!(AuditDraft::new(AuditAction::VarSet, cli_actor()).ok().request, ok.request);
        let long = AuditDraft::new(AuditAction::KeyLabel, cli_actor())
            .detail("label", format!("a\u{7}b{}", "x".repeat(5000)))
            .ok();
        assert_eq!(long.detail["label"].chars().count(), MAX_FIELD_CHARS);
        assert!(long.detail["label"].starts_with("abx"));
    }

    #[test]
    fn only_operator_key_updates_are_actions() {
        assert_eq!(key_update_action(&KeyUpdate::Used { at: 1 }), None);
        assert_eq!(
            key_update_action(&KeyUpdate::Status(KeyStatus::Disabled)).map(|found| found.0),
            Some(AuditAction::KeyDisable)
        );
        assert_eq!(
            key_update_action(&KeyUpdate::ChosenDefault(None)),
            Some((AuditAction::KeyDefault, "scope_default", "false".to_owned()))
        );
        assert_eq!(
            key_update_action(&KeyUpdate::Label("ci".into())),
            Some((AuditAction::KeyLabel, "label", "ci".to_owned()))
        );
    }
}
