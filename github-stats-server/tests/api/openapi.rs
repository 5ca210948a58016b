//! The generated spec: committed in `docs/openapi.json`, served at `/openapi.json`, browsable at
//! `/docs`.

use std::path::PathBuf;

use poem::http::StatusCode;

use crate::helpers::{client_for, get, recorded_store};

fn committed_spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(github_stats_server::api::COMMITTED_SPEC)
}

/// Fails when the committed spec differs from the generated one. `UPDATE_OPENAPI=1 cargo test
/// -p github-stats-server openapi` rewrites it.
#[test]
fn committed_spec_is_up_to_date() {
    let generated = github_stats_server::api::spec_json();
    let path = committed_spec_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not the generated spec: run `UPDATE_OPENAPI=1 cargo test -p github-stats-server \
         openapi` and commit the result",
        path.display()
    );
}

#[test]
fn spec_documents_every_endpoint_and_error() {
    let spec: serde_json::Value =
        serde_json::from_str(&github_stats_server::api::spec_json()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for (path, statuses) in [
        (
            "/metrics/pr-average/{owner}/{repo}",
            &["200", "400", "503"][..],
        ),
        ("/metrics/events", &["200", "400", "503"]),
        ("/health", &["200", "503"]),
        ("/debug/total-events", &["200", "503"]),
        ("/debug/repo-events/{owner}/{repo}", &["200", "400", "503"]),
        ("/debug/repos-by-event-count", &["200", "400", "503"]),
    ] {
        let op = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from the spec"))["get"];
        assert!(op["summary"].is_string(), "{path} has no summary");
        for status in statuses {
            assert!(
                op["responses"].get(*status).is_some(),
                "{path} does not document {status}"
            );
        }
    }
    let events = &paths["/metrics/events"]["get"]["parameters"];
    let offset = events
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "offset")
        .unwrap();
    assert_eq!(offset["required"], true);
    assert_eq!(offset["schema"]["minimum"], 1.0);
    assert_eq!(offset["schema"]["maximum"], 525_600.0);
    let schemas = &spec["components"]["schemas"];
    let counts = &schemas["EventCountsBody"]["properties"];
    for field in [
        "offset_minutes",
        "since",
        "until",
        "event_counts",
        "total_events",
    ] {
        assert!(counts.get(field).is_some(), "EventCountsBody.{field}");
    }
}

#[tokio::test]
async fn spec_and_swagger_ui_are_served() {
    let client = client_for(recorded_store().await);
    let served = get(&client, "/openapi.json").await;
    assert_eq!(served.status, StatusCode::OK);
    let generated: serde_json::Value =
        serde_json::from_str(&github_stats_server::api::spec_json()).unwrap();
    assert_eq!(served.body, generated);

    let docs = client.get("/docs").send().await;
    docs.assert_status_is_ok();
    let html = docs.0.into_body().into_string().await.unwrap();
    assert!(html.contains("swagger-ui"), "not the Swagger UI");
    // Served by the binary: no script or style from the network.
    assert!(
        !html.contains("<script src=\"http"),
        "loads from the network"
    );
    assert!(!html.contains("cdn"), "loads from a CDN");
}
