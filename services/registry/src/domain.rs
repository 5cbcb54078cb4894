//! Registry domain types: what the API shows and accepts.

use chrono::{DateTime, Utc};
use llmops_core::ApiError;
use llmops_core::ids::{EvaluationId, ModelId, ModelVersionId, RegistryEventId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),*
        }

        // By hand: the derive does not see renames written by a macro, and
        // the document must list the values as they travel.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),*]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

string_enum!(
    /// How the weights are stored.
    Format {
        Safetensors = "safetensors",
        Gguf = "gguf",
        Onnx = "onnx",
        TensorrtLlm = "tensorrt_llm",
        Pytorch = "pytorch",
    }
);

string_enum!(
    /// Numeric precision / quantization scheme of the weights.
    Quantization {
        None = "none",
        Fp32 = "fp32",
        Fp16 = "fp16",
        Bf16 = "bf16",
        Fp8 = "fp8",
        Int8 = "int8",
        Int4Awq = "int4_awq",
        Int4Gptq = "int4_gptq",
        GgufQ4_0 = "gguf_q4_0",
        GgufQ4_1 = "gguf_q4_1",
        GgufQ4KM = "gguf_q4_k_m",
        GgufQ5_0 = "gguf_q5_0",
        GgufQ5KM = "gguf_q5_k_m",
        GgufQ8_0 = "gguf_q8_0",
    }
);

string_enum!(
    /// `pending` until its artifact is verified, then `ready`; `archived`
    /// keeps artifact and history but can no longer be aliased.
    VersionStatus {
        Pending = "pending",
        Ready = "ready",
        Failed = "failed",
        Archived = "archived",
    }
);

/// Where a version came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// Bytes uploaded to `PUT …/artifact`.
    Upload,
    /// Produced by a fine-tuning job (lineage).
    FineTuningJob {
        #[schema(min_length = 1, max_length = 64)]
        job_id: String,
    },
    /// Registered from an external location.
    Import,
}

impl Source {
    pub fn type_str(&self) -> &'static str {
        match self {
            Source::Upload => "upload",
            Source::FineTuningJob { .. } => "fine_tuning_job",
            Source::Import => "import",
        }
    }
}

string_enum!(
    /// Comparison of a promotion gate.
    GateOp {
        Lt = "<",
        Le = "<=",
        Gt = ">",
        Ge = ">=",
        Eq = "==",
    }
);

/// A required metric for the `production` alias, e.g. `eval_loss <= 1.8`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    #[schema(min_length = 1, max_length = 64)]
    pub metric: String,
    pub op: GateOp,
    pub value: f64,
}

impl Gate {
    /// `None` when the version passes; otherwise why not.
    pub fn check(&self, metrics: &BTreeMap<String, f64>) -> Option<GateFailure> {
        let actual = metrics.get(&self.metric).copied();
        let pass = actual.is_some_and(|v| match self.op {
            GateOp::Lt => v < self.value,
            GateOp::Le => v <= self.value,
            GateOp::Gt => v > self.value,
            GateOp::Ge => v >= self.value,
            GateOp::Eq => v == self.value,
        });
        (!pass).then(|| GateFailure {
            gate: self.clone(),
            actual,
            alerts: Vec::new(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GateFailure {
    pub gate: Gate,
    /// The version's value; null when it has no such metric.
    pub actual: Option<f64>,
    /// For `open_drift_alerts`: the alerts firing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub alerts: Vec<serde_json::Value>,
}

/// The alias promotion gates guard.
pub const GATED_ALIAS: &str = "production";

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelView {
    /// Always `registry.model`.
    pub object: &'static str,
    pub id: ModelId,
    pub name: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub promotion_gates: Vec<Gate>,
    /// Alias → version number.
    pub aliases: BTreeMap<String, i64>,
    pub latest_version: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

// Deserialize: the registry's HTTP client (split mode) reads it back.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionView {
    /// Always `registry.model_version`.
    #[schema(value_type = String)]
    pub object: VersionObject,
    pub id: ModelVersionId,
    pub model: String,
    pub model_id: ModelId,
    pub version: i64,
    pub status: VersionStatus,
    pub description: Option<String>,
    /// Where the weights are: the registry's download path for uploads,
    /// the external location for imports.
    pub artifact_uri: Option<String>,
    pub format: Format,
    pub quantization: Quantization,
    pub parameter_count: Option<i64>,
    pub base_model: Option<String>,
    pub is_adapter: bool,
    /// Version id of the base model version this adapter applies to.
    pub adapter_of: Option<ModelVersionId>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub source: Source,
    pub metrics: BTreeMap<String, f64>,
    /// The latest value of each metric measured by evaluations since, as
    /// `name.metric` (`heldout.loss`). Promotion gates read these beside
    /// `metrics` (an evaluated value wins).
    pub evaluated_metrics: BTreeMap<String, f64>,
    pub tags: BTreeMap<String, String>,
    /// Aliases pointing here.
    pub aliases: Vec<String>,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
}

/// The `object` of a [`VersionView`]: `registry.model_version` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionObject;

impl Serialize for VersionObject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("registry.model_version")
    }
}

impl<'de> Deserialize<'de> for VersionObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let tag = String::deserialize(d)?;
        if tag == "registry.model_version" {
            Ok(Self)
        } else {
            Err(serde::de::Error::custom(format!(
                "expected registry.model_version, not {tag}"
            )))
        }
    }
}

/// An evaluation of a version: metrics measured on a held-out file by an
/// `evaluate` job.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EvaluationView {
    /// Always `registry.evaluation`.
    pub object: &'static str,
    pub id: EvaluationId,
    pub model: String,
    pub version: i64,
    pub version_id: ModelVersionId,
    /// The metrics' prefix on the version (`heldout` → `heldout.loss`).
    pub name: String,
    /// Without the prefix: `loss`, `perplexity`, `token_accuracy`,
    /// `exact_match`, `examples`, `tokens`.
    pub metrics: BTreeMap<String, f64>,
    /// SHA-256 of the evaluated file.
    pub dataset_sha256: Option<String>,
    /// The evaluating job (`ftjob_…`).
    pub job_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An evaluation to record (by the training service's `evaluate` jobs).
#[derive(Debug, Clone)]
pub struct NewEvaluation {
    pub name: String,
    pub metrics: BTreeMap<String, f64>,
    pub dataset_sha256: Option<String>,
    /// Keys the evaluation: one per job, whatever its attempts.
    pub job_id: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventView {
    /// Always `registry.event`.
    pub object: &'static str,
    pub id: RegistryEventId,
    /// `model_created`, `version_created`, `version_ready`, `version_archived`,
    /// `alias_set`, `alias_deleted`, `version_evaluated`.
    pub kind: String,
    pub alias: Option<String>,
    pub from_version: Option<i64>,
    pub to_version: Option<i64>,
    /// A promotion that bypassed failing gates.
    pub forced: bool,
    /// `key_…` or `usr_…`.
    pub actor: Option<String>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewModel {
    /// Unique in the tenant: letters, digits, `.`, `_`, `-`; at most 128.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    pub name: String,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(schema_with = tags)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    #[schema(max_items = 20)]
    pub promotion_gates: Vec<Gate>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelPatch {
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// Replaces all tags.
    #[schema(schema_with = tags_opt)]
    pub tags: Option<BTreeMap<String, String>>,
    /// Replaces all gates.
    #[schema(max_items = 20)]
    pub promotion_gates: Option<Vec<Gate>>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    pub format: Format,
    #[serde(default = "default_quantization")]
    pub quantization: Quantization,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    #[schema(minimum = 1)]
    pub parameter_count: Option<i64>,
    /// Free-form name of the base model (e.g. `HuggingFaceTB/SmolLM2-135M`).
    #[schema(max_length = 256)]
    pub base_model: Option<String>,
    /// For a LoRA/PEFT adapter: the base version (`name@alias`, `name@3` or `mv_…`).
    #[schema(
        pattern = "^(mv_[0-7][0-9a-hjkmnp-tv-z]{25}|[A-Za-z0-9][A-Za-z0-9._-]{0,127}@([a-z][a-z0-9_-]{0,63}|[1-9][0-9]{0,17}))$"
    )]
    pub adapter_of: Option<String>,
    #[serde(default = "default_source")]
    pub source: Source,
    /// External location of the weights (required for `import`); the
    /// version is `ready` at once, trusted by its declared checksum.
    #[schema(max_length = 2048, pattern = "://")]
    pub artifact_uri: Option<String>,
    /// Hex SHA-256 of the weights: required with `artifact_uri`; for
    /// uploads, the upload is refused unless it matches.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: Option<String>,
    #[schema(minimum = 0)]
    pub size_bytes: Option<i64>,
    #[serde(default)]
    #[schema(schema_with = metrics)]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default)]
    #[schema(schema_with = tags)]
    pub tags: BTreeMap<String, String>,
}

fn default_quantization() -> Quantization {
    Quantization::None
}

fn default_source() -> Source {
    Source::Upload
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionPatch {
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// Replaces all tags.
    #[schema(schema_with = tags_opt)]
    pub tags: Option<BTreeMap<String, String>>,
    /// Merged into the metrics while the version is `pending`; fixed once
    /// `ready` (gates are judged on them).
    #[schema(schema_with = metrics_opt)]
    pub metrics: Option<BTreeMap<String, f64>>,
    /// Only `archived` (from `ready` or `failed`) or `failed` (from `pending`).
    pub status: Option<VersionStatus>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAlias {
    /// The version number the alias should point at.
    #[schema(minimum = 1)]
    pub version: i64,
    /// Bypass failing promotion gates (needs the `admin` scope; audited).
    #[serde(default)]
    pub force: bool,
}

// ---------------------------------------------------------------- schemas

use llmops_core::schema::{string, string_map};
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};

fn number() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::new(Type::Number))
}

llmops_core::schema_fns! {
    /// Tags as [`check_tags`] takes them.
    tags => string_map(50, 64, string(false).max_length(Some(256)), false);
    tags_opt => string_map(50, 64, string(false).max_length(Some(256)), true);
    /// Metrics as [`check_metrics`] takes them.
    metrics => string_map(100, 64, number(), false);
    metrics_opt => string_map(100, 64, number(), true);
}

// ---------------------------------------------------------------- validation

pub fn check_model_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "name",
            "model names are 1 to 128 of letters, digits, `.`, `_`, `-`, starting with a letter or digit",
        ))
    }
}

pub fn check_alias(alias: &str) -> Result<(), ApiError> {
    let ok = !alias.is_empty()
        && alias.len() <= 64
        && alias
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && alias.as_bytes()[0].is_ascii_lowercase();
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "alias",
            "aliases are 1 to 64 of a-z, 0-9, `_`, `-`, starting with a letter (so never a number)",
        ))
    }
}

pub fn check_tags(field: &str, tags: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if tags.len() > 50 {
        return Err(ApiError::validation(field, "at most 50 tags"));
    }
    for (k, v) in tags {
        if k.is_empty()
            || k.chars().count() > 64
            || v.chars().count() > 256
            || k.chars().any(char::is_control)
        {
            return Err(ApiError::validation(
                field,
                "tag keys are 1 to 64 characters and values at most 256, keys without control characters",
            ));
        }
    }
    Ok(())
}

pub fn check_metrics(metrics: &BTreeMap<String, f64>) -> Result<(), ApiError> {
    if metrics.len() > 100 {
        return Err(ApiError::validation("metrics", "at most 100 metrics"));
    }
    for (k, v) in metrics {
        if k.is_empty()
            || k.chars().count() > 64
            || k.chars().any(char::is_control)
            || !v.is_finite()
        {
            return Err(ApiError::validation(
                "metrics",
                "metric names are 1 to 64 characters without control characters, values finite numbers",
            ));
        }
    }
    Ok(())
}

pub fn check_gates(gates: &[Gate]) -> Result<(), ApiError> {
    if gates.len() > 20 {
        return Err(ApiError::validation("promotion_gates", "at most 20 gates"));
    }
    if gates
        .iter()
        .any(|g| g.metric.is_empty() || g.metric.chars().count() > 64 || !g.value.is_finite())
    {
        return Err(ApiError::validation(
            "promotion_gates",
            "each gate names a metric (1 to 64 characters) and a finite value",
        ));
    }
    Ok(())
}

pub fn check_sha256(s: &str) -> Result<String, ApiError> {
    let lower = s.to_ascii_lowercase();
    if lower.len() == 64 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(lower)
    } else {
        Err(ApiError::validation(
            "sha256",
            "sha256 must be 64 hex digits",
        ))
    }
}

pub fn check_text(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// A reference to a version: `name@alias`, `name@3`, or `mv_…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    Id(ModelVersionId),
    Number { model: String, version: i64 },
    Alias { model: String, alias: String },
}

impl VersionRef {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        if s.starts_with("mv_") {
            return Ok(Self::Id(s.parse()?));
        }
        let Some((model, rest)) = s.split_once('@') else {
            return Err(ApiError::validation(
                "ref",
                "a version reference is `name@alias`, `name@3` or a version id `mv_…`",
            ));
        };
        check_model_name(model)?;
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            let version = rest
                .parse::<i64>()
                .map_err(|_| ApiError::validation("ref", "version number out of range"))?;
            return Ok(Self::Number {
                model: model.to_string(),
                version,
            });
        }
        check_alias(rest)?;
        Ok(Self::Alias {
            model: model.to_string(),
            alias: rest.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(
            VersionRef::parse("llama@production").ok(),
            Some(VersionRef::Alias {
                model: "llama".into(),
                alias: "production".into()
            })
        );
        assert_eq!(
            VersionRef::parse("llama@12").ok(),
            Some(VersionRef::Number {
                model: "llama".into(),
                version: 12
            })
        );
        let id = ModelVersionId::new();
        assert_eq!(
            VersionRef::parse(&id.to_string()).ok(),
            Some(VersionRef::Id(id))
        );
        for bad in [
            "llama",
            "@prod",
            "llama@",
            "llama@Prod",
            "a b@x",
            "mv_nope",
            "x@99999999999999999999",
        ] {
            assert!(VersionRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gates_judge_metrics() {
        let gate = Gate {
            metric: "eval_loss".into(),
            op: GateOp::Le,
            value: 1.8,
        };
        let m = |v: f64| BTreeMap::from([("eval_loss".to_string(), v)]);
        assert!(gate.check(&m(1.8)).is_none());
        assert!(gate.check(&m(1.9)).is_some());
        let missing = gate.check(&BTreeMap::new());
        assert_eq!(missing.and_then(|f| f.actual), None);
    }
}
