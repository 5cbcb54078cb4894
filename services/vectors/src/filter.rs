//! Filters on payload fields, engine-neutral: each engine translates them
//! to its own form.

use serde_json::json;

/// A payload value a condition compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Keyword(String),
    Integer(i64),
    Bool(bool),
}

/// One condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// The field (or one of its values, for an array) equals `value`.
    Match { key: String, value: Value },
    /// The field is one of these strings.
    AnyKeyword { key: String, values: Vec<String> },
    /// The field is one of these integers.
    AnyInteger { key: String, values: Vec<i64> },
    /// The number lies in the range (bounds are optional).
    Range {
        key: String,
        gt: Option<f64>,
        gte: Option<f64>,
        lt: Option<f64>,
        lte: Option<f64>,
    },
    /// The field is missing, null or an empty array.
    IsEmpty { key: String },
    /// A filter as one condition.
    Nested(Filter),
}

/// All of `must`, at least one of `should` (when any), none of `must_not`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub must: Vec<Cond>,
    pub should: Vec<Cond>,
    pub must_not: Vec<Cond>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty()
    }

    /// A filter of one `must` condition.
    pub fn must(conds: Vec<Cond>) -> Self {
        Self {
            must: conds,
            ..Self::default()
        }
    }

    /// Qdrant's REST/JSON form of the filter (what qdrant-edge
    /// deserializes).
    pub(crate) fn to_qdrant_json(&self) -> serde_json::Value {
        let list = |c: &[Cond]| c.iter().map(Cond::to_qdrant_json).collect::<Vec<_>>();
        let mut out = serde_json::Map::new();
        if !self.must.is_empty() {
            out.insert("must".into(), list(&self.must).into());
        }
        if !self.should.is_empty() {
            out.insert("should".into(), list(&self.should).into());
        }
        if !self.must_not.is_empty() {
            out.insert("must_not".into(), list(&self.must_not).into());
        }
        serde_json::Value::Object(out)
    }
}

impl Value {
    fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Keyword(s) => json!(s),
            Value::Integer(i) => json!(i),
            Value::Bool(b) => json!(b),
        }
    }
}

impl Cond {
    fn to_qdrant_json(&self) -> serde_json::Value {
        match self {
            Cond::Match { key, value } => json!({"key": key, "match": {"value": value.to_json()}}),
            Cond::AnyKeyword { key, values } => json!({"key": key, "match": {"any": values}}),
            Cond::AnyInteger { key, values } => json!({"key": key, "match": {"any": values}}),
            Cond::Range {
                key,
                gt,
                gte,
                lt,
                lte,
            } => {
                let mut r = serde_json::Map::new();
                for (k, v) in [("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte)] {
                    if let Some(v) = v {
                        r.insert(k.into(), json!(v));
                    }
                }
                json!({"key": key, "range": r})
            }
            Cond::IsEmpty { key } => json!({"is_empty": {"key": key}}),
            Cond::Nested(f) => f.to_qdrant_json(),
        }
    }
}
