//! Tables billing owns.

pub mod plan_price {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "plan_prices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub plan_id: String,
        /// JSON of `rating::Pricing`.
        pub pricing: String,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod invoice {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "invoices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub period_start: ChronoDateTimeUtc,
        pub period_end: ChronoDateTimeUtc,
        pub status: String,
        pub currency: String,
        pub subtotal_minor: i64,
        pub total_minor: i64,
        /// JSON array of lines.
        pub lines: String,
        pub plan_id: String,
        /// Usage recorded up to here (for periods up to `period_end`) is on
        /// this invoice or an earlier one.
        pub recorded_through: ChronoDateTimeUtc,
        pub created_at: ChronoDateTimeUtc,
        pub finalized_at: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

impl llmops_core::db::TenantOwned for invoice::Entity {
    fn tenant_column() -> Self::Column {
        invoice::Column::TenantId
    }
}
