//! Scopes: the `(organization, project, environment)` a variable or provider
//! key belongs to, written `org/project/env`.
//!
//! Nothing crosses scopes: a variable set in `acme/shop/dev` is not visible in
//! `acme/shop/prod`.

use std::fmt;
use std::str::FromStr;

/// The longest id accepted for each part of a scope.
pub const MAX_SCOPE_ID_LEN: usize = 64;

/// The scope of a variable or provider key: an organization, one of its
/// projects and one of that project's environments.
///
/// Each id is 1–[`MAX_SCOPE_ID_LEN`] characters of `[A-Za-z0-9_.-]`, so `/`
/// never appears inside an id and `org/project/env` is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    organization: String,
    project: String,
    environment: String,
}

/// Which part of a scope an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopePart {
    /// The organization id.
    Organization,
    /// The project id.
    Project,
    /// The environment id.
    Environment,
}

impl fmt::Display for ScopePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScopePart::Organization => "organization",
            ScopePart::Project => "project",
            ScopePart::Environment => "environment",
        })
    }
}

/// Why a scope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The text does not have exactly three `/`-separated parts.
    #[error(
        "invalid scope `{text}`: expected `organization/project/environment` (three ids separated by `/`), found {parts} part(s)"
    )]
    Shape {
        /// The text given.
        text: String,
        /// How many parts it has.
        parts: usize,
    },
    /// One id is empty, too long or has a character outside `[A-Za-z0-9_.-]`.
    #[error(
        "invalid {part} id `{id}`: expected 1-{max} characters of A-Z, a-z, 0-9, `_`, `.` or `-`{why}",
        max = MAX_SCOPE_ID_LEN
    )]
    Id {
        /// Which part.
        part: ScopePart,
        /// The id given (shortened if very long).
        id: String,
        /// What exactly is wrong, starting with `, `.
        why: String,
    },
}

impl Scope {
    /// A scope from its three ids, each checked.
    pub fn new(
        organization: impl Into<String>,
        project: impl Into<String>,
        environment: impl Into<String>,
    ) -> Result<Self, ScopeError> {
        let scope = Scope {
            organization: organization.into(),
            project: project.into(),
            environment: environment.into(),
        };
        check_id(ScopePart::Organization, &scope.organization)?;
        check_id(ScopePart::Project, &scope.project)?;
        check_id(ScopePart::Environment, &scope.environment)?;
        Ok(scope)
    }

    /// The organization id.
    pub fn organization(&self) -> &str {
        &self.organization
    }

    /// The project id.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The environment id.
    pub fn environment(&self) -> &str {
        &self.environment
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    /// Parses `org/project/env`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [organization, project, environment] => {
                Scope::new(*organization, *project, *environment)
            }
            _ => Err(ScopeError::Shape { text: shorten(text), parts: parts.len() }),
        }
    }
}

impl fmt::Display for Scope {
    /// `org/project/env`, the form [`Scope::from_str`] parses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.organization, self.project, self.environment)
    }
}

/// One scope id's rule as an ECMA-262 regular expression, unanchored (the
/// OpenAPI document's path parameters and token requests use it).
pub fn id_pattern() -> String {
    format!("[A-Za-z0-9_.-]{{1,{MAX_SCOPE_ID_LEN}}}")
}

/// Whether `byte` may appear in a scope id.
fn is_id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-')
}

fn check_id(part: ScopePart, id: &str) -> Result<(), ScopeError> {
    let why = if id.is_empty() {
        ", found an empty id".to_owned()
    } else if id.len() > MAX_SCOPE_ID_LEN {
        format!(", found {} characters", id.chars().count())
    } else if let Some(bad) = id.chars().find(|c| !c.is_ascii() || !is_id_byte(*c as u8)) {
        format!(", found {bad:?}")
    } else {
        return Ok(());
    };
    Err(ScopeError::Id { part, id: shorten(id), why })
}

/// At most 80 characters of `text`, for error messages.
fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

/// A provider key's place: its scope, provider and variable. The resolver
/// lists them and the health prober walks them; it lives here so the
/// resolver need not import the prober, which imports the resolver.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyLocation {
    /// Its scope.
    pub scope: Scope,
    /// Its provider.
    pub provider: String,
    /// Its variable.
    pub key_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_pattern_accepts_what_the_rule_accepts() {
        let pattern = regex::Regex::new(&format!("^{}$", id_pattern())).unwrap();
        let longest = "a".repeat(MAX_SCOPE_ID_LEN);
        let too_long = "a".repeat(MAX_SCOPE_ID_LEN + 1);
        for id in ["acme", "a.b_c-D9", "", "a/b", "a b", "ä", "a\n", &longest, &too_long] {
            assert_eq!(pattern.is_match(id), check_id(ScopePart::Project, id).is_ok(), "{id:?}");
        }
    }

    #[test]
    fn parses_and_displays() {
        let scope: Scope = "acme/shop-web/prod".parse().unwrap();
        assert_eq!(scope.organization(), "acme");
        assert_eq!(scope.project(), "shop-web");
        assert_eq!(scope.environment(), "prod");
        assert_eq!(scope.to_string(), "acme/shop-web/prod");
        let odd: Scope = "A.b_C/0/x-y.z".parse().unwrap();
        assert_eq!(odd.to_string().parse::<Scope>().unwrap(), odd);
        let longest = "a".repeat(MAX_SCOPE_ID_LEN);
        assert!(format!("{longest}/{longest}/{longest}").parse::<Scope>().is_ok());
    }

    #[test]
    fn refuses_wrong_shapes() {
        for (text, parts) in [("acme", 1), ("acme/shop", 2), ("a/b/c/d", 4), ("", 1)] {
            let error = text.parse::<Scope>().unwrap_err();
            assert_eq!(error, ScopeError::Shape { text: text.to_owned(), parts });
            let message = error.to_string();
            assert!(message.contains("organization/project/environment"), "{message}");
            assert!(message.contains(&format!("found {parts} part")), "{message}");
        }
    }

    #[test]
    fn names_the_bad_part() {
        let cases = [
            ("/shop/dev", "organization", "empty"),
            ("acme//dev", "project", "empty"),
            ("acme/shop/", "environment", "empty"),
            ("acme/sh op/dev", "project", "' '"),
            ("acme/shop/dév", "environment", "'é'"),
            ("ac:me/shop/dev", "organization", "':'"),
        ];
        for (text, part, found) in cases {
            let message = text.parse::<Scope>().unwrap_err().to_string();
            assert!(message.starts_with(&format!("invalid {part} id")), "{text}: {message}");
            assert!(message.contains(found), "{text}: {message}");
            assert!(message.contains("1-64 characters of A-Z, a-z, 0-9"), "{message}");
        }
        let long = "a".repeat(MAX_SCOPE_ID_LEN + 1);
        let message = format!("acme/{long}/dev").parse::<Scope>().unwrap_err().to_string();
        assert!(
            message.contains("invalid project id") && message.contains("found 65 characters"),
            "{message}"
        );
    }

    #[test]
    fn new_checks_too() {
        assert!(Scope::new("acme", "shop", "dev").is_ok());
        assert!(matches!(
            Scope::new("acme", "shop", "d/v"),
            Err(ScopeError::Id { part: ScopePart::Environment, .. })
        ));
    }
}
