//! The README's command lines, run as written, so that it cannot drift from
//! the binary and the scripts.
//!
//! Every ```sh block after the first (the two set-up commands: CI runs
//! `scripts/test.sh` itself, and `scripts/run.sh` is started by the first
//! steps) runs in order in one bash session, in a fresh working directory
//! with a fresh data directory; ```python blocks run with the openai SDK in
//! the same session; ```toml blocks must be configurations `llmops config`
//! accepts. Two things are adapted: the server listens on a free port
//! instead of 8080 (every `localhost:8080` becomes that port), and curl
//! fails on an HTTP error (`--fail-with-body`), so a route that moved fails
//! the test. Every command the README names in its text (`llmops tenants
//! get`, `scripts/run.sh`, …) must be among those that ran; a benchmark it
//! names (`benches/…`) must have its smoke run in benches.rs.

use llmops_tests::{JWT_SECRET, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

#[derive(Debug)]
enum Block {
    Sh(String),
    Python(String),
    Toml(String),
}

/// The fenced blocks of a Markdown text, in order.
fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = md.lines();
    while let Some(line) = lines.next() {
        let Some(lang) = line.strip_prefix("```") else {
            continue;
        };
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let body = body.join("\n") + "\n";
        match lang.trim() {
            "sh" => out.push(Block::Sh(body)),
            "python" => out.push(Block::Python(body)),
            "toml" => out.push(Block::Toml(body)),
            _ => {}
        }
    }
    out
}

/// Commands the README names in its text: inline code that starts with
/// `llmops `, `scripts/` or `cargo `, as the words before the first option
/// or placeholder (`llmops keys list --tenant T` → `llmops keys list`;
/// `scripts/llmops` is `llmops`). A table cell may list alternatives:
/// `llmops tenants list / get / suspend [--reason] / reactivate`.
fn named_commands(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in md.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        for span in line.split('`').skip(1).step_by(2) {
            let span = span.trim().replace("scripts/llmops ", "llmops ");
            if !["llmops ", "scripts/", "cargo "]
                .iter()
                .any(|p| span.starts_with(p))
            {
                continue;
            }
            let mut alternatives = span.split(" / ");
            let first: Vec<&str> = alternatives
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .take_while(|w| {
                    !w.starts_with('-') && !w.starts_with('[') && !w.contains('…') && *w != ">"
                })
                .take(
                    if span.starts_with("scripts/") || span.starts_with("benches/") {
                        1
                    } else {
                        3
                    },
                )
                .collect();
            out.push(first.join(" "));
            if first.len() == 3 {
                for alt in alternatives {
                    if let Some(sub) = alt.split_whitespace().next() {
                        out.push(format!("{} {} {sub}", first[0], first[1]));
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18_181)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_line_of_the_readme_works_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let all = blocks(&readme);
    assert!(
        matches!(all.first(), Some(Block::Sh(b)) if b.contains("scripts/run.sh") && b.contains("scripts/test.sh")),
        "the README opens with the two set-up commands"
    );
    let port = free_port();
    let work = TempDir::new("readme").unwrap();
    // The README's `scripts/…` and `infra/…` paths, from a directory of its own.
    for name in ["scripts", "infra"] {
        std::os::unix::fs::symlink(repo().join(name), work.0.join(name)).unwrap();
    }
    let sdk = std::env::var("TEST_SDK_PYTHON").expect("TEST_SDK_PYTHON (scripts/test.sh sets it)");
    let triton =
        std::env::var("TEST_TRITON_URL").expect("TEST_TRITON_URL (scripts/test.sh sets it)");
    let mut script = format!(
        "set -euo pipefail\n\
         curl() {{ command curl --fail-with-body \"$@\"; }}\n\
         export LLMOPS_DATA_DIR='{data}' LLMOPS_LISTEN=127.0.0.1:{port} LLMOPS_TRITON_URL='{triton}' \\\n\
                LLMOPS_JWT_SECRET='{JWT_SECRET}' LLMOPS_LOG_LEVEL=warn\n",
        data = work.0.join("data").display(),
    );
    let mut ran = String::new();
    for block in all.iter().skip(1) {
        match block {
            Block::Sh(body) => {
                let body = body
                    .replace("localhost:8080", &format!("127.0.0.1:{port}"))
                    .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
                ran.push_str(&body);
                script.push_str(&body);
            }
            Block::Python(body) => {
                let body = body.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
                script.push_str(&format!("'{sdk}' - <<'PYTHON'\n{body}PYTHON\n"));
            }
            Block::Toml(body) => {
                script.push_str(&format!(
                    "cat > readme-example.toml <<'TOML'\n{body}TOML\n\
                     LLMOPS_CONFIG=readme-example.toml scripts/llmops config > /dev/null\n"
                ));
            }
        }
    }
    script.push_str("echo README-DONE\n");
    std::fs::write(work.0.join("readme.sh"), &script).unwrap();

    // Its own process group, so that the server `scripts/run.sh &` started
    // goes too; output to files, which that server also holds open.
    let (out_path, err_path) = (work.0.join("stdout"), work.0.join("stderr"));
    let mut child = Command::new("bash");
    child
        .arg("readme.sh")
        .current_dir(&work.0)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    llmops_tests::clean_env(&mut child);
    std::os::unix::process::CommandExt::process_group(&mut child, 0);
    let mut child = child.spawn().unwrap();
    let pgid = child.id();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{pgid}")])
        .status();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.success() && stdout.contains("README-DONE"),
        "the README's commands failed ({status}):\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // What the blocks printed is what the README says they print.
    assert!(
        stdout.contains("\"object\":\"tenant\""),
        "GET /v1/tenant: {stdout}"
    );
    assert!(stdout.contains("access_token"), "login: {stdout}");
    assert!(
        stdout.contains("\"status\":\"ready\""),
        "the artifact upload: {stdout}"
    );

    let ran = ran.replace("scripts/llmops", "llmops");
    // The benchmarks' smoke runs are in benches.rs.
    let smoke = std::fs::read_to_string(repo().join("tests/tests/api/benches.rs")).unwrap();
    for cmd in named_commands(&readme) {
        let cmd = cmd.replace("scripts/llmops", "llmops");
        let covered = if cmd == "llmops serve" {
            ran.contains("scripts/run.sh")
        } else if let Some(script) = cmd.strip_prefix("benches/") {
            smoke.contains(&format!("bench(\"{script}\""))
        } else {
            ran.contains(&cmd)
        };
        assert!(
            covered || cmd == "scripts/test.sh",
            "the README names `{cmd}` but none of its command lines runs it"
        );
    }
}

#[test]
fn named_commands_are_found_in_text_and_tables() {
    let md = "Run `scripts/run.sh` or `llmops tenants list / get / suspend [--reason] / reactivate`.\n\
              | `llmops keys revoke --tenant T KEY_ID` |\n```sh\nscripts/llmops config\n```\n";
    assert_eq!(
        named_commands(md),
        vec![
            "llmops keys revoke",
            "llmops tenants get",
            "llmops tenants list",
            "llmops tenants reactivate",
            "llmops tenants suspend",
            "scripts/run.sh",
        ]
    );
}
