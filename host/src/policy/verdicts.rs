//! Verdict classes and the badge the providers page shows for them.

use serde::Serialize;

use crate::provider::Verdict;

/// The colour of a key's health badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Badge {
    /// The last probe said healthy.
    Green,
    /// The provider refused the key: investigate before agents break.
    Red,
    /// Out of quota, rate limited, or the provider is degraded.
    Amber,
    /// Never probed, or the provider could not be reached.
    Grey,
}

/// The badge for a key's last verdict (`None`: never probed).
pub fn badge(verdict: Option<&Verdict>) -> Badge {
    match verdict {
        Some(Verdict::Healthy { .. }) => Badge::Green,
        Some(Verdict::InvalidCredential { .. }) => Badge::Red,
        Some(Verdict::QuotaLimited { .. } | Verdict::Degraded { .. }) => Badge::Amber,
        Some(Verdict::Unreachable { .. }) | None => Badge::Grey,
    }
}

/// A provider's badge from its keys' badges: the worst one, where red is
/// worse than amber, amber worse than grey, grey worse than green; no keys
/// is grey.
pub fn provider_badge(keys: impl IntoIterator<Item = Badge>) -> Badge {
    let rank = |badge: Badge| match badge {
        Badge::Green => 0,
        Badge::Grey => 1,
        Badge::Amber => 2,
        Badge::Red => 3,
    };
    keys.into_iter().max_by_key(|badge| rank(*badge)).unwrap_or(Badge::Grey)
}

/// The verdict's class name, as the API and metrics spell it.
pub fn class_name(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Healthy { .. } => "healthy",
        Verdict::InvalidCredential { .. } => "invalid-credential",
        Verdict::QuotaLimited { .. } => "quota-limited",
        Verdict::Unreachable { .. } => "unreachable",
        Verdict::Degraded { .. } => "degraded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> String {
        text.to_owned()
    }

    #[test]
    fn badges_follow_verdict_classes() {
        let healthy = Verdict::Healthy { message: message("ok"), models: vec![] };
        assert_eq!(badge(Some(&healthy)), Badge::Green);
        assert_eq!(badge(Some(&Verdict::InvalidCredential { message: message("no") })), Badge::Red);
        assert_eq!(badge(Some(&Verdict::QuotaLimited { message: message("429") })), Badge::Amber);
        assert_eq!(badge(Some(&Verdict::Degraded { message: message("500") })), Badge::Amber);
        assert_eq!(badge(Some(&Verdict::Unreachable { message: message("dns") })), Badge::Grey);
        assert_eq!(badge(None), Badge::Grey);
        assert_eq!(class_name(&healthy), "healthy");
    }

    #[test]
    fn a_provider_shows_its_worst_key() {
        assert_eq!(provider_badge([Badge::Green, Badge::Red, Badge::Amber]), Badge::Red);
        assert_eq!(provider_badge([Badge::Green, Badge::Grey]), Badge::Grey);
        assert_eq!(provider_badge([Badge::Green]), Badge::Green);
        assert_eq!(provider_badge([]), Badge::Grey);
    }
}
