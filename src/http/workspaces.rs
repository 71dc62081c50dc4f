//! `/api/v1/workspaces…` — admin token only.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::AdminCaller;
use super::body::JsonBody;
use super::responses::{KeyInfoObject, KeyObject, Page, WorkspaceObject};
use super::{path_id, ApiState, ListQuery};
use crate::domain::api_key::NewApiKey;
use crate::domain::{ValidationError, WorkspaceId};
use crate::error::ApiError;
use crate::store::WorkspaceRecord;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    #[schema(required = true)]
    name: Option<String>,
}

#[utoipa::path(
    operation_id = "workspaces_create",
    post,
    path = "/api/v1/workspaces",
    tag = "workspaces",
    request_body = CreateWorkspace,
    responses(
        (status = 201, body = WorkspaceObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn create(
    state: web::Data<ApiState>,
    _: AdminCaller,
    body: JsonBody<CreateWorkspace>,
) -> Result<HttpResponse, ApiError> {
    let name = body.0.name.ok_or_else(|| ValidationError::new("name", "is required"))?;
    let name = crate::domain::name::parse_name("name", name)?;
    let workspace = WorkspaceRecord { id: WorkspaceId::generate(), name, created_at: crate::domain::now() };
    let (key, key_id) = (NewApiKey::generate(), uuid::Uuid::now_v7());
    state.store.create_workspace(&workspace, key_id, &key).await?;
    let created =
        WorkspaceObject { api_key: Some(key.plaintext), api_key_id: Some(key_id), ..WorkspaceObject::new(workspace) };
    Ok(HttpResponse::Created().json(created))
}

#[utoipa::path(
    operation_id = "workspaces_list",
    get,
    path = "/api/v1/workspaces",
    tag = "workspaces",
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query), ("workspace_id" = Option<String>, Query)),
    responses(
        (status = 200, body = Page<WorkspaceObject>),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn list(
    state: web::Data<ApiState>,
    _: AdminCaller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let (data, next_cursor) = state.store.list_workspaces(query.cursor()?, query.limit()?).await?;
    Ok(HttpResponse::Ok().json(Page::of(data, next_cursor, WorkspaceObject::new)))
}

/// The workspace a path names, if it exists.
async fn existing_workspace(state: &ApiState, raw: &str) -> Result<WorkspaceId, ApiError> {
    let workspace_id: WorkspaceId = path_id(raw, "workspace")?;
    if !state.store.workspace_exists(workspace_id).await? {
        return Err(ApiError::NotFound("workspace"));
    }
    Ok(workspace_id)
}

#[utoipa::path(
    operation_id = "workspaces_create_key",
    post,
    path = "/api/v1/workspaces/{id}/keys",
    tag = "workspaces",
    params(("id" = String, Path, description = "workspace id")),
    responses(
        (status = 201, body = KeyObject),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn create_key(
    state: web::Data<ApiState>,
    _: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let workspace_id = existing_workspace(&state, &id).await?;
    let key = NewApiKey::generate();
    let key_id = uuid::Uuid::now_v7();
    state.store.insert_api_key(workspace_id, key_id, &key).await?;
    Ok(HttpResponse::Created().json(KeyObject { id: key_id, api_key: key.plaintext }))
}

#[utoipa::path(
    operation_id = "workspaces_list_keys",
    get,
    path = "/api/v1/workspaces/{id}/keys",
    tag = "workspaces",
    params(("id" = String, Path, description = "workspace id"), ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses(
        (status = 200, body = Page<KeyInfoObject>),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn list_keys(
    state: web::Data<ApiState>,
    _: AdminCaller,
    id: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let workspace_id = existing_workspace(&state, &id).await?;
    let (data, next_cursor) = state.store.list_api_keys(workspace_id, query.cursor()?, query.limit()?).await?;
    Ok(HttpResponse::Ok().json(Page::of(data, next_cursor, KeyInfoObject::new)))
}

#[utoipa::path(
    operation_id = "workspaces_revoke_key",
    delete,
    path = "/api/v1/workspaces/{id}/keys/{key_id}",
    tag = "workspaces",
    params(("id" = String, Path), ("key_id" = String, Path)),
    responses(
        (status = 204),
        super::openapi::ErrorResponses,
    ),
)]
pub async fn revoke_key(
    state: web::Data<ApiState>,
    _: AdminCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let workspace_id: WorkspaceId = path_id(&path.0, "workspace")?;
    let key_id: uuid::Uuid = path_id(&path.1, "key")?;
    if !state.auth_cache.revoke_key(workspace_id, key_id).await? {
        return Err(ApiError::NotFound("key"));
    }
    Ok(HttpResponse::NoContent().finish())
}
