//! The harness's report: a list of named checks, each passed, failed or
//! skipped, with what was expected, what came back and how to fix it.

use std::fmt::Write as _;

use serde::Serialize;

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    /// The plugin did what the contract asks.
    Passed,
    /// It did not; `expected`, `got` and `fix` say how.
    Failed,
    /// The check could not run (an earlier check failed, or it does not apply).
    Skipped,
}

/// One named check and its outcome. Secret values never appear in it: the
/// harness writes `<VAR_NAME>` where a secret's value would stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable name such as `authorize.no-leak` (see [`super::names`]).
    pub name: String,
    /// How it ended.
    pub status: CheckStatus,
    /// What the check is about, in one line.
    pub about: String,
    /// What the contract expects.
    pub expected: String,
    /// What came back (for a skipped check: why it was skipped).
    pub got: String,
    /// How to fix a failure; empty otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

impl Check {
    /// A passed check.
    pub fn pass(
        name: impl Into<String>,
        about: impl Into<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            status: CheckStatus::Passed,
            about: about.into(),
            expected: expected.into(),
            got: got.into(),
            fix: String::new(),
        }
    }

    /// A failed check with a fix hint.
    pub fn fail(
        name: impl Into<String>,
        about: impl Into<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            status: CheckStatus::Failed,
            about: about.into(),
            expected: expected.into(),
            got: got.into(),
            fix: fix.into(),
        }
    }

    /// A skipped check; `why` says why it did not run.
    pub fn skip(name: impl Into<String>, about: impl Into<String>, why: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            status: CheckStatus::Skipped,
            about: about.into(),
            expected: String::new(),
            got: why.into(),
            fix: String::new(),
        }
    }

    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.status == CheckStatus::Passed
    }

    /// Whether it failed.
    pub fn failed(&self) -> bool {
        self.status == CheckStatus::Failed
    }
}

/// How many checks ended which way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Passed checks.
    pub passed: usize,
    /// Failed checks.
    pub failed: usize,
    /// Skipped checks.
    pub skipped: usize,
}

/// Everything the harness found about one plugin component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HarnessReport {
    /// Where the component came from (a path, or a name the caller chose).
    pub origin: String,
    /// `slug@version`, once the manifest was read.
    pub plugin: Option<String>,
    /// Whether no check failed.
    pub ok: bool,
    /// The checks by outcome.
    pub counts: Counts,
    /// Every check, in the order they ran.
    pub checks: Vec<Check>,
}

impl HarnessReport {
    /// A report of `checks`, with `ok` and `counts` computed.
    pub fn new(origin: impl Into<String>, plugin: Option<String>, checks: Vec<Check>) -> Self {
        let mut counts = Counts::default();
        for check in &checks {
            match check.status {
                CheckStatus::Passed => counts.passed += 1,
                CheckStatus::Failed => counts.failed += 1,
                CheckStatus::Skipped => counts.skipped += 1,
            }
        }
        HarnessReport { origin: origin.into(), plugin, ok: counts.failed == 0, counts, checks }
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.ok
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|check| check.failed())
    }

    /// The check called `name`, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.name == name)
    }

    /// The report as text for people: one line per check (`✓`, `✗` or `-`),
    /// and under each failure its expected, got and fix lines.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let name = self.plugin.as_deref().unwrap_or("(manifest unknown)");
        let _ = writeln!(out, "plugin {name} from {}", self.origin);
        for check in &self.checks {
            let mark = match check.status {
                CheckStatus::Passed => '✓',
                CheckStatus::Failed => '✗',
                CheckStatus::Skipped => '-',
            };
            let _ = writeln!(out, "{mark} {}: {}", check.name, check.about);
            match check.status {
                CheckStatus::Failed => {
                    let _ = writeln!(out, "    expected: {}", indent(&check.expected));
                    let _ = writeln!(out, "    got:      {}", indent(&check.got));
                    let _ = writeln!(out, "    fix:      {}", indent(&check.fix));
                }
                CheckStatus::Skipped => {
                    let _ = writeln!(out, "    skipped:  {}", indent(&check.got));
                }
                CheckStatus::Passed => {}
            }
        }
        let Counts { passed, failed, skipped } = self.counts;
        if self.ok {
            let _ = writeln!(out, "ok: all {passed} checks passed ({skipped} skipped)");
        } else {
            let _ = writeln!(
                out,
                "FAILED: {failed} of {} checks failed ({passed} passed, {skipped} skipped)",
                passed + failed
            );
        }
        out
    }

    /// The failed checks as text, for panics and logs.
    pub fn failures_text(&self) -> String {
        let mut out = String::new();
        for check in self.failures() {
            let _ = writeln!(out, "✗ {}: {}", check.name, check.about);
            let _ = writeln!(out, "    expected: {}", indent(&check.expected));
            let _ = writeln!(out, "    got:      {}", indent(&check.got));
            let _ = writeln!(out, "    fix:      {}", indent(&check.fix));
        }
        out
    }
}

/// Continuation lines of a multi-line field, aligned under the first.
fn indent(text: &str) -> String {
    text.replace('\n', "\n              ")
}

/// Panics with the formatted failures unless every check passed. Meant for an
/// author's `cargo test`:
///
/// ```no_run
/// # async fn example() {
/// let wasm = std::fs::read("target/wasm32-wasip2/release/my_plugin.wasm").unwrap();
/// let report = platos_host::harness::check_plugin(&wasm, &Default::default()).await;
/// platos_host::harness::assert_passes(&report);
/// # }
/// ```
#[track_caller]
pub fn assert_passes(report: &HarnessReport) {
    if !report.ok {
        panic!(
            "plugin {} from {} fails {} of the harness's checks:\n{}",
            report.plugin.as_deref().unwrap_or("(manifest unknown)"),
            report.origin,
            report.counts.failed,
            report.failures_text()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lists_every_check_and_details_failures() {
        let report = HarnessReport::new(
            "x.wasm",
            Some("acme@1.0.0".into()),
            vec![
                Check::pass("load.component", "a component", "a component", "yes"),
                Check::fail("interpret.401", "401", "invalid-credential", "healthy", "map 401"),
                Check::skip("live", "live mode", "no fixtures"),
            ],
        );
        assert!(!report.passed());
        assert_eq!(report.counts, Counts { passed: 1, failed: 1, skipped: 1 });
        let text = report.to_text();
        assert!(text.contains("✓ load.component"), "{text}");
        assert!(text.contains("✗ interpret.401"), "{text}");
        assert!(text.contains("    expected: invalid-credential"), "{text}");
        assert!(text.contains("    fix:      map 401"), "{text}");
        assert!(text.contains("- live"), "{text}");
        assert!(text.contains("FAILED: 1 of 2 checks failed"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["checks"][1]["status"], "failed");
        assert_eq!(json["ok"], false);
    }

    #[test]
    #[should_panic(expected = "interpret.401")]
    fn assert_passes_panics_with_the_failures() {
        let report = HarnessReport::new(
            "x.wasm",
            None,
            vec![Check::fail("interpret.401", "401", "invalid-credential", "healthy", "map 401")],
        );
        assert_passes(&report);
    }
}
