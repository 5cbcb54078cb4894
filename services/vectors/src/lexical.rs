//! The lexical (sparse) vectors of hybrid retrieval: Qdrant's own BM25
//! (from qdrant-edge, the same tokenizer, stemmer and stopwords as the
//! server's `qdrant/bm25`), computed here for both engines so that they
//! store identical sparse vectors. A document's vector holds BM25's
//! saturated, length-normalised term frequencies; the IDF half is the
//! query's: its terms are weighted by IDF from statistics the caller keeps
//! per tenant (a knowledge base's), not by the engine's `idf` modifier,
//! which would count every tenant's chunks in one collection and let
//! scores tell one tenant about another's texts.

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

    /// The query's terms, each weighted 1 (see [`Lexical::weighted`]).
    pub fn query(&self, text: &str) -> Sparse {
        let v = self.0.embed_query(text);
        Sparse {
            indices: v.indices,
            values: v.values,
        }
    }

    /// The query's terms weighted by `idf` (terms it gives no weight are
    /// left out: they occur in no chunk).
    pub fn weighted(&self, text: &str, idf: impl Fn(u32) -> Option<f32>) -> Sparse {
        let q = self.query(text);
        let (indices, values) = q
            .indices
            .into_iter()
            .filter_map(|i| idf(i).filter(|w| *w > 0.0).map(|w| (i, w)))
            .unzip();
        Sparse { indices, values }
    }

    /// A document's distinct terms.
    pub fn terms(&self, text: &str) -> Vec<u32> {
        let mut t = self.document(text).indices;
        t.sort_unstable();
        t.dedup();
        t
    }
}
