//! The RAG API's request and response types.

use crate::extract::ContentType;
use chrono::{DateTime, Utc};
use llmops_core::ids::{DocumentId, KnowledgeBaseId};
use serde::{Deserialize, Serialize};

/// String metadata of a knowledge base or document: at most 32 keys (1 to 64
/// letters, digits, `_` or `-`), values strings (at most 512 bytes),
/// integers or booleans. Documents' metadata is what query filters select
/// on.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// How documents are cut into chunks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Chunking {
    /// Most tokens of the embedding model per chunk: 16 up to what the
    /// model embeds (222 for all-MiniLM-L6-v2: 256 less its two special
    /// tokens and 32 for the section headings embedded with each chunk).
    /// Default: 200, or the model's most if less.
    #[schema(minimum = 16, maximum = 8192)]
    pub max_tokens: u32,
    /// Tokens the next chunk of a section repeats: 0 up to half of
    /// `max_tokens`. Default 32.
    #[schema(minimum = 0, maximum = 4096)]
    pub overlap_tokens: u32,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChunkingRequest {
    #[schema(minimum = 16, maximum = 8192)]
    pub max_tokens: Option<u32>,
    #[schema(minimum = 0, maximum = 4096)]
    pub overlap_tokens: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKnowledgeBase {
    /// Unique among the tenant's knowledge bases: 1 to 128 characters.
    #[schema(min_length = 1, max_length = 128)]
    pub name: String,
    #[schema(max_length = 2048)]
    pub description: Option<String>,
    /// An embedding model of the catalog (`GET /v1/models`) whose vector
    /// size is known. Fixed for the knowledge base's life.
    #[schema(min_length = 1, max_length = 128, example = "all-minilm-l6-v2")]
    pub embedding_model: String,
    pub chunking: Option<ChunkingRequest>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
}

/// Name, description and metadata may change; the model and chunking may
/// not (they shape the stored chunks).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKnowledgeBase {
    #[schema(min_length = 1, max_length = 128)]
    pub name: Option<String>,
    #[schema(max_length = 2048)]
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KnowledgeBase {
    #[schema(value_type = String, example = "kb_01jdq3…")]
    pub id: KnowledgeBaseId,
    /// Always `knowledge_base`.
    #[schema(pattern = "^knowledge_base$")]
    pub object: &'static str,
    pub name: String,
    pub description: Option<String>,
    pub embedding_model: String,
    pub chunking: Chunking,
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    /// Documents, any status.
    pub document_count: u64,
    /// Chunks readers see (ready versions of documents).
    pub chunk_count: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub id: String,
    pub object: &'static str,
    pub deleted: bool,
}

/// Where a document is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DocumentStatus {
    /// Waiting for an ingestion worker (or for its next attempt).
    Queued,
    /// Being extracted, chunked and embedded.
    Processing,
    /// Its chunks are searchable.
    Ready,
    /// Ingestion gave up: `error` says why; `POST …/retry` tries again.
    Failed,
    /// Its chunks are being removed.
    Deleting,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Deleting => "deleting",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "queued" => Self::Queued,
            "processing" => Self::Processing,
            "ready" => Self::Ready,
            "deleting" => Self::Deleting,
            _ => Self::Failed,
        }
    }
}

/// `POST …/documents` as JSON (multipart takes a `file` part instead of
/// `text`, with `external_id`, `metadata` (a JSON object as text) and
/// `content_type` as optional text parts).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDocument {
    /// The document: plain text, Markdown or HTML (a PDF goes as a
    /// multipart file).
    #[schema(min_length = 1)]
    pub text: String,
    /// Default `text/plain`.
    pub content_type: Option<ContentType>,
    #[schema(max_length = 256)]
    pub filename: Option<String>,
    /// The tenant's own id of the document, unique in the knowledge base:
    /// uploading it again replaces the document's chunks (readers see the
    /// old chunks until the new ones are all in, never a mix).
    #[schema(min_length = 1, max_length = 256)]
    pub external_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
}

/// The multipart form of `POST …/documents`.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DocumentUpload {
    /// The document (its part's content type or file name says its format:
    /// text, Markdown, HTML or PDF).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    #[schema(max_length = 256)]
    external_id: Option<String>,
    /// A JSON object, as text.
    metadata: Option<String>,
    content_type: Option<ContentType>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Document {
    #[schema(value_type = String, example = "doc_01jdq3…")]
    pub id: DocumentId,
    /// Always `document`.
    #[schema(pattern = "^document$")]
    pub object: &'static str,
    #[schema(value_type = String)]
    pub knowledge_base_id: KnowledgeBaseId,
    pub external_id: Option<String>,
    pub filename: Option<String>,
    pub content_type: ContentType,
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    pub status: DocumentStatus,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The version readers see (0: none yet); each upload is a version.
    pub version: u32,
    /// The version being ingested, if any.
    pub pending_version: Option<u32>,
    pub attempts: u32,
    /// Chunks of `version`.
    pub chunk_count: u32,
    /// Embedding-model tokens of `version`'s chunks.
    pub token_count: u64,
    pub bytes: u64,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How `hybrid` fuses the dense and BM25 candidate lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// Distribution-based score fusion (the default: on our evaluation set
    /// it ranked better than RRF and than dense alone).
    Dbsf,
    /// Reciprocal rank fusion (k = 2).
    Rrf,
}

/// How a query ranks chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ranking {
    /// Dense vectors and BM25 term weights, fused in Qdrant's query API
    /// (the default: it ranked better than either alone on our evaluation
    /// set).
    Hybrid,
    /// Embedding similarity only.
    Dense,
    /// BM25 only.
    Sparse,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    #[schema(min_length = 1, max_length = 4096)]
    pub query: String,
    /// Chunks to return: 1 to 50, default 5.
    #[schema(minimum = 1, maximum = 50)]
    pub top_k: Option<u32>,
    pub ranking: Option<Ranking>,
    /// For `hybrid`: default `dbsf`.
    pub fusion: Option<Fusion>,
    /// Conditions on documents' metadata (see the filter language in the
    /// docs: `{"lang": "en", "year": {"$gte": 2020}}`).
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Only these documents.
    #[schema(value_type = Option<Vec<String>>, max_items = 100)]
    pub document_ids: Option<Vec<String>>,
    /// Least cosine similarity (-1 to 1) of a chunk's embedding to the
    /// query's: the final score for `dense`; for `hybrid`, a gate on the
    /// dense candidates (lexical candidates still need a shared term).
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub score_threshold: Option<f32>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChunkHit {
    /// The chunk's id (a UUID): stable for a document version.
    pub chunk_id: String,
    #[schema(value_type = String)]
    pub document_id: String,
    pub external_id: Option<String>,
    pub chunk_index: u32,
    /// Cosine similarity (dense), BM25 (sparse), or the fused score
    /// (hybrid: DBSF's sum of normalised scores, or RRF's).
    pub score: f32,
    pub text: String,
    /// Character offsets of `text` in the document's extracted text (end
    /// exclusive).
    pub start: u32,
    pub end: u32,
    /// The headings above the chunk.
    pub section: String,
    #[schema(value_type = Object)]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueryUsage {
    pub embedding_tokens: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueryResponse {
    /// Always `list`.
    #[schema(pattern = "^list$")]
    pub object: &'static str,
    pub data: Vec<ChunkHit>,
    pub ranking: Ranking,
    /// The fusion of a `hybrid` ranking.
    pub fusion: Option<Fusion>,
    pub embedding_model: String,
    pub usage: QueryUsage,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    #[schema(min_length = 1, max_length = 4096)]
    pub question: String,
    /// A chat model the tenant may call.
    #[schema(min_length = 1, max_length = 128, example = "smollm2-135m-instruct")]
    pub model: String,
    /// Chunks retrieved: 1 to 20, default 4 (fewer go into the prompt when
    /// the model's context is full).
    #[schema(minimum = 1, maximum = 20)]
    pub top_k: Option<u32>,
    pub ranking: Option<Ranking>,
    /// For `hybrid`: default `dbsf`.
    pub fusion: Option<Fusion>,
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Least cosine similarity of a usable chunk's embedding to the
    /// question's (default 0.25): only such chunks go into the prompt, and
    /// with none the answer says so without generating.
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub score_threshold: Option<f32>,
    /// 1 to 1024, default 256.
    #[schema(minimum = 1, maximum = 1024)]
    pub max_tokens: Option<u32>,
    /// 0 to 2, default 0.
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f32>,
    /// Server-sent events: `citations` first, then `delta` events, then
    /// `done` with the usage.
    pub stream: Option<bool>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Citation {
    /// The `[n]` the prompt numbered the chunk with.
    pub marker: u32,
    pub chunk_id: String,
    pub document_id: String,
    pub external_id: Option<String>,
    pub chunk_index: u32,
    pub start: u32,
    pub end: u32,
    pub score: f32,
    /// Whether the answer cites `[n]` itself.
    pub cited: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AnswerUsage {
    pub embedding_tokens: u32,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Answer {
    pub id: String,
    /// Always `rag.answer`.
    #[schema(pattern = "^rag\\.answer$")]
    pub object: &'static str,
    pub model: String,
    pub answer: String,
    /// False when nothing relevant was retrieved: `answer` says so and no
    /// generation ran.
    pub grounded: bool,
    /// The chunks given to the model, in prompt order.
    pub citations: Vec<Citation>,
    pub usage: AnswerUsage,
}

/// Per-plan caps (`PUT /admin/v1/plans/{plan}/rag_limits`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RagLimits {
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub max_knowledge_bases: u64,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub max_documents: u64,
    /// Chunks stored over all knowledge bases.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub max_chunks: u64,
}

impl RagLimits {
    /// The largest cap.
    pub const MAX: u64 = 1_000_000_000_000;

    /// For plans without their own.
    pub const DEFAULT: RagLimits = RagLimits {
        max_knowledge_bases: 100,
        max_documents: 100_000,
        max_chunks: 5_000_000,
    };
}
