//! Documents: upload (text extracted at once, so an unreadable file is a
//! 422 at upload; chunking and embedding are queued: 202), list, get,
//! delete, retry.
//!
//! Versions make replacement atomic for readers: each upload of a document
//! is a new version whose chunks carry `doc_version`; the row's `version`
//! names the one readers see, and switches in one update once every chunk
//! of the new version is stored. Retrieval drops chunks of any other
//! version, then the old version's chunks are deleted.

use crate::api::{Deleted, Document, Metadata};
use crate::entities::{document as doc, source};
use crate::extract::ContentType;
use crate::service::{
    Rag, check_metadata, db_err, doc_filter, doc_id, document_view, kb_filter, trunc, vector_err,
};
use chrono::Utc;
use llmops_core::db::is_unique_violation;
use llmops_core::ids::DocumentId;
use llmops_core::pagination::{ListParams, Page};
use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use llmops_vectors::Filter;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use sha2::Digest;

/// An upload.
#[derive(Debug, Default)]
pub struct NewDocument {
    pub bytes: Vec<u8>,
    pub content_type: Option<ContentType>,
    pub filename: Option<String>,
    pub external_id: Option<String>,
    pub metadata: Option<Metadata>,
}

impl Rag {
    pub(crate) async fn find_doc(
        &self,
        ctx: &TenantCtx,
        kb: &str,
        id: &str,
    ) -> ApiResult<doc::Model> {
        let id = doc_id(id)?;
        ctx.scoped()
            .find::<doc::Entity>()
            .filter(doc::Column::Id.eq(id.to_string()))
            .filter(doc::Column::KbId.eq(kb))
            .one(&self.0.db)
            .await
            .map_err(db_err)?
            .ok_or_else(|| ApiError::not_found(format!("document `{id}`")))
    }

    /// Stores an upload and queues its ingestion. Returns the document and
    /// whether it is new (a known `external_id` makes a new version).
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id()))]
    pub async fn add_document(
        &self,
        ctx: &TenantCtx,
        kb: &str,
        new: NewDocument,
    ) -> ApiResult<(Document, bool)> {
        ctx.require(Scope::Rag)?;
        let kb = self.find_kb(ctx, kb).await?;
        if new.bytes.len() > self.0.config.max_document_bytes {
            return Err(ApiError::PayloadTooLarge {
                limit: self.0.config.max_document_bytes,
            });
        }
        if let Some(e) = &new.external_id
            && (e.is_empty() || e.chars().count() > 256 || e.chars().any(char::is_control))
        {
            return Err(ApiError::validation(
                "external_id",
                "1 to 256 characters, no control characters",
            ));
        }
        if new
            .filename
            .as_ref()
            .is_some_and(|f| f.chars().count() > 256)
        {
            return Err(ApiError::validation("filename", "at most 256 characters"));
        }
        let metadata = new.metadata.unwrap_or_default();
        check_metadata("metadata", &metadata)?;
        let kind = new
            .content_type
            .or_else(|| new.filename.as_deref().and_then(ContentType::from_filename))
            .or_else(|| ContentType::sniff(&new.bytes))
            .unwrap_or(ContentType::Text);
        let sha = hex::encode(sha2::Sha256::digest(&new.bytes));
        let bytes = new.bytes.len();
        // Extraction runs now (a 422 at upload for an unreadable file), in
        // a process of its own for the parsers a hostile file can crash.
        let text =
            crate::extract::isolated(self.0.config.extractor.as_deref(), kind, new.bytes).await?;
        let existing = match &new.external_id {
            Some(e) => ctx
                .scoped()
                .find::<doc::Entity>()
                .filter(doc::Column::KbId.eq(kb.id.clone()))
                .filter(doc::Column::ExternalId.eq(e.clone()))
                .one(&self.0.db)
                .await
                .map_err(db_err)?,
            None => None,
        };
        if existing.is_none() {
            let limits = self.limits(ctx.tenant_id()).await?;
            let have = ctx
                .scoped()
                .find::<doc::Entity>()
                .count(&self.0.db)
                .await
                .map_err(db_err)?;
            if have >= limits.max_documents {
                return Err(ApiError::QuotaExceeded(format!(
                    "the plan allows {} documents",
                    limits.max_documents
                )));
            }
        }
        let now = Utc::now();
        let metadata = serde_json::Value::Object(metadata).to_string();
        let txn = self.0.db.begin().await.map_err(db_err)?;
        let (row, created) = match existing {
            Some(d) if d.status == "deleting" => {
                return Err(ApiError::Conflict(format!(
                    "document `{}` is being deleted: repeat its DELETE, then upload again",
                    d.id
                )));
            }
            Some(d) => {
                let version = d.version.max(d.pending_version.unwrap_or(0)) + 1;
                let mut a: doc::ActiveModel = d.into();
                a.pending_version = Set(Some(version));
                a.status = Set("queued".into());
                a.error = Set(None);
                a.attempts = Set(0);
                a.next_attempt_at = Set(now);
                a.lease_owner = Set(None);
                a.lease_until = Set(None);
                a.filename = Set(new.filename);
                a.content_type = Set(kind.as_str().into());
                a.metadata = Set(metadata);
                a.bytes = Set(i64::try_from(bytes).unwrap_or(i64::MAX));
                a.sha256 = Set(sha);
                a.updated_at = Set(now);
                (a.update(&txn).await.map_err(db_err)?, false)
            }
            None => {
                let row = doc::ActiveModel {
                    id: Set(DocumentId::new().to_string()),
                    tenant_id: Set(ctx.tenant_id().to_string()),
                    kb_id: Set(kb.id.clone()),
                    external_id: Set(new.external_id.clone()),
                    filename: Set(new.filename),
                    content_type: Set(kind.as_str().into()),
                    metadata: Set(metadata),
                    status: Set("queued".into()),
                    error: Set(None),
                    version: Set(0),
                    pending_version: Set(Some(1)),
                    attempts: Set(0),
                    next_attempt_at: Set(now),
                    lease_owner: Set(None),
                    lease_until: Set(None),
                    chunk_count: Set(0),
                    token_count: Set(0),
                    bytes: Set(i64::try_from(bytes).unwrap_or(i64::MAX)),
                    sha256: Set(sha),
                    terms: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                };
                let m = row.insert(&txn).await.map_err(|e| {
                    if is_unique_violation(&e) {
                        ApiError::Conflict(format!(
                            "a document with external_id `{}` was uploaded at the same time; upload again",
                            trunc(new.external_id.as_deref().unwrap_or(""))
                        ))
                    } else {
                        db_err(e)
                    }
                })?;
                (m, true)
            }
        };
        source::ActiveModel {
            doc_id: Set(row.id.clone()),
            version: Set(row.pending_version.unwrap_or(1)),
            tenant_id: Set(ctx.tenant_id().to_string()),
            content: Set(text.into_bytes()),
            created_at: Set(now),
        }
        .insert(&txn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                ApiError::Conflict(
                    "another upload of this document arrived at the same time; upload again".into(),
                )
            } else {
                db_err(e)
            }
        })?;
        txn.commit().await.map_err(db_err)?;
        self.0.queued.notify_waiters();
        Ok((document_view(row), created))
    }

    pub async fn list_documents(
        &self,
        ctx: &TenantCtx,
        kb: &str,
        params: &ListParams,
    ) -> ApiResult<Page<Document>> {
        ctx.require(Scope::Rag)?;
        let kb = self.find_kb(ctx, kb).await?;
        let limit = params.limit()?;
        let mut q = ctx
            .scoped()
            .find::<doc::Entity>()
            .filter(doc::Column::KbId.eq(kb.id));
        if let Some(after) = &params.after {
            let after: DocumentId = after
                .parse()
                .map_err(|_| ApiError::validation("after", "a document id (`doc_…`)"))?;
            q = q.filter(doc::Column::Id.gt(after.to_string()));
        }
        let rows = q
            .order_by_asc(doc::Column::Id)
            .limit(limit + 1)
            .all(&self.0.db)
            .await
            .map_err(db_err)?;
        Ok(Page::from_rows(
            rows.into_iter().map(document_view).collect(),
            limit,
            |d| d.id.to_string(),
        ))
    }

    pub async fn get_document(&self, ctx: &TenantCtx, kb: &str, id: &str) -> ApiResult<Document> {
        ctx.require(Scope::Rag)?;
        let kb = self.find_kb(ctx, kb).await?;
        self.find_doc(ctx, &kb.id, id).await.map(document_view)
    }

    /// Hides the document from readers, deletes its chunks, then its rows.
    /// When the vector store is down the document stays `deleting` (and
    /// unseen) and the call is a 503 to repeat.
    #[tracing::instrument(skip_all, fields(tenant_id = %ctx.tenant_id()))]
    pub async fn delete_document(&self, ctx: &TenantCtx, kb: &str, id: &str) -> ApiResult<Deleted> {
        ctx.require(Scope::Rag)?;
        let kb = self.find_kb(ctx, kb).await?;
        let d = self.find_doc(ctx, &kb.id, id).await?;
        ctx.scoped()
            .update_many::<doc::Entity>()
            .filter(doc::Column::Id.eq(d.id.clone()))
            .col_expr(doc::Column::Status, "deleting".into())
            .col_expr(doc::Column::PendingVersion, Option::<i32>::None.into())
            .col_expr(doc::Column::LeaseOwner, Option::<String>::None.into())
            .col_expr(doc::Column::UpdatedAt, Utc::now().into())
            .exec(&self.0.db)
            .await
            .map_err(db_err)?;
        let model = self.embedding(&kb.embedding_model)?;
        let coll = self.collection(&model).await?;
        coll.scoped(ctx)
            .delete(Filter::must(vec![kb_filter(&kb.id), doc_filter(&d.id)]))
            .await
            .map_err(vector_err)?;
        let txn = self.0.db.begin().await.map_err(db_err)?;
        // Its chunks no longer count in the knowledge base's statistics
        // (the row read now: a version switched meanwhile is the one gone).
        if let Some(current) = ctx
            .scoped()
            .find::<doc::Entity>()
            .filter(doc::Column::Id.eq(d.id.clone()))
            .one(&txn)
            .await
            .map_err(db_err)?
        {
            let gone = crate::terms::from_json(current.terms.as_deref());
            crate::terms::apply(&txn, ctx.tenant_id(), &kb.id, &Default::default(), &gone)
                .await
                .map_err(db_err)?;
        }
        ctx.scoped()
            .delete_many::<source::Entity>()
            .filter(source::Column::DocId.eq(d.id.clone()))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        ctx.scoped()
            .delete_many::<doc::Entity>()
            .filter(doc::Column::Id.eq(d.id.clone()))
            .exec(&txn)
            .await
            .map_err(db_err)?;
        txn.commit().await.map_err(db_err)?;
        Ok(Deleted {
            id: d.id,
            object: "document.deleted",
            deleted: true,
        })
    }

    /// Queues a failed document's ingestion again, attempts reset.
    pub async fn retry_document(&self, ctx: &TenantCtx, kb: &str, id: &str) -> ApiResult<Document> {
        ctx.require(Scope::Rag)?;
        let kb = self.find_kb(ctx, kb).await?;
        let d = self.find_doc(ctx, &kb.id, id).await?;
        if d.status != "failed" || d.pending_version.is_none() {
            return Err(ApiError::Conflict(format!(
                "document `{}` is {}: only a failed ingestion is retried",
                d.id, d.status
            )));
        }
        let res = ctx
            .scoped()
            .update_many::<doc::Entity>()
            .filter(doc::Column::Id.eq(d.id.clone()))
            .filter(doc::Column::Status.eq("failed"))
            .col_expr(doc::Column::Status, "queued".into())
            .col_expr(doc::Column::Attempts, 0.into())
            .col_expr(doc::Column::NextAttemptAt, Utc::now().into())
            .col_expr(doc::Column::UpdatedAt, Utc::now().into())
            .exec(&self.0.db)
            .await
            .map_err(db_err)?;
        if res.rows_affected == 0 {
            return Err(ApiError::Conflict(format!(
                "document `{}` changed meanwhile",
                d.id
            )));
        }
        self.0.queued.notify_waiters();
        self.find_doc(ctx, &kb.id, &d.id).await.map(document_view)
    }
}
