//! Builds the plugin workspace (`plugins/`: the bundled provider plugins and
//! the test fixtures) for `wasm32-wasip2`, once per build of the host, and
//! embeds the bundled plugins in the host binary.

use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("host/ sits in the workspace root").to_owned();
    for watched in ["plugins", "wit", "manifests"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=PLATOS_SKIP_PLUGIN_BUILD");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out_dir = PathBuf::from(env("OUT_DIR"));
    // <target>/<profile>/build/<pkg>-<hash>/out -> <target>/platos-plugins
    let target_dir = out_dir.ancestors().nth(4).unwrap_or(&out_dir).join("platos-plugins");
    let wasm_dir = target_dir.join(WASM_TARGET).join("release");
    // PLATOS_SKIP_PLUGIN_BUILD=1 reuses the components already built, for
    // host-only work while plugin sources are mid-edit.
    if std::env::var_os("PLATOS_SKIP_PLUGIN_BUILD").is_some() && wasm_dir.is_dir() {
        println!("cargo:warning=PLATOS_SKIP_PLUGIN_BUILD is set: using the plugins already built");
    } else {
        check_wasm_target(&rustc);
        build_plugins(&root, &rustc, &target_dir);
    }

    let mut bundled = Vec::new();
    for entry in std::fs::read_dir(&wasm_dir).expect("the plugin build wrote its output") {
        let path = entry.expect("listing plugin outputs").path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
        if let Some(slug) =
            name.strip_prefix("platos_plugin_").and_then(|rest| rest.strip_suffix(".wasm"))
        {
            bundled.push((slug.replace('_', "-"), path));
        }
    }
    bundled.sort();
    write_bundled(&out_dir, &wasm_dir, &bundled);
}

/// Builds the whole plugin workspace for the wasm target in one cargo run.
fn build_plugins(root: &Path, rustc: &str, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--target", WASM_TARGET, "--manifest-path"])
        .arg(root.join("plugins/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .env("RUSTC", rustc);
    // The host build's own settings must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_LLVM_COV",
    ] {
        build.env_remove(var);
    }
    let status = build.status().expect("running cargo to build the plugins");
    assert!(
        status.success(),
        "building the plugins in plugins/ for {WASM_TARGET} failed (see above)"
    );
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}

/// Installs the wasm target through rustup when it is missing (rustup adds a
/// `rust-toolchain.toml` target only when it installs the toolchain itself);
/// fails at once with the exact command when that is not possible.
fn check_wasm_target(rustc: &str) {
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    let Some(sysroot) = sysroot else { return };
    let target_lib = Path::new(&sysroot).join("lib/rustlib").join(WASM_TARGET);
    if target_lib.is_dir() {
        return;
    }
    println!(
        "cargo:warning=installing the Rust target {WASM_TARGET} with rustup (the bundled plugins need it)"
    );
    let installed = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status()
        .is_ok_and(|status| status.success());
    if !installed || !target_lib.is_dir() {
        panic!(
            "\n\nThe Rust target {WASM_TARGET} is not installed, and the bundled plugins need it.\n\
             Fix: rustup target add {WASM_TARGET}\n\
             (rust-toolchain.toml lists it; `bash .ci/run` installs it too.)\n\n"
        );
    }
}

fn write_bundled(out_dir: &Path, wasm_dir: &Path, bundled: &[(String, PathBuf)]) {
    let mut code = String::from(
        "/// The plugins bundled in this binary: (file stem, component bytes).\n\
         pub static BUNDLED_PLUGINS: &[(&str, &[u8])] = &[\n",
    );
    for (name, path) in bundled {
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    code.push_str(&format!(
        "/// Where this build put every plugin component it built (bundled ones and test fixtures).\n\
         pub const BUILT_PLUGIN_DIR: &str = {:?};\n",
        wasm_dir.display().to_string()
    ));
    std::fs::write(out_dir.join("bundled_plugins.rs"), code).expect("writing bundled_plugins.rs");
}
