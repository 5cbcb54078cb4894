//! Training files (`/v1/files`, OpenAI's Files API for purpose
//! `fine-tune`): uploads stream into the artifact store while they are
//! hashed (SHA-256) and validated line by line, so a file is never held in
//! memory; a file with errors is refused whole (422, each error naming its
//! line) and nothing of it is kept.

use crate::dataset::{self, Stats, Validator};
use crate::entities::file;
use bytes::Bytes;
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use llmops_core::db::Db;
use llmops_core::error::FieldError;
use llmops_core::ids::FileId;
use llmops_core::pagination::Page;
use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use llmops_registry::ArtifactStore;
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::{Deserialize, Serialize};

/// The only purpose stored here.
pub const PURPOSE: &str = "fine-tune";

/// A file, in OpenAI's shape plus its checksum and what validation counted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FileObject {
    pub id: FileId,
    /// Always `file`.
    pub object: &'static str,
    pub bytes: i64,
    /// Unix seconds.
    pub created_at: i64,
    pub filename: String,
    /// Always `fine-tune`.
    pub purpose: String,
    /// Always `processed`: a file is validated while it uploads, and one
    /// that fails is not stored.
    pub status: &'static str,
    pub status_details: Option<String>,
    pub expires_at: Option<i64>,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    pub stats: FileStats,
}

/// What validation counted in a file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileStats {
    pub lines: u64,
    pub examples: u64,
    pub messages: u64,
    pub characters: u64,
    /// Characters of the assistant turns trained on.
    pub trained_characters: u64,
    /// Four characters a token. The exact count, with the base model's own
    /// tokenizer, is taken when a job reads the file (its `trained_tokens`).
    pub estimated_tokens: u64,
}

impl From<&Stats> for FileStats {
    fn from(s: &Stats) -> Self {
        Self {
            lines: s.lines,
            examples: s.examples,
            messages: s.messages,
            characters: s.characters,
            trained_characters: s.trained_characters,
            estimated_tokens: s.characters.div_ceil(4),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileDeleted {
    pub id: FileId,
    /// Always `file`.
    pub object: &'static str,
    pub deleted: bool,
}

/// `GET /v1/files` query.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileListParams {
    pub purpose: Option<String>,
    pub limit: Option<u64>,
    pub after: Option<String>,
    pub order: Option<SortOrder>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    #[default]
    Desc,
}

#[derive(Clone)]
pub struct Files {
    db: Db,
    store: ArtifactStore,
    limits: dataset::Limits,
}

fn view(row: file::Model) -> FileObject {
    let stats = serde_json::from_str(&row.stats).unwrap_or_default();
    FileObject {
        id: row.id.parse().unwrap_or_default(),
        object: "file",
        bytes: row.bytes,
        created_at: row.created_at.timestamp(),
        filename: row.filename,
        purpose: row.purpose,
        status: "processed",
        status_details: None,
        expires_at: None,
        sha256: row.sha256,
        stats,
    }
}

/// A file name as stored: its last path component, at most 256 characters.
fn clean_filename(name: Option<&str>) -> ApiResult<String> {
    let name = name
        .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).trim())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::validation("file", "the file part needs a filename"))?;
    if name.chars().count() > 256 || name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "file",
            "the filename must be at most 256 characters, without control characters",
        ));
    }
    Ok(name.to_string())
}

impl Files {
    pub fn new(db: Db, store: ArtifactStore) -> Self {
        let mut limits = dataset::Limits::default();
        limits.max_file_bytes = limits.max_file_bytes.min(store.max_bytes());
        Self { db, store, limits }
    }

    pub fn store(&self) -> &ArtifactStore {
        &self.store
    }

    /// Stores one file part: streamed to the store, hashed and validated on
    /// the way; refused whole (and deleted) when validation fails.
    pub async fn upload<S, E>(
        &self,
        ctx: &TenantCtx,
        filename: Option<&str>,
        body: S,
    ) -> ApiResult<FileObject>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        ctx.require(Scope::Training)?;
        let filename = clean_filename(filename)?;
        let id = FileId::new();
        let key = format!("tenants/{}/files/{id}", ctx.tenant_id());
        let mut validator = Validator::new(self.limits);
        let max = self.limits.max_file_bytes;
        let mut seen: u64 = 0;
        let stored = {
            // Cut off at the file limit (the store's own may be far larger).
            let checked = body.map(|chunk| {
                let bytes = chunk.map_err(|e| e.to_string())?;
                seen += bytes.len() as u64;
                if seen > max {
                    return Err(format!("the file is larger than {max} bytes"));
                }
                validator.push(&bytes);
                Ok::<_, String>(bytes)
            });
            match self.store.put_stream(&key, checked).await {
                Ok(s) => s,
                Err(_) if seen > max => {
                    return Err(ApiError::PayloadTooLarge {
                        limit: usize::try_from(max).unwrap_or(usize::MAX),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        };
        let report = validator.finish();
        if !report.is_valid() {
            self.forget(&key).await;
            return Err(ApiError::Validation {
                detail: format!(
                    "the file is not valid chat-format JSONL: {} error(s){}",
                    report.error_count,
                    report
                        .errors
                        .first()
                        .map(|e| format!(", the first: {e}"))
                        .unwrap_or_default()
                ),
                errors: report
                    .errors
                    .iter()
                    .map(|e| FieldError {
                        field: "file".into(),
                        message: e.to_string(),
                    })
                    .collect(),
            });
        }
        let stats = FileStats::from(&report.stats);
        let row = file::ActiveModel {
            id: Set(id.to_string()),
            tenant_id: Set(ctx.tenant_id().to_string()),
            purpose: Set(PURPOSE.into()),
            filename: Set(filename),
            bytes: Set(i64::try_from(stored.size).unwrap_or(i64::MAX)),
            sha256: Set(stored.sha256),
            artifact_key: Set(key.clone()),
            stats: Set(serde_json::to_string(&stats).unwrap_or_else(|_| "{}".into())),
            created_at: Set(Utc::now()),
        };
        match row.insert(&self.db).await {
            Ok(row) => Ok(view(row)),
            Err(e) => {
                self.forget(&key).await;
                Err(e.into())
            }
        }
    }

    /// The tenant's oldest file named `filename`, if any.
    pub async fn named(&self, ctx: &TenantCtx, filename: &str) -> ApiResult<Option<file::Model>> {
        Ok(ctx
            .scoped()
            .find::<file::Entity>()
            .filter(file::Column::Filename.eq(filename))
            .order_by_asc(file::Column::Id)
            .one(&self.db)
            .await?)
    }

    async fn forget(&self, key: &str) {
        if let Err(e) = self.store.delete(key).await {
            tracing::warn!(error = %e, key, "could not delete a refused file");
        }
    }

    pub async fn list(&self, ctx: &TenantCtx, p: FileListParams) -> ApiResult<Page<FileObject>> {
        ctx.require(Scope::Training)?;
        let limit = llmops_core::pagination::ListParams {
            limit: p.limit,
            after: None,
        }
        .limit()?;
        if p.purpose.as_ref().is_some_and(|x| x.chars().count() > 64) {
            return Err(ApiError::validation(
                "purpose",
                "purpose is at most 64 characters",
            ));
        }
        if let Some(purpose) = &p.purpose
            && purpose != PURPOSE
        {
            // Nothing else is stored: an empty page, as for any purpose
            // without files.
            return Ok(Page::from_rows(Vec::new(), limit, |f: &FileObject| {
                f.id.to_string()
            }));
        }
        let order = p.order.unwrap_or_default();
        let mut q = ctx.scoped().find::<file::Entity>();
        if let Some(after) = &p.after {
            let after: FileId = after.parse().map_err(|e: llmops_core::ids::InvalidId| {
                ApiError::validation("after", e.to_string())
            })?;
            q = match order {
                SortOrder::Asc => q.filter(file::Column::Id.gt(after.to_string())),
                SortOrder::Desc => q.filter(file::Column::Id.lt(after.to_string())),
            };
        }
        q = match order {
            SortOrder::Asc => q.order_by_asc(file::Column::Id),
            SortOrder::Desc => q.order_by_desc(file::Column::Id),
        };
        let rows = q.limit(limit + 1).all(&self.db).await?;
        Ok(Page::from_rows(
            rows.into_iter().map(view).collect(),
            limit,
            |f| f.id.to_string(),
        ))
    }

    /// The tenant's file row (another tenant's is 404).
    pub(crate) async fn row(&self, ctx: &TenantCtx, id: &str) -> ApiResult<file::Model> {
        let not_found = || {
            ApiError::not_found(format!(
                "file `{}`",
                id.chars().take(64).collect::<String>()
            ))
        };
        let id: FileId = id.parse().map_err(|_| not_found())?;
        ctx.scoped()
            .find::<file::Entity>()
            .filter(file::Column::Id.eq(id.to_string()))
            .one(&self.db)
            .await?
            .ok_or_else(not_found)
    }

    pub async fn get(&self, ctx: &TenantCtx, id: &str) -> ApiResult<FileObject> {
        ctx.require(Scope::Training)?;
        self.row(ctx, id).await.map(view)
    }

    /// The file's size and bytes.
    pub async fn open(
        &self,
        ctx: &TenantCtx,
        id: &str,
    ) -> ApiResult<(
        u64,
        futures_util::stream::BoxStream<'static, Result<Bytes, object_store::Error>>,
    )> {
        ctx.require(Scope::Training)?;
        let row = self.row(ctx, id).await?;
        Ok(self.store.get_stream(&row.artifact_key).await?)
    }

    /// Deletes a file (the caller checked that no unfinished job reads it).
    pub(crate) async fn delete(&self, ctx: &TenantCtx, row: file::Model) -> ApiResult<FileDeleted> {
        ctx.scoped()
            .delete_many::<file::Entity>()
            .filter(file::Column::Id.eq(row.id.clone()))
            .exec(&self.db)
            .await?;
        self.forget(&row.artifact_key).await;
        Ok(FileDeleted {
            id: row.id.parse().unwrap_or_default(),
            object: "file",
            deleted: true,
        })
    }
}
