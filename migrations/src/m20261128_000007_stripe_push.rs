//! Pushing invoices to Stripe: each tenant's Stripe customer and
//! subscription, each invoice's push state, and every Stripe object a push
//! created (so a retry after a crash reuses it instead of creating another).

use crate::columns::{id, ts, ts_null};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StripeCustomers {
    Table,
    TenantId,
    CustomerId,
    SubscriptionId,
    StripePlanId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum StripePushes {
    Table,
    InvoiceId,
    TenantId,
    PeriodStart,
    Status,
    StripeInvoiceId,
    Attempts,
    LastError,
    NextAttemptAt,
    LeaseUntil,
    PushedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum StripeObjects {
    Table,
    InvoiceId,
    Key,
    StripeId,
    CreatedAt,
}

fn stripe_id<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).string_len(255).not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use StripeCustomers as C;
        manager
            .create_table(
                Table::create()
                    .table(C::Table)
                    .col(id(C::TenantId).primary_key())
                    .col(stripe_id(C::CustomerId))
                    .col(ColumnDef::new(C::SubscriptionId).string_len(255).null())
                    .col(ColumnDef::new(C::StripePlanId).string_len(255).null())
                    .col(ts(C::CreatedAt))
                    .col(ts(C::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        use StripePushes as P;
        manager
            .create_table(
                Table::create()
                    .table(P::Table)
                    .col(id(P::InvoiceId).primary_key())
                    .col(id(P::TenantId))
                    .col(ts(P::PeriodStart))
                    // pending, retrying, pushed, failed
                    .col(ColumnDef::new(P::Status).string_len(16).not_null())
                    .col(ColumnDef::new(P::StripeInvoiceId).string_len(255).null())
                    .col(ColumnDef::new(P::Attempts).integer().not_null().default(0))
                    .col(ColumnDef::new(P::LastError).text().null())
                    .col(ts_null(P::NextAttemptAt))
                    .col(ts_null(P::LeaseUntil))
                    .col(ts_null(P::PushedAt))
                    .col(ts(P::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_stripe_pushes_due")
                    .table(P::Table)
                    .col(P::Status)
                    .col(P::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        use StripeObjects as O;
        manager
            .create_table(
                Table::create()
                    .table(O::Table)
                    .col(id(O::InvoiceId))
                    .col(ColumnDef::new(O::Key).string_len(64).not_null())
                    .col(stripe_id(O::StripeId))
                    .col(ts(O::CreatedAt))
                    .primary_key(Index::create().col(O::InvoiceId).col(O::Key))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            StripeObjects::Table.into_iden(),
            StripePushes::Table.into_iden(),
            StripeCustomers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
