//! Cross-cutting HTTP behaviour: the access log, the request timeout, JSON errors, panics.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::http::{StatusCode, Uri};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::params;

/// Path prefixes followed by `{owner}/{repo}`: a path under them that does not route is a bad
/// repository name (an empty part, an extra slash), so it is a 400, not a 404.
const REPOSITORY_PREFIXES: &[&str] = &["/metrics/pr-average/", "/debug/repo-events/"];

/// Runs `ep` under `timeout`, turns every error into `{"error": ...}` JSON with its status, and
/// logs one access line (method, path, status, latency).
pub async fn json_errors_and_access_log<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    timeout: Duration,
) -> poem::Result<Response> {
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let path = uri.path();
    let response = match tokio::time::timeout(timeout, ep.call(req)).await {
        Ok(Ok(response)) => response.into_response(),
        Ok(Err(err)) => error_response(err, &uri),
        Err(_) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("request timed out after {} s", timeout.as_secs_f64()),
        ),
    };
    let status = response.status().as_u16();
    let latency_us = started.elapsed().as_micros() as u64;
    if response.status().is_server_error() {
        tracing::warn!(%method, %path, status, latency_us, "request");
    } else {
        tracing::info!(%method, %path, status, latency_us, "request");
    }
    Ok(response)
}

/// The JSON answer for a poem error: its own response when it carries one (the handlers'
/// [`ApiError`](super::ApiError)s), else `{"error": message}` with its status. A parameter
/// that does not parse is answered in [`params`]' words, quoting what `uri`
/// gave, never with the framework's own text.
pub fn error_response(err: poem::Error, uri: &Uri) -> Response {
    let path = uri.path();
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    if status == StatusCode::NOT_FOUND {
        if let Some(prefix) = REPOSITORY_PREFIXES.iter().find(|p| path.starts_with(**p)) {
            let given = &path[prefix.len()..];
            return json_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid repository {}: expected owner/name with exactly one slash, such as \
                     rust-lang/rust",
                    params::quote(given)
                ),
            );
        }
        return json_error(status, format!("not found: {path}"));
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        return json_error(status, format!("method not allowed on {path}"));
    }
    let message = match err.downcast_ref::<poem_openapi::error::ParseParamError>() {
        Some(e) => {
            let given = params::query_value(uri.query().unwrap_or_default(), e.name);
            params::invalid_parameter(e.name, given.as_deref())
        }
        None => err.to_string(),
    };
    let message = if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        message
    };
    json_error(status, message)
}

/// `{"error": message}` with `status`: the [`ErrorBody`](super::ErrorBody) shape.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() });
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

/// The answer when a handler panics: a JSON 500 without the panic's text (logged instead).
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = message, "handler panicked");
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}
