//! Schemas of values the server constrains, for
//! `#[schema(schema_with = …)]`: the OpenAPI document states exactly what
//! the validators next to each type check, so that generated clients and
//! contract tests agree with the server. Each pattern is the validator's
//! rule written as a regular expression.

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, SchemaType, Type};

/// No control characters (Unicode `Cc`), and at least one that is not a
/// space: the rule of [`crate::tenancy::store`]'s text fields.
pub const TEXT_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";
/// Plan ids: a slug.
pub const PLAN_ID_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";
/// What `check_email` accepts: one `@`, a dotted domain, no spaces or
/// control characters.
pub const EMAIL_PATTERN: &str = r"^[^@\s\u0000-\u001f\u007f-\u009f]+@[^@.\s\u0000-\u001f\u007f-\u009f]+(\.[^@.\s\u0000-\u001f\u007f-\u009f]+)+$";
/// Meters: lower-case snake case.
pub const METER_PATTERN: &str = "^[a-z][a-z0-9_]{0,63}$";
/// An `http://` or `https://` URL.
pub const HTTP_URL_PATTERN: &str = r"^https?://\S+$";

/// A string, or a string or null.
pub fn string(nullable: bool) -> ObjectBuilder {
    let ty = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new().schema_type(ty)
}

/// An integer in `min..=max`, or null too.
pub fn integer(min: i64, max: i64, nullable: bool) -> ObjectBuilder {
    let ty = if nullable {
        SchemaType::from_iter([Type::Integer, Type::Null])
    } else {
        SchemaType::new(Type::Integer)
    };
    ObjectBuilder::new()
        .schema_type(ty)
        .minimum(Some(min))
        .maximum(Some(max))
}

/// Text for humans: 1 to `max` characters, no control characters, not only
/// spaces (stored trimmed).
pub fn text(max: usize, nullable: bool) -> ObjectBuilder {
    string(nullable)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(TEXT_PATTERN))
}

/// A map of short strings: at most `max` entries, keys 1 to `key_max`
/// characters without control characters, values of `value`.
pub fn string_map(
    max: usize,
    key_max: usize,
    value: ObjectBuilder,
    nullable: bool,
) -> ObjectBuilder {
    let ty = if nullable {
        SchemaType::from_iter([Type::Object, Type::Null])
    } else {
        SchemaType::new(Type::Object)
    };
    ObjectBuilder::new()
        .schema_type(ty)
        .max_properties(Some(max))
        .property_names(Some(
            string(false)
                .min_length(Some(1))
                .max_length(Some(key_max))
                .pattern(Some(r"^[^\u0000-\u001f\u007f-\u009f]*$")),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(value.build().into())))
}

/// Defines argument-free schema functions for `schema_with`.
#[macro_export]
macro_rules! schema_fns {
    ($($(#[$meta:meta])* $name:ident => $body:expr;)*) => {$(
        $(#[$meta])*
        pub fn $name() -> utoipa::openapi::schema::Schema {
            $body.build().into()
        }
    )*};
}

schema_fns! {
    /// A plan id.
    plan_id => string(false).pattern(Some(PLAN_ID_PATTERN));
    /// A plan id, or null.
    plan_id_opt => string(true).pattern(Some(PLAN_ID_PATTERN));
    /// An email address.
    email => string(false).max_length(Some(320)).pattern(Some(EMAIL_PATTERN));
    /// A password: 12 to 1024 characters, or null (generated).
    password_opt => string(true).min_length(Some(12)).max_length(Some(1024));
    /// Text of 1 to 100 characters.
    text_100 => text(100, false);
    /// Text of 1 to 200 characters.
    text_200 => text(200, false);
    /// Text of 1 to 200 characters, or null.
    text_200_opt => text(200, true);
    /// Text of 1 to 500 characters, or null.
    text_500_opt => text(500, true);
    /// A meter name.
    meter => string(false).pattern(Some(METER_PATTERN));
    /// An http(s) URL, or null.
    http_url_opt => string(true).max_length(Some(2048)).pattern(Some(HTTP_URL_PATTERN));
}
