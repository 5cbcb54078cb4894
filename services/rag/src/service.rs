//! The RAG service: knowledge bases and documents (rows in the database),
//! their chunks (points in the vector store).

use crate::api::{
    Chunking, CreateKnowledgeBase, Deleted, Document, DocumentStatus, KnowledgeBase, Metadata,
    RagLimits, UpdateKnowledgeBase,
};
use crate::entities::{document as doc, knowledge_base as kb, limits, source};
use crate::extract::ContentType;
use crate::models::{EmbeddingModel, Models};
use chrono::Utc;
use llmops_core::db::{Db, is_unique_violation};
use llmops_core::ids::{DocumentId, KnowledgeBaseId, TenantId};
use llmops_core::pagination::{ListParams, Page};
use llmops_core::usage::UsageSink;
use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use llmops_vectors::{Collection, CollectionSpec, Cond, Filter, PayloadField, Value, VectorStore};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Payload keys of a chunk point.
pub(crate) mod key {
    pub const KB: &str = "kb_id";
    pub const DOC: &str = "doc_id";
    pub const VERSION: &str = "doc_version";
    pub const INDEX: &str = "chunk_index";
    pub const START: &str = "start";
    pub const END: &str = "end";
    pub const TEXT: &str = "text";
    pub const SECTION: &str = "section";
    pub const EXTERNAL: &str = "external_id";
}

/// Headings embedded with a chunk take at most this many tokens.
pub(crate) const SECTION_TOKENS: usize = 32;

#[derive(Debug, Clone)]
pub struct RagConfig {
    pub ingest_workers: u32,
    pub max_attempts: u32,
    pub max_document_bytes: usize,
    pub storage_meter_secs: u64,
    /// Names this replica's leases (each claim adds its own id).
    pub owner: String,
    /// The `llmops` binary, whose `extract` command reads HTML and PDF in a
    /// process of its own (in-process when none).
    pub extractor: Option<std::path::PathBuf>,
}

pub struct RagParts {
    pub db: Db,
    pub store: VectorStore,
    pub models: Arc<dyn Models>,
    pub usage: Arc<dyn UsageSink>,
    pub config: RagConfig,
}

pub(crate) struct Inner {
    pub(crate) db: Db,
    pub(crate) store: VectorStore,
    pub(crate) models: Arc<dyn Models>,
    pub(crate) usage: Arc<dyn UsageSink>,
    pub(crate) config: RagConfig,
    collections: Mutex<HashMap<String, Collection>>,
    /// BM25 term weights (Qdrant's own) for the sparse vectors.
    pub(crate) lexical: llmops_vectors::Lexical,
    /// Wakes ingestion workers when a document is queued here.
    pub(crate) queued: tokio::sync::Notify,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Rag(pub(crate) Arc<Inner>);

pub(crate) fn db_err(e: sea_orm::DbErr) -> ApiError {
    ApiError::internal(e)
}

pub(crate) fn vector_err(e: llmops_vectors::VectorError) -> ApiError {
    use llmops_vectors::VectorError as V;
    match e {
        V::Invalid(m) => ApiError::validation("filter", m),
        e @ V::Dimensions(_) => ApiError::Internal(Box::new(e)),
        V::Unavailable(m) => {
            tracing::warn!(error = %m, "vector store unavailable");
            ApiError::Unavailable {
                dependency: "vector store".into(),
                retry_after_secs: 5,
            }
        }
        e @ (V::Schema { .. } | V::Engine(_)) => ApiError::Internal(Box::new(e)),
    }
}

/// The collection of knowledge bases embedded with `model`.
pub(crate) fn spec_for(model: &EmbeddingModel) -> CollectionSpec {
    CollectionSpec::new(
        "rag",
        &model.id,
        model.dimensions,
        vec![
            PayloadField::Keyword(key::KB),
            PayloadField::Keyword(key::DOC),
            PayloadField::Integer(key::VERSION),
        ],
    )
}

pub(crate) fn kb_filter(kb: &str) -> Cond {
    Cond::Match {
        key: key::KB.into(),
        value: Value::Keyword(kb.into()),
    }
}

pub(crate) fn doc_filter(doc: &str) -> Cond {
    Cond::Match {
        key: key::DOC.into(),
        value: Value::Keyword(doc.into()),
    }
}

/// Validates metadata: at most 32 keys, scalar values.
pub(crate) fn check_metadata(field: &str, m: &Metadata) -> ApiResult<()> {
    if m.len() > 32 {
        return Err(ApiError::validation(field, "at most 32 keys"));
    }
    for (k, v) in m {
        if !crate::filter::valid_key(k) {
            return Err(ApiError::validation(
                field,
                format!(
                    "key `{}`: 1 to 64 letters, digits, `_` or `-`",
                    k.chars().take(64).collect::<String>()
                ),
            ));
        }
        let ok = match v {
            serde_json::Value::String(s) => s.len() <= 512,
            serde_json::Value::Bool(_) => true,
            serde_json::Value::Number(n) => n.is_i64(),
            _ => false,
        };
        if !ok {
            return Err(ApiError::validation(
                field,
                format!("`{k}`: values are strings (at most 512 bytes), integers or booleans"),
            ));
        }
    }
    Ok(())
}

fn parse_metadata(s: &str) -> Metadata {
    serde_json::from_str(s).unwrap_or_default()
}

pub(crate) fn kb_id(id: &str) -> ApiResult<KnowledgeBaseId> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("knowledge base `{}`", trunc(id))))
}

pub(crate) fn doc_id(id: &str) -> ApiResult<DocumentId> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("document `{}`", trunc(id))))
}

pub(crate) fn trunc(s: &str) -> String {
    s.chars().take(64).collect()
}

pub(crate) fn document_view(d: doc::Model) -> Document {
    Document {
        id: d.id.parse().unwrap_or_default(),
        object: "document",
        knowledge_base_id: d.kb_id.parse().unwrap_or_default(),
        external_id: d.external_id,
        filename: d.filename,
        content_type: ContentType::from_mime(&d.content_type).unwrap_or(ContentType::Text),
        metadata: parse_metadata(&d.metadata),
        status: DocumentStatus::parse(&d.status),
        error: d.error,
        version: u32::try_from(d.version).unwrap_or(0),
        pending_version: d.pending_version.and_then(|v| u32::try_from(v).ok()),
        attempts: u32::try_from(d.attempts).unwrap_or(0),
        chunk_count: u32::try_from(d.chunk_count).unwrap_or(0),
        token_count: u64::try_from(d.token_count).unwrap_or(0),
        bytes: u64::try_from(d.bytes).unwrap_or(0),
        sha256: d.sha256,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

impl Rag {
    /// Opens the service and creates or checks the collection of every
    /// catalog embedding model whose size is known: a collection with
    /// another schema stops start-up with the reason.
    pub async fn new(parts: RagParts) -> Result<Self, llmops_vectors::VectorError> {
        let mut collections = HashMap::new();
        for m in parts.models.embedding_models() {
            match parts.store.collection(spec_for(&m)).await {
                Ok(c) => {
                    collections.insert(m.id.clone(), c);
                }
                // Another schema: refused at start-up, with the reason.
                Err(e @ llmops_vectors::VectorError::Schema { .. }) => return Err(e),
                // Unreachable now (a server down, the embedded store held
                // by another process): tried again on first use (503
                // meanwhile), and /readyz says so.
                Err(e) => tracing::warn!(error = %e, model = %m.id, "vector collection not opened"),
            }
        }
        // About the words of a 200-token chunk, less stopwords.
        let lexical =
            llmops_vectors::Lexical::english(120.0).map_err(llmops_vectors::VectorError::Engine)?;
        Ok(Self(Arc::new(Inner {
            lexical,
            db: parts.db,
            store: parts.store,
            models: parts.models,
            usage: parts.usage,
            config: parts.config,
            collections: Mutex::new(collections),
            queued: tokio::sync::Notify::new(),
        })))
    }

    pub fn store(&self) -> &VectorStore {
        &self.0.store
    }

    pub fn max_document_bytes(&self) -> usize {
        self.0.config.max_document_bytes
    }

    /// The embedding model of a knowledge base.
    pub(crate) fn embedding(&self, id: &str) -> ApiResult<EmbeddingModel> {
        self.0
            .models
            .embedding_model(id)
            .ok_or_else(|| ApiError::Unavailable {
                dependency: format!("embedding model `{}`", trunc(id)),
                retry_after_secs: 30,
            })
    }

    pub(crate) async fn collection(&self, model: &EmbeddingModel) -> ApiResult<Collection> {
        let mut map = self.0.collections.lock().await;
        if let Some(c) = map.get(&model.id) {
            return Ok(c.clone());
        }
        let c = self
            .0
            .store
            .collection(spec_for(model))
            .await
            .map_err(vector_err)?;
        map.insert(model.id.clone(), c.clone());
        Ok(c)
    }

    pub(crate) async fn find_kb(&self, ctx: &TenantCtx, id: &str) -> ApiResult<kb::Model> {
        let id = kb_id(id)?;
        ctx.scoped()
            .find::<kb::Entity>()
            .filter(kb::Column::Id.eq(id.to_string()))
            .one(&self.0.db)
            .await
            .map_err(db_err)?
            .ok_or_else(|| ApiError::not_found(format!("knowledge base `{id}`")))
    }

    async fn kb_view(&self, ctx: &TenantCtx, m: kb::Model) -> ApiResult<KnowledgeBase> {
        let docs = ctx
            .scoped()
            .find::<doc::Entity>()
            .filter(doc::Column::KbId.eq(m.id.clone()));
        let document_count = docs.clone().count(&self.0.db).await.map_err(db_err)?;
        let chunk_count: Option<i64> = docs
            .filter(doc::Column::Status.ne("deleting"))
            .select_only()
            .column_as(doc::Column::ChunkCount.sum(), "n")
            .into_tuple()
            .one(&self.0.db)
            .await
            .map_err(db_err)?
            .flatten();
        Ok(KnowledgeBase {
            id: m.id.parse().unwrap_or_default(),
            object: "knowledge_base",
            name: m.name,
            description: m.description,
            embedding_model: m.embedding_model,
            chunking: Chunking {
                max_tokens: u32::try_from(m.chunk_tokens).unwrap_or(0),
                overlap_tokens: u32::try_from(m.chunk_overlap).unwrap_or(0),
            },
            metadata: parse_metadata(&m.metadata),
            document_count,
            chunk_count: u64::try_from(chunk_count.unwrap_or(0)).unwrap_or(0),
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }

    /// The plan's caps.
    pub(crate) async fn limits(&self, tenant: TenantId) -> ApiResult<RagLimits> {
        use llmops_core::entities::tenant;
        let plan = tenant::Entity::find_by_id(tenant.to_string())
            .one(&self.0.db)
            .await
            .map_err(db_err)?
            .map(|t| t.plan_id);
        match plan {
            Some(plan) => self.plan_limits(&plan).await,
            None => Ok(RagLimits::DEFAULT),
        }
    }

    /// A plan's caps as stored, or the defaults.
    async fn plan_limits(&self, plan: &str) -> ApiResult<RagLimits> {
        Ok(limits::Entity::find_by_id(plan.to_string())
            .one(&self.0.db)
            .await
            .map_err(db_err)?
            .map(|l| RagLimits {
                max_knowledge_bases: u64::try_from(l.max_knowledge_bases).unwrap_or(0),
                max_documents: u64::try_from(l.max_documents).unwrap_or(0),
                max_chunks: u64::try_from(l.max_chunks).unwrap_or(0),
            })
            .unwrap_or(RagLimits::DEFAULT))
    }

    /// 404 unless the plan exists.
    async fn require_plan(&self, plan: &str) -> ApiResult<()> {
        use llmops_core::entities::plan as p;
        match p::Entity::find_by_id(plan.to_string())
            .one(&self.0.db)
            .await
            .map_err(db_err)?
        {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found(format!("plan `{}`", trunc(plan)))),
        }
    }

    fn resolve_chunking(
        model: &EmbeddingModel,
        req: Option<&crate::api::ChunkingRequest>,
    ) -> ApiResult<Chunking> {
        let most = model.max_tokens.saturating_sub(2 + SECTION_TOKENS).max(16);
        let most = u32::try_from(most).unwrap_or(u32::MAX);
        let max_tokens = req.and_then(|c| c.max_tokens).unwrap_or(200.min(most));
        if !(16..=most).contains(&max_tokens) {
            return Err(ApiError::validation(
                "chunking.max_tokens",
                format!("16 to {most} for `{}`", model.id),
            ));
        }
        let overlap_tokens = req
            .and_then(|c| c.overlap_tokens)
            .unwrap_or(32.min(max_tokens / 2));
        if overlap_tokens > max_tokens / 2 {
            return Err(ApiError::validation(
                "chunking.overlap_tokens",
                "at most half of max_tokens",
            ));
        }
        Ok(Chunking {
            max_tokens,
            overlap_tokens,
        })
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id()))]
    pub async fn create_kb(
        &self,
        ctx: &TenantCtx,
        req: CreateKnowledgeBase,
    ) -> ApiResult<KnowledgeBase> {
        ctx.require(Scope::Rag)?;
        check_name(&req.name)?;
        if req
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 2048)
        {
            return Err(ApiError::validation(
                "description",
                "at most 2048 characters",
            ));
        }
        let metadata = req.metadata.unwrap_or_default();
        check_metadata("metadata", &metadata)?;
        let model = self
            .0
            .models
            .embedding_model(&req.embedding_model)
            .ok_or_else(|| {
                ApiError::validation(
                    "embedding_model",
                    format!(
                        "`{}` is not an embedding model of the catalog with a known vector size",
                        trunc(&req.embedding_model)
                    ),
                )
            })?;
        if model.tokenizer.is_none() {
            return Err(ApiError::validation(
                "embedding_model",
                format!(
                    "`{}` has no tokenizer configured (model_tokenizers): chunks are cut by its tokens",
                    model.id
                ),
            ));
        }
        let chunking = Self::resolve_chunking(&model, req.chunking.as_ref())?;
        let limits = self.limits(ctx.tenant_id()).await?;
        let have = ctx
            .scoped()
            .find::<kb::Entity>()
            .count(&self.0.db)
            .await
            .map_err(db_err)?;
        if have >= limits.max_knowledge_bases {
            return Err(ApiError::QuotaExceeded(format!(
                "the plan allows {} knowledge bases",
                limits.max_knowledge_bases
            )));
        }
        self.collection(&model).await?;
        let now = Utc::now();
        let row = kb::ActiveModel {
            id: Set(KnowledgeBaseId::new().to_string()),
            tenant_id: Set(ctx.tenant_id().to_string()),
            name: Set(req.name.clone()),
            description: Set(req.description),
            embedding_model: Set(model.id.clone()),
            chunk_tokens: Set(i32::try_from(chunking.max_tokens).unwrap_or(i32::MAX)),
            chunk_overlap: Set(i32::try_from(chunking.overlap_tokens).unwrap_or(0)),
            metadata: Set(serde_json::Value::Object(metadata).to_string()),
            created_at: Set(now),
            updated_at: Set(now),
        };
        let m = row.insert(&self.0.db).await.map_err(|e| {
            if is_unique_violation(&e) {
                ApiError::Conflict(format!("a knowledge base named `{}` exists", req.name))
            } else {
                db_err(e)
            }
        })?;
        self.kb_view(ctx, m).await
    }

    pub async fn list_kbs(
        &self,
        ctx: &TenantCtx,
        params: &ListParams,
    ) -> ApiResult<Page<KnowledgeBase>> {
        ctx.require(Scope::Rag)?;
        let limit = params.limit()?;
        let mut q = ctx.scoped().find::<kb::Entity>();
        if let Some(after) = &params.after {
            let after: KnowledgeBaseId = after
                .parse()
                .map_err(|_| ApiError::validation("after", "a knowledge base id (`kb_…`)"))?;
            q = q.filter(kb::Column::Id.gt(after.to_string()));
        }
        let rows = q
            .order_by_asc(kb::Column::Id)
            .limit(limit + 1)
            .all(&self.0.db)
            .await
            .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.kb_view(ctx, r).await?);
        }
        Ok(Page::from_rows(out, limit, |k| k.id.to_string()))
    }

    pub async fn get_kb(&self, ctx: &TenantCtx, id: &str) -> ApiResult<KnowledgeBase> {
        ctx.require(Scope::Rag)?;
        let m = self.find_kb(ctx, id).await?;
        self.kb_view(ctx, m).await
    }

    pub async fn update_kb(
        &self,
        ctx: &TenantCtx,
        id: &str,
        req: UpdateKnowledgeBase,
    ) -> ApiResult<KnowledgeBase> {
        ctx.require(Scope::Rag)?;
        let m = self.find_kb(ctx, id).await?;
        let mut a: kb::ActiveModel = m.into();
        if let Some(name) = req.name {
            check_name(&name)?;
            a.name = Set(name);
        }
        if let Some(d) = req.description {
            if d.chars().count() > 2048 {
                return Err(ApiError::validation(
                    "description",
                    "at most 2048 characters",
                ));
            }
            a.description = Set(Some(d));
        }
        if let Some(md) = req.metadata {
            check_metadata("metadata", &md)?;
            a.metadata = Set(serde_json::Value::Object(md).to_string());
        }
        a.updated_at = Set(Utc::now());
        let m = a.update(&self.0.db).await.map_err(|e| {
            if is_unique_violation(&e) {
                ApiError::Conflict("a knowledge base with that name exists".into())
            } else {
                db_err(e)
            }
        })?;
        self.kb_view(ctx, m).await
    }

    /// Deletes the points, then the rows: when the vector store is down
    /// nothing is deleted and the call is a 503 to repeat. An ingestion
    /// finishing meanwhile finds its document gone and removes what it
    /// wrote.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id()))]
    pub async fn delete_kb(&self, ctx: &TenantCtx, id: &str) -> ApiResult<Deleted> {
        ctx.require(Scope::Rag)?;
        let m = self.find_kb(ctx, id).await?;
        if let Some(model) = self.0.models.embedding_model(&m.embedding_model) {
            let coll = self.collection(&model).await?;
            coll.scoped(ctx)
                .delete(Filter::must(vec![kb_filter(&m.id)]))
                .await
                .map_err(vector_err)?;
        }
        let txn = self.0.db.begin().await.map_err(db_err)?;
        let docs = sea_orm::sea_query::Query::select()
            .column(doc::Column::Id)
            .from(doc::Entity)
            .and_where(doc::Column::KbId.eq(m.id.clone()))
            .to_owned();
        ctx.scoped()
            .delete_many::<source::Entity>()
            .filter(source::Column::DocId.in_subquery(docs))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        ctx.scoped()
            .delete_many::<doc::Entity>()
            .filter(doc::Column::KbId.eq(m.id.clone()))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        ctx.scoped()
            .delete_many::<crate::entities::terms::Entity>()
            .filter(crate::entities::terms::Column::KbId.eq(m.id.clone()))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        ctx.scoped()
            .delete_many::<kb::Entity>()
            .filter(kb::Column::Id.eq(m.id.clone()))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(Deleted {
            id: m.id,
            object: "knowledge_base.deleted",
            deleted: true,
        })
    }

    /// Removes every knowledge base of a tenant, points (in every
    /// collection, whatever rows remain, so a purge that failed half-way
    /// can be repeated) then rows. Returns the points removed.
    pub async fn purge_tenant(&self, tenant: TenantId) -> ApiResult<u64> {
        let mut removed = 0;
        for m in self.0.models.embedding_models() {
            let coll = self.collection(&m).await?;
            let scope = coll.for_tenant_maintenance(tenant);
            removed += scope.count(Filter::default()).await.map_err(vector_err)?;
            scope.delete(Filter::default()).await.map_err(vector_err)?;
        }
        let scoped = llmops_core::db::Scoped::new(tenant);
        let txn = self.0.db.begin().await.map_err(db_err)?;
        scoped
            .delete_many::<source::Entity>()
            .exec(&txn)
            .await
            .map_err(db_err)?;
        scoped
            .delete_many::<doc::Entity>()
            .exec(&txn)
            .await
            .map_err(db_err)?;
        scoped
            .delete_many::<crate::entities::terms::Entity>()
            .exec(&txn)
            .await
            .map_err(db_err)?;
        scoped
            .delete_many::<kb::Entity>()
            .exec(&txn)
            .await
            .map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(removed)
    }

    /// Sets a plan's caps.
    pub async fn set_limits(&self, plan: &str, l: RagLimits) -> ApiResult<RagLimits> {
        for (field, v) in [
            ("max_knowledge_bases", l.max_knowledge_bases),
            ("max_documents", l.max_documents),
            ("max_chunks", l.max_chunks),
        ] {
            if v > RagLimits::MAX {
                return Err(ApiError::validation(field, "at most 10^12"));
            }
        }
        self.require_plan(plan).await?;
        let cap = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let row = limits::ActiveModel {
            plan_id: Set(plan.to_string()),
            max_knowledge_bases: Set(cap(l.max_knowledge_bases)),
            max_documents: Set(cap(l.max_documents)),
            max_chunks: Set(cap(l.max_chunks)),
            updated_at: Set(Utc::now()),
        };
        limits::Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(limits::Column::PlanId)
                    .update_columns([
                        limits::Column::MaxKnowledgeBases,
                        limits::Column::MaxDocuments,
                        limits::Column::MaxChunks,
                        limits::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&self.0.db)
            .await
            .map_err(db_err)?;
        Ok(l)
    }

    /// A plan's caps (the defaults when it has none of its own).
    pub async fn get_limits(&self, plan: &str) -> ApiResult<RagLimits> {
        self.require_plan(plan).await?;
        self.plan_limits(plan).await
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name",
            "1 to 128 characters, not blank, no control characters",
        ));
    }
    Ok(())
}
