//! Spending caps ([`Budget`]) of a provider key or a whole scope, what was
//! spent against them ([`SpendWindows`]), and reservations ([`Reservation`])
//! of spend a request may still make.
//!
//! Spend is counted in UTC windows: a day (`2026-12-03`), a month
//! (`2026-12`) and the total. A budget caps one of them ([`Period`]). A
//! reservation holds an amount against its key's budget and its scope's
//! budget until it is settled (its real cost becomes spend), cancelled, or
//! expires. The rules here are the same for every backend: what a window is
//! called ([`Windows`]), what counts against a cap ([`BudgetStatus::refusal`])
//! and how a target is named in storage ([`BudgetTarget::storage_key`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::UnixMillis;
use crate::provider::MicroUsd;
use crate::scope::{KeyLocation, Scope};

/// The length of a reservation's random id, in bytes.
pub const RESERVATION_ID_LEN: usize = 16;

/// The window name of the total (every window name of a day or a month is
/// longer and starts with a digit).
pub const TOTAL_WINDOW: &str = "total";

/// Which spend window a budget caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// The current UTC day.
    Day,
    /// The current UTC month.
    Month,
    /// Everything ever spent.
    Total,
}

impl Period {
    /// `day`, `month` or `total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
            Period::Total => "total",
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A period name that is not `day`, `month` or `total`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown budget period: expected `day`, `month` or `total`")]
pub struct UnknownPeriod;

impl FromStr for Period {
    type Err = UnknownPeriod;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "day" => Ok(Period::Day),
            "month" => Ok(Period::Month),
            "total" => Ok(Period::Total),
            _ => Err(UnknownPeriod),
        }
    }
}

/// What a budget caps: one provider key, or a whole scope (every key of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BudgetTarget {
    /// One provider key of a scope.
    Key(KeyLocation),
    /// Every key of a scope together.
    Scope(Scope),
}

impl BudgetTarget {
    /// The target of the key `key_id` of `provider` in `scope`.
    pub fn key(scope: Scope, provider: impl Into<String>, key_id: impl Into<String>) -> Self {
        BudgetTarget::Key(KeyLocation { scope, provider: provider.into(), key_id: key_id.into() })
    }

    /// The targets spend on this one counts against: a key's own and its
    /// scope's; a scope's own.
    pub fn counted_in(&self) -> Vec<BudgetTarget> {
        match self {
            BudgetTarget::Key(key) => {
                vec![self.clone(), BudgetTarget::Scope(key.scope.clone())]
            }
            BudgetTarget::Scope(_) => vec![self.clone()],
        }
    }

    /// The stable text both backends store the target under:
    /// `org/project/env` for a scope, `org/project/env/provider/KEY_ID` for
    /// a key (no scope id, slug or variable name holds a `/`). A scope's key
    /// is a prefix of its keys' keys, so it sorts first.
    pub fn storage_key(&self) -> String {
        match self {
            BudgetTarget::Key(key) => format!("{}/{}/{}", key.scope, key.provider, key.key_id),
            BudgetTarget::Scope(scope) => scope.to_string(),
        }
    }
}

/// For people: `key OPENAI_API_KEY of openai in acme/shop/prod` or
/// `scope acme/shop/prod`. Key ids are variable names, never values.
impl fmt::Display for BudgetTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetTarget::Key(key) => {
                write!(f, "key {} of {} in {}", key.key_id, key.provider, key.scope)
            }
            BudgetTarget::Scope(scope) => write!(f, "scope {scope}"),
        }
    }
}

/// A spending cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The most that may be spent in the period's window, in micro-USD.
    pub limit: MicroUsd,
    /// Which window it caps.
    pub period: Period,
}

/// What was spent on a target in the windows of one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendWindows {
    /// In the current UTC day.
    pub day: MicroUsd,
    /// In the current UTC month.
    pub month: MicroUsd,
    /// Ever.
    pub total: MicroUsd,
}

impl SpendWindows {
    /// What was spent in the window `period` caps.
    pub fn in_period(&self, period: Period) -> MicroUsd {
        match period {
            Period::Day => self.day,
            Period::Month => self.month,
            Period::Total => self.total,
        }
    }
}

/// A target's budget and what counts against it at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStatus {
    /// Its budget, if it has one.
    pub budget: Option<Budget>,
    /// Spent in the budget period's current window (the total without a
    /// budget).
    pub spent: MicroUsd,
    /// Held by live reservations (not yet expired).
    pub reserved: MicroUsd,
    /// Spent in each current window.
    pub spend: SpendWindows,
}

impl BudgetStatus {
    /// The status of `budget` given the spend and the live reservations.
    pub fn new(budget: Option<Budget>, spend: SpendWindows, reserved: MicroUsd) -> Self {
        let period = budget.map_or(Period::Total, |budget| budget.period);
        BudgetStatus { budget, spent: spend.in_period(period), reserved, spend }
    }

    /// What is left of the budget (spent and reserved taken off), if there
    /// is one.
    pub fn left(&self) -> Option<MicroUsd> {
        self.budget.map(|budget| {
            MicroUsd(budget.limit.0.saturating_sub(self.spent.0.saturating_add(self.reserved.0)))
        })
    }

    /// Why `asked` more does not fit the budget of `target` (this status's
    /// target), if it does not: it fits when spent + reserved + asked <=
    /// limit, and always without a budget.
    pub fn refusal(&self, target: &BudgetTarget, asked: MicroUsd) -> Option<BudgetExceeded> {
        let budget = self.budget?;
        let wanted = u128::from(self.spent.0) + u128::from(self.reserved.0) + u128::from(asked.0);
        if wanted <= u128::from(budget.limit.0) {
            return None;
        }
        Some(BudgetExceeded {
            target: target.clone(),
            limit: budget.limit,
            period: budget.period,
            spent: self.spent,
            reserved: self.reserved,
            asked,
        })
    }
}

/// Spend held against a key's budget and its scope's until it is settled,
/// cancelled or expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// A random id.
    pub id: [u8; RESERVATION_ID_LEN],
    /// The key it is for: it counts against the key's budget and its
    /// scope's ([`BudgetTarget::counted_in`]). (A scope target counts
    /// against the scope's budget only.)
    pub key: BudgetTarget,
    /// The most the request may cost.
    pub amount: MicroUsd,
    /// When it stops counting, unless settled or cancelled first.
    pub expires_at: UnixMillis,
}

/// A reservation that does not fit a budget: nothing was reserved. Its
/// message names the target, the cap and what is left, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetExceeded {
    /// The first target whose budget it does not fit.
    pub target: BudgetTarget,
    /// That budget's cap.
    pub limit: MicroUsd,
    /// That budget's period.
    pub period: Period,
    /// Spent in the period's current window.
    pub spent: MicroUsd,
    /// Held by live reservations.
    pub reserved: MicroUsd,
    /// What the refused reservation asked for.
    pub asked: MicroUsd,
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the budget of {} is {} {}; {} is spent and {} reserved, so {} is left and this needs {}",
            self.target,
            usd(self.limit),
            period_name(self.period),
            usd(self.spent),
            usd(self.reserved),
            usd(self.left()),
            usd(self.asked),
        )
    }
}

impl std::error::Error for BudgetExceeded {}

impl BudgetExceeded {
    /// What is left of the cap (spent and reserved taken off).
    pub fn left(&self) -> MicroUsd {
        MicroUsd(self.limit.0.saturating_sub(self.spent.0.saturating_add(self.reserved.0)))
    }
}

/// A period after an amount: "per day", "per month", "in total".
fn period_name(period: Period) -> &'static str {
    match period {
        Period::Day => "per day",
        Period::Month => "per month",
        Period::Total => "in total",
    }
}

/// `$25.00`, `$0.000125`: dollars with at least two decimals and no more
/// than the amount needs.
pub fn usd(amount: MicroUsd) -> String {
    let (dollars, micros) = (amount.0 / 1_000_000, amount.0 % 1_000_000);
    let mut decimals = format!("{micros:06}");
    while decimals.len() > 2 && decimals.ends_with('0') {
        decimals.pop();
    }
    format!("${dollars}.{decimals}")
}

/// The UTC day and month windows of a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    /// `2026-12-03`.
    pub day: String,
    /// `2026-12`.
    pub month: String,
}

impl Windows {
    /// The windows `at` falls in.
    pub fn of(at: UnixMillis) -> Self {
        let (year, month, day) = civil_from_days(at / 86_400_000);
        Windows {
            day: format!("{year:04}-{month:02}-{day:02}"),
            month: format!("{year:04}-{month:02}"),
        }
    }

    /// The name of the window `period` caps: the day, the month, or
    /// [`TOTAL_WINDOW`].
    pub fn name(&self, period: Period) -> &str {
        match period {
            Period::Day => &self.day,
            Period::Month => &self.month,
            Period::Total => TOTAL_WINDOW,
        }
    }
}

/// The proleptic Gregorian `(year, month, day)` of `days` since 1970-01-01
/// (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(at: UnixMillis) -> String {
        Windows::of(at).day
    }

    #[test]
    fn windows_are_utc_days_and_months() {
        // Values checked with `date -u -d @SECONDS`.
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(Windows::of(0).month, "1970-01");
        assert_eq!(day(86_399_999), "1970-01-01");
        assert_eq!(day(86_400_000), "1970-01-02");
        assert_eq!(day(951_782_400_000), "2000-02-29");
        assert_eq!(day(951_868_800_000), "2000-03-01");
        assert_eq!(day(1_767_225_599_999), "2025-12-31");
        assert_eq!(Windows::of(1_767_225_599_999).month, "2025-12");
        assert_eq!(day(1_767_225_600_000), "2026-01-01");
        assert_eq!(day(1_796_256_000_000), "2026-12-03");
        // 1900 and 2100 are not leap years; 2000 and 2024 are.
        assert_eq!(day(1_709_164_800_000), "2024-02-29");
        assert_eq!(day(4_107_542_399_999), "2100-02-28");
        assert_eq!(day(4_107_542_400_000), "2100-03-01");
        assert_eq!(day(4_102_444_800_000), "2100-01-01");
        assert_eq!(day(253_402_300_799_999), "9999-12-31");
        assert_eq!(Windows::of(4_107_542_400_000).name(Period::Month), "2100-03");
        assert_eq!(Windows::of(0).name(Period::Total), TOTAL_WINDOW);
    }

    #[test]
    fn targets_have_one_storage_key_each() {
        let scope: Scope = "acme/shop/prod".parse().unwrap();
        let key = BudgetTarget::key(scope.clone(), "openai", "OPENAI_API_KEY_2");
        assert_eq!(key.storage_key(), "acme/shop/prod/openai/OPENAI_API_KEY_2");
        let whole = BudgetTarget::Scope(scope.clone());
        assert_eq!(whole.storage_key(), "acme/shop/prod");
        assert_eq!(key.counted_in(), [key.clone(), whole.clone()]);
        assert_eq!(whole.counted_in(), std::slice::from_ref(&whole));
        // Three segments for a scope, five for a key: never the same text.
        let other: Scope = "acme/shop/prod.openai".parse().unwrap();
        let other = BudgetTarget::key(other, "x", "K");
        assert_ne!(other.storage_key(), key.storage_key());
        assert_eq!(other.storage_key().split('/').count(), 5);
        assert_eq!(key.to_string(), "key OPENAI_API_KEY_2 of openai in acme/shop/prod");
    }

    #[test]
    fn a_budget_admits_what_fits_and_says_what_is_left() {
        let budget = Budget { limit: MicroUsd(25_000_000), period: Period::Month };
        let spend =
            SpendWindows { day: MicroUsd(1), month: MicroUsd(20_000_000), total: MicroUsd(9) };
        let status = BudgetStatus::new(Some(budget), spend, MicroUsd(4_000_000));
        assert_eq!(status.spent, MicroUsd(20_000_000));
        assert_eq!(status.left(), Some(MicroUsd(1_000_000)));
        let target = BudgetTarget::Scope("acme/shop/prod".parse().unwrap());
        assert_eq!(status.refusal(&target, MicroUsd(1_000_000)), None);
        let refused = status.refusal(&target, MicroUsd(1_000_001)).unwrap();
        assert_eq!(refused.left(), MicroUsd(1_000_000));
        assert_eq!(
            refused.to_string(),
            "the budget of scope acme/shop/prod is $25.00 per month; $20.00 is spent and $4.00 reserved, so $1.00 is left and this needs $1.000001"
        );
        let none = BudgetStatus::new(None, spend, MicroUsd(0));
        assert_eq!(none.spent, MicroUsd(9));
        assert_eq!(none.left(), None);
        assert_eq!(none.refusal(&target, MicroUsd(u64::MAX)), None);
        assert_eq!(usd(MicroUsd(125)), "$0.000125");
        assert_eq!(usd(MicroUsd(0)), "$0.00");
    }
}
