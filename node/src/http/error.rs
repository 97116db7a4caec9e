//! API errors as JSON `{"error": {"message": …, "field": …}}` with the right status,
//! and the body and query extractors that turn bad input into such errors.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;
use yichuang_shared::case::CaseError;

use crate::store::StoreError;

/// An error answer. Messages are for people; `field` names the input at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
    /// Sent as `Retry-After` (seconds) when the caller should wait before trying again.
    pub retry_after_s: Option<u64>,
}

/// The error body every failing API call returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault (`applicant.id_no`, `item_code` …), when one is.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            field: None,
            retry_after_s: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message).field(field)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn overloaded() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node is busy; retry in a moment",
        )
    }

    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the node's store is not available",
        )
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; nothing was changed",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.message,
                field: self.field,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_s {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"yichuang\""),
            );
        }
        resp
    }
}

fn case_error(e: CaseError) -> ApiError {
    let message = e.to_string();
    match e {
        CaseError::IllegalTransition { .. } => ApiError::conflict(message).field("kind"),
        CaseError::UnknownField(_) => ApiError::invalid("field", message),
        CaseError::InvalidValue { field, .. } => ApiError::invalid(&field, message),
        CaseError::Validation(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message),
        CaseError::NoConflict(_) => ApiError::conflict(message).field("field"),
        CaseError::NoEventConflict(_) => ApiError::conflict(message).field("event_id"),
        CaseError::TooManyEvents | CaseError::AlreadyRecorded(_) => ApiError::conflict(message),
        CaseError::NotACase(_) | CaseError::Automerge(_) => {
            tracing::error!(error = %message, "case document error");
            ApiError::internal()
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::UnknownCase(_) => ApiError::not_found(e.to_string()),
            StoreError::UnknownItem(_) => ApiError::invalid("item_code", e.to_string()),
            StoreError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            StoreError::Case(c) => case_error(*c),
            StoreError::DiskFull => ApiError::new(StatusCode::INSUFFICIENT_STORAGE, e.to_string()),
            StoreError::ReadOnly | StoreError::Busy | StoreError::Closed => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            StoreError::CommitFailed(_) => {
                tracing::error!(error = %e, "commit failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            other => {
                // Store errors name tables and documents, never a person's data.
                tracing::error!(error = %other, "store error");
                ApiError::internal()
            }
        }
    }
}

/// A JSON body: `application/json`, at most the router's body limit, parsed with the
/// path of the field at fault reported on a type error.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

fn is_json(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
        })
}

/// Parses JSON, telling malformed text (400) from well-formed JSON of the wrong
/// shape (422, with the field).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        ) {
            return ApiError::bad_request(format!("the body is not valid JSON: {inner}"));
        }
        let mut err = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, inner.to_string());
        // serde names a missing field in the message, below the path.
        err.field = match (path.as_str(), missing_field(&err.message)) {
            (".", missing) => missing,
            (_, Some(name)) => Some(format!("{path}.{name}")),
            (_, None) => Some(path),
        };
        err
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        if !is_json(&parts) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let req = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    status,
                    format!("the body is larger than {} bytes", super::BODY_MAX_BYTES),
                )
            } else {
                ApiError::new(status, rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Query parameters, with a JSON error on a bad one.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|e| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()).field("query")
            })
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such page or endpoint")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this endpoint does not take that method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
        n: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        code: String,
        inner: Inner,
    }

    #[test]
    fn json_errors_name_the_field() {
        let check = |body: &str, status: u16, field: Option<&str>| {
            let e = parse_json::<Outer>(body.as_bytes()).unwrap_err();
            assert_eq!(e.status.as_u16(), status, "{body}: {}", e.message);
            assert_eq!(e.field.as_deref(), field, "{body}: {}", e.message);
        };
        check(r#"{"inner": {"name": "a", "n": 1}}"#, 422, Some("code"));
        check(
            r#"{"code": 1, "inner": {"name": "a", "n": 1}}"#,
            422,
            Some("code"),
        );
        check(
            r#"{"code": "c", "inner": {"name": "a"}}"#,
            422,
            Some("inner.n"),
        );
        check(
            r#"{"code": "c", "inner": {"name": "a", "n": -1}}"#,
            422,
            Some("inner.n"),
        );
        check(
            r#"{"code": "c", "inner": {"name": "a", "n": 1}} x"#,
            400,
            None,
        );
        check(r#"{"code": "c""#, 400, None);
        check("", 400, None);
        assert!(parse_json::<Outer>(br#"{"code": "c", "inner": {"name": "a", "n": 1}}"#).is_ok());
    }
}
