//! The registry's part of the OpenAPI document (merged by the gateway).

use crate::routes::{aliases, artifacts, models, versions};

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        models::create_model,
        models::list_models,
        models::get_model,
        models::update_model,
        models::delete_model,
        models::resolve,
        versions::create_version,
        versions::list_versions,
        versions::get_version,
        versions::update_version,
        versions::list_events,
        versions::list_evaluations,
        artifacts::upload,
        artifacts::download,
        aliases::set_alias,
        aliases::delete_alias,
    ),
    tags((name = "registry", description = "Models, versions, artifacts, aliases and promotion gates"))
)]
pub struct RegistryDoc;
