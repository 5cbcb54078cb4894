//! A tenant's cache settings (table `cache_settings`; defaults when the
//! tenant has no row).

use llmops_core::{ApiError, ApiResult, Scope, TenantCtx};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, sea_query::OnConflict};
use serde::{Deserialize, Serialize};

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "cache_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub enabled: bool,
        pub semantic: bool,
        pub similarity_threshold: Option<f64>,
        pub ttl_secs: Option<i64>,
        pub cache_nondeterministic: bool,
        pub cache_truncated: bool,
        /// JSON array of model ids.
        pub disabled_models: String,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

llmops_core::tenant_owned!(entity);

/// A tenant's settings as they apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub enabled: bool,
    pub semantic: bool,
    /// `None`: the operator's.
    pub similarity_threshold: Option<f32>,
    pub ttl_secs: Option<u64>,
    pub cache_nondeterministic: bool,
    pub cache_truncated: bool,
    pub disabled_models: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            semantic: true,
            similarity_threshold: None,
            ttl_secs: None,
            cache_nondeterministic: false,
            cache_truncated: false,
            disabled_models: Vec::new(),
        }
    }
}

impl Settings {
    fn from_model(m: entity::Model) -> Self {
        Self {
            enabled: m.enabled,
            semantic: m.semantic,
            similarity_threshold: m.similarity_threshold.map(|t| t as f32),
            ttl_secs: m.ttl_secs.and_then(|t| u64::try_from(t).ok()),
            cache_nondeterministic: m.cache_nondeterministic,
            cache_truncated: m.cache_truncated,
            disabled_models: serde_json::from_str(&m.disabled_models).unwrap_or_default(),
        }
    }
}

/// The tenant's cache settings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CacheSettingsView {
    /// `cache.settings`
    pub object: &'static str,
    /// Whether this tenant's chat completions are cached at all.
    pub enabled: bool,
    /// Whether the semantic level runs (off: exact matches only).
    pub semantic: bool,
    /// Least cosine of a semantic candidate; never below `operator_min_similarity`.
    pub similarity_threshold: f32,
    /// The operator's floor for every tenant.
    pub operator_min_similarity: f32,
    /// How long entries live unless a request says otherwise (seconds).
    pub ttl_secs: u64,
    /// The longest TTL the operator allows (seconds).
    pub max_ttl_secs: u64,
    /// Also cache sampled outputs (temperature above 0 without a seed).
    pub cache_nondeterministic: bool,
    /// Also cache answers cut at `max_tokens` (`finish_reason: length`).
    pub cache_truncated: bool,
    /// Models whose calls are never cached.
    pub disabled_models: Vec<String>,
}

/// Changes to the settings; absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheSettingsUpdate {
    pub enabled: Option<bool>,
    pub semantic: Option<bool>,
    /// Between the operator's floor and 1; `null` goes back to the operator's.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<f32>, minimum = 0, maximum = 1)]
    pub similarity_threshold: Option<Option<f32>>,
    /// 1 to the operator's maximum; `null` goes back to the default.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u64>, minimum = 1)]
    pub ttl_secs: Option<Option<u64>>,
    pub cache_nondeterministic: Option<bool>,
    pub cache_truncated: Option<bool>,
    /// At most 100 model ids.
    #[schema(max_items = 100)]
    pub disabled_models: Option<Vec<String>>,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub(crate) fn db_err(e: DbErr) -> ApiError {
    ApiError::Internal(Box::new(e))
}

pub(crate) async fn load(db: &DatabaseConnection, ctx: &TenantCtx) -> ApiResult<Settings> {
    Ok(ctx
        .scoped()
        .find::<entity::Entity>()
        .one(db)
        .await
        .map_err(db_err)?
        .map(Settings::from_model)
        .unwrap_or_default())
}

pub(crate) async fn save(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    current: Settings,
    up: CacheSettingsUpdate,
    min_similarity: f32,
    max_ttl_secs: u64,
) -> ApiResult<Settings> {
    ctx.require(Scope::Admin)?;
    let mut s = current;
    if let Some(v) = up.enabled {
        s.enabled = v;
    }
    if let Some(v) = up.semantic {
        s.semantic = v;
    }
    if let Some(t) = up.similarity_threshold {
        if let Some(v) = t
            && !(v.is_finite() && v >= min_similarity && v <= 1.0)
        {
            return Err(ApiError::validation(
                "similarity_threshold",
                format!(
                    "similarity_threshold must be between the operator's floor {min_similarity} and 1"
                ),
            ));
        }
        s.similarity_threshold = t;
    }
    if let Some(t) = up.ttl_secs {
        if t.is_some_and(|v| v == 0 || v > max_ttl_secs) {
            return Err(ApiError::validation(
                "ttl_secs",
                format!("ttl_secs must be between 1 and {max_ttl_secs}"),
            ));
        }
        s.ttl_secs = t;
    }
    if let Some(v) = up.cache_nondeterministic {
        s.cache_nondeterministic = v;
    }
    if let Some(v) = up.cache_truncated {
        s.cache_truncated = v;
    }
    if let Some(models) = up.disabled_models {
        if models.len() > 100 || models.iter().any(|m| m.is_empty() || m.len() > 128) {
            return Err(ApiError::validation(
                "disabled_models",
                "at most 100 model ids of 1 to 128 characters",
            ));
        }
        let mut models = models;
        models.sort();
        models.dedup();
        s.disabled_models = models;
    }
    let row = entity::ActiveModel {
        tenant_id: Set(ctx.tenant_id().to_string()),
        enabled: Set(s.enabled),
        semantic: Set(s.semantic),
        similarity_threshold: Set(s.similarity_threshold.map(f64::from)),
        ttl_secs: Set(s.ttl_secs.and_then(|t| i64::try_from(t).ok())),
        cache_nondeterministic: Set(s.cache_nondeterministic),
        cache_truncated: Set(s.cache_truncated),
        disabled_models: Set(serde_json::to_string(&s.disabled_models).map_err(ApiError::internal)?),
        updated_at: Set(chrono::Utc::now()),
    };
    entity::Entity::insert(row)
        .on_conflict(
            OnConflict::column(entity::Column::TenantId)
                .update_columns([
                    entity::Column::Enabled,
                    entity::Column::Semantic,
                    entity::Column::SimilarityThreshold,
                    entity::Column::TtlSecs,
                    entity::Column::CacheNondeterministic,
                    entity::Column::CacheTruncated,
                    entity::Column::DisabledModels,
                    entity::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(db)
        .await
        .map_err(db_err)?;
    Ok(s)
}
