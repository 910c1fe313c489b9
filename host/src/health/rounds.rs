//! The book of health rounds: which round runs, what it covers, how far it
//! got. Pure bookkeeping (no I/O, the clock passed in), so the rules are
//! tested without probes: one round per target at a time (a second request
//! for the same target gets the running round; a change made while it runs
//! gets a round of its own once it ends, since the running round may have
//! read the old values), progress counted as each probe finishes, the last
//! [`KEPT_ROUNDS`] rounds kept for people to read.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::scope::Scope;
use crate::store::UnixMillis;

/// How many finished rounds the book keeps.
pub const KEPT_ROUNDS: usize = 16;

/// What a round probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RoundTarget {
    /// Every linked key of every scope.
    All,
    /// The keys of one provider in one scope (after a change to its variables).
    Provider {
        /// The scope.
        #[serde(serialize_with = "display")]
        #[schema(value_type = String)]
        scope: Scope,
        /// The provider's slug.
        provider: String,
    },
}

impl RoundTarget {
    /// Whether the round probes the key at `location`.
    pub fn covers(&self, location: &super::KeyLocation) -> bool {
        match self {
            RoundTarget::All => true,
            RoundTarget::Provider { scope, provider } => {
                location.scope == *scope && location.provider == *provider
            }
        }
    }
}

fn display<S: serde::Serializer>(scope: &Scope, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(scope)
}

/// Why a round started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RoundTrigger {
    /// The host started.
    Start,
    /// The interval passed.
    Schedule,
    /// An operator asked (`POST /v1/health/rounds`).
    Operator,
    /// A variable of the provider was set or unset.
    Change,
    /// The self-host configuration was imported again.
    Reload,
}

/// Where a round is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RoundState {
    /// Probes are in flight.
    Running,
    /// Every key has its verdict.
    Done,
    /// The round could not list its keys (the store failed).
    Failed,
}

/// One round as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RoundView {
    /// Its id, increasing.
    pub id: u64,
    /// What it probes.
    pub target: RoundTarget,
    /// Why it started.
    pub trigger: RoundTrigger,
    /// Where it is.
    pub state: RoundState,
    /// When it started, Unix milliseconds.
    #[schema(value_type = u64)]
    pub started_at: UnixMillis,
    /// When it ended.
    #[schema(value_type = Option<u64>)]
    pub finished_at: Option<UnixMillis>,
    /// Keys to probe; `None` until they are listed.
    pub keys: Option<usize>,
    /// Keys with a verdict so far.
    pub probed: usize,
    /// Keys skipped because another host sharing the store probed their
    /// credential in this slot (their rows hold its verdict); only rounds
    /// at start and on the schedule share.
    pub shared: usize,
    /// Verdicts so far, by class.
    #[schema(value_type = BTreeMap<String, u64>)]
    pub verdicts: BTreeMap<&'static str, usize>,
    /// Why it failed. Never a secret (a store error's text).
    pub error: Option<String>,
}

/// The book.
#[derive(Debug, Default)]
pub struct RoundBook {
    next_id: u64,
    rounds: VecDeque<RoundView>,
    /// Rounds asked for by changes while a round of their target ran.
    pending: Vec<(RoundTarget, RoundTrigger)>,
}

/// What [`RoundBook::begin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// A new round with this id; the caller runs it.
    Started(u64),
    /// A round of the same target was running already: this one.
    AlreadyRunning(u64),
}

impl RoundBook {
    /// Opens a round of `target`, unless one of the same target runs (a full
    /// round also covers every provider round asked for while it runs). A
    /// change or reload asked for while one runs is kept and handed back by
    /// [`RoundBook::finish`].
    pub fn begin(&mut self, target: RoundTarget, trigger: RoundTrigger, now: UnixMillis) -> Begun {
        if let Some(running) = self.rounds.iter().find(|round| {
            round.state == RoundState::Running
                && (round.target == target || round.target == RoundTarget::All)
        }) {
            let id = running.id;
            let after_change = matches!(trigger, RoundTrigger::Change | RoundTrigger::Reload);
            if after_change && !self.pending.iter().any(|(pending, _)| *pending == target) {
                self.pending.push((target, trigger));
            }
            return Begun::AlreadyRunning(id);
        }
        Begun::Started(self.open(target, trigger, now))
    }

    /// Opens a round of `target` whatever runs, and returns its id.
    pub fn open(&mut self, target: RoundTarget, trigger: RoundTrigger, now: UnixMillis) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.rounds.push_back(RoundView {
            id,
            target,
            trigger,
            state: RoundState::Running,
            started_at: now,
            finished_at: None,
            keys: None,
            probed: 0,
            shared: 0,
            verdicts: BTreeMap::new(),
            error: None,
        });
        self.trim();
        id
    }

    /// The round has listed its `keys`.
    pub fn planned(&mut self, id: u64, keys: usize) {
        if let Some(round) = self.round_mut(id) {
            round.keys = Some(keys);
        }
    }

    /// One key of the round got a verdict of `class`.
    pub fn probed(&mut self, id: u64, class: &'static str) {
        if let Some(round) = self.round_mut(id) {
            round.probed += 1;
            *round.verdicts.entry(class).or_default() += 1;
        }
    }

    /// One key of the round was skipped: another host probed its
    /// credential in the slot.
    pub fn shared(&mut self, id: u64) {
        if let Some(round) = self.round_mut(id) {
            round.shared += 1;
        }
    }

    /// The round ended, with `error` if it could not run. Returns the rounds
    /// that changes asked for while it ran, for the caller to begin.
    pub fn finish(
        &mut self,
        id: u64,
        now: UnixMillis,
        error: Option<String>,
    ) -> Vec<(RoundTarget, RoundTrigger)> {
        let mut finished = None;
        if let Some(round) = self.round_mut(id) {
            round.state = if error.is_some() { RoundState::Failed } else { RoundState::Done };
            round.finished_at = Some(now);
            round.error = error;
            finished = Some(round.target.clone());
        }
        self.trim();
        let Some(finished) = finished else { return Vec::new() };
        let (due, kept) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(target, _)| finished == RoundTarget::All || *target == finished);
        self.pending = kept;
        due
    }

    /// The round `id`, if the book still has it.
    pub fn get(&self, id: u64) -> Option<RoundView> {
        self.rounds.iter().find(|round| round.id == id).cloned()
    }

    /// Every round the book has, newest first.
    pub fn list(&self) -> Vec<RoundView> {
        self.rounds.iter().rev().cloned().collect()
    }

    fn round_mut(&mut self, id: u64) -> Option<&mut RoundView> {
        self.rounds.iter_mut().find(|round| round.id == id)
    }

    /// Drops the oldest finished rounds beyond [`KEPT_ROUNDS`]; running
    /// rounds are never dropped.
    fn trim(&mut self) {
        while self.rounds.len() > KEPT_ROUNDS {
            match self.rounds.iter().position(|round| round.state != RoundState::Running) {
                Some(oldest) => {
                    self.rounds.remove(oldest);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(scope: &str, provider: &str) -> RoundTarget {
        RoundTarget::Provider { scope: scope.parse().unwrap(), provider: provider.into() }
    }

    #[test]
    fn one_round_per_target_and_a_full_round_covers_provider_rounds() {
        let mut book = RoundBook::default();
        let first = book.begin(RoundTarget::All, RoundTrigger::Start, 10);
        assert_eq!(first, Begun::Started(1));
        assert_eq!(
            book.begin(RoundTarget::All, RoundTrigger::Operator, 11),
            Begun::AlreadyRunning(1)
        );
        assert_eq!(
            book.begin(provider("a/b/c", "openai"), RoundTrigger::Change, 12),
            Begun::AlreadyRunning(1)
        );
        book.finish(1, 20, None);
        let openai = book.begin(provider("a/b/c", "openai"), RoundTrigger::Change, 21);
        assert_eq!(openai, Begun::Started(2));
        // Another provider's round runs beside it; a full round too.
        assert_eq!(
            book.begin(provider("a/b/c", "voyage"), RoundTrigger::Change, 22),
            Begun::Started(3)
        );
        assert_eq!(book.begin(RoundTarget::All, RoundTrigger::Operator, 23), Begun::Started(4));
    }

    #[test]
    fn a_change_during_a_round_gets_its_own_round_afterwards() {
        let mut book = RoundBook::default();
        let Begun::Started(full) = book.begin(RoundTarget::All, RoundTrigger::Start, 0) else {
            panic!()
        };
        let openai = provider("a/b/c", "openai");
        assert_eq!(
            book.begin(openai.clone(), RoundTrigger::Change, 1),
            Begun::AlreadyRunning(full)
        );
        assert_eq!(
            book.begin(openai.clone(), RoundTrigger::Change, 2),
            Begun::AlreadyRunning(full)
        );
        // An operator asking again needs nothing more: the round answers it.
        assert_eq!(
            book.begin(RoundTarget::All, RoundTrigger::Operator, 3),
            Begun::AlreadyRunning(full)
        );
        assert_eq!(book.finish(full, 4, None), [(openai.clone(), RoundTrigger::Change)]);
        assert_eq!(book.finish(full, 5, None), [], "handed back once");

        let Begun::Started(own) = book.begin(openai.clone(), RoundTrigger::Change, 6) else {
            panic!()
        };
        let voyage = provider("a/b/c", "voyage");
        assert_eq!(book.begin(voyage.clone(), RoundTrigger::Change, 7), Begun::Started(own + 1));
        assert_eq!(book.begin(openai.clone(), RoundTrigger::Change, 8), Begun::AlreadyRunning(own));
        assert_eq!(book.finish(own + 1, 9, None), [], "another target's round does not cover it");
        assert_eq!(book.finish(own, 10, None), [(openai, RoundTrigger::Change)]);
    }

    #[test]
    fn progress_is_counted_as_probes_finish() {
        let mut book = RoundBook::default();
        let Begun::Started(id) = book.begin(RoundTarget::All, RoundTrigger::Operator, 5) else {
            panic!()
        };
        assert_eq!(book.get(id).unwrap().keys, None);
        book.planned(id, 4);
        book.probed(id, "healthy");
        book.probed(id, "invalid-credential");
        book.probed(id, "healthy");
        book.shared(id);
        let round = book.get(id).unwrap();
        assert_eq!((round.keys, round.probed, round.state), (Some(4), 3, RoundState::Running));
        assert_eq!(round.shared, 1, "counted apart from the verdicts");
        assert_eq!(round.verdicts, BTreeMap::from([("healthy", 2), ("invalid-credential", 1)]));
        book.finish(id, 9, None);
        let round = book.get(id).unwrap();
        assert_eq!((round.state, round.finished_at), (RoundState::Done, Some(9)));
        let failed = match book.begin(RoundTarget::All, RoundTrigger::Schedule, 10) {
            Begun::Started(id) => id,
            other => panic!("{other:?}"),
        };
        book.finish(failed, 11, Some("the store failed".into()));
        assert_eq!(book.get(failed).unwrap().state, RoundState::Failed);
        assert_eq!(book.list().iter().map(|round| round.id).collect::<Vec<_>>(), [failed, id]);
    }

    #[test]
    fn old_finished_rounds_go_and_running_ones_stay() {
        let mut book = RoundBook::default();
        let Begun::Started(long) = book.begin(provider("x/y/z", "held"), RoundTrigger::Change, 0)
        else {
            panic!()
        };
        for n in 0..40 {
            let Begun::Started(id) =
                book.begin(provider("a/b/c", &format!("p{n}")), RoundTrigger::Change, n)
            else {
                panic!()
            };
            book.finish(id, n, None);
        }
        let rounds = book.list();
        assert_eq!(rounds.len(), KEPT_ROUNDS);
        assert!(rounds.iter().any(|round| round.id == long && round.state == RoundState::Running));
        assert_eq!(rounds[0].id, 41, "newest first");
    }
}
