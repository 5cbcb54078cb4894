//! Ingestion workers: claim a queued document version with a lease, chunk
//! its text, embed the chunks in batches through serving, store them with
//! their version, then switch the document to that version in one fenced
//! update and delete the other versions' chunks.
//!
//! Claims are compare-and-set updates (`… WHERE id = ? AND <still
//! claimable>`), so two replicas never run the same version; a worker that
//! dies leaves a lease that expires and the version is claimed again. Every
//! step after the claim is fenced by `(lease_owner, pending_version)`: a
//! document re-uploaded or deleted meanwhile makes the worker drop its own
//! chunks instead of switching.

use crate::chunk::{Chunk, chunk};
use crate::entities::{document as doc, knowledge_base as kb, source};
use crate::service::{Rag, SECTION_TOKENS, doc_filter, kb_filter, key};
use chrono::Utc;
use llmops_core::db::Scoped;
use llmops_core::ids::{DocumentId, TenantId};
use llmops_core::{ApiError, TenantCtx};
use llmops_vectors::{Cond, Filter, Point, Value};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Chunks embedded per call.
const BATCH: usize = 32;
const LEASE: Duration = Duration::from_secs(120);

/// Why an attempt stopped.
#[derive(Clone)]
enum Stop {
    /// Retry later (serving or the vector store unavailable, …).
    Transient(String),
    /// Retrying cannot help (quota, a model gone, …).
    Permanent(String),
    /// The document changed or went away: nothing to record.
    Superseded,
}

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Self {
        match &e {
            ApiError::Unavailable { .. }
            | ApiError::UpstreamFailed(_)
            | ApiError::RateLimited { .. }
            | ApiError::ConcurrencyLimited { .. }
            | ApiError::Internal(_) => Stop::Transient(e.to_string()),
            _ => Stop::Permanent(e.to_string()),
        }
    }
}

/// The point id of a chunk: a UUID from the document, version and index,
/// so a retried attempt overwrites its own points.
pub(crate) fn point_id(doc: &str, version: i32, index: usize) -> u128 {
    llmops_vectors::hashed_id(&[format!("{doc}:{version}:{index}").as_bytes()])
}

/// What an attempt writes to.
struct Target {
    tenant: TenantId,
    kb: kb::Model,
    model: crate::models::EmbeddingModel,
    coll: llmops_vectors::Collection,
}

impl Rag {
    /// Runs until `stop`: claims and ingests due documents, waking when one
    /// is queued here and every second otherwise (for other replicas'
    /// uploads, retries and expired leases).
    pub async fn run_ingest_worker(&self, stop: CancellationToken) {
        loop {
            loop {
                if stop.is_cancelled() {
                    return;
                }
                match self.claim().await {
                    Ok(Some(d)) => self.ingest(d).await,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming a document failed");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.0.queued.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn claim(&self) -> Result<Option<doc::Model>, sea_orm::DbErr> {
        let now = Utc::now();
        let due = Condition::any()
            .add(
                Condition::all()
                    .add(doc::Column::Status.eq("queued"))
                    .add(doc::Column::NextAttemptAt.lte(now)),
            )
            .add(
                Condition::all()
                    .add(doc::Column::Status.eq("processing"))
                    .add(doc::Column::LeaseUntil.lt(now)),
            );
        let candidates = doc::Entity::find()
            .filter(due.clone())
            .filter(doc::Column::PendingVersion.is_not_null())
            .order_by_asc(doc::Column::NextAttemptAt)
            .limit(8)
            .all(&self.0.db)
            .await?;
        let max = i32::try_from(self.0.config.max_attempts).unwrap_or(i32::MAX);
        for c in candidates {
            if c.status == "processing" && c.attempts >= max {
                // Its workers died (or lost the lease) `max` times: give up
                // rather than hand a poison document to every worker.
                doc::Entity::update_many()
                    .filter(doc::Column::Id.eq(c.id.clone()))
                    .filter(doc::Column::PendingVersion.eq(c.pending_version))
                    .filter(due.clone())
                    .col_expr(doc::Column::Status, Expr::value("failed"))
                    .col_expr(
                        doc::Column::Error,
                        Expr::value(format!(
                            "ingestion stopped without finishing {} times (its worker died or lost the lease)",
                            c.attempts
                        )),
                    )
                    .col_expr(doc::Column::LeaseOwner, Expr::value(Option::<String>::None))
                    .col_expr(doc::Column::UpdatedAt, Expr::value(now))
                    .exec(&self.0.db)
                    .await?;
                continue;
            }
            // Each claim its own fence token: two workers of a replica (or
            // a worker and its own earlier, lost claim) never pass for each
            // other.
            let token = format!("{}:{}", self.0.config.owner, ulid::Ulid::new());
            let res = doc::Entity::update_many()
                .filter(doc::Column::Id.eq(c.id.clone()))
                .filter(doc::Column::PendingVersion.eq(c.pending_version))
                .filter(due.clone())
                .col_expr(doc::Column::Status, Expr::value("processing"))
                .col_expr(doc::Column::LeaseOwner, Expr::value(token))
                .col_expr(doc::Column::LeaseUntil, Expr::value(now + LEASE))
                .col_expr(
                    doc::Column::Attempts,
                    Expr::col(doc::Column::Attempts).add(1),
                )
                .col_expr(doc::Column::UpdatedAt, Expr::value(now))
                .exec(&self.0.db)
                .await?;
            if res.rows_affected == 1 {
                return doc::Entity::find_by_id(c.id).one(&self.0.db).await;
            }
        }
        Ok(None)
    }

    /// The fence of every write after the claim: the claim's own token.
    fn fenced(&self, d: &doc::Model, version: i32) -> sea_orm::UpdateMany<doc::Entity> {
        doc::Entity::update_many()
            .filter(doc::Column::Id.eq(d.id.clone()))
            .filter(doc::Column::LeaseOwner.eq(d.lease_owner.clone().unwrap_or_default()))
            .filter(doc::Column::PendingVersion.eq(version))
            .filter(doc::Column::Status.eq("processing"))
    }

    /// Extends the lease; false when the document moved on.
    async fn renew(&self, d: &doc::Model, version: i32) -> Result<bool, Stop> {
        let res = self
            .fenced(d, version)
            .col_expr(doc::Column::LeaseUntil, Expr::value(Utc::now() + LEASE))
            .exec(&self.0.db)
            .await
            .map_err(|e| Stop::Transient(e.to_string()))?;
        Ok(res.rows_affected == 1)
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %d.tenant_id, document = %d.id))]
    async fn ingest(&self, d: doc::Model) {
        let Some(version) = d.pending_version else {
            return;
        };
        let started = std::time::Instant::now();
        let target = self.target(&d).await;
        let outcome = match &target {
            Ok(t) => self.attempt(&d, version, t).await,
            Err(stop) => Err(stop.clone()),
        };
        let now = Utc::now();
        let max = i32::try_from(self.0.config.max_attempts).unwrap_or(i32::MAX);
        let (status, error, delay) = match outcome {
            Ok((chunks, tokens)) => {
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(chunks, tokens, secs, "document ingested");
                metrics::histogram!("rag_ingest_seconds").record(secs);
                return;
            }
            Err(Stop::Superseded) => {
                if let Ok(t) = &target {
                    self.drop_version(&d, version, t).await;
                }
                return;
            }
            Err(Stop::Transient(m)) if d.attempts < max => {
                let exp = u32::try_from(d.attempts).unwrap_or(0);
                let secs = Ord::min(2u64.saturating_pow(exp), 300);
                ("queued", m, Duration::from_secs(secs))
            }
            Err(Stop::Transient(m) | Stop::Permanent(m)) => ("failed", m, Duration::ZERO),
        };
        tracing::warn!(error = %error, status, "document ingestion stopped");
        // This attempt's partial chunks go while the lease is still ours
        // (a retry writes the same points again).
        if let Ok(t) = &target
            && matches!(self.renew(&d, version).await, Ok(true))
        {
            self.drop_version(&d, version, t).await;
        }
        let res = self
            .fenced(&d, version)
            .col_expr(doc::Column::Status, Expr::value(status))
            .col_expr(doc::Column::Error, Expr::value(error))
            .col_expr(
                doc::Column::NextAttemptAt,
                Expr::value(now + chrono::Duration::from_std(delay).unwrap_or_default()),
            )
            .col_expr(doc::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(
                doc::Column::LeaseUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(doc::Column::UpdatedAt, Expr::value(now))
            .exec(&self.0.db)
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "recording an ingestion failure");
        }
    }

    /// Removes the chunks of `version` unless readers see that version or
    /// another claim of the same version is under way (same point ids).
    async fn drop_version(&self, d: &doc::Model, version: i32, t: &Target) {
        let current = match doc::Entity::find_by_id(d.id.clone()).one(&self.0.db).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "chunks of an abandoned version kept (database)");
                return;
            }
        };
        if let Some(c) = &current
            && (c.version == version
                || (c.pending_version == Some(version) && c.lease_owner != d.lease_owner))
        {
            return;
        }
        let filter = Filter::must(vec![
            kb_filter(&d.kb_id),
            doc_filter(&d.id),
            Cond::Match {
                key: key::VERSION.into(),
                value: Value::Integer(i64::from(version)),
            },
        ]);
        if let Err(e) = t.coll.for_tenant_maintenance(t.tenant).delete(filter).await {
            tracing::warn!(error = %e, "chunks of an abandoned version were not deleted");
        }
    }

    /// What an attempt writes to: the tenant, knowledge base, model and
    /// collection.
    async fn target(&self, d: &doc::Model) -> Result<Target, Stop> {
        let tenant: TenantId = d
            .tenant_id
            .parse()
            .map_err(|_| Stop::Permanent("bad tenant id".into()))?;
        let kb = Scoped::new(tenant)
            .find::<kb::Entity>()
            .filter(kb::Column::Id.eq(d.kb_id.clone()))
            .one(&self.0.db)
            .await
            .map_err(|e| Stop::Transient(e.to_string()))?
            .ok_or(Stop::Superseded)?;
        // A suspended tenant's documents wait (and, suspended long enough,
        // fail) instead of being embedded and billed.
        let active = llmops_core::entities::tenant::Entity::find_by_id(tenant.to_string())
            .one(&self.0.db)
            .await
            .map_err(|e| Stop::Transient(e.to_string()))?
            .is_some_and(|t| t.status == "active");
        if !active {
            return Err(Stop::Transient("the tenant is suspended".into()));
        }
        let model = self.embedding(&kb.embedding_model)?;
        let coll = self.collection(&model).await?;
        Ok(Target {
            tenant,
            kb,
            model,
            coll,
        })
    }

    /// One attempt: the chunks stored and the switch made, or why not.
    async fn attempt(
        &self,
        d: &doc::Model,
        version: i32,
        t: &Target,
    ) -> Result<(usize, u64), Stop> {
        let tenant = t.tenant;
        let doc_id: DocumentId =
            d.id.parse()
                .map_err(|_| Stop::Permanent("bad document id".into()))?;
        let ctx = TenantCtx::for_ingestion(tenant, doc_id);
        let (kb, model, coll) = (&t.kb, &t.model, &t.coll);
        let tokenizer = model.tokenizer.clone().ok_or_else(|| {
            Stop::Permanent(format!("`{}` has no tokenizer configured", model.id))
        })?;
        let text = Scoped::new(tenant)
            .find::<source::Entity>()
            .filter(source::Column::DocId.eq(d.id.clone()))
            .filter(source::Column::Version.eq(version))
            .one(&self.0.db)
            .await
            .map_err(|e| Stop::Transient(e.to_string()))?
            .ok_or(Stop::Superseded)?
            .content;
        let text = String::from_utf8(text)
            .map_err(|_| Stop::Permanent("stored text is not UTF-8".into()))?;
        let (max, overlap) = (
            usize::try_from(kb.chunk_tokens).unwrap_or(200),
            usize::try_from(kb.chunk_overlap).unwrap_or(0),
        );
        let chunks: Vec<Chunk> =
            tokio::task::spawn_blocking(move || chunk(&tokenizer, &text, max, overlap))
                .await
                .map_err(|e| Stop::Transient(e.to_string()))?
                .map_err(Stop::Permanent)?;
        if chunks.is_empty() {
            return Err(Stop::Permanent("the document has no text to index".into()));
        }
        // The plan's cap on stored chunks (the replaced version's chunks
        // leave as these arrive).
        let limits = self.limits(tenant).await?;
        let stored: Option<i64> = Scoped::new(tenant)
            .find::<doc::Entity>()
            .filter(doc::Column::Id.ne(d.id.clone()))
            .select_only()
            .column_as(doc::Column::ChunkCount.sum(), "n")
            .into_tuple()
            .one(&self.0.db)
            .await
            .map_err(|e| Stop::Transient(e.to_string()))?
            .flatten();
        let total = u64::try_from(stored.unwrap_or(0)).unwrap_or(0) + chunks.len() as u64;
        if total > limits.max_chunks {
            return Err(Stop::Permanent(format!(
                "quota exceeded: {} chunks would be stored, the plan allows {}",
                total, limits.max_chunks
            )));
        }
        let metadata: serde_json::Value =
            serde_json::from_str(&d.metadata).unwrap_or_else(|_| serde_json::json!({}));
        let scope = coll.scoped(&ctx);
        let mut tokens = 0u64;
        let mut chunk_terms: Vec<Vec<u32>> = Vec::with_capacity(chunks.len());
        for batch in chunks.chunks(BATCH) {
            if !self.renew(d, version).await? {
                return Err(Stop::Superseded);
            }
            let texts: Vec<String> = batch
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    // Long heading paths are cut to fit the model's window.
                    c.section = c.section.chars().take(SECTION_TOKENS * 3).collect();
                    c.embedding_text()
                })
                .collect();
            let (vectors, used) = self.0.models.embed(&ctx, &model.id, texts.clone()).await?;
            if vectors.len() != batch.len() {
                return Err(Stop::Transient(
                    "serving returned the wrong number of embeddings".into(),
                ));
            }
            tokens += u64::from(used);
            let points = batch
                .iter()
                .zip(vectors)
                .zip(texts)
                .map(|((c, dense), embedded)| {
                    let mut payload = serde_json::Map::new();
                    payload.insert(key::KB.into(), d.kb_id.clone().into());
                    payload.insert(key::DOC.into(), d.id.clone().into());
                    payload.insert(key::VERSION.into(), version.into());
                    payload.insert(key::INDEX.into(), c.index.into());
                    payload.insert(key::START.into(), c.start.into());
                    payload.insert(key::END.into(), c.end.into());
                    payload.insert(key::TEXT.into(), c.text.clone().into());
                    payload.insert(key::SECTION.into(), c.section.clone().into());
                    payload.insert(
                        key::EXTERNAL.into(),
                        d.external_id
                            .clone()
                            .map_or(serde_json::Value::Null, Into::into),
                    );
                    payload.insert(crate::filter::METADATA.into(), metadata.clone());
                    let sparse = self.0.lexical.document(&embedded);
                    let mut distinct = sparse.indices.clone();
                    distinct.sort_unstable();
                    distinct.dedup();
                    chunk_terms.push(distinct);
                    Point {
                        id: point_id(&d.id, version, c.index),
                        dense,
                        sparse,
                        payload,
                    }
                })
                .collect();
            scope
                .upsert(points)
                .await
                .map_err(crate::service::vector_err)?;
        }
        // The switch: one fenced update, with the knowledge base's term
        // statistics moved from the old version to this one.
        let counts = crate::terms::count(chunk_terms.iter().map(Vec::as_slice));
        let now = Utc::now();
        let txn = self
            .0
            .db
            .begin()
            .await
            .map_err(|e| Stop::Transient(e.to_string()))?;
        let res = self
            .fenced(d, version)
            .col_expr(
                doc::Column::Terms,
                Expr::value(crate::terms::to_json(&counts)),
            )
            .col_expr(doc::Column::Version, Expr::value(version))
            .col_expr(
                doc::Column::PendingVersion,
                Expr::value(Option::<i32>::None),
            )
            .col_expr(doc::Column::Status, Expr::value("ready"))
            .col_expr(doc::Column::Error, Expr::value(Option::<String>::None))
            .col_expr(
                doc::Column::ChunkCount,
                Expr::value(i32::try_from(chunks.len()).unwrap_or(i32::MAX)),
            )
            .col_expr(
                doc::Column::TokenCount,
                Expr::value(i64::try_from(tokens).unwrap_or(i64::MAX)),
            )
            .col_expr(doc::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(
                doc::Column::LeaseUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(doc::Column::UpdatedAt, Expr::value(now))
            .exec(&txn)
            .await
            .map_err(|e| Stop::Transient(e.to_string()))?;
        if res.rows_affected != 1 {
            return Err(Stop::Superseded);
        }
        let old = crate::terms::from_json(d.terms.as_deref());
        crate::terms::apply(&txn, tenant, &d.kb_id, &counts, &old)
            .await
            .map_err(|e| Stop::Transient(e.to_string()))?;
        txn.commit()
            .await
            .map_err(|e| Stop::Transient(e.to_string()))?;
        // Readers now see only `version`; the others go.
        // Older versions only: a newer one may be arriving already.
        let others = Filter::must(vec![
            kb_filter(&d.kb_id),
            doc_filter(&d.id),
            Cond::Range {
                key: key::VERSION.into(),
                gt: None,
                gte: None,
                lt: Some(f64::from(version)),
                lte: None,
            },
        ]);
        if let Err(e) = scope.delete(others).await {
            tracing::warn!(error = %e, "old chunks of a replaced document were not deleted yet");
        }
        let _ = Scoped::new(tenant)
            .delete_many::<source::Entity>()
            .filter(source::Column::DocId.eq(d.id.clone()))
            .filter(source::Column::Version.lt(version))
            .exec(&self.0.db)
            .await;
        Ok((chunks.len(), tokens))
    }
}
