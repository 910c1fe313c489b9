//! Who owns which environment variable name, so a plugin can never reach a
//! secret it does not own.
//!
//! - A **bundled** plugin owns the names its manifest declares, and their
//!   numbered variants (`OPENAI_API_KEY_2`).
//! - A **third-party** plugin (from `--plugin-dir`) owns the names under its
//!   own prefix: its slug upper-cased, `-` turned into `_`, then `_`
//!   (`acme-ai` owns `ACME_AI_*`), unless a longer prefix of another loaded
//!   plugin covers the name (`acme` does not own `ACME_AI_KEY` while `acme-ai`
//!   is loaded), or another plugin declares the name (or the name is a
//!   numbered variant of one it declares).
//! - The operator may **grant** a third-party plugin other names explicitly
//!   (the plugin policy file): it then reads them beside their owner.
//! - Nobody may declare a name of the host's own environment
//!   ([`is_host_reserved`]: `PATH`, `HOME`, `LD_*`, `PLATOS_*`, ...), not even
//!   with a grant: such names never reach a plugin.
//!
//! [`check`] applies the rules to every loaded plugin at once and returns,
//! per plugin, each broken rule in words naming the variable and its owner.

use std::collections::{BTreeMap, BTreeSet};

use super::variants::variant_of;

/// Names of the host's own process environment, matched exactly.
const RESERVED_EXACT: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "USERNAME",
    "LOGNAME",
    "SHELL",
    "PWD",
    "OLDPWD",
    "TERM",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TMP",
    "TEMP",
    "HOSTNAME",
    "HOSTTYPE",
    "MAIL",
    "IFS",
    "PS1",
    "PS2",
    "PS4",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "DISPLAY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PERL5LIB",
    "PERL5OPT",
    "RUBYLIB",
    "RUBYOPT",
    "CLASSPATH",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CI",
];

/// Prefixes of the host's own process environment: the dynamic loader, the
/// locale, this host's configuration and master keys, the session and the
/// toolchains that may run it.
const RESERVED_PREFIXES: &[&str] = &[
    "LD_",
    "DYLD_",
    "LC_",
    "PLATOS_",
    "ENCRYPTION_KEY",
    "XDG_",
    "SSH_",
    "SUDO_",
    "GIT_",
    "CARGO_",
    "RUSTUP_",
    "RUST_",
    "BASH_",
    "SYSTEMD_",
    "DBUS_",
    "GPG_",
];

/// Whether `name` belongs to the host's own environment: never imported
/// from it, never declared by a plugin.
pub fn is_host_reserved(name: &str) -> bool {
    RESERVED_EXACT.contains(&name)
        || RESERVED_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// The prefix a third-party plugin's names live under: `acme-ai` → `ACME_AI_`.
pub fn owned_prefix(slug: &str) -> String {
    let mut prefix: String =
        slug.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }).collect();
    prefix.push('_');
    prefix
}

/// One loaded plugin's claim on names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim<'a> {
    /// The plugin's slug.
    pub slug: &'a str,
    /// Whether it is bundled in the host (it then owns what it declares).
    pub bundled: bool,
    /// The variable names its manifest declares.
    pub names: Vec<&'a str>,
}

/// The operator's grants: names a third-party plugin may read although it
/// does not own them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameGrants {
    by_slug: BTreeMap<String, BTreeSet<String>>,
}

impl NameGrants {
    /// No grants.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants `name` to the plugin `slug`.
    pub fn grant(&mut self, slug: impl Into<String>, name: impl Into<String>) {
        self.by_slug.entry(slug.into()).or_default().insert(name.into());
    }

    /// Builder form of [`NameGrants::grant`].
    pub fn with(mut self, slug: impl Into<String>, name: impl Into<String>) -> Self {
        self.grant(slug, name);
        self
    }

    /// Whether `slug` was granted `name`.
    pub fn allows(&self, slug: &str, name: &str) -> bool {
        self.by_slug.get(slug).is_some_and(|names| names.contains(name))
    }

    /// The names granted to `slug`.
    pub fn granted_to(&self, slug: &str) -> impl Iterator<Item = &str> {
        self.by_slug.get(slug).into_iter().flatten().map(String::as_str)
    }

    /// The slugs that have grants.
    pub fn slugs(&self) -> impl Iterator<Item = &str> {
        self.by_slug.keys().map(String::as_str)
    }
}

/// One broken ownership rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnershipProblem {
    /// A name of the host's own environment.
    #[error(
        "{name} belongs to the host's own environment and is never handed to a plugin; declare a name under your prefix instead"
    )]
    HostReserved {
        /// The name.
        name: String,
    },
    /// Another plugin owns the name.
    #[error(
        "{name} is owned by the plugin {owner}; declare a name under your prefix {prefix}*, or ask the operator to grant {name} to you in the plugin policy file"
    )]
    OwnedByOther {
        /// The name.
        name: String,
        /// The owner's slug.
        owner: String,
        /// The claimant's own prefix.
        prefix: String,
    },
    /// The name is outside the claimant's prefix and was not granted.
    #[error(
        "{name} is outside your prefix {prefix}*; rename it, or ask the operator to grant it to you in the plugin policy file"
    )]
    OutsidePrefix {
        /// The name.
        name: String,
        /// The claimant's own prefix.
        prefix: String,
    },
    /// The manifest declares a name and one of its numbered variants.
    #[error(
        "{name} is a numbered variant of {base}, which the manifest also declares; variants are for further keys of one provider"
    )]
    OwnVariant {
        /// The variant name.
        name: String,
        /// The base name.
        base: String,
    },
    /// Two bundled plugins declare one name.
    #[error("{name} is declared by the bundled plugin {owner} too")]
    BundledClash {
        /// The name.
        name: String,
        /// The other bundled plugin.
        owner: String,
    },
}

/// Checks every claim against the others; the result has one list of
/// problems per claim, in order (empty: the plugin may load).
pub fn check(claims: &[Claim<'_>], grants: &NameGrants) -> Vec<Vec<OwnershipProblem>> {
    (0..claims.len()).map(|index| check_one(claims, index, grants)).collect()
}

fn check_one(claims: &[Claim<'_>], index: usize, grants: &NameGrants) -> Vec<OwnershipProblem> {
    let claim = &claims[index];
    let prefix = owned_prefix(claim.slug);
    let others = || claims.iter().enumerate().filter(move |(other, _)| *other != index);
    let mut problems = Vec::new();
    for &name in &claim.names {
        if is_host_reserved(name) {
            problems.push(OwnershipProblem::HostReserved { name: name.to_owned() });
            continue;
        }
        if let Some(base) =
            claim.names.iter().find(|base| variant_of(name, base).is_some_and(|n| n >= 2))
        {
            problems.push(OwnershipProblem::OwnVariant {
                name: name.to_owned(),
                base: (*base).to_owned(),
            });
            continue;
        }
        if claim.bundled {
            if let Some((_, owner)) =
                others().find(|(_, other)| other.bundled && declares_related(other, name))
            {
                problems.push(OwnershipProblem::BundledClash {
                    name: name.to_owned(),
                    owner: owner.slug.to_owned(),
                });
            }
            continue;
        }
        if grants.allows(claim.slug, name) {
            continue;
        }
        // A bundled plugin's name, or a numbered variant of anyone's name.
        let declared_elsewhere = others().find(|(_, other)| {
            other.names.iter().any(|declared| {
                (other.bundled && *declared == name)
                    || variant_of(name, declared).is_some_and(|n| n >= 2)
            })
        });
        if let Some((_, owner)) = declared_elsewhere {
            problems.push(OwnershipProblem::OwnedByOther {
                name: name.to_owned(),
                owner: owner.slug.to_owned(),
                prefix: prefix.clone(),
            });
            continue;
        }
        let prefix_owner = claims
            .iter()
            .enumerate()
            .map(|(at, other)| (at, owned_prefix(other.slug)))
            .filter(|(_, other_prefix)| name.starts_with(other_prefix.as_str()))
            .max_by_key(|(_, other_prefix)| other_prefix.len());
        match prefix_owner {
            Some((at, _)) if at == index => {}
            Some((at, _)) => problems.push(OwnershipProblem::OwnedByOther {
                name: name.to_owned(),
                owner: claims[at].slug.to_owned(),
                prefix: prefix.clone(),
            }),
            None => problems.push(OwnershipProblem::OutsidePrefix {
                name: name.to_owned(),
                prefix: prefix.clone(),
            }),
        }
    }
    problems
}

/// Whether `claim` declares `name` or a name `name` is a variant of, or a
/// variant of `name`.
fn declares_related(claim: &Claim<'_>, name: &str) -> bool {
    claim.names.iter().any(|declared| {
        variant_of(name, declared).is_some() || variant_of(declared, name).is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled<'a>(slug: &'a str, names: &[&'a str]) -> Claim<'a> {
        Claim { slug, bundled: true, names: names.to_vec() }
    }

    fn third<'a>(slug: &'a str, names: &[&'a str]) -> Claim<'a> {
        Claim { slug, bundled: false, names: names.to_vec() }
    }

    fn bundled_set() -> Vec<Claim<'static>> {
        vec![
            bundled("openai", &["OPENAI_API_KEY", "OPENAI_API_BASE"]),
            bundled("anthropic", &["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"]),
            bundled("bedrock", &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]),
        ]
    }

    fn problems_of(claims: &[Claim<'_>], grants: &NameGrants, slug: &str) -> Vec<OwnershipProblem> {
        let index = claims.iter().position(|claim| claim.slug == slug).unwrap();
        check(claims, grants).swap_remove(index)
    }

    #[test]
    fn prefixes() {
        assert_eq!(owned_prefix("acme-ai"), "ACME_AI_");
        assert_eq!(owned_prefix("x9"), "X9_");
    }

    #[test]
    fn bundled_plugins_own_what_they_declare() {
        let claims = bundled_set();
        assert!(check(&claims, &NameGrants::new()).iter().all(Vec::is_empty));
    }

    #[test]
    fn a_third_party_claim_on_a_bundled_secret_is_refused_naming_the_owner() {
        let mut claims = bundled_set();
        claims.push(third("evil", &["ANTHROPIC_API_KEY"]));
        let problems = problems_of(&claims, &NameGrants::new(), "evil");
        assert_eq!(
            problems,
            [OwnershipProblem::OwnedByOther {
                name: "ANTHROPIC_API_KEY".into(),
                owner: "anthropic".into(),
                prefix: "EVIL_".into()
            }]
        );
        let text = problems[0].to_string();
        assert!(text.contains("ANTHROPIC_API_KEY") && text.contains("anthropic"), "{text}");
    }

    #[test]
    fn numbered_variants_of_another_plugins_name_are_its_own() {
        let mut claims = bundled_set();
        claims.push(third("openai-api-key", &["OPENAI_API_KEY_2", "OPENAI_API_KEY_EXTRA"]));
        let problems = problems_of(&claims, &NameGrants::new(), "openai-api-key");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            matches!(&problems[0], OwnershipProblem::OwnedByOther { owner, .. } if owner == "openai")
        );
    }

    #[test]
    fn host_names_are_refused_even_under_a_prefix_or_with_a_grant() {
        let claims = vec![third("ld", &["LD_PRELOAD"]), third("evil", &["PATH", "HOME"])];
        let grants = NameGrants::new().with("evil", "PATH");
        assert!(matches!(
            problems_of(&claims, &grants, "ld").as_slice(),
            [OwnershipProblem::HostReserved { .. }]
        ));
        assert_eq!(problems_of(&claims, &grants, "evil").len(), 2);
        for name in
            ["PATH", "LD_LIBRARY_PATH", "PLATOS_LISTEN", "ENCRYPTION_KEY_PREVIOUS", "LC_ALL"]
        {
            assert!(is_host_reserved(name), "{name}");
        }
        for name in ["OPENAI_API_KEY", "AWS_REGION", "ACME_PATH"] {
            assert!(!is_host_reserved(name), "{name}");
        }
    }

    #[test]
    fn names_outside_the_prefix_need_a_grant() {
        let claims =
            [bundled_set(), vec![third("acme", &["ACME_API_KEY", "SHARED_TOKEN"])]].concat();
        let problems = problems_of(&claims, &NameGrants::new(), "acme");
        assert!(
            matches!(problems.as_slice(), [OwnershipProblem::OutsidePrefix { name, .. }] if name == "SHARED_TOKEN")
        );
        let grants = NameGrants::new().with("acme", "SHARED_TOKEN");
        assert!(problems_of(&claims, &grants, "acme").is_empty());
    }

    #[test]
    fn a_grant_lets_a_plugin_read_another_plugins_key() {
        let mut claims = bundled_set();
        claims.push(third("openai-responses", &["OPENAI_API_KEY", "OPENAI_RESPONSES_MODE"]));
        let grants = NameGrants::new().with("openai-responses", "OPENAI_API_KEY");
        assert!(check(&claims, &grants).iter().all(Vec::is_empty));
        assert_eq!(problems_of(&claims, &NameGrants::new(), "openai-responses").len(), 1);
    }

    #[test]
    fn the_longest_prefix_owns_a_name() {
        let claims = vec![third("acme", &["ACME_AI_KEY"]), third("acme-ai", &["ACME_AI_KEY"])];
        let problems = problems_of(&claims, &NameGrants::new(), "acme");
        assert!(
            matches!(problems.as_slice(), [OwnershipProblem::OwnedByOther { owner, .. }] if owner == "acme-ai")
        );
        assert!(problems_of(&claims, &NameGrants::new(), "acme-ai").is_empty());
        // Without acme-ai loaded, acme owns the name.
        assert!(check(&claims[..1], &NameGrants::new())[0].is_empty());
        // A bundled plugin's prefix counts too: `azure` does not own AZURE_OPENAI_X.
        let claims = vec![
            bundled("azure-openai", &["AZURE_OPENAI_API_KEY"]),
            third("azure", &["AZURE_OPENAI_X"]),
        ];
        assert!(!problems_of(&claims, &NameGrants::new(), "azure").is_empty());
    }

    #[test]
    fn a_manifest_may_not_declare_its_own_variants_and_bundled_plugins_may_not_clash() {
        let claims = vec![third("acme", &["ACME_KEY", "ACME_KEY_2"])];
        assert!(matches!(
            problems_of(&claims, &NameGrants::new(), "acme").as_slice(),
            [OwnershipProblem::OwnVariant { .. }]
        ));
        let claims = vec![bundled("a", &["SHARED_KEY"]), bundled("b", &["SHARED_KEY"])];
        assert!(check(&claims, &NameGrants::new()).iter().all(|problems| problems.len() == 1));
    }
}
