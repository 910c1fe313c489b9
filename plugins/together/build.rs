fn main() {
    platos_plugin_build::embed_manifest("../../manifests/together.toml");
}
