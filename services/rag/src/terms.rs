//! BM25 statistics per knowledge base: in how many of its readers' chunks
//! each term occurs, kept in the database beside the rows they describe
//! and changed in the same transactions (a version's switch, a document's
//! deletion). Queries weight their terms by the IDF these give, so a
//! tenant's scores depend on its own knowledge base only.

use crate::entities::terms;
use llmops_core::ids::TenantId;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use std::collections::BTreeMap;

/// Term → chunks it occurs in.
pub type Counts = BTreeMap<u32, i64>;

/// A document version's counts from its chunks' distinct terms.
pub fn count<'a>(chunks: impl Iterator<Item = &'a [u32]>) -> Counts {
    let mut out = Counts::new();
    for terms in chunks {
        for t in terms {
            *out.entry(*t).or_default() += 1;
        }
    }
    out
}

pub fn to_json(c: &Counts) -> String {
    serde_json::to_string(&c.iter().collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

pub fn from_json(s: Option<&str>) -> Counts {
    s.and_then(|s| serde_json::from_str::<Vec<(u32, i64)>>(s).ok())
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

/// Adds `add` and takes away `remove` from the knowledge base's counts.
pub async fn apply(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    kb: &str,
    add: &Counts,
    remove: &Counts,
) -> Result<(), DbErr> {
    let mut delta = add.clone();
    for (t, n) in remove {
        *delta.entry(*t).or_default() -= n;
    }
    delta.retain(|_, n| *n != 0);
    let rows: Vec<terms::ActiveModel> = delta
        .iter()
        .map(|(t, n)| terms::ActiveModel {
            tenant_id: Set(tenant.to_string()),
            kb_id: Set(kb.to_string()),
            term: Set(i64::from(*t)),
            df: Set(*n),
        })
        .collect();
    for batch in rows.chunks(500) {
        terms::Entity::insert_many(batch.to_vec())
            .on_conflict(
                OnConflict::columns([terms::Column::KbId, terms::Column::Term])
                    .value(
                        terms::Column::Df,
                        Expr::col((terms::Entity, terms::Column::Df))
                            .add(Expr::cust("excluded.df")),
                    )
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    if !remove.is_empty() {
        terms::Entity::delete_many()
            .filter(terms::Column::KbId.eq(kb))
            .filter(terms::Column::Df.lte(0))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// The document frequencies of `terms` in the knowledge base.
pub async fn frequencies(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    kb: &str,
    query: &[u32],
) -> Result<BTreeMap<u32, i64>, DbErr> {
    if query.is_empty() {
        return Ok(BTreeMap::new());
    }
    let rows = llmops_core::db::Scoped::new(tenant)
        .find::<terms::Entity>()
        .filter(terms::Column::KbId.eq(kb))
        .filter(terms::Column::Term.is_in(query.iter().map(|t| i64::from(*t))))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((u32::try_from(r.term).ok()?, r.df)))
        .collect())
}

/// BM25's IDF of a term in `df` of `n` chunks (Lucene's, never negative).
pub fn idf(n: i64, df: i64) -> f32 {
    let (n, df) = (Ord::max(n, 0) as f64, Ord::max(df, 0) as f64);
    ((1.0 + (n - df + 0.5) / (df + 0.5)).ln()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_idf() {
        let a: &[u32] = &[1, 2];
        let b: &[u32] = &[2, 3];
        let c = count([a, b].into_iter());
        assert_eq!(c, Counts::from([(1, 1), (2, 2), (3, 1)]));
        assert_eq!(from_json(Some(&to_json(&c))), c);
        assert!(idf(100, 1) > idf(100, 50));
        assert!(idf(10, 10) > 0.0);
    }
}
