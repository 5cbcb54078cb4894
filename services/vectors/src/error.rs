/// What the vector store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// A collection exists with another schema than the configuration
    /// needs (e.g. another embedding size): refused rather than mixed.
    #[error("vector collection `{collection}`: {detail}")]
    Schema { collection: String, detail: String },
    /// The caller's filter or key cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A vector of another size than the collection's: the embedding
    /// model answered unlike its configuration (the platform's fault).
    #[error("{0}")]
    Dimensions(String),
    /// The engine is unreachable or failed (Qdrant server down, I/O).
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
    /// The engine failed in a way that is not the caller's fault.
    #[error("vector store: {0}")]
    Engine(String),
}
