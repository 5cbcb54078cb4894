//! `llmops-cache`: the gateway's response cache for chat completions.
//!
//! Two levels, both scoped by tenant where the key is made:
//! - **exact**: a hash of the normalised request ([`key`]), looked up in
//!   the entry store (in-process, or Redis so replicas share it);
//! - **semantic**: inside a hard partition (tenant, namespace, model,
//!   sampling parameters, system prompt and earlier turns), the last user
//!   message is embedded ([`embed`]) and compared in the vector store
//!   (`llmops-vectors`, the edge engine or a Qdrant server). The cosine
//!   only proposes candidates; a candidate is served only when the
//!   deterministic guard's hard rules ([`guard`]) find nothing and the
//!   pair classifier ([`pair`], MiniLM fine-tuned as a cross-encoder that
//!   reads both prompts in one pass) accepts it; with an embedder that
//!   has no classifier (the served model), every guard rule vetoes
//!   instead. Any doubt or error is a miss. The learned judge ([`judge`],
//!   a logistic model over the pair's token alignment) decided before the
//!   classifier; the bench keeps it for comparison.
//!
//! Only reusable outputs are cached by default (temperature 0, or a seed).

pub mod cache;
pub mod directives;
pub mod embed;
pub mod guard;
pub mod judge;
pub mod key;
pub mod pair;
pub mod routes;
pub mod settings;
pub mod store;
#[rustfmt::skip]
mod words;

pub use cache::{
    CacheConfig, Entry, GUARD_ALONE_MIN_SIMILARITY, Lookup, SemanticCache, Status, Ticket,
};
pub use directives::Directives;
pub use embed::{Embedder, Encoded, MiniLm};
pub use judge::Judge;
pub use key::{CacheRequest, Sampling};
pub use pair::PairClassifier;

/// What can go wrong inside the cache. None of it reaches a client of a
/// chat completion: a failed lookup is a miss, a failed store is logged.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache store unavailable: {0}")]
    Unavailable(String),
    #[error("embedding failed: {0}")]
    Embedding(String),
    #[error("vector store: {0}")]
    Vectors(#[from] llmops_vectors::VectorError),
    #[error("the entry is larger than the cache allows")]
    TooLarge,
    #[error("unreadable entry: {0}")]
    Corrupt(String),
}
