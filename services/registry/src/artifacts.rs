//! Artifact storage on the `object_store` abstraction: a local directory by
//! default, any object store it supports when configured.
//!
//! Uploads stream: each chunk is hashed (SHA-256) and handed to a multipart
//! upload as it arrives, so memory stays bounded by the part size whatever
//! the artifact's size. Every upload goes to a key of its own; the caller
//! deletes it if the checksum or the version's state refuses it.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Part size of multipart uploads (and the most one upload buffers).
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("upload interrupted: {0}")]
    Body(String),
    #[error("artifact store: {0}")]
    Store(#[from] object_store::Error),
}

/// What was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub sha256: String,
    pub size: u64,
}

/// Where and how to reach an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `s3://bucket[/prefix]`.
    pub url: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: bool,
}

#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    max_bytes: u64,
}

impl ArtifactStore {
    pub fn new(store: Arc<dyn ObjectStore>, max_bytes: u64) -> Self {
        Self { store, max_bytes }
    }

    /// A store in a local directory (created if missing).
    pub fn local(root: &std::path::Path, max_bytes: u64) -> Result<Self, ArtifactError> {
        std::fs::create_dir_all(root).map_err(|e| {
            ArtifactError::Store(object_store::Error::Generic {
                store: "local",
                source: Box::new(e),
            })
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(root)?;
        Ok(Self::new(Arc::new(fs), max_bytes))
    }

    /// A store in an S3-compatible bucket: `s3://bucket[/prefix]`.
    pub fn s3(settings: &S3Settings, max_bytes: u64) -> Result<Self, ArtifactError> {
        let rest = settings.url.strip_prefix("s3://").unwrap_or(&settings.url);
        let (bucket, prefix) = match rest.split_once('/') {
            Some((b, p)) => (b, p.trim_matches('/')),
            None => (rest, ""),
        };
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&settings.region)
            .with_allow_http(settings.allow_http);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        let s3 = builder.build()?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        };
        Ok(Self::new(store, max_bytes))
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Streams `body` to `key`, hashing as it goes. On any error the partial
    /// upload is aborted and nothing is left at `key`.
    pub async fn put_stream<S, E>(&self, key: &str, body: S) -> Result<Stored, ArtifactError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = ObjectPath::from(key);
        let upload = self.store.put_multipart(&path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut body = body;
        let result: Result<(), ArtifactError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| ArtifactError::Body(e.to_string()))?;
                size += chunk.len() as u64;
                if size > self.max_bytes {
                    return Err(ArtifactError::TooLarge {
                        limit: self.max_bytes,
                    });
                }
                hasher.update(&chunk);
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, key, "aborting a failed upload");
            }
            return Err(e);
        }
        writer.finish().await?;
        Ok(Stored {
            sha256: hex::encode(hasher.finalize()),
            size,
        })
    }

    /// The object's bytes as a stream, and its size.
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> Result<
        (
            u64,
            futures_util::stream::BoxStream<'static, Result<Bytes, object_store::Error>>,
        ),
        ArtifactError,
    > {
        let got = self.store.get(&ObjectPath::from(key)).await?;
        let size = got.meta.size;
        Ok((size, got.into_stream()))
    }

    /// Deletes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), ArtifactError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reachability probe for `/readyz`: lists an empty prefix, which
    /// fails when the store or its bucket is missing (a HEAD would not).
    pub async fn check(&self) -> Result<(), ArtifactError> {
        self.store
            .list_with_delimiter(Some(&ObjectPath::from("readyz-probe")))
            .await?;
        Ok(())
    }

    pub async fn exists(&self, key: &str) -> Result<bool, ArtifactError> {
        match self.store.head(&ObjectPath::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl From<ArtifactError> for llmops_core::ApiError {
    fn from(e: ArtifactError) -> Self {
        use llmops_core::ApiError;
        match e {
            ArtifactError::TooLarge { limit } => ApiError::PayloadTooLarge {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            },
            ArtifactError::Body(msg) => ApiError::BadRequest(format!("upload interrupted: {msg}")),
            ArtifactError::Store(object_store::Error::NotFound { .. }) => {
                ApiError::not_found("artifact")
            }
            ArtifactError::Store(e) => ApiError::Unavailable {
                dependency: format!("artifact store ({})", short(&e)),
                retry_after_secs: 5,
            },
        }
    }
}

fn short(e: &object_store::Error) -> &'static str {
    match e {
        object_store::Error::Generic { store, .. } => store,
        _ => "error",
    }
}
