//! Issue #14: CORS_ALLOW_ORIGINS — preflights from an allowed and a refused origin, the headers
//! of ordinary answers, `*`, and nothing at all by default.

use std::time::Duration;

use github_stats_server::api::{self, AppState, CorsPolicy, HttpSettings};
use poem::Endpoint;
use poem::http::{Method, StatusCode};
use poem::test::{TestClient, TestResponse};

use crate::helpers::{client_for, recorded_store};

const ALLOWED: &str = "https://dashboard.example.com";
const REFUSED: &str = "https://evil.example";

async fn client_allowing(
    entries: &[&str],
) -> TestClient<impl Endpoint<Output = poem::Response> + 'static> {
    let mut settings = HttpSettings::new(Duration::from_secs(30));
    settings.cors = CorsPolicy::from_entries(entries).unwrap();
    TestClient::new(api::app_with(
        AppState::new(recorded_store().await),
        settings,
    ))
}

async fn preflight<E: Endpoint>(client: &TestClient<E>, origin: &str, path: &str) -> TestResponse {
    client
        .request(Method::OPTIONS, path)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "x-requested-with")
        .send()
        .await
}

fn header(response: &TestResponse, name: &str) -> Option<String> {
    let values: Vec<String> = response
        .0
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_with_the_permissions() {
    let client = client_allowing(&[ALLOWED, "http://localhost:3000"]).await;
    let response = preflight(&client, ALLOWED, "/metrics/events?offset=60").await;
    response.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    let methods = header(&response, "access-control-allow-methods").unwrap();
    assert!(methods.contains("GET"), "{methods}");
    assert!(!methods.contains("POST"), "{methods}");
    assert_eq!(
        header(&response, "access-control-allow-headers").as_deref(),
        Some("x-requested-with")
    );
    assert_eq!(
        header(&response, "access-control-max-age").as_deref(),
        Some("3600")
    );
    assert!(header(&response, "vary").unwrap().contains("Origin"));
    // No credentials, ever.
    assert_eq!(header(&response, "access-control-allow-credentials"), None);
}

#[tokio::test]
async fn a_preflight_from_another_origin_is_refused_with_a_json_403() {
    let client = client_allowing(&[ALLOWED]).await;
    let response = preflight(&client, REFUSED, "/metrics/events?offset=60").await;
    response.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    assert_eq!(header(&response, "access-control-allow-methods"), None);
    let body: serde_json::Value =
        serde_json::from_str(&response.0.into_body().into_string().await.unwrap()).unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.contains(REFUSED), "{message}");
    // An origin that differs only by scheme or port is another origin.
    for near in [
        "http://dashboard.example.com",
        "https://dashboard.example.com:8443",
    ] {
        preflight(&client, near, "/health")
            .await
            .assert_status(StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn answers_carry_the_allowed_origin_and_vary_on_it() {
    let client = client_allowing(&[ALLOWED]).await;
    let allowed = client
        .get("/debug/total-events")
        .header("Origin", ALLOWED)
        .send()
        .await;
    allowed.assert_status_is_ok();
    assert_eq!(
        header(&allowed, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    assert_eq!(header(&allowed, "vary").as_deref(), Some("Origin"));
    // Errors too, so that the page can read what is wrong.
    let error = client
        .get("/metrics/events?offset=0")
        .header("Origin", ALLOWED)
        .send()
        .await;
    error.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(
        header(&error, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    // Another origin is answered (the browser hides the answer), without the header.
    let refused = client
        .get("/debug/total-events")
        .header("Origin", REFUSED)
        .send()
        .await;
    refused.assert_status_is_ok();
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    assert_eq!(header(&refused, "vary").as_deref(), Some("Origin"));
    // So is a request without Origin (same origin, curl), keyed for caches all the same.
    let plain = client.get("/debug/total-events").send().await;
    plain.assert_status_is_ok();
    assert_eq!(header(&plain, "access-control-allow-origin"), None);
    assert_eq!(header(&plain, "vary").as_deref(), Some("Origin"));
}

#[tokio::test]
async fn a_wildcard_allows_every_origin() {
    let client = client_allowing(&["*"]).await;
    let response = preflight(&client, REFUSED, "/health").await;
    response.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    let answer = client.get("/health").header("Origin", REFUSED).send().await;
    answer.assert_status_is_ok();
    assert_eq!(
        header(&answer, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    // The same answer without Origin: nothing for a cache to tell apart.
    let plain = client.get("/health").send().await;
    assert_eq!(
        header(&plain, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(header(&plain, "vary"), None);
}

#[tokio::test]
async fn without_cors_allow_origins_there_is_no_cors() {
    let client = client_for(recorded_store().await);
    let response = preflight(&client, ALLOWED, "/health").await;
    response.assert_status(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&response, "access-control-allow-origin"), None);
    let answer = client.get("/health").header("Origin", ALLOWED).send().await;
    answer.assert_status_is_ok();
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    assert_eq!(header(&answer, "vary"), None);
}
