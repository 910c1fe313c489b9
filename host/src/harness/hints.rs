//! What fix hints call a plugin's functions and the helpers, in each
//! language a plugin is written in: one table, so no hint speaks only Rust.
//!
//! Rust names the trait method of `platos_plugin_sdk::Provider` and the SDK's
//! helpers; Python the method of `class Plugin(exports.Plugin)` (componentize-py)
//! and the helpers of `examples/python-provider/platos_plugin.py`; JavaScript
//! the method of the exported `plugin` object (componentize-js / jco) and the
//! helpers of `examples/js-provider/platos-plugin.js`.

/// Something a fix hint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// Exporting the world `provider`.
    Export,
    /// The WIT function `manifest`.
    Manifest,
    /// The WIT function `authorize`.
    Authorize,
    /// The WIT function `health-probe`.
    HealthProbe,
    /// The WIT function `interpret-health`.
    InterpretHealth,
    /// The WIT function `read-usage` (0.2.0).
    ReadUsage,
    /// The WIT function `token-request` (0.2.0).
    TokenRequest,
    /// The WIT function `read-token` (0.2.0).
    ReadToken,
    /// The models-list verdict on a probe's response.
    StandardVerdict,
    /// A body quoted in a message, key-like runs masked.
    RedactedSnippet,
    /// A required variable's value, or a `missing-credential` error.
    RequireCredential,
    /// The base-url variable's value, or its default.
    BaseUrl,
    /// Parsing a body without trapping on one that is not JSON.
    ParseJson,
}

/// One row of the table: how each language spells a [`Named`].
struct Spelling {
    rust: &'static str,
    python: &'static str,
    javascript: &'static str,
}

/// The table (a `match`, so every [`Named`] has its row).
fn spelling(named: Named) -> Spelling {
    match named {
        Named::Export => Spelling {
            rust: "`impl platos_plugin_sdk::Provider for YourType` and `export_provider!(YourType)`",
            python: "`class Plugin(exports.Plugin)` in the module you pass to `componentize-py componentize`",
            javascript: "`export const plugin = { ... }` in the module you pass to `componentize-js`",
        },
        Named::Manifest => Spelling {
            rust: "`Provider::manifest` (`include_manifest!()`)",
            python: "`Plugin.manifest` (`platos_plugin.manifest_from_toml`)",
            javascript: "`plugin.manifest` (`manifestFromToml`)",
        },
        Named::Authorize => Spelling {
            rust: "`Provider::authorize` (its default, `apply_declared_auth`, applies the declared shape)",
            python: "`Plugin.authorize`",
            javascript: "`plugin.authorize`",
        },
        Named::HealthProbe => Spelling {
            rust: "`Provider::health_probe`",
            python: "`Plugin.health_probe`",
            javascript: "`plugin.healthProbe`",
        },
        Named::InterpretHealth => Spelling {
            rust: "`Provider::interpret_health`",
            python: "`Plugin.interpret_health`",
            javascript: "`plugin.interpretHealth`",
        },
        Named::ReadUsage => Spelling {
            rust: "`Provider::read_usage` (`read_openai_usage`, `read_anthropic_usage`, `read_gemini_usage`)",
            python: "`Plugin.read_usage`",
            javascript: "`plugin.readUsage`",
        },
        Named::TokenRequest => Spelling {
            rust: "`Provider::token_request`",
            python: "`Plugin.token_request`",
            javascript: "`plugin.tokenRequest`",
        },
        Named::ReadToken => Spelling {
            rust: "`Provider::read_token` (`read_oauth_token` reads OAuth 2.0 answers)",
            python: "`Plugin.read_token`",
            javascript: "`plugin.readToken`",
        },
        Named::StandardVerdict => Spelling {
            rust: "`standard_verdict(&response)`",
            python: "`platos_plugin.standard_verdict(response, wit)`",
            javascript: "`standardVerdict(response)`",
        },
        Named::RedactedSnippet => Spelling {
            rust: "`redacted_snippet(&body)`",
            python: "`platos_plugin.redacted_snippet(body)`",
            javascript: "`redactedSnippet(body)`",
        },
        Named::RequireCredential => Spelling {
            rust: "`require_credential(&credentials, \"ACME_API_KEY\")?`",
            python: "`platos_plugin.require_credential(credentials, \"ACME_API_KEY\", wit)`",
            javascript: "`requireCredential(credentials, 'ACME_API_KEY')`",
        },
        Named::BaseUrl => Spelling {
            rust: "`base_url(&credentials, &Self::manifest())?` with `join_url`",
            python: "`platos_plugin.credential(credentials, BASE_VAR) or DEFAULT_BASE`",
            javascript: "`credential(credentials, BASE_VAR) ?? DEFAULT_BASE`",
        },
        Named::ParseJson => Spelling {
            rust: "`serde_json::from_slice(..).ok()`",
            python: "`json.loads` inside `try: ... except ValueError`",
            javascript: "`JSON.parse` inside `try { ... } catch`",
        },
    }
}

/// `named` in every language, for a fix hint: "`Provider::health_probe`
/// (Rust), `Plugin.health_probe` (Python), `plugin.healthProbe` (JavaScript)".
pub fn in_every_language(named: Named) -> String {
    let row = spelling(named);
    format!("{} (Rust), {} (Python), {} (JavaScript)", row.rust, row.python, row.javascript)
}

/// The plugin function a WIT function name (`health-probe`, ...) is, if any.
pub fn wit_function(name: &str) -> Option<Named> {
    Some(match name {
        "manifest" => Named::Manifest,
        "authorize" => Named::Authorize,
        "health-probe" => Named::HealthProbe,
        "interpret-health" => Named::InterpretHealth,
        "read-usage" => Named::ReadUsage,
        "token-request" => Named::TokenRequest,
        "read-token" => Named::ReadToken,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: [Named; 13] = [
        Named::Export,
        Named::Manifest,
        Named::Authorize,
        Named::HealthProbe,
        Named::InterpretHealth,
        Named::ReadUsage,
        Named::TokenRequest,
        Named::ReadToken,
        Named::StandardVerdict,
        Named::RedactedSnippet,
        Named::RequireCredential,
        Named::BaseUrl,
        Named::ParseJson,
    ];

    #[test]
    fn every_name_is_spelt_in_all_three_languages() {
        for named in EVERY {
            let hint = in_every_language(named);
            for language in ["(Rust)", "(Python)", "(JavaScript)"] {
                assert!(hint.contains(language), "{named:?}: {hint}");
            }
        }
    }

    #[test]
    fn a_missing_health_probe_names_the_trait_method_the_python_method_and_the_js_export() {
        let hint = in_every_language(wit_function("health-probe").unwrap());
        assert_eq!(
            hint,
            "`Provider::health_probe` (Rust), `Plugin.health_probe` (Python), `plugin.healthProbe` (JavaScript)"
        );
        assert_eq!(wit_function("read-token"), Some(Named::ReadToken));
        assert_eq!(wit_function("fetch"), None);
    }

    #[test]
    fn the_python_and_js_names_are_the_ones_the_helper_modules_and_examples_define() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        let python =
            std::fs::read_to_string(format!("{root}/python-provider/platos_plugin.py")).unwrap();
        let js = std::fs::read_to_string(format!("{root}/js-provider/platos-plugin.js")).unwrap();
        for helper in
            ["manifest_from_toml", "standard_verdict", "redacted_snippet", "require_credential"]
        {
            assert!(python.contains(&format!("def {helper}(")), "{helper}");
        }
        for helper in
            ["manifestFromToml", "standardVerdict", "redactedSnippet", "requireCredential"]
        {
            assert!(js.contains(&format!("export function {helper}(")), "{helper}");
        }
        let app = std::fs::read_to_string(format!("{root}/python-provider/app.py")).unwrap();
        for method in ["manifest", "authorize", "health_probe", "interpret_health"] {
            assert!(app.contains(&format!("def {method}(self")), "{method}");
        }
        let provider = std::fs::read_to_string(format!("{root}/js-provider/provider.js")).unwrap();
        assert!(provider.contains("export const plugin = {"));
        for method in ["manifest", "authorize", "healthProbe", "interpretHealth"] {
            assert!(provider.contains(&format!("  {method}(")), "{method}");
        }
    }
}
