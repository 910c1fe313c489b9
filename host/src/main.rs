//! `platos-host`: the Platos provider host's command line.

mod cli;

fn main() -> std::process::ExitCode {
    // Before any thread or file: everything the host creates is owner-only.
    platos_host::private_fs::restrict_umask();
    cli::main()
}
