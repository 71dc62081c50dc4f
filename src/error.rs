//! `ApiError`: every failure of the HTTP API, mapped once to the SPEC error body
//! `{"error": {"code", "message"}}`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::actors::registry::RegistryError;
use crate::domain::ValidationError;
use crate::http::responses::{ErrorBody, ErrorDetail};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body must be sent with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    Validation(#[from] ValidationError),
    #[error("the database is unavailable; nothing was accepted")]
    Unavailable(#[source] Arc<StoreError>),
    #[error("internal error")]
    Internal(#[source] Arc<StoreError>),
    #[error("the service is shutting down")]
    ShuttingDown,
    #[error("too many requests for this API key; retry after {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Validation(_) => "validation_failed",
            Self::Unavailable(_) | Self::ShuttingDown => "unavailable",
            Self::Internal(_) => "internal_error",
            Self::RateLimited { .. } => "rate_limited",
        }
    }
}

impl From<Arc<StoreError>> for ApiError {
    fn from(e: Arc<StoreError>) -> Self {
        if e.is_unavailable() {
            Self::Unavailable(e)
        } else {
            Self::Internal(e)
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Arc::new(e).into()
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(what) => Self::NotFound(what),
            RegistryError::Invalid(invalid) => Self::Validation(invalid),
            RegistryError::Conflict(_) => Self::Conflict(e.to_string()),
            RegistryError::Store(store) => store.into(),
            RegistryError::Stopped(_) => Self::ShuttingDown,
        }
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        Self::ShuttingDown
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(source) | Self::Unavailable(source) = self {
            log::error!("{self}: {source:?}");
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            Self::RateLimited { retry_after_s } => {
                response.insert_header(("Retry-After", retry_after_s.to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody { error: ErrorDetail { code: self.code(), message: self.to_string() } })
    }
}
