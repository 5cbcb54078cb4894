//! Every benchmark script runs, in a smoke run: the shared debug build
//! (`LLMOPS_PROFILE=dev`), a second or two of load, and its report checked
//! for the figures it promises. The figures of a debug build under test load
//! mean nothing; that the scripts still work is the point (a documented
//! command that fails on first use is a bug).

use std::path::PathBuf;
use std::process::Command;

/// Runs `benches/<script> <args…>`; returns its stdout (fails the test
/// with both outputs when it fails).
fn bench(script: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(root.join("benches").join(script));
    llmops_tests::clean_env(&mut cmd)
        .args(args)
        .env("LLMOPS_PROFILE", "dev");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "benches/{script} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn overhead_prints_direct_and_gateway_rows_on_both_databases() {
    let out = bench("overhead.sh", &["200", "1", "10"], &[]);
    for row in [
        "direct (for after-sqlite)",
        "gateway after-sqlite",
        "direct (for after-postgres)",
        "gateway after-postgres",
        "gateway after-sqlite, no monitoring",
        "gateway after-postgres, no monitoring",
        "direct (for after-split)",
        "gateway after-split",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no `{row}` row:\n{out}"));
        let cols: Vec<&str> = line[row.len()..].split_whitespace().collect();
        // p50 p90 p99 +p99 req/s non2xx max-req/s; no request failed.
        assert_eq!(cols.len(), 7, "{line}");
        assert_eq!(cols[5], "0", "non-2xx answers: {line}");
        assert!(cols[0].parse::<f64>().is_ok_and(|v| v > 0.0), "{line}");
    }
    // Every call of the monitored runs left a record; none was dropped.
    for db in ["sqlite", "postgres", "split"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("monitoring records of after-{db}:")))
            .unwrap_or_else(|| panic!("no monitoring line for {db}:\n{out}"));
        assert!(line.ends_with("dropped 0, lost 0"), "{line}");
        assert!(!line.contains("written 0,"), "{line}");
    }
}

#[test]
fn soak_prints_rss_through_every_phase() {
    let out = bench("soak.sh", &["2", "1"], &[]);
    for phase in [
        "GET /v1/tenant done",
        "chat done",
        "chat stream done",
        "idle",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(phase)),
            "no `{phase}`:\n{out}"
        );
    }
}

#[test]
fn gateway_ledger_and_billing_benches_report() {
    let out = bench("gateway.sh", &["8", "1"], &[]);
    assert!(
        out.contains("GET /v1/tenant on PostgreSQL") && out.contains("non-2xx 0"),
        "{out}"
    );
    let out = bench("ledger.sh", &["2", "1"], &[]);
    assert!(out.contains("events/s acknowledged"), "{out}");
    let out = bench("billing.sh", &["2"], &[]);
    assert!(out.contains("2 invoices pushed to localstripe"), "{out}");
}

#[test]
fn queue_bench_claims_every_job_on_both_databases() {
    let out = bench("queue.sh", &["2", "40"], &[]);
    for db in ["postgres:", "sqlite:"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(db))
            .unwrap_or_else(|| panic!("no `{db}` line:\n{out}"));
        assert!(
            line.contains("40 claimed") && line.contains("claims/s"),
            "{line}"
        );
    }
}

#[test]
fn inference_bench_measures_both_paths() {
    let triton = std::env::var("TEST_TRITON_URL").expect("TEST_TRITON_URL (scripts/test.sh)");
    let out = bench("inference.sh", &["1"], &[("TRITON_URL", triton)]);
    assert!(out.contains("gateway") && out.contains("direct"), "{out}");
}

#[test]
fn rag_bench_reports_ingestion_queries_and_the_store() {
    let triton = std::env::var("TEST_TRITON_URL").expect("TEST_TRITON_URL (scripts/test.sh)");
    let out = bench(
        "rag.sh",
        &["1", "5", "300"],
        &[("TRITON_URL", triton), ("BENCH_QUERIES", "40".into())],
    );
    for figure in [
        "chunks/s",
        "embedding",
        "query through the API",
        "| 300 |",
        "Hybrid",
        "qdrant server: skipped",
    ] {
        assert!(out.contains(figure), "no `{figure}` in:\n{out}");
    }
}

#[test]
fn cache_prints_the_pair_set_lookups_and_calls_through_the_gateway() {
    let triton = llmops_tests::triton_url().unwrap();
    let out = bench(
        "cache.sh",
        &["dev", "10", "2"],
        &[("TRITON_URL", triton), ("BENCH_LIMIT", "30".into())],
    );
    let default = llmops_cache::CacheConfig::default().min_similarity;
    for figure in [
        "| raw cosine ≥ 0.80 |",
        format!(
            "| guard alone, threshold {:.2} (default without the pair classifier) |",
            default.max(llmops_cache::GUARD_ALONE_MIN_SIMILARITY)
        )
        .as_str(),
        format!("| guard + pair classifier, threshold {default:.2} (default) |").as_str(),
        format!("| guard + judge (until 2026-12-04), threshold {default:.2} |").as_str(),
        "verifying one pair: the guard's checks",
        "the pair classifier on one pair",
        "neighbours-heldout.json: 800 directions",
        "| served, it does not (false hits) |",
        "embedding one prompt in-process",
        "f32, 1 thread",
        "bf16, 2 threads",
        "| exact hit | fixed 20/s | hit 10 |",
        "| paraphrase (semantic) | saturation |",
        "| miss | fixed 20/s | miss 10 |",
        "| miss (the SmolLM2 call) | miss 2 |",
        "| exact hit | hit 2 |",
    ] {
        assert!(out.contains(figure), "no `{figure}` in:\n{out}");
    }
}

#[test]
fn monitoring_bench_reports_false_alarms_and_power() {
    let out = bench("monitoring.sh", &["4"], &[]);
    for figure in [
        "Thresholds::default():",
        "| unshifted | 300 | 100 | 4 |",
        "| topic shift: new topic at 30% | 300 | 100 | 4 |",
        "| language shift: fra 5% → 25% | 30 | 20 | 4 |",
        "mean ms per analysis",
    ] {
        assert!(out.contains(figure), "no `{figure}` in:\n{out}");
    }
}
