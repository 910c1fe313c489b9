//! Which imports a plugin component may have: the provider world imports
//! nothing, and WASI 0.2 is linked deny-all (no filesystem, sockets,
//! environment or arguments), so the allowed set is WASI 0.2's own packages.

/// The WASI 0.2 packages the host links (deny-all).
const WASI_PACKAGES: &[&str] = &["io", "clocks", "random", "cli", "filesystem", "sockets"];

/// Whether one import name (e.g. `wasi:io/streams@0.2.9`) is allowed.
pub fn is_allowed_import(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("wasi:") else { return false };
    let Some((package, interface_and_version)) = rest.split_once('/') else { return false };
    let Some((_, version)) = interface_and_version.split_once('@') else { return false };
    WASI_PACKAGES.contains(&package) && version.starts_with("0.2.")
}

/// The imports among `names` that are not allowed, in order.
pub fn disallowed_imports<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    names.into_iter().filter(|name| !is_allowed_import(name)).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasi_0_2_is_allowed_at_any_patch() {
        for name in [
            "wasi:io/streams@0.2.0",
            "wasi:cli/environment@0.2.9",
            "wasi:sockets/tcp@0.2.3",
            "wasi:filesystem/preopens@0.2.9",
        ] {
            assert!(is_allowed_import(name), "{name}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        let refused = disallowed_imports([
            "wasi:io/streams@0.2.0",
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:io/streams@0.3.0",
            "wasi:keyvalue/store@0.2.0",
            "platos-fixture:forbidden/raw-net",
            "wasi:io/streams",
        ]);
        assert_eq!(
            refused,
            [
                "wasi:http/outgoing-handler@0.2.0",
                "wasi:io/streams@0.3.0",
                "wasi:keyvalue/store@0.2.0",
                "platos-fixture:forbidden/raw-net",
                "wasi:io/streams",
            ]
        );
    }
}
