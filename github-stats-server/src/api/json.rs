//! [`DirectJson`]: a JSON answer written by serde straight from the body, for the hottest
//! answers. poem-openapi's `Json` first builds the body as a `serde_json::Value` tree (an
//! allocation per field name and value, a map insertion each) and then writes the tree; on
//! `/metrics/events` that was a noticeable share of the request. The schema is still the
//! body's [`Object`](poem_openapi::Object) derive, so the spec is unchanged; a body used here
//! derives `serde::Serialize` with the same names, which the tests check
//! (`writes_what_poem_openapi_writes` below).

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::Serialize;

/// A JSON answer with `T`'s schema, serialized with serde.
#[derive(Debug, Clone)]
pub struct DirectJson<T>(pub T);

const CONTENT_TYPE: &str = "application/json; charset=utf-8";

impl<T: Type> Payload for DirectJson<T> {
    const CONTENT_TYPE: &'static str = CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        content_type.starts_with("application/json")
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Serialize + Send> IntoResponse for DirectJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder().content_type(CONTENT_TYPE).body(body),
            Err(e) => {
                tracing::error!(error = %e, "cannot write an answer as JSON");
                super::middleware::json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl<T: Type + Serialize + Send> ApiResponse for DirectJson<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: CONTENT_TYPE,
                    schema: T::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use github_stats_core::{CompleteRun, PrAverage, TimeWindow, WindowCoverage};
    use poem_openapi::types::ToJSON;

    use super::super::metrics::{EventCountsBody, EventTypeCounts, PrAverageBody};
    use super::super::time::UtcTime;

    #[test]
    fn writes_what_poem_openapi_writes() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let counts = EventCountsBody {
            offset_minutes: 60,
            since: UtcTime(t(1_764_651_600)),
            until: UtcTime(t(1_764_655_200)),
            event_counts: EventTypeCounts {
                watch_event: 3,
                pull_request_event: 2,
                issues_event: 1,
            },
            total_events: 6,
            complete: false,
            archived_share: 0.25,
        };
        assert_eq!(
            serde_json::to_value(&counts).unwrap(),
            counts.to_json().unwrap()
        );
        let window = TimeWindow::new(t(1_764_651_600), t(1_764_655_200)).unwrap();
        let run = CompleteRun {
            from: t(1_764_000_000),
            until: t(1_764_003_600),
        };
        let coverage = WindowCoverage {
            complete: true,
            archived_share: 1.0,
        };
        for body in [
            PrAverageBody::new(
                PrAverage::from_extremes("a/b", 3, Some(t(1_000)), Some(t(2_000))),
                Some((window, coverage)),
                Some(run),
            ),
            PrAverageBody::new(PrAverage::from_extremes("a/b", 0, None, None), None, None),
        ] {
            assert_eq!(
                serde_json::to_value(&body).unwrap(),
                body.to_json().unwrap()
            );
        }
    }
}
