//! Cross-cutting HTTP behaviour: the access log, request metrics, CORS, the request timeout,
//! JSON errors, panics.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::PathPattern;
use poem::http::{StatusCode, Uri, header};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::cors::CorsPolicy;
use super::params;
use crate::prometheus::{HttpMetrics, route_label};

/// The route Prometheus scrapes: logged at `debug`, not `info`.
pub const SCRAPE_ROUTE: &str = "/metrics";

/// Path prefixes followed by `{owner}/{repo}`: a path under them that does not route is a bad
/// repository name (an empty part, an extra slash), so it is a 400, not a 404.
const REPOSITORY_PREFIXES: &[&str] = &["/metrics/pr-average/", "/debug/repo-events/"];

/// What [`serve`] applies to every request.
#[derive(Debug)]
pub struct HttpLayer {
    /// A slower request is answered with 503.
    pub request_timeout: Duration,
    /// Cross-origin requests.
    pub cors: CorsPolicy,
    /// Where requests are counted.
    pub metrics: HttpMetrics,
    /// Route templates for requests whose route poem did not record (see
    /// [`route_label`]).
    pub routes: Vec<String>,
}

/// Answers a CORS preflight, or runs `ep` under the request timeout; turns every error into
/// `{"error": ...}` JSON with its status; adds the CORS headers; counts the request by route
/// template and status for `/metrics`; and logs one access line (method, path, route, status,
/// latency): at `info`, except scrapes of `/metrics` (at `debug`, so that a scrape every few
/// seconds does not flood the log), and at `warn` for a server error.
pub async fn serve<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    layer: Arc<HttpLayer>,
) -> poem::Result<Response> {
    let started = Instant::now();
    let _in_flight = layer.metrics.in_flight();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let path = uri.path();
    let origin = req.headers().get(header::ORIGIN).cloned();
    let preflight = layer.cors.preflight(&req);
    let answered_preflight = preflight.is_some();
    let (mut response, pattern) = match preflight {
        Some(preflight) => (preflight, None),
        None => match tokio::time::timeout(layer.request_timeout, ep.call(req)).await {
            Ok(Ok(response)) => {
                let response = response.into_response();
                let pattern = response.data::<PathPattern>().map(|p| p.0.clone());
                (response, pattern)
            }
            Ok(Err(err)) => {
                let pattern = err.data::<PathPattern>().map(|p| p.0.clone());
                (error_response(err, &uri), pattern)
            }
            Err(_) => (
                json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "request timed out after {} s",
                        layer.request_timeout.as_secs_f64()
                    ),
                ),
                None,
            ),
        },
    };
    if !answered_preflight {
        layer.cors.decorate(origin.as_ref(), &mut response);
    }
    let route = route_label(pattern.as_deref(), path, &layer.routes);
    let elapsed = started.elapsed();
    layer
        .metrics
        .observe(&method, &route, response.status(), elapsed);
    let status = response.status().as_u16();
    let latency_us = elapsed.as_micros() as u64;
    if response.status().is_server_error() {
        tracing::warn!(%method, %path, %route, status, latency_us, "request");
    } else if route == SCRAPE_ROUTE {
        tracing::debug!(%method, %path, %route, status, latency_us, "request");
    } else {
        tracing::info!(%method, %path, %route, status, latency_us, "request");
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
