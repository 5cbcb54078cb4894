//! `cache latency`: lookups through `SemanticCache`, at a fixed rate and
//! at saturation, and the embedding alone.

use super::*;
use llmops_cache::store::MemoryStore;
use llmops_cache::{CacheRequest, Directives, Embedder, Sampling, SemanticCache};
use llmops_core::TenantCtx;
use llmops_core::ids::{JobId, TenantId};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The in-process model, counting the prompts it embeds (a lookup embeds
/// its prompt; the pair classifier reads a candidate with it).
struct Counted(MiniLm, Arc<AtomicUsize>);

#[async_trait::async_trait]
impl Embedder for Counted {
    fn model(&self) -> &str {
        self.0.model()
    }

    fn dims(&self) -> usize {
        self.0.dims()
    }

    async fn embed(&self, text: &str) -> Result<Vec<f32>, llmops_cache::CacheError> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.embed(text).await
    }

    fn classifier(&self) -> Option<Arc<PairClassifier>> {
        self.0.classifier()
    }
}

pub(super) fn latency(n: usize) {
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
        println!("embedding one prompt in-process (llmops-encoder, all-MiniLM-L6-v2): p50 {p50:.2} ms, p99 {p99:.2} ms");
        let pc = m.classifier().expect("the pair classifier");
        let mut cls = Vec::new();
        for p in pairs("test").iter().take(n.min(200)) {
            let t = Instant::now();
            pc.probability(&p.b, &p.a).expect("classify");
            cls.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (p50, p99) = quantiles(cls);
        println!("the pair classifier on one pair (both prompts in one pass): p50 {p50:.2} ms, p99 {p99:.2} ms");
        let db = sea_orm::Database::connect("sqlite::memory:").await.expect("sqlite");
        llmops_migrations::up(&db).await.expect("migrations");
        let dir = tempfile::tempdir().expect("tempdir");
        let vectors = llmops_vectors::VectorStore::open(&llmops_vectors::Backend::Edge(dir.path().into()))
            .expect("vectors");
        let cache = SemanticCache::new(
            CacheConfig { min_similarity: threshold(), ..CacheConfig::default() },
            db,
            Arc::new(MemoryStore::new(256 << 20)),
        );
        let encoded = Arc::new(AtomicUsize::new(0));
        cache
            .enable_semantic(&vectors, Arc::new(Counted(m, encoded.clone())))
            .await
            .expect("semantic");
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
        println!("| lookup | mode | outcome | p50 ms | p99 ms | lookups/s | embeddings/lookup |");
        println!("|---|---|---|---|---|---|---|");
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
                let before = encoded.load(Ordering::Relaxed);
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
                let per = (encoded.load(Ordering::Relaxed) - before) as f64 / texts.len() as f64;
                println!("| {name} | {mode} | {} | {p50:.3} | {p99:.3} | {rate} | {per:.2} |", outcomes.join(", "));
            }
        }
    });
}
