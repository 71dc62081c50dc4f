//! JSON request bodies through actix-web's own extractor, configured once: content type
//! (415), size limit before buffering (413), syntax, types and unknown fields (400) — each
//! answered with the SPEC error body.

use actix_web::dev::Payload;
use actix_web::error::JsonPayloadError;
use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A required JSON body.
pub type JsonBody<T> = web::Json<T>;

/// How every JSON body of the routes is read: at most `limit` bytes, `application/json`.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default().limit(limit).content_type_required(true).error_handler(|error, _| {
        match error {
            JsonPayloadError::Overflow { limit } | JsonPayloadError::OverflowKnownLength { limit, .. } => {
                ApiError::PayloadTooLarge(limit)
            }
            JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
            JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!("invalid JSON body: {e}")),
            JsonPayloadError::Payload(e) => ApiError::BadRequest(format!("could not read the body: {e}")),
            other => ApiError::BadRequest(other.to_string()),
        }
        .into()
    })
}

/// A JSON body that may be left out entirely (then `T::default()`).
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let headers = req.headers();
        let declared_empty = headers.get(CONTENT_LENGTH).is_some_and(|len| len.as_bytes() == b"0");
        let no_body =
            declared_empty || (!headers.contains_key(CONTENT_LENGTH) && !headers.contains_key(TRANSFER_ENCODING));
        if no_body {
            return Box::pin(std::future::ready(Ok(Self(T::default()))));
        }
        let json = web::Json::<T>::from_request(req, payload);
        Box::pin(async move { json.await.map(|json| Self(json.into_inner())) })
    }
}
