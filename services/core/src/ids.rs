//! Prefixed, sortable, opaque ids (`ten_01j…`, `key_01j…`).
//!
//! The body is a ULID in lower-case Crockford base32, so ids sort by creation
//! time and are safe in URLs. Each kind of id is its own type: a `TenantId`
//! cannot be passed where an `ApiKeyId` is expected, and parsing checks the
//! prefix, so `key_…` in a tenant path is refused before any query runs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{value}` is not a valid {kind} id (expected `{prefix}_` followed by 26 base32 characters)"
)]
pub struct InvalidId {
    pub kind: &'static str,
    pub prefix: &'static str,
    pub value: String,
}

/// Parses `prefix_<ulid>` and returns the ULID.
pub fn parse_prefixed(
    kind: &'static str,
    prefix: &'static str,
    value: &str,
) -> Result<ulid::Ulid, InvalidId> {
    let err = || InvalidId {
        kind,
        prefix,
        value: value.chars().take(64).collect(),
    };
    let body = value
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .ok_or_else(err)?;
    // Only the canonical form: lower-case Crockford base32 (no i, l, o, u),
    // first digit 0-7 (a ULID is 128 bits).
    let canonical = body.len() == 26
        && body.as_bytes()[0] <= b'7'
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_lowercase() && !b"ilou".contains(&b)));
    if !canonical {
        return Err(err());
    }
    ulid::Ulid::from_string(&body.to_ascii_uppercase()).map_err(|_| err())
}

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(ulid::Ulid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn new() -> Self {
                Self(ulid::Ulid::new())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.to_string().to_ascii_lowercase())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_prefixed($kind, $prefix, s).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    // A ULID: Crockford base32, lower case, first digit 0-7.
                    .pattern(Some(concat!("^", $prefix, "_[0-7][0-9a-hjkmnp-tv-z]{25}$")))
                    .examples([concat!($prefix, "_01jdq3k5h8x9v2m4n6p8r0t2w4")])
                    .description(Some(concat!("Opaque ", $kind, " id")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

define_id!(
    /// A tenant (company) id, `ten_…`.
    TenantId, "ten", "tenant"
);
define_id!(
    /// An API key id, `key_…` (not the secret).
    ApiKeyId, "key", "API key"
);
define_id!(
    /// A dashboard user id, `usr_…`.
    UserId, "usr", "user"
);
define_id!(
    /// An invitation of a user by a tenant's admin, `uinv_…`.
    InvitationId, "uinv", "invitation"
);
define_id!(
    /// A usage event id, `evt_…`.
    UsageEventId, "evt", "usage event"
);

define_id!(
    /// A registered model id, `mdl_…`.
    ModelId, "mdl", "model"
);
define_id!(
    /// A model version id, `mv_…`.
    ModelVersionId, "mv", "model version"
);
define_id!(
    /// A registry audit event id, `rev_…`.
    RegistryEventId, "rev", "registry event"
);
define_id!(
    /// An evaluation of a registry version, `meval_…`.
    EvaluationId, "meval", "evaluation"
);

define_id!(
    /// A deployment id, `dep_…`.
    DeploymentId, "dep", "deployment"
);

define_id!(
    /// An invoice id, `inv_…`.
    InvoiceId, "inv", "invoice"
);

define_id!(
    /// A training job id (fine-tune, quantize, distill, evaluate), `ftjob_…`.
    JobId, "ftjob", "training job"
);
define_id!(
    /// An uploaded file (training data), `file_…`.
    FileId, "file", "file"
);
define_id!(
    /// A training job's event (log line or metrics), `ftevent_…`.
    JobEventId, "ftevent", "job event"
);
define_id!(
    /// A training job's checkpoint, `ftckpt_…`.
    CheckpointId, "ftckpt", "checkpoint"
);

define_id!(
    /// A knowledge base, `kb_…`.
    KnowledgeBaseId, "kb", "knowledge base"
);
define_id!(
    /// A document of a knowledge base, `doc_…`.
    DocumentId, "doc", "document"
);

define_id!(
    /// A monitoring record of one inference call, `mrec_…`.
    RecordId, "mrec", "monitoring record"
);

define_id!(
    /// Feedback on an inference call, `fb_…`.
    FeedbackId, "fb", "feedback"
);

define_id!(
    /// A drift report, `drift_…`.
    DriftReportId, "drift", "drift report"
);

define_id!(
    /// An alert rule, `alrule_…`.
    AlertRuleId, "alrule", "alert rule"
);

define_id!(
    /// An alert (a rule that fired), `alert_…`.
    AlertId, "alert", "alert"
);

define_id!(
    /// A webhook delivery of an alert, `whdel_…`.
    DeliveryId, "whdel", "webhook delivery"
);

/// A new request id, `req_…`.
pub fn new_request_id() -> String {
    format!("req_{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_the_prefix() {
        let id = TenantId::new();
        let s = id.to_string();
        assert!(s.starts_with("ten_") && s.len() == 30, "{s}");
        assert_eq!(s.parse::<TenantId>(), Ok(id));
        assert!(s.replace("ten_", "key_").parse::<TenantId>().is_err());
        assert!(s.parse::<ApiKeyId>().is_err());
        assert!("ten_".parse::<TenantId>().is_err());
        assert!("ten_01jdq3k5h8x9v2m4n6p8r0t2w".parse::<TenantId>().is_err());
        assert!(
            "ten_01jdq3k5h8x9v2m4n6p8r0t2w!"
                .parse::<TenantId>()
                .is_err()
        );
        assert!("ten_ü1jdq3k5h8x9v2m4n6p8r0t2w".parse::<TenantId>().is_err());
        // Not canonical: upper case, letters Crockford leaves out, over 128 bits.
        assert!(
            s.to_ascii_uppercase()
                .replace("TEN_", "ten_")
                .parse::<TenantId>()
                .is_err()
                || s[4..].bytes().all(|b| b.is_ascii_digit())
        );
        assert!(
            "ten_01jdq3k5h8x9v2m4n6p8r0t2wu"
                .parse::<TenantId>()
                .is_err()
        );
        assert!(
            "ten_81jdq3k5h8x9v2m4n6p8r0t2w4"
                .parse::<TenantId>()
                .is_err()
        );
    }

    #[test]
    fn sorts_by_creation() {
        let a = TenantId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = TenantId::new();
        assert!(a.to_string() < b.to_string());
    }
}
