//! Knowledge bases (RAG): their documents, each document's uploaded source
//! per version (what ingestion reads, kept for retries), and per-plan caps.
//! The chunks themselves live in the vector store, not here.

use crate::columns::{id, ts, ts_null};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RagKnowledgeBases {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    EmbeddingModel,
    ChunkTokens,
    ChunkOverlap,
    Metadata,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RagDocuments {
    Table,
    Id,
    TenantId,
    KbId,
    ExternalId,
    Filename,
    ContentType,
    Metadata,
    Status,
    Error,
    Version,
    PendingVersion,
    Attempts,
    NextAttemptAt,
    LeaseOwner,
    LeaseUntil,
    ChunkCount,
    TokenCount,
    Bytes,
    Sha256,
    Terms,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RagTerms {
    Table,
    TenantId,
    KbId,
    Term,
    Df,
}

#[derive(DeriveIden)]
enum RagDocumentSources {
    Table,
    DocId,
    Version,
    TenantId,
    Content,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RagLimits {
    Table,
    PlanId,
    MaxKnowledgeBases,
    MaxDocuments,
    MaxChunks,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use RagKnowledgeBases as K;
        manager
            .create_table(
                Table::create()
                    .table(K::Table)
                    .col(id(K::Id).primary_key())
                    .col(id(K::TenantId))
                    .col(ColumnDef::new(K::Name).string_len(128).not_null())
                    .col(ColumnDef::new(K::Description).text().null())
                    .col(ColumnDef::new(K::EmbeddingModel).string_len(128).not_null())
                    .col(ColumnDef::new(K::ChunkTokens).integer().not_null())
                    .col(ColumnDef::new(K::ChunkOverlap).integer().not_null())
                    .col(ColumnDef::new(K::Metadata).text().not_null())
                    .col(ts(K::CreatedAt))
                    .col(ts(K::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_rag_knowledge_bases_tenant_name")
                    .table(K::Table)
                    .col(K::TenantId)
                    .col(K::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;

        use RagDocuments as D;
        manager
            .create_table(
                Table::create()
                    .table(D::Table)
                    .col(id(D::Id).primary_key())
                    .col(id(D::TenantId))
                    .col(id(D::KbId))
                    .col(ColumnDef::new(D::ExternalId).string_len(256).null())
                    .col(ColumnDef::new(D::Filename).string_len(256).null())
                    .col(ColumnDef::new(D::ContentType).string_len(64).not_null())
                    .col(ColumnDef::new(D::Metadata).text().not_null())
                    // queued, processing, ready, failed, deleting
                    .col(ColumnDef::new(D::Status).string_len(16).not_null())
                    .col(ColumnDef::new(D::Error).text().null())
                    // The version readers see (0: none yet).
                    .col(ColumnDef::new(D::Version).integer().not_null())
                    // The version being ingested, if any.
                    .col(ColumnDef::new(D::PendingVersion).integer().null())
                    .col(ColumnDef::new(D::Attempts).integer().not_null())
                    .col(ts(D::NextAttemptAt))
                    // `host:pid:claim-ulid`
                    .col(ColumnDef::new(D::LeaseOwner).string_len(200).null())
                    .col(ts_null(D::LeaseUntil))
                    .col(ColumnDef::new(D::ChunkCount).integer().not_null())
                    .col(ColumnDef::new(D::TokenCount).big_integer().not_null())
                    .col(ColumnDef::new(D::Bytes).big_integer().not_null())
                    .col(ColumnDef::new(D::Sha256).string_len(64).not_null())
                    // The readers' version's terms: `[[term, chunks], …]`.
                    .col(ColumnDef::new(D::Terms).text().null())
                    .col(ts(D::CreatedAt))
                    .col(ts(D::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_rag_documents_kb_external")
                    .table(D::Table)
                    .col(D::KbId)
                    .col(D::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_rag_documents_tenant_kb")
                    .table(D::Table)
                    .col(D::TenantId)
                    .col(D::KbId)
                    .col(D::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_rag_documents_due")
                    .table(D::Table)
                    .col(D::Status)
                    .col(D::NextAttemptAt)
                    .to_owned(),
            )
            .await?;

        use RagDocumentSources as S;
        manager
            .create_table(
                Table::create()
                    .table(S::Table)
                    .col(id(S::DocId))
                    .col(ColumnDef::new(S::Version).integer().not_null())
                    .col(id(S::TenantId))
                    .col(ColumnDef::new(S::Content).blob().not_null())
                    .col(ts(S::CreatedAt))
                    .primary_key(Index::create().col(S::DocId).col(S::Version))
                    .to_owned(),
            )
            .await?;

        // Document frequencies per knowledge base: in how many of its
        // readers' chunks each BM25 term occurs (the IDF of queries, kept
        // per tenant's knowledge base rather than by the vector engine).
        use RagTerms as T;
        manager
            .create_table(
                Table::create()
                    .table(T::Table)
                    .col(id(T::TenantId))
                    .col(id(T::KbId))
                    .col(ColumnDef::new(T::Term).big_integer().not_null())
                    .col(ColumnDef::new(T::Df).big_integer().not_null())
                    .primary_key(Index::create().col(T::KbId).col(T::Term))
                    .to_owned(),
            )
            .await?;

        use RagLimits as L;
        manager
            .create_table(
                Table::create()
                    .table(L::Table)
                    .col(
                        ColumnDef::new(L::PlanId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(L::MaxKnowledgeBases)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(L::MaxDocuments).big_integer().not_null())
                    .col(ColumnDef::new(L::MaxChunks).big_integer().not_null())
                    .col(ts(L::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            RagTerms::Table.into_iden(),
            RagLimits::Table.into_iden(),
            RagDocumentSources::Table.into_iden(),
            RagDocuments::Table.into_iden(),
            RagKnowledgeBases::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}
