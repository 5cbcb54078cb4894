/// A payload field the collection indexes (needed to filter fast and to
/// facet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadField {
    Keyword(&'static str),
    Integer(&'static str),
}

/// The schema of a collection: one per embedding model and purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSpec {
    /// `<purpose>__<model>` by convention, e.g. `rag__all-minilm-l6-v2`.
    pub name: String,
    /// Dimensions of the dense vector (named `dense`, cosine distance).
    pub dense_size: usize,
    /// Indexes besides the tenant's (which every collection has).
    pub fields: Vec<PayloadField>,
}

impl CollectionSpec {
    /// Dense vector name.
    pub const DENSE: &'static str = "dense";
    /// Sparse (lexical) vector name: BM25 term-frequency weights, no
    /// modifier (query terms carry the caller's IDF).
    pub const SPARSE: &'static str = "sparse";

    /// A collection for `purpose` and an embedding model: its name is made
    /// of both, with characters Qdrant or a file system could mind replaced.
    pub fn new(purpose: &str, model: &str, dense_size: usize, fields: Vec<PayloadField>) -> Self {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        Self {
            name: format!("{}__{}", clean(purpose), clean(model)),
            dense_size,
            fields,
        }
    }
}
