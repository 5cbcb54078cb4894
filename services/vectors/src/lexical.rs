//! The lexical (sparse) vectors of hybrid retrieval: Qdrant's own BM25
//! (from qdrant-edge, the same tokenizer, stemmer and stopwords as the
//! server's `qdrant/bm25`), computed here for both engines so that they
//! store identical sparse vectors. Term frequencies are BM25-saturated and
//! length-normalised; the IDF half is Qdrant's `idf` modifier on the
//! collection's sparse vector, computed by the engine over the points it
//! holds.

use crate::Sparse;
use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use std::sync::Arc;

/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Lexical(Arc<EdgeBm25>);

impl Lexical {
    /// English, lowercased, Snowball-stemmed, English stopwords removed
    /// (Qdrant's defaults), BM25 with k1 = 1.2, b = 0.75 and
    /// `avg_len` tokens for an average chunk.
    pub fn english(avg_len: f64) -> Result<Self, String> {
        let mut config = EdgeBm25Config::default();
        if let Ok(v) = qdrant_edge::external::ordered_float::NotNan::new(avg_len.max(1.0)) {
            config.avg_len = v;
        }
        EdgeBm25::new(config)
            .map(|b| Self(Arc::new(b)))
            .map_err(|e| e.to_string())
    }

    pub fn document(&self, text: &str) -> Sparse {
        let v = self.0.embed_document(text);
        Sparse {
            indices: v.indices,
            values: v.values,
        }
    }

    pub fn query(&self, text: &str) -> Sparse {
        let v = self.0.embed_query(text);
        Sparse {
            indices: v.indices,
            values: v.values,
        }
    }
}
