//! Cursor pagination over sortable ids (`?limit=20&after=key_…`).

use serde::{Deserialize, Serialize};

/// Routes document the two parameters themselves, with the type of their
/// cursor (`after` is an id of the listed objects).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u64>,
    /// Return objects after this id (the `last_id` of the previous page).
    pub after: Option<String>,
}

impl ListParams {
    pub fn limit(&self) -> Result<u64, crate::ApiError> {
        match self.limit {
            None => Ok(20),
            Some(n) if (1..=100).contains(&n) => Ok(n),
            Some(_) => Err(crate::ApiError::validation(
                "limit",
                "limit must be between 1 and 100",
            )),
        }
    }
}

/// One page of a list, in OpenAI's shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<T>,
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows.
    pub fn from_rows(mut rows: Vec<T>, limit: u64, id: impl Fn(&T) -> String) -> Self {
        let has_more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        Page {
            object: "list",
            first_id: rows.first().map(&id),
            last_id: rows.last().map(&id),
            data: rows,
            has_more,
        }
    }
}
