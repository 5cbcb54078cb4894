//! The vector store under load: upsert throughput, then query latency
//! (dense and hybrid, always with the tenant condition) at a fixed rate and
//! at saturation, with N chunk-sized points spread over tenants, and the
//! process's resident memory once they are loaded.
//!
//! `benches/rag.sh` runs it (release build). Settings (environment):
//! - `BENCH_SIZES`: point counts, default `10000,100000`;
//! - `BENCH_TENANTS` (default 20), `BENCH_QUERIES` per measurement (default
//!   2000), `BENCH_RATE` queries/s of the fixed-rate run (default 100),
//!   `BENCH_CONCURRENCY` of the saturation run (default 4);
//! - `BENCH_QDRANT_URL`: also run on that Qdrant server.
//!
//! Vectors are random unit vectors of 384 dimensions (all-MiniLM-L6-v2's
//! size) and texts random 120-word passages of a 5,000-word vocabulary, so
//! the figures are the store's, without embedding time.

// A benchmark binary: a failure stops it with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use llmops_core::TenantCtx;
use llmops_core::ids::{JobId, TenantId};
use llmops_vectors::{
    Backend, CollectionSpec, Filter, Fusion, Lexical, PayloadField, Point, Query, Ranking,
    VectorStore,
};
use std::time::{Duration, Instant};

const DIM: usize = 384;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
    fn vector(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..DIM).map(|_| self.unit()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.into_iter().map(|x| x / n).collect()
    }
    fn text(&mut self, words: usize) -> String {
        (0..words)
            .map(|_| word(self.next() % 5000))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A pronounceable pseudo-word per number.
fn word(n: u64) -> String {
    const SYL: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zu", "pa", "di", "go", "he", "ji", "fu",
        "be",
    ];
    let mut s = String::new();
    let mut n = n + 16;
    while n > 0 {
        s.push_str(SYL[(n % 16) as usize]);
        n /= 16;
    }
    s
}

fn env<T: std::str::FromStr>(k: &str, default: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn dir_mib(p: &std::path::Path) -> f64 {
    fn walk(p: &std::path::Path) -> u64 {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => walk(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(p) as f64 / 1024.0 / 1024.0
}

struct Setup {
    tenants: Vec<TenantCtx>,
    lex: Lexical,
}

async fn measure(
    coll: &llmops_vectors::Collection,
    setup: &Setup,
    ranking: Ranking,
    queries: usize,
    rate: Option<f64>,
    concurrency: usize,
) -> (f64, f64, f64) {
    let mut rng = Rng(0x5eed ^ queries as u64);
    let work: Vec<(usize, Vec<f32>, String)> = (0..queries)
        .map(|i| (i % setup.tenants.len(), rng.vector(), rng.text(6)))
        .collect();
    let work = std::sync::Arc::new(work);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let lanes = if rate.is_some() { 16 } else { concurrency };
    let mut handles = Vec::new();
    for _ in 0..lanes {
        let (coll, work, next) = (coll.clone(), work.clone(), next.clone());
        let tenants = setup.tenants.clone();
        let lex = setup.lex.clone();
        #[allow(clippy::disallowed_methods)]
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((t, v, text)) = work.get(i) else {
                    break;
                };
                if let Some(rate) = rate {
                    // Evenly spaced: query i is due at i / rate.
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let t0 = Instant::now();
                let q = Query {
                    dense: v.clone(),
                    sparse: lex.query(text),
                    ranking,
                    fusion: Fusion::Dbsf,
                    filter: Filter::default(),
                    limit: 10,
                    prefetch: 40,
                    score_threshold: None,
                };
                let hits = coll.scoped(&tenants[*t]).query(q).await;
                assert!(hits.is_ok(), "query failed: {hits:?}");
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap_or_default());
    }
    let wall = started.elapsed().as_secs_f64();
    all.sort();
    (
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.len() as f64 / wall,
    )
}

async fn run(engine: &str, backend: Backend, sizes: &[usize]) {
    let store = VectorStore::open(&backend).expect("open store");
    let tenants: Vec<TenantCtx> = (0..env("BENCH_TENANTS", 20usize))
        .map(|_| TenantCtx::for_job(TenantId::new(), JobId::new()))
        .collect();
    let setup = Setup {
        tenants,
        lex: Lexical::english(120.0).expect("bm25"),
    };
    let (queries, rate, concurrency) = (
        env("BENCH_QUERIES", 2000usize),
        env("BENCH_RATE", 100.0f64),
        env("BENCH_CONCURRENCY", 4usize),
    );
    let run_id = format!(
        "{:x}",
        Instant::now().elapsed().as_nanos() ^ std::process::id() as u128
    );
    let spec = CollectionSpec::new(
        &format!("bench{run_id}"),
        "synthetic",
        DIM,
        vec![
            PayloadField::Keyword("kb_id"),
            PayloadField::Keyword("doc_id"),
        ],
    );
    let coll = store.collection(spec).await.expect("collection");
    let mut rng = Rng(42);
    let mut loaded = 0usize;
    let rss0 = rss_mib();
    println!(
        "engine {engine}: {} tenants, {queries} queries per run, fixed rate {rate}/s, saturation with {concurrency} in flight",
        setup.tenants.len()
    );
    println!(
        "| points | upsert points/s | RSS MiB | ranking | fixed-rate p50 ms | p99 ms | saturation p50 ms | p99 ms | queries/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &size in sizes {
        let t0 = Instant::now();
        let mut batch = Vec::new();
        let before = loaded;
        while loaded < size {
            let t = loaded % setup.tenants.len();
            let text = rng.text(120);
            let mut payload = serde_json::Map::new();
            payload.insert("kb_id".into(), format!("kb{t}").into());
            payload.insert("doc_id".into(), format!("doc{}", loaded / 8).into());
            payload.insert("text".into(), text.clone().into());
            batch.push((
                t,
                Point {
                    id: loaded as u128 + 1,
                    dense: rng.vector(),
                    sparse: setup.lex.document(&text),
                    payload,
                },
            ));
            loaded += 1;
            if batch.len() == 512 || loaded == size {
                // One tenant's points per call (as ingestion writes them).
                let mut by: std::collections::BTreeMap<usize, Vec<Point>> = Default::default();
                for (t, p) in batch.drain(..) {
                    by.entry(t).or_default().push(p);
                }
                for (t, pts) in by {
                    coll.scoped(&setup.tenants[t])
                        .upsert(pts)
                        .await
                        .expect("upsert");
                }
            }
        }
        let upsert_rate = (loaded - before) as f64 / t0.elapsed().as_secs_f64();
        let rss = rss_mib();
        for ranking in [Ranking::Dense, Ranking::Hybrid] {
            let fixed = measure(&coll, &setup, ranking, queries, Some(rate), concurrency).await;
            let sat = measure(&coll, &setup, ranking, queries, None, concurrency).await;
            println!(
                "| {size} | {upsert_rate:.0} | {rss:.0} (+{:.0}) | {ranking:?} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
                rss - rss0,
                fixed.0,
                fixed.1,
                sat.0,
                sat.1,
                sat.2
            );
        }
    }
    if let Backend::Edge(dir) = &backend {
        println!("edge data on disk: {:.0} MiB", dir_mib(dir));
    }
    // Leave nothing behind on a shared server.
    for t in &setup.tenants {
        let _ = coll.scoped(t).delete(Filter::default()).await;
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        run(
            "qdrant-edge",
            Backend::Edge(dir.path().to_path_buf()),
            &sizes,
        )
        .await;
        match std::env::var("BENCH_QDRANT_URL") {
            Ok(url) => {
                run(
                    "qdrant server",
                    Backend::Server {
                        url,
                        api_key: std::env::var("BENCH_QDRANT_API_KEY").ok(),
                    },
                    &sizes,
                )
                .await
            }
            Err(_) => {
                println!("qdrant server: skipped (set BENCH_QDRANT_URL to a server's gRPC URL)")
            }
        }
    });
}
