//! The `llmops` binary: CLI parsing and wiring only.

mod cli;

/// mimalloc: the request path allocates many small, short-lived objects
/// across threads, where glibc's malloc spent a quarter of the gateway's
/// CPU (measured with perf; see benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
