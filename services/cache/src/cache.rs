//! The cache: lookups, stores, invalidation and eviction.

use crate::CacheError;
use crate::directives::Directives;
use crate::embed::Embedder;
use crate::guard::{self, Rejection};
use crate::key::{CacheRequest, Keys};
use crate::settings::{self, CacheSettingsUpdate, CacheSettingsView, Settings};
use crate::store::{EntryStore, Selector};
use bytes::Bytes;
use llmops_core::ids::TenantId;
use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use llmops_vectors::{Cond, Filter, PayloadField, Point, Query, Ranking, Value};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The operator's settings.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Least cosine of a semantic candidate for every tenant (a tenant or a
    /// request may only ask for more).
    pub min_similarity: f32,
    pub default_ttl_secs: u64,
    pub max_ttl_secs: u64,
    /// Largest cached response (bytes of its stored form).
    pub max_entry_bytes: usize,
    /// Candidates the vector search proposes to the verifier.
    pub candidates: usize,
    /// How long a replica reuses a tenant's settings.
    pub settings_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            min_similarity: 0.8,
            default_ttl_secs: 3600,
            max_ttl_secs: 7 * 86_400,
            max_entry_bytes: 256 * 1024,
            candidates: 4,
            settings_ttl: Duration::from_secs(5),
        }
    }
}

/// A cached answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// The model that answered (a fallback's id when one did).
    pub model: String,
    pub text: String,
    /// `stop` or `length`.
    pub finish_reason: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: i64,
}

/// What a lookup found (the `x-llmops-cache` header's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Hit,
    SemanticHit,
    Miss,
    Bypass,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Hit => "hit",
            Status::SemanticHit => "semantic-hit",
            Status::Miss => "miss",
            Status::Bypass => "bypass",
        }
    }
}

/// Where a fresh answer goes once it completed.
#[derive(Debug, Clone)]
pub struct Ticket {
    tenant: TenantId,
    keys: Keys,
    ttl: Duration,
    vector: Option<Vec<f32>>,
    /// Store answers cut at `max_tokens` too.
    pub store_truncated: bool,
}

/// The outcome of a lookup.
#[derive(Debug)]
pub struct Lookup {
    pub status: Status,
    pub entry: Option<Entry>,
    /// The candidate's cosine, on a semantic hit.
    pub similarity: Option<f32>,
    /// Set when the fresh answer is to be stored.
    pub ticket: Option<Ticket>,
}

impl Lookup {
    fn bypass(ticket: Option<Ticket>) -> Self {
        Self {
            status: Status::Bypass,
            entry: None,
            similarity: None,
            ticket,
        }
    }
}

struct Semantic {
    embedder: Arc<dyn Embedder>,
    collection: llmops_vectors::Collection,
}

struct Inner {
    config: CacheConfig,
    db: sea_orm::DatabaseConnection,
    store: Arc<dyn EntryStore>,
    semantic: OnceLock<Semantic>,
    settings: Mutex<HashMap<TenantId, (Instant, Settings)>>,
}

/// The cache: cheap to clone.
#[derive(Clone)]
pub struct SemanticCache(Arc<Inner>);

/// The least cosine the guard serves on its own, when the embedder has no
/// pair classifier (the served model), whatever lower floor an operator
/// sets for the guard and the classifier together: the guard alone already
/// serves 1.1% (final) and 2.0% (fresh) of the held-out near misses at
/// 0.80. The default `min_similarity` is 0.80 too, since labelled pairs of
/// other questions that lie close (`tests/corpus/cache/neighbours-*.json`)
/// showed that every step below it serves many more of them (0.75: 19% of
/// the training ones, 0.80: 8%).
pub const GUARD_ALONE_MIN_SIMILARITY: f32 = 0.8;

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A candidate through the cosine floor and the guard's hard rules, then
/// the pair classifier (on the blocking pool: one encoder pass over both
/// prompts). Any error is a rejection.
async fn classify(
    classifier: &Arc<crate::pair::PairClassifier>,
    text: &str,
    prompt: &str,
    score: f32,
    threshold: f32,
) -> Result<(), Rejection> {
    crate::judge::screen(text, prompt, score, threshold)?;
    let (c, text, prompt) = (classifier.clone(), text.to_string(), prompt.to_string());
    let least = c.threshold;
    match tokio::task::spawn_blocking(move || c.probability(&text, &prompt)).await {
        Ok(Ok(p)) if p >= least => Ok(()),
        Ok(Ok(_)) => Err(Rejection::Classified),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "pair classifier failed: a miss");
            Err(Rejection::Classified)
        }
        Err(e) => {
            tracing::warn!(error = %e, "pair classifier task failed: a miss");
            Err(Rejection::Classified)
        }
    }
}

/// The collection of cached prompts for an embedding model.
pub fn collection_spec(model: &str, dims: usize) -> llmops_vectors::CollectionSpec {
    llmops_vectors::CollectionSpec::new(
        "cache",
        model,
        dims,
        vec![
            PayloadField::Keyword("partition"),
            PayloadField::Keyword("model_hash"),
            PayloadField::Keyword("namespace_hash"),
            PayloadField::Keyword("entry_key"),
            PayloadField::Integer("expires_at"),
        ],
    )
}

impl SemanticCache {
    pub fn new(
        config: CacheConfig,
        db: sea_orm::DatabaseConnection,
        store: Arc<dyn EntryStore>,
    ) -> Self {
        Self(Arc::new(Inner {
            config,
            db,
            store,
            semantic: OnceLock::new(),
            settings: Mutex::new(HashMap::new()),
        }))
    }

    /// Turns the semantic level on: prompts embedded by `embedder`, kept
    /// in `vectors` (its collection is created or checked now).
    pub async fn enable_semantic(
        &self,
        vectors: &llmops_vectors::VectorStore,
        embedder: Arc<dyn Embedder>,
    ) -> Result<(), CacheError> {
        let collection = vectors
            .collection(collection_spec(embedder.model(), embedder.dims()))
            .await?;
        let _ = self.0.semantic.set(Semantic {
            embedder,
            collection,
        });
        Ok(())
    }

    pub fn config(&self) -> &CacheConfig {
        &self.0.config
    }

    /// `memory` or `redis`, and whether the semantic level runs.
    pub fn describe(&self) -> (&'static str, Option<String>) {
        (
            self.0.store.name(),
            self.0
                .semantic
                .get()
                .map(|s| s.embedder.model().to_string()),
        )
    }

    pub(crate) async fn tenant_settings(&self, ctx: &TenantCtx) -> ApiResult<Settings> {
        let tenant = ctx.tenant_id();
        if let Ok(map) = self.0.settings.lock()
            && let Some((at, s)) = map.get(&tenant)
            && at.elapsed() < self.0.config.settings_ttl
        {
            return Ok(s.clone());
        }
        let s = settings::load(&self.0.db, ctx).await?;
        if let Ok(mut map) = self.0.settings.lock() {
            if map.len() > 100_000 {
                map.clear();
            }
            map.insert(tenant, (Instant::now(), s.clone()));
        }
        Ok(s)
    }

    /// The similarity a tenant's request needs: the request's value when
    /// it gives one (at least the operator's, else 422), else the tenant's,
    /// else the operator's.
    fn threshold(&self, s: &Settings, d: &Directives) -> ApiResult<f32> {
        let floor = self.0.config.min_similarity;
        match d.threshold {
            Some(t) if t < floor => Err(ApiError::validation(
                "x-llmops-cache-threshold",
                format!("the threshold may not be below the operator's {floor}"),
            )),
            Some(t) => Ok(t),
            None => Ok(s.similarity_threshold.unwrap_or(floor).max(floor)),
        }
    }

    /// Looks a chat request up. Errors of the cache itself are misses
    /// (logged); only invalid directives are the client's error (422).
    pub async fn lookup(
        &self,
        ctx: &TenantCtx,
        req: &CacheRequest<'_>,
        d: &Directives,
    ) -> ApiResult<Lookup> {
        let started = Instant::now();
        let s = match self.tenant_settings(ctx).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cache settings unreadable: bypassed");
                return Ok(Lookup::bypass(None));
            }
        };
        let threshold = self.threshold(&s, d)?;
        let ttl = d
            .ttl_secs
            .or(s.ttl_secs)
            .unwrap_or(self.0.config.default_ttl_secs);
        if ttl > self.0.config.max_ttl_secs {
            return Err(ApiError::validation(
                "x-llmops-cache-ttl",
                format!("at most {} seconds", self.0.config.max_ttl_secs),
            ));
        }
        let usable = s.enabled
            && !s.disabled_models.iter().any(|m| m == req.model)
            && (req.sampling.reusable() || s.cache_nondeterministic);
        if !usable {
            metrics::counter!("llm_cache_lookups_total", "outcome" => "bypass").increment(1);
            return Ok(Lookup::bypass(None));
        }
        let tenant = ctx.tenant_id();
        let mut keys = req.keys(&tenant.to_string(), &d.namespace);
        if !s.semantic {
            keys.semantic = None;
        }
        let ticket = (!d.no_store).then(|| Ticket {
            tenant,
            keys: keys.clone(),
            ttl: Duration::from_secs(ttl),
            vector: None,
            store_truncated: s.cache_truncated,
        });
        if d.no_cache {
            metrics::counter!("llm_cache_lookups_total", "outcome" => "bypass").increment(1);
            return Ok(Lookup::bypass(ticket));
        }
        let tenant_text = tenant.to_string();
        match self.get_entry(&tenant_text, &keys.exact).await {
            Ok(Some(entry)) => {
                record(Status::Hit, "exact", started);
                return Ok(Lookup {
                    status: Status::Hit,
                    entry: Some(entry),
                    similarity: None,
                    ticket: None,
                });
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cache lookup failed: a miss"),
        }
        let mut ticket = ticket;
        if let (Some((partition, text)), Some(sem)) = (&keys.semantic, self.0.semantic.get()) {
            match self
                .semantic_lookup(ctx, sem, partition, text, threshold)
                .await
            {
                Ok((Some((entry, sim)), _)) => {
                    record(Status::SemanticHit, "semantic", started);
                    metrics::histogram!("llm_cache_similarity").record(f64::from(sim));
                    return Ok(Lookup {
                        status: Status::SemanticHit,
                        entry: Some(entry),
                        similarity: Some(sim),
                        ticket: None,
                    });
                }
                Ok((None, vector)) => {
                    if let Some(t) = ticket.as_mut() {
                        t.vector = Some(vector);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "semantic lookup failed: a miss"),
            }
        }
        record(Status::Miss, "miss", started);
        Ok(Lookup {
            status: Status::Miss,
            entry: None,
            similarity: None,
            ticket,
        })
    }

    async fn get_entry(&self, tenant: &str, key: &str) -> Result<Option<Entry>, CacheError> {
        let Some(raw) = self.0.store.get(tenant, key).await? else {
            return Ok(None);
        };
        let entry: Entry =
            serde_json::from_slice(&raw).map_err(|e| CacheError::Corrupt(e.to_string()))?;
        Ok((entry.expires_at > now_secs()).then_some(entry))
    }

    /// Candidates of the partition by cosine, each verified in turn; the
    /// first that passes is served. Returns the query's vector too (for
    /// storing the fresh answer on a miss).
    async fn semantic_lookup(
        &self,
        ctx: &TenantCtx,
        sem: &Semantic,
        partition: &str,
        text: &str,
        threshold: f32,
    ) -> Result<(Option<(Entry, f32)>, Vec<f32>), CacheError> {
        if text.chars().count() > guard::MAX_CHARS {
            return Err(CacheError::Embedding(
                "prompt too long for the semantic level".into(),
            ));
        }
        let vector = sem.embedder.embed(text).await?;
        let classifier = sem.embedder.classifier();
        // The partition is the search's `must` filter, here and only here;
        // the tenant's condition is added by the scope.
        let filter = Filter::must(vec![
            Cond::Match {
                key: "partition".into(),
                value: Value::Keyword(partition.to_string()),
            },
            Cond::Range {
                key: "expires_at".into(),
                gt: Some(now_secs() as f64),
                gte: None,
                lt: None,
                lte: None,
            },
        ]);
        let hits = sem
            .collection
            .scoped(ctx)
            .query(Query {
                dense: vector.clone(),
                sparse: Default::default(),
                ranking: Ranking::Dense,
                fusion: llmops_vectors::Fusion::Dbsf,
                filter,
                limit: self.0.config.candidates.max(1),
                prefetch: 0,
                score_threshold: Some(threshold),
            })
            .await?;
        let tenant = ctx.tenant_id().to_string();
        for hit in hits {
            let prompt = hit
                .payload
                .get("prompt")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let key = hit
                .payload
                .get("entry_key")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            let verdict = match &classifier {
                Some(c) => classify(c, text, prompt, hit.score, threshold).await,
                None => guard::verify(
                    text,
                    prompt,
                    hit.score,
                    threshold.max(GUARD_ALONE_MIN_SIMILARITY),
                ),
            };
            if let Err(why) = verdict {
                metrics::counter!("llm_cache_verifier_rejections_total", "reason" => why.as_str())
                    .increment(1);
                continue;
            }
            match self.get_entry(&tenant, key).await? {
                Some(entry) => return Ok((Some((entry, hit.score)), vector)),
                // Evicted or expired: its point goes too.
                None => {
                    let _ = self.remove_points(ctx.tenant_id(), "entry_key", key).await;
                }
            }
        }
        Ok((None, vector))
    }

    async fn remove_points(
        &self,
        tenant: TenantId,
        field: &str,
        value: &str,
    ) -> Result<(), CacheError> {
        if let Some(sem) = self.0.semantic.get() {
            sem.collection
                .for_tenant_maintenance(tenant)
                .delete(Filter::must(vec![Cond::Match {
                    key: field.into(),
                    value: Value::Keyword(value.to_string()),
                }]))
                .await?;
        }
        Ok(())
    }

    /// Stores a completed answer under the ticket's keys: the entry, then
    /// (semantic level) its prompt's vector. Entries over the size limit
    /// are not stored.
    pub async fn store(&self, ticket: Ticket, mut entry: Entry) -> Result<(), CacheError> {
        if entry.finish_reason == "length" && !ticket.store_truncated {
            return Ok(());
        }
        let ttl_secs = i64::try_from(ticket.ttl.as_secs()).unwrap_or(i64::MAX);
        entry.expires_at = now_secs().saturating_add(ttl_secs);
        let raw = serde_json::to_vec(&entry).map_err(|e| CacheError::Corrupt(e.to_string()))?;
        if raw.len() > self.0.config.max_entry_bytes {
            metrics::counter!("llm_cache_stores_total", "outcome" => "too_large").increment(1);
            return Err(CacheError::TooLarge);
        }
        let tenant = ticket.tenant.to_string();
        let evicted = self
            .0
            .store
            .put(&tenant, &ticket.keys.exact, Bytes::from(raw), ticket.ttl)
            .await?;
        metrics::counter!("llm_cache_stores_total", "outcome" => "stored").increment(1);
        for (t, key) in evicted {
            if let Ok(t) = t.parse::<TenantId>() {
                self.remove_points(t, "entry_key", &key).await?;
            }
        }
        let (Some((partition, text)), Some(sem)) = (&ticket.keys.semantic, self.0.semantic.get())
        else {
            return Ok(());
        };
        let vector = match ticket.vector {
            Some(v) => v,
            None => sem.embedder.embed(text).await?,
        };
        let mut payload = serde_json::Map::new();
        payload.insert("partition".into(), partition.clone().into());
        payload.insert("model_hash".into(), ticket.keys.model_hash.clone().into());
        payload.insert(
            "namespace_hash".into(),
            ticket.keys.namespace_hash.clone().into(),
        );
        payload.insert("entry_key".into(), ticket.keys.exact.clone().into());
        payload.insert("prompt".into(), text.clone().into());
        payload.insert("expires_at".into(), entry.expires_at.into());
        sem.collection
            .for_tenant_maintenance(ticket.tenant)
            .upsert(vec![Point {
                id: llmops_vectors::hashed_id(&[ticket.keys.exact.as_bytes()]),
                dense: vector,
                sparse: Default::default(),
                payload,
            }])
            .await?;
        Ok(())
    }

    /// Removes the tenant's entries (all, a model's, a namespace's, or a
    /// model's in a namespace): the stored answers and their vectors.
    pub async fn invalidate(
        &self,
        ctx: &TenantCtx,
        model: Option<&str>,
        namespace: Option<&str>,
    ) -> ApiResult<u64> {
        ctx.require(Scope::Inference)?;
        let which = Selector {
            model_hash: model.map(crate::key::name_hash),
            namespace_hash: namespace.map(crate::key::name_hash),
        };
        let removed = self
            .0
            .store
            .remove_matching(&ctx.tenant_id().to_string(), &which)
            .await
            .map_err(unavailable)?;
        if let Some(sem) = self.0.semantic.get() {
            let mut conds = Vec::new();
            if let Some(h) = which.model_hash {
                conds.push(Cond::Match {
                    key: "model_hash".into(),
                    value: Value::Keyword(h),
                });
            }
            if let Some(h) = which.namespace_hash {
                conds.push(Cond::Match {
                    key: "namespace_hash".into(),
                    value: Value::Keyword(h),
                });
            }
            sem.collection
                .scoped(ctx)
                .delete(Filter::must(conds))
                .await
                .map_err(|e| unavailable(e.into()))?;
        }
        Ok(removed)
    }

    /// Removes expired entries and the vectors of expired prompts (every
    /// tenant's); returns how many of each.
    pub async fn sweep(&self) -> Result<(u64, u64), CacheError> {
        let entries = self.0.store.sweep().await;
        let mut points = 0;
        if let Some(sem) = self.0.semantic.get() {
            let expired = Filter::must(vec![Cond::Range {
                key: "expires_at".into(),
                gt: None,
                gte: None,
                lt: None,
                lte: Some(now_secs() as f64),
            }]);
            for (tenant, _) in sem.collection.points_per_tenant(100_000).await? {
                let Ok(t) = tenant.parse::<TenantId>() else {
                    continue;
                };
                let scope = sem.collection.for_tenant_maintenance(t);
                let n = scope.count(expired.clone()).await?;
                if n > 0 {
                    scope.delete(expired.clone()).await?;
                    points += n;
                }
            }
        }
        Ok((entries, points))
    }

    /// Sweeps every `every` until `stop`.
    pub async fn run_sweeper(&self, every: Duration, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => match self.sweep().await {
                    Ok((e, p)) if e + p > 0 => tracing::debug!(entries = e, points = p, "cache swept"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cache sweep failed"),
                },
            }
        }
    }

    /// The tenant's settings as they apply.
    pub async fn settings_view(&self, ctx: &TenantCtx) -> ApiResult<CacheSettingsView> {
        ctx.require(Scope::Inference)?;
        let s = settings::load(&self.0.db, ctx).await?;
        Ok(self.view(&s))
    }

    pub async fn update_settings(
        &self,
        ctx: &TenantCtx,
        up: CacheSettingsUpdate,
    ) -> ApiResult<CacheSettingsView> {
        let current = settings::load(&self.0.db, ctx).await?;
        let s = settings::save(
            &self.0.db,
            ctx,
            current,
            up,
            self.0.config.min_similarity,
            self.0.config.max_ttl_secs,
        )
        .await?;
        if let Ok(mut map) = self.0.settings.lock() {
            map.remove(&ctx.tenant_id());
        }
        Ok(self.view(&s))
    }

    fn view(&self, s: &Settings) -> CacheSettingsView {
        let c = &self.0.config;
        CacheSettingsView {
            object: "cache.settings",
            enabled: s.enabled,
            semantic: s.semantic,
            similarity_threshold: s
                .similarity_threshold
                .unwrap_or(c.min_similarity)
                .max(c.min_similarity),
            operator_min_similarity: c.min_similarity,
            ttl_secs: s.ttl_secs.unwrap_or(c.default_ttl_secs),
            max_ttl_secs: c.max_ttl_secs,
            cache_nondeterministic: s.cache_nondeterministic,
            cache_truncated: s.cache_truncated,
            disabled_models: s.disabled_models.clone(),
        }
    }
}

fn unavailable(e: CacheError) -> ApiError {
    ApiError::Unavailable {
        dependency: format!("response cache ({e})"),
        retry_after_secs: 5,
    }
}

fn record(status: Status, level: &'static str, started: Instant) {
    metrics::counter!("llm_cache_lookups_total", "outcome" => status.as_str()).increment(1);
    metrics::histogram!("llm_cache_lookup_seconds", "level" => level)
        .record(started.elapsed().as_secs_f64());
}
