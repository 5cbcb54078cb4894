//! The model registry: models, versions, aliases and their audit trail.

use crate::columns::{id, ts};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RegistryModels {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    Tags,
    PromotionGates,
    NextVersion,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RegistryVersions {
    Table,
    Id,
    TenantId,
    ModelId,
    Version,
    Status,
    Description,
    ArtifactUri,
    ArtifactKey,
    Format,
    Quantization,
    ParameterCount,
    BaseModel,
    AdapterOf,
    SizeBytes,
    Sha256,
    SourceType,
    SourceJobId,
    Metrics,
    Tags,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    ReadyAt,
}

#[derive(DeriveIden)]
enum RegistryAliases {
    Table,
    TenantId,
    ModelId,
    Alias,
    VersionId,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RegistryEvents {
    Table,
    Id,
    TenantId,
    ModelId,
    Kind,
    Alias,
    FromVersion,
    ToVersion,
    Forced,
    Actor,
    Details,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use RegistryModels as M;
        manager
            .create_table(
                Table::create()
                    .table(M::Table)
                    .col(id(M::Id).primary_key())
                    .col(id(M::TenantId))
                    .col(ColumnDef::new(M::Name).string_len(128).not_null())
                    .col(ColumnDef::new(M::Description).text().null())
                    .col(ColumnDef::new(M::Tags).text().not_null())
                    .col(ColumnDef::new(M::PromotionGates).text().not_null())
                    .col(ColumnDef::new(M::NextVersion).big_integer().not_null())
                    .col(ts(M::CreatedAt))
                    .col(ts(M::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_registry_models_tenant_name")
                    .table(M::Table)
                    .col(M::TenantId)
                    .col(M::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;

        use RegistryVersions as V;
        manager
            .create_table(
                Table::create()
                    .table(V::Table)
                    .col(id(V::Id).primary_key())
                    .col(id(V::TenantId))
                    .col(id(V::ModelId))
                    .col(ColumnDef::new(V::Version).big_integer().not_null())
                    .col(ColumnDef::new(V::Status).string_len(16).not_null())
                    .col(ColumnDef::new(V::Description).text().null())
                    .col(ColumnDef::new(V::ArtifactUri).text().null())
                    .col(ColumnDef::new(V::ArtifactKey).text().null())
                    .col(ColumnDef::new(V::Format).string_len(32).not_null())
                    .col(ColumnDef::new(V::Quantization).string_len(32).not_null())
                    .col(ColumnDef::new(V::ParameterCount).big_integer().null())
                    .col(ColumnDef::new(V::BaseModel).text().null())
                    .col(ColumnDef::new(V::AdapterOf).string_len(40).null())
                    .col(ColumnDef::new(V::SizeBytes).big_integer().null())
                    .col(ColumnDef::new(V::Sha256).string_len(64).null())
                    .col(ColumnDef::new(V::SourceType).string_len(32).not_null())
                    .col(ColumnDef::new(V::SourceJobId).string_len(64).null())
                    .col(ColumnDef::new(V::Metrics).text().not_null())
                    .col(ColumnDef::new(V::Tags).text().not_null())
                    .col(ColumnDef::new(V::CreatedBy).string_len(40).null())
                    .col(ts(V::CreatedAt))
                    .col(ts(V::UpdatedAt))
                    .col(ColumnDef::new(V::ReadyAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(V::Table, V::ModelId)
                            .to(M::Table, M::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_registry_versions_model_version")
                    .table(V::Table)
                    .col(V::ModelId)
                    .col(V::Version)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_registry_versions_tenant")
                    .table(V::Table)
                    .col(V::TenantId)
                    .to_owned(),
            )
            .await?;

        use RegistryAliases as A;
        manager
            .create_table(
                Table::create()
                    .table(A::Table)
                    .col(id(A::TenantId))
                    .col(id(A::ModelId))
                    .col(ColumnDef::new(A::Alias).string_len(64).not_null())
                    .col(id(A::VersionId))
                    .col(ts(A::UpdatedAt))
                    .primary_key(Index::create().col(A::ModelId).col(A::Alias))
                    .foreign_key(
                        ForeignKey::create()
                            .from(A::Table, A::ModelId)
                            .to(M::Table, M::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(A::Table, A::VersionId)
                            .to(V::Table, V::Id),
                    )
                    .to_owned(),
            )
            .await?;

        use RegistryEvents as E;
        manager
            .create_table(
                Table::create()
                    .table(E::Table)
                    .col(id(E::Id).primary_key())
                    .col(id(E::TenantId))
                    .col(id(E::ModelId))
                    .col(ColumnDef::new(E::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(E::Alias).string_len(64).null())
                    .col(ColumnDef::new(E::FromVersion).big_integer().null())
                    .col(ColumnDef::new(E::ToVersion).big_integer().null())
                    .col(ColumnDef::new(E::Forced).boolean().not_null())
                    .col(ColumnDef::new(E::Actor).string_len(40).null())
                    .col(ColumnDef::new(E::Details).text().not_null())
                    .col(ts(E::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(E::Table, E::ModelId)
                            .to(M::Table, M::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_registry_events_model")
                    .table(E::Table)
                    .col(E::ModelId)
                    .col(E::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            RegistryEvents::Table.into_iden(),
            RegistryAliases::Table.into_iden(),
            RegistryVersions::Table.into_iden(),
            RegistryModels::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
