//! The response cache, measured (prints figures; asserts nothing).
//!
//! `cache pairs [dev|test]`: the adversarial pair set
//! (`tests/corpus/cache/pairs-*.json`) through the semantic level's
//! decision: raw cosine thresholds (what other gateways do) beside the
//! verifier at the default settings, true- and false-hit rates with 95%
//! intervals, false hits and rejections per kind.
//!
//! `cache latency [n]`: lookups through `SemanticCache` (SQLite settings,
//! the in-process entry store, qdrant-edge, all-MiniLM-L6-v2 in-process):
//! exact hits, semantic hits and misses, p50/p99, at a fixed rate and at
//! saturation; and the embedding alone.
//!
//! Needs `LLMOPS_CACHE_EMBEDDING_DIR` (the weights; `scripts/lib.sh`
//! `minilm_dir` prints where the local Triton's package keeps them).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use llmops_cache::guard::{self, Rejection};
use llmops_cache::store::MemoryStore;
use llmops_cache::{CacheConfig, CacheRequest, Directives, MiniLm, Sampling, SemanticCache};
use llmops_core::TenantCtx;
use llmops_core::ids::{JobId, TenantId};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(serde::Deserialize)]
struct Pair {
    a: String,
    b: String,
    same: bool,
    kind: String,
}

fn pairs(split: &str) -> Vec<Pair> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/cache")
        .join(format!("pairs-{split}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("pairs file")
}

fn model() -> MiniLm {
    let dir = std::env::var("LLMOPS_CACHE_EMBEDDING_DIR")
        .expect("set LLMOPS_CACHE_EMBEDDING_DIR to all-MiniLM-L6-v2's weights");
    MiniLm::load("all-minilm-l6-v2", &PathBuf::from(dir)).expect("loading the model")
}

/// Wilson's 95% interval of k successes in n, in percent.
fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 100.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.96f64);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let center = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    (
        100.0 * (center - half).max(0.0),
        100.0 * (center + half).min(1.0),
    )
}

fn pct(k: usize, n: usize) -> f64 {
    100.0 * k as f64 / n.max(1) as f64
}

fn eval_pairs(split: &str) {
    let mut ps = pairs(split);
    if let Some(n) = std::env::var("BENCH_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        ps.truncate(n);
    }
    let started = Instant::now();
    // BENCH_COSINES=FILE keeps the cosines between runs (tuning the verifier).
    let saved = std::env::var("BENCH_COSINES")
        .ok()
        .map(|f| format!("{f}.{split}"));
    let cos: Vec<f32> = match saved.as_ref().and_then(|f| std::fs::read(f).ok()) {
        Some(raw) => serde_json::from_slice(&raw).expect("cosines"),
        None => {
            let m = model();
            let cos: Vec<f32> = ps
                .iter()
                .map(|p| {
                    let a = m.embed_blocking(&p.a).expect("embed");
                    let b = m.embed_blocking(&p.b).expect("embed");
                    llmops_cache::embed::cosine(&a, &b)
                })
                .collect();
            if let Some(f) = &saved {
                let _ = std::fs::write(f, serde_json::to_vec(&cos).unwrap_or_default());
            }
            cos
        }
    };
    let default: f32 = std::env::var("BENCH_THRESHOLD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CacheConfig::default().min_similarity);
    let same = ps.iter().filter(|p| p.same).count();
    let near = ps.len() - same;
    println!(
        "pairs-{split}.json: {same} paraphrase pairs, {near} near misses (embedded in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("| decision | true hits | false hits | false-hit 95% interval |");
    println!("|---|---|---|---|");
    let row = |name: String, accept: &dyn Fn(usize) -> bool| {
        let tp = ps
            .iter()
            .enumerate()
            .filter(|(i, p)| p.same && accept(*i))
            .count();
        let fp = ps
            .iter()
            .enumerate()
            .filter(|(i, p)| !p.same && accept(*i))
            .count();
        let (lo, hi) = wilson(fp, near);
        let bound = if fp == 0 {
            // Exact one-sided 95% bound for zero events (≈ 3/n).
            format!(
                "0 – {:.2}% (exact one-sided: {:.2}%)",
                hi,
                100.0 * (1.0 - 0.05f64.powf(1.0 / near as f64))
            )
        } else {
            format!("{lo:.1} – {hi:.1}%")
        };
        let (tlo, thi) = wilson(tp, same);
        println!(
            "| {name} | {tp}/{same} = {:.1}% ({tlo:.1} – {thi:.1}%) | {fp}/{near} = {:.1}% | {bound} |",
            pct(tp, same),
            pct(fp, near)
        );
    };
    for t in [0.80f32, 0.85, 0.90, 0.95] {
        row(format!("raw cosine ≥ {t:.2}"), &|i| cos[i] >= t);
    }
    for t in [0.75f32, default, 0.85, 0.90] {
        let label = if t == default { " (default)" } else { "" };
        row(format!("verifier, threshold {t:.2}{label}"), &|i| {
            guard::verify(&ps[i].b, &ps[i].a, cos[i], t).is_ok()
        });
    }
    println!();
    println!(
        "At the default threshold {default:.2}, by kind (accepted / pairs; the reasons of rejections):"
    );
    let mut kinds: BTreeMap<&str, (usize, usize, BTreeMap<&'static str, usize>)> = BTreeMap::new();
    for (i, p) in ps.iter().enumerate() {
        let e = kinds.entry(p.kind.as_str()).or_default();
        e.1 += 1;
        match guard::verify(&p.b, &p.a, cos[i], default) {
            Ok(()) => e.0 += 1,
            Err(r) => *e.2.entry(r.as_str()).or_default() += 1,
        }
    }
    for (kind, (ok, n, why)) in kinds {
        let reasons: Vec<String> = why.iter().map(|(r, c)| format!("{r} {c}")).collect();
        println!("  {kind:<11} {ok:>3}/{n:<3}  {}", reasons.join(", "));
    }
    if std::env::var_os("BENCH_SHOW_ERRORS").is_some() {
        println!();
        for (i, p) in ps.iter().enumerate() {
            let v = guard::verify(&p.b, &p.a, cos[i], default);
            if v.is_ok() != p.same {
                println!(
                    "{} {:.3} {:?} | {} | {}",
                    p.kind,
                    cos[i],
                    v.err().map(Rejection::as_str),
                    p.a,
                    p.b
                );
            }
        }
    }
}

fn quantiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    (q(0.5), q(0.99))
}

fn latency(n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let m = model();
        let mut emb = Vec::new();
        for p in pairs("test").iter().take(n.min(200)) {
            let t = Instant::now();
            m.embed_blocking(&p.b).expect("embed");
            emb.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (p50, p99) = quantiles(emb);
        println!("embedding one prompt in-process (candle, all-MiniLM-L6-v2): p50 {p50:.2} ms, p99 {p99:.2} ms");
        let db = sea_orm::Database::connect("sqlite::memory:").await.expect("sqlite");
        llmops_migrations::up(&db).await.expect("migrations");
        let dir = tempfile::tempdir().expect("tempdir");
        let vectors = llmops_vectors::VectorStore::open(&llmops_vectors::Backend::Edge(dir.path().into()))
            .expect("vectors");
        let cache = SemanticCache::new(
            CacheConfig::default(),
            db,
            Arc::new(MemoryStore::new(256 << 20)),
        );
        cache.enable_semantic(&vectors, Arc::new(m)).await.expect("semantic");
        let ctx = TenantCtx::for_job(TenantId::new(), JobId::new());
        let sampling = Sampling {
            max_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            seed: None,
            stop: vec![],
            presence_penalty: None,
            frequency_penalty: None,
        };
        let all = pairs("test");
        let para: Vec<&Pair> = all.iter().filter(|p| p.same).take(n).collect();
        let d = Directives::default();
        let turns = |text: &str| vec![("user".to_string(), text.to_string())];
        // Fill: every paraphrase pair's `a` is answered once.
        let mut stored = 0;
        for p in &para {
            let t = turns(&p.a);
            let req = CacheRequest { model: "m", turns: &t, sampling: sampling.clone() };
            let found = cache.lookup(&ctx, &req, &d).await.expect("lookup");
            if let Some(ticket) = found.ticket {
                let entry = llmops_cache::Entry {
                    model: "m".into(),
                    text: "an answer of a few dozen tokens, as a small model gives".repeat(4),
                    finish_reason: "stop".into(),
                    prompt_tokens: 20,
                    completion_tokens: 60,
                    created_at: 0,
                    expires_at: 0,
                };
                cache.store(ticket, entry).await.expect("store");
                stored += 1;
            }
        }
        println!("{stored} answers cached; lookups of {} requests of each kind:", para.len());
        println!();
        println!("| lookup | mode | outcome | p50 ms | p99 ms | lookups/s |");
        println!("|---|---|---|---|---|---|");
        let unrelated: Vec<String> = para
            .iter()
            .map(|p| format!("Unrelated question number {} about {}", p.a.len(), p.b.chars().rev().collect::<String>()))
            .collect();
        for (name, texts) in [
            ("exact hit", para.iter().map(|p| p.a.clone()).collect::<Vec<_>>()),
            ("paraphrase (semantic)", para.iter().map(|p| p.b.clone()).collect()),
            ("miss", unrelated),
        ] {
            for (mode, gap) in [("fixed 20/s", Some(Duration::from_millis(50))), ("saturation", None)] {
                let mut times = Vec::new();
                let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
                let t0 = Instant::now();
                for text in &texts {
                    let t = turns(text);
                    let req = CacheRequest { model: "m", turns: &t, sampling: sampling.clone() };
                    let s = Instant::now();
                    let found = cache.lookup(&ctx, &req, &Directives::default()).await.expect("lookup");
                    times.push(s.elapsed().as_secs_f64() * 1e3);
                    *outcomes.entry(found.status.as_str()).or_default() += 1;
                    if let Some(g) = gap {
                        tokio::time::sleep(g).await;
                    }
                }
                let rate = texts.len() as f64 / t0.elapsed().as_secs_f64();
                let (p50, p99) = quantiles(times);
                let outcomes: Vec<String> = outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let rate = if gap.is_some() { "-".to_string() } else { format!("{rate:.0}") };
                println!("| {name} | {mode} | {} | {p50:.3} | {p99:.3} | {rate} |", outcomes.join(", "));
            }
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("pairs") => eval_pairs(args.get(1).map_or("test", String::as_str)),
        Some("latency") => latency(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(200)),
        _ => {
            eval_pairs("test");
            latency(200);
        }
    }
}
