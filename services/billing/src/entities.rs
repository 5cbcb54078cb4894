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

pub mod stripe_customer {
    use sea_orm::entity::prelude::*;

    /// A tenant's Stripe customer and the subscription carrying its base fee.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "stripe_customers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        pub customer_id: String,
        pub subscription_id: Option<String>,
        pub stripe_plan_id: Option<String>,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod stripe_push {
    use sea_orm::entity::prelude::*;

    /// Where pushing one invoice to Stripe stands.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "stripe_pushes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub invoice_id: String,
        pub tenant_id: String,
        pub period_start: ChronoDateTimeUtc,
        /// `pending`, `retrying`, `pushed`, `failed`.
        pub status: String,
        pub stripe_invoice_id: Option<String>,
        pub attempts: i32,
        pub last_error: Option<String>,
        pub next_attempt_at: Option<ChronoDateTimeUtc>,
        pub lease_until: Option<ChronoDateTimeUtc>,
        pub pushed_at: Option<ChronoDateTimeUtc>,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod stripe_object {
    use sea_orm::entity::prelude::*;

    /// A Stripe object a push created, under a key naming its role
    /// (`line:3`, `invoice`).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "stripe_objects")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub invoice_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub stripe_id: String,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
