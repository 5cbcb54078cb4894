//! `llmops-rag`: tenant knowledge bases on Qdrant.
//!
//! Documents are uploaded (text, Markdown, HTML, PDF), their text extracted
//! at once, then chunked by the embedding model's own tokens and embedded
//! through serving by ingestion workers, and stored as points of the
//! embedding model's collection in the vector store (`llmops-vectors`,
//! qdrant-edge or a Qdrant server), each with a dense and a BM25 vector.
//! Queries retrieve by hybrid search (dense + BM25, fused by RRF in
//! Qdrant's query API) under metadata filters; answers are generated from
//! the chunks that fit the chat model's context, with citations.

pub mod api;
pub mod chunk;
mod documents;
mod entities;
pub mod extract;
pub mod filter;
mod ingest;
mod meter;
pub mod models;
mod retrieve;
pub mod routes;
mod service;
mod terms;

pub use documents::NewDocument;
pub use retrieve::NOTHING_RELEVANT;
pub use service::{Rag, RagConfig, RagParts};
