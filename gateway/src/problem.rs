//! RFC 9457 problem details: every error the HTTP API returns.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// The base of every problem `type` URI.
const PROBLEM_BASE: &str = "https://inferadb.dev/problems/";

/// An HTTP error as `application/problem+json`.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    retry_after_s: Option<u64>,
}

impl Problem {
    /// A problem with a status, a stable slug (the `type`'s last segment), a short title and
    /// a detail naming the field and the rule.
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            status,
            slug,
            title,
            detail: detail.into(),
            extensions: Map::new(),
            retry_after_s: None,
        }
    }

    /// 400: the request breaks a rule.
    pub fn bad_request(slug: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, slug, "Invalid request", detail)
    }

    /// 400 for one field: the detail names the field.
    pub fn invalid_field(field: &str, rule: impl std::fmt::Display) -> Problem {
        Problem::bad_request("invalid-field", format!("{field}: {rule}"))
            .with("field", Value::String(field.to_string()))
    }

    /// 404: no such resource.
    pub fn not_found(slug: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, slug, "Not found", detail)
    }

    /// 503: a part of the node is not available right now.
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// 500: a failure of the node itself.
    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail,
        )
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: Value) -> Problem {
        self.extensions.insert(key.to_string(), value);
        self
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, seconds: u64) -> Problem {
        self.retry_after_s = Some(seconds);
        self.extensions
            .insert("retry_after_s".to_string(), json!(seconds));
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The detail.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl Problem {
    /// The problem's JSON members (`type`, `title`, `status`, `detail`, extensions).
    pub fn members(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!(format!("{PROBLEM_BASE}{}", self.slug)));
        body.insert("title".into(), json!(self.title));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        body.extend(self.extensions.clone());
        Value::Object(body)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.members().to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
