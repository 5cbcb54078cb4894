//! The `llmops` binary: CLI parsing and wiring only.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
