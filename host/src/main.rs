//! `platos-host`: the Platos provider host's command line.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
