//! The metadata filter language of queries: Pinecone's and Chroma's
//! operator style, on documents' `metadata` only.
//!
//! ```json
//! {"lang": "en", "year": {"$gte": 2020}, "$or": [{"tag": {"$in": ["a", "b"]}}, {"draft": {"$exists": false}}]}
//! ```
//!
//! A key names a metadata field (letters, digits, `_`, `-`; it cannot name a
//! nested path, the tenant or any other payload field: the condition is on
//! `metadata.<key>`). Operators: `$eq`, `$ne`, `$in`, `$nin`, `$gt`, `$gte`,
//! `$lt`, `$lte`, `$exists`; `$and` and `$or` take lists of filters. Several
//! keys in one object must all hold. The result is one more `must`
//! condition beside the tenant's and the knowledge base's, so it can narrow
//! a query and never widen it.

use llmops_core::ApiError;
use llmops_vectors::{Cond, Filter, Value};
use serde_json::Value as Json;

const MAX_DEPTH: usize = 4;
const MAX_CONDITIONS: usize = 64;
const MAX_VALUES: usize = 256;
const MAX_STRING: usize = 256;

/// The payload prefix metadata keys live under.
pub const METADATA: &str = "metadata";

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::validation("filter", message)
}

/// Validates a metadata key (also the keys of documents' metadata).
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

struct Parser {
    conditions: usize,
}

pub fn parse(json: &Json) -> Result<Filter, ApiError> {
    let mut p = Parser { conditions: 0 };
    p.object(json, 0)
}

impl Parser {
    fn count(&mut self) -> Result<(), ApiError> {
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(bad(format!("at most {MAX_CONDITIONS} conditions")));
        }
        Ok(())
    }

    fn object(&mut self, json: &Json, depth: usize) -> Result<Filter, ApiError> {
        if depth > MAX_DEPTH {
            return Err(bad(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let Json::Object(map) = json else {
            return Err(bad("a filter is a JSON object"));
        };
        let mut must = Vec::new();
        for (key, value) in map {
            match key.as_str() {
                "$and" | "$or" => {
                    let Json::Array(items) = value else {
                        return Err(bad(format!("`{key}` takes a list of filters")));
                    };
                    if items.is_empty() {
                        return Err(bad(format!("`{key}` needs at least one filter")));
                    }
                    let subs = items
                        .iter()
                        .map(|i| self.object(i, depth + 1).map(Cond::Nested))
                        .collect::<Result<Vec<_>, _>>()?;
                    must.push(Cond::Nested(if key == "$and" {
                        Filter::must(subs)
                    } else {
                        Filter {
                            should: subs,
                            ..Filter::default()
                        }
                    }));
                }
                k if k.starts_with('$') => {
                    return Err(bad(format!("unknown operator `{}` here", trunc(k))));
                }
                k => {
                    if !valid_key(k) {
                        return Err(bad(format!(
                            "`{}` is not a metadata key (1 to 64 letters, digits, `_` or `-`)",
                            trunc(k)
                        )));
                    }
                    must.push(self.field(&format!("{METADATA}.{k}"), value)?);
                }
            }
        }
        Ok(Filter::must(must))
    }

    /// The conditions on one field.
    fn field(&mut self, path: &str, value: &Json) -> Result<Cond, ApiError> {
        let Json::Object(ops) = value else {
            self.count()?;
            return Ok(Cond::Match {
                key: path.into(),
                value: scalar(value)?,
            });
        };
        if ops.is_empty() {
            return Err(bad("an operator object needs at least one operator"));
        }
        let mut f = Filter::default();
        let mut range = (None, None, None, None);
        for (op, v) in ops {
            self.count()?;
            match op.as_str() {
                "$eq" => f.must.push(Cond::Match {
                    key: path.into(),
                    value: scalar(v)?,
                }),
                "$ne" => f.must_not.push(Cond::Match {
                    key: path.into(),
                    value: scalar(v)?,
                }),
                "$in" => f.must.push(any(path, v)?),
                "$nin" => f.must_not.push(any(path, v)?),
                "$gt" => range.0 = Some(number(op, v)?),
                "$gte" => range.1 = Some(number(op, v)?),
                "$lt" => range.2 = Some(number(op, v)?),
                "$lte" => range.3 = Some(number(op, v)?),
                "$exists" => {
                    let Json::Bool(b) = v else {
                        return Err(bad("`$exists` takes true or false"));
                    };
                    let empty = Cond::IsEmpty { key: path.into() };
                    if *b {
                        f.must_not.push(empty);
                    } else {
                        f.must.push(empty);
                    }
                }
                other => return Err(bad(format!("unknown operator `{}`", trunc(other)))),
            }
        }
        if range != (None, None, None, None) {
            f.must.push(Cond::Range {
                key: path.into(),
                gt: range.0,
                gte: range.1,
                lt: range.2,
                lte: range.3,
            });
        }
        Ok(Cond::Nested(f))
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(64).collect()
}

fn scalar(v: &Json) -> Result<Value, ApiError> {
    match v {
        Json::String(s) if s.len() <= MAX_STRING => Ok(Value::Keyword(s.clone())),
        Json::String(_) => Err(bad(format!("strings are at most {MAX_STRING} bytes"))),
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::Number(n) => n.as_i64().map(Value::Integer).ok_or_else(|| {
            bad("equality takes strings, booleans or integers (use $gte/$lte for decimals)")
        }),
        _ => Err(bad(
            "a value is a string, a boolean or an integer (null, lists and objects are not)",
        )),
    }
}

fn number(op: &str, v: &Json) -> Result<f64, ApiError> {
    v.as_f64()
        .filter(|f| f.is_finite())
        .ok_or_else(|| bad(format!("`{op}` takes a number")))
}

fn any(path: &str, v: &Json) -> Result<Cond, ApiError> {
    let Json::Array(items) = v else {
        return Err(bad("`$in` and `$nin` take a list"));
    };
    if items.is_empty() || items.len() > MAX_VALUES {
        return Err(bad(format!(
            "`$in` and `$nin` take 1 to {MAX_VALUES} values"
        )));
    }
    let values = items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?;
    let strings: Option<Vec<String>> = values
        .iter()
        .map(|v| match v {
            Value::Keyword(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    if let Some(values) = strings {
        return Ok(Cond::AnyKeyword {
            key: path.into(),
            values,
        });
    }
    let ints: Option<Vec<i64>> = values
        .iter()
        .map(|v| match v {
            Value::Integer(i) => Some(*i),
            _ => None,
        })
        .collect();
    if let Some(values) = ints {
        return Ok(Cond::AnyInteger {
            key: path.into(),
            values,
        });
    }
    // Mixed types: any one of them.
    Ok(Cond::Nested(Filter {
        should: values
            .into_iter()
            .map(|value| Cond::Match {
                key: path.into(),
                value,
            })
            .collect(),
        ..Filter::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_metadata_only() {
        for hostile in [
            json!({"tenant_id": "ten_x"}),
            json!({"$or": [{"tenant_id": "ten_x"}]}),
        ] {
            // Allowed, but about `metadata.tenant_id`, not the tenant.
            let f = parse(&hostile).expect("parsed");
            let s = format!("{f:?}");
            assert!(s.contains("metadata.tenant_id"), "{s}");
            assert!(!s.contains("key: \"tenant_id\""), "{s}");
        }
        for refused in [
            json!({"metadata.tenant_id": "x"}),
            json!({"a.b": 1}),
            json!({"$where": "1"}),
            json!({"k": {"$regex": "x"}}),
            json!({"k": null}),
            json!({"k": 1.5}),
            json!({"$or": []}),
            json!([1]),
            json!({"k": {"$in": []}}),
        ] {
            assert!(parse(&refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn operators() {
        let f = parse(&json!({"year": {"$gte": 2020, "$lt": 2024}, "tag": {"$in": ["a", "b"]}, "n": {"$nin": [1, 2]}, "x": {"$exists": true}}))
            .expect("parsed");
        assert_eq!(f.must.len(), 4);
        let deep = json!({"$and": [{"$and": [{"$and": [{"$and": [{"$and": [{"a": 1}]}]}]}]}]});
        assert!(parse(&deep).is_err());
    }
}
