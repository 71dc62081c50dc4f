//! Bearer-token authentication: the admin token, compared in constant time, or a workspace
//! API key (found by its hash, through [`AuthCache`](super::AuthCache)). It runs as the
//! `/api/v1` scope's middleware, before routing, extractors and bodies, and puts the
//! [`Caller`] in the request's extensions; workspace keys are also rate-limited here. The
//! admin token comes from its setting or from `<data_dir>/admin.token`.

use std::path::Path;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures_util::future::LocalBoxFuture;
use ring::digest;
use subtle::ConstantTimeEq;

use super::ApiState;
use crate::domain::api_key::{hash_key, looks_like_key};
use crate::domain::WorkspaceId;
use crate::error::ApiError;
use crate::files::{IfMissing, SecretError};

/// The admin token, kept only as its SHA-256 so comparisons do not leak its length.
#[derive(Clone)]
pub struct AdminToken {
    digest: Arc<[u8]>,
}

impl AdminToken {
    pub fn new(token: &str) -> Self {
        Self { digest: sha256(token.as_bytes()).into() }
    }

    pub fn matches(&self, presented: &str) -> bool {
        sha256(presented.as_bytes()).ct_eq(&self.digest).into()
    }

    /// The configured token, or the one in `<data_dir>/admin.token`, generated (mode 0600)
    /// on first start. Only the file's path is logged, never the token.
    pub fn resolve(configured: Option<&str>, data_dir: &Path) -> Result<Self, SecretError> {
        if let Some(token) = configured {
            return Ok(Self::new(token));
        }
        crate::files::read_or_generate_secret(
            data_dir,
            "admin.token",
            IfMissing::Generate,
            |bytes| format!("hba_{}", URL_SAFE_NO_PAD.encode(bytes)),
            |token| match looks_like_key(token) {
                true => Err("the token starts with hbk_, the prefix of workspace API keys".into()),
                false => Ok(Self::new(token)),
            },
        )
    }
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, bytes).as_ref().to_vec()
}

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// The admin token: any workspace (the `default` one unless `?workspace_id=` names another).
    Admin,
    /// A workspace API key: its own workspace only.
    Key(uuid::Uuid),
}

/// Who is calling, and which workspace the request acts on.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub workspace_id: WorkspaceId,
    pub principal: Principal,
}

#[derive(serde::Deserialize)]
struct WorkspaceQuery {
    workspace_id: Option<String>,
}

fn parse_workspace(raw: Option<&str>) -> Result<Option<WorkspaceId>, ApiError> {
    match raw {
        None => Ok(None),
        Some("default") => Ok(Some(WorkspaceId::DEFAULT)),
        Some(raw) => raw.parse().map(Some).map_err(|_| ApiError::NotFound("workspace")),
    }
}

/// `POST /events` is never throttled; every other route counts against a key's rate.
fn is_throttled(req: &HttpRequest) -> bool {
    !(req.method() == actix_web::http::Method::POST && req.path().ends_with("/api/v1/events"))
}

/// Authenticates a request to the admin API before anything else about it is looked at:
/// a bad credential is a 401 whatever else is wrong with the request (its route, its
/// workspace, its body).
pub async fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req.app_data::<web::Data<ApiState>>().cloned().ok_or(ApiError::Unauthorized)?;
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    let requested = || {
        let query = web::Query::<WorkspaceQuery>::from_query(req.query_string()).ok();
        parse_workspace(query.and_then(|q| q.into_inner().workspace_id).as_deref())
    };
    if looks_like_key(presented) {
        let owner = state.auth_cache.find_key(&hash_key(presented)).await?.ok_or(ApiError::Unauthorized)?;
        // A key sees only its own workspace: any other is simply not there.
        if requested()?.is_some_and(|ws| ws != owner.workspace_id) {
            return Err(ApiError::NotFound("workspace"));
        }
        if is_throttled(req) {
            state.throttle(owner.key_id)?;
        }
        return Ok(Caller { workspace_id: owner.workspace_id, principal: Principal::Key(owner.key_id) });
    }
    if !state.admin_token.matches(presented) {
        return Err(ApiError::Unauthorized);
    }
    let workspace_id = match requested()? {
        None => WorkspaceId::DEFAULT,
        Some(id) if id == WorkspaceId::DEFAULT => id,
        Some(id) => {
            if !state.auth_cache.workspace_exists(id).await? {
                return Err(ApiError::NotFound("workspace"));
            }
            id
        }
    };
    Ok(Caller { workspace_id, principal: Principal::Admin })
}

/// The `/api/v1` middleware: every route but the OpenAPI document needs a credential, and
/// the caller it names is what handlers extract as [`Caller`].
pub async fn require_caller(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if !req.path().ends_with("/api/v1/openapi.json") {
        match authenticate(req.request()).await {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
            }
            // Answered here, as the handlers' errors are, so an embedding app's own
            // middleware sees a response, not an error.
            Err(error) => return Ok(req.error_response(error).map_into_right_body()),
        }
        if let Err(error) = current_webhooks(&req).await {
            return Ok(req.error_response(error).map_into_right_body());
        }
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

/// With several servers on one database, a management request answers from the webhooks as
/// the database has them now, whichever server changed them last (one query for the
/// configuration version; the webhooks are read again only if it moved). Publishes check
/// the version in their own write instead.
async fn current_webhooks(req: &ServiceRequest) -> Result<(), ApiError> {
    let Some(state) = req.app_data::<web::Data<ApiState>>() else {
        return Ok(());
    };
    if state.coordinator.is_none() || req.path().ends_with("/events") {
        return Ok(());
    }
    state.registry.send(crate::actors::registry::RefreshWebhooks { newer_than: None }).await??;
    Ok(())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Put there by `require_caller`, which ran before any extractor.
        std::future::ready(req.extensions().get::<Caller>().copied().ok_or(ApiError::Unauthorized))
    }
}

/// A caller holding the admin token; to a workspace key, admin routes do not exist (404).
#[derive(Debug, Clone, Copy)]
pub struct AdminCaller;

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        Box::pin(async move {
            match caller.await?.principal {
                Principal::Admin => Ok(AdminCaller),
                Principal::Key(_) => Err(ApiError::NotFound("route")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves() {
        let token = AdminToken::new("the-admin-token-123");
        assert!(token.matches("the-admin-token-123"));
        assert!(!token.matches("the-admin-token-12"));
        assert!(!token.matches(""));
    }

    #[test]
    fn a_generated_token_is_kept_in_a_private_file_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = AdminToken::resolve(None, dir.path()).unwrap();
        let path = dir.path().join("admin.token");
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(first.matches(written.trim()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let second = AdminToken::resolve(None, dir.path()).unwrap();
        assert!(second.matches(written.trim()));
    }
}
