//! The generated spec: committed in `docs/openapi.json`, served at `/openapi.json`, browsable at
//! `/docs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use github_stats_core::MemoryStore;
use github_stats_server::api::debug::DebugApi;
use github_stats_server::api::health::HealthApi;
use github_stats_server::api::metrics::MetricsApi;
use github_stats_server::api::visualization::VisualizationApi;
use github_stats_server::api::{self, AppState};
use poem::Server;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem_openapi::OpenApiService;
use serde_json::{Value, json};

use crate::errors::{BrokenStore, Failure, STORE_PATHS};
use crate::helpers::{Answer, client_for, get, raw_events, recorded_store};

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
        ("/metrics", &["200"]),
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
    // Prometheus' text format, under its own media type.
    assert!(
        paths["/metrics"]["get"]["responses"]["200"]["content"]
            .get("text/plain; version=0.0.4; charset=utf-8")
            .is_some(),
        "{}",
        paths["/metrics"]
    );
    let events = &paths["/metrics/events"]["get"]["parameters"];
    let offset = events
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "offset")
        .unwrap();
    assert_eq!(offset["required"], true);
    assert_eq!(offset["schema"]["minimum"], 1.0);
    assert_eq!(
        offset["schema"]["maximum"],
        f64::from(github_stats_core::MAX_WINDOW_MINUTES)
    );
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

/// The limits are written once, as constants: every maximum of the spec (attributes take only
/// literals) and every error hint says the constant's number.
#[test]
fn spec_maximums_and_hints_are_the_constants() {
    use github_stats_core::MAX_WINDOW_MINUTES;
    use github_stats_server::api::debug::MAX_TOP_LIMIT;
    use github_stats_server::api::params::expectation;

    let spec: serde_json::Value =
        serde_json::from_str(&github_stats_server::api::spec_json()).unwrap();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        let parameters = item["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for parameter in parameters {
            let name = parameter["name"].as_str().unwrap();
            let Some(maximum) = parameter["schema"]["maximum"].as_f64() else {
                continue;
            };
            let expected = match name {
                "offset" | "bucket_minutes" => MAX_WINDOW_MINUTES,
                "limit" => MAX_TOP_LIMIT,
                other => panic!("{path}: {other} has a maximum no constant names"),
            };
            assert_eq!(maximum, f64::from(expected), "{path} {name}");
            let hint = expectation(name).unwrap_or_else(|| panic!("no message for {name}"));
            assert!(hint.contains(&format!("to {expected}")), "{name}: {hint}");
            checked += 1;
        }
    }
    // offset on three paths at least, bucket_minutes on two, limit on one.
    assert!(checked >= 6, "{checked} maximums");
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

/// Checks `value` against `schema` of the OpenAPI 3.0 document `spec`, for the keywords
/// poem-openapi writes: `$ref`, `allOf`, `nullable`, `type` and `format`, `enum`, `required`,
/// `properties` (an undeclared property is a problem unless `additionalProperties` allows it),
/// `items`, `minimum` and `maximum`. Problems are pushed as "where: what".
fn check(spec: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let Some(target) = spec.pointer(reference.trim_start_matches('#')) else {
            problems.push(format!("{at}: dangling reference {reference}"));
            return;
        };
        return check(spec, target, value, at, problems);
    }
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            problems.push(format!("{at}: null, but the schema is not nullable"));
        }
        return;
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        check(spec, part, value, at, problems);
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let fits = match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("object") => {
            let Some(object) = value.as_object() else {
                problems.push(format!("{at}: {value} is not an object"));
                return;
            };
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                if !object.contains_key(name) {
                    problems.push(format!("{at}: required {name} is missing"));
                }
            }
            for (name, field) in object {
                let at = format!("{at}.{name}");
                match (
                    schema["properties"].get(name),
                    schema.get("additionalProperties"),
                ) {
                    (Some(field_schema), _) => check(spec, field_schema, field, &at, problems),
                    (None, Some(extra)) if extra.is_object() => {
                        check(spec, extra, field, &at, problems)
                    }
                    (None, Some(Value::Bool(true))) => {}
                    (None, _) => problems.push(format!("{at}: not declared in the schema")),
                }
            }
            true
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                problems.push(format!("{at}: {value} is not an array"));
                return;
            };
            for (i, item) in items.iter().enumerate() {
                check(
                    spec,
                    &schema["items"],
                    item,
                    &format!("{at}[{i}]"),
                    problems,
                );
            }
            true
        }
        Some("string") => match (value.as_str(), schema.get("format").and_then(Value::as_str)) {
            (Some(text), Some("date-time")) => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            (Some(_), _) => true,
            (None, _) => false,
        },
        Some("integer") => match schema.get("format").and_then(Value::as_str) {
            Some("uint32") => value.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)),
            Some("uint64") => value.is_u64(),
            _ => value.is_i64() || value.is_u64(),
        },
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => {
            problems.push(format!("{at}: unknown type {other}"));
            return;
        }
    };
    if !fits {
        problems.push(format!("{at}: {value} is not a {schema}"));
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
            && number < minimum
        {
            problems.push(format!("{at}: {number} is below the minimum {minimum}"));
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
            && number > maximum
        {
            problems.push(format!("{at}: {number} is above the maximum {maximum}"));
        }
    }
}

/// The schema of the JSON answer with `status` to `GET template`, or why there is none.
fn answer_schema<'a>(spec: &'a Value, template: &str, status: u16) -> Result<&'a Value, String> {
    let responses = spec["paths"][template]["get"]["responses"]
        .as_object()
        .ok_or_else(|| format!("GET {template} is not in the spec"))?;
    let response = responses
        .get(&status.to_string())
        .ok_or_else(|| format!("GET {template} does not document status {status}"))?;
    response["content"]
        .as_object()
        .and_then(|content| {
            content
                .iter()
                .find(|(t, _)| t.starts_with("application/json"))
        })
        .map(|(_, media)| &media["schema"])
        .ok_or_else(|| format!("GET {template} {status} has no JSON schema"))
}

/// The spec's path template that `uri` (a path with a query) is an instance of.
fn template_of<'a>(spec: &'a Value, uri: &str) -> &'a str {
    let path = uri.split('?').next().unwrap();
    let segments: Vec<&str> = path.split('/').collect();
    spec["paths"]
        .as_object()
        .unwrap()
        .keys()
        .find(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s)
        })
        .unwrap_or_else(|| panic!("{uri} matches no path of the spec"))
}

/// Repositories of the recorded events with exactly `n` opened pull requests (`None` for at
/// least two).
fn repository_with_opened(n: Option<usize>) -> String {
    let mut opened: BTreeMap<String, usize> = BTreeMap::new();
    for e in raw_events() {
        if e.event_type == "PullRequestEvent" && e.action == "opened" {
            *opened.entry(e.repo).or_default() += 1;
        }
    }
    opened
        .into_iter()
        .find(|(_, count)| match n {
            Some(n) => *count == n,
            None => *count >= 2,
        })
        .map(|(repo, _)| repo)
        .expect("the recorded events have such a repository")
}

/// Answers of every JSON endpoint: successes (with `null`s), bad input, an unreachable store.
async fn real_answers() -> Vec<(String, Answer)> {
    let mut answers = Vec::new();
    let recorded = client_for(recorded_store().await);
    let uris = [
        format!("/metrics/pr-average/{}", repository_with_opened(None)),
        format!("/metrics/pr-average/{}", repository_with_opened(Some(1))),
        "/metrics/pr-average/nobody/nothing".to_owned(),
        "/metrics/pr-average/a/b%20c".to_owned(),
        "/metrics/events?offset=60&until=2015-01-01T13:00:00Z".to_owned(),
        "/metrics/events?offset=525600".to_owned(),
        "/metrics/events?offset=0".to_owned(),
        "/metrics/visualization?offset=60&until=2015-01-01T13:00:00Z".to_owned(),
        "/metrics/visualization?offset=180&bucket_minutes=7&until=2021-07-21T09:00:00Z".to_owned(),
        "/metrics/visualization?offset=60&until=bad".to_owned(),
        "/health".to_owned(),
        "/debug/total-events".to_owned(),
        format!("/debug/repo-events/{}", repository_with_opened(None)),
        "/debug/repo-events/nobody/nothing".to_owned(),
        "/debug/repo-events/no/x%22y".to_owned(),
        "/debug/repos-by-event-count".to_owned(),
        "/debug/repos-by-event-count?limit=1000".to_owned(),
        "/debug/repos-by-event-count?limit=0".to_owned(),
    ];
    for uri in uris {
        answers.push((uri.clone(), get(&recorded, &uri).await));
    }
    let empty = client_for(Arc::new(MemoryStore::new()));
    for uri in [
        "/health",
        "/debug/repos-by-event-count",
        "/metrics/pr-average/a/b",
    ] {
        answers.push((format!("{uri} (empty store)"), get(&empty, uri).await));
    }
    let down = client_for(Arc::new(BrokenStore(Failure::Unreachable)));
    for uri in STORE_PATHS.iter().chain(&["/health"]) {
        answers.push((format!("{uri} (store down)"), get(&down, uri).await));
    }
    answers
}

/// Issue #15, item 9: every answer, `null`s and errors included, is what the served spec says
/// (types, formats, required fields, nullability, no undeclared field).
#[tokio::test]
async fn real_answers_match_the_spec() {
    let spec: Value = serde_json::from_str(&github_stats_server::api::spec_json()).unwrap();
    let answers = real_answers().await;
    let mut statuses = BTreeMap::new();
    let mut problems = Vec::new();
    for (uri, answer) in &answers {
        let path = uri.split(' ').next().unwrap();
        let template = template_of(&spec, path);
        *statuses.entry(answer.status.as_u16()).or_insert(0) += 1;
        match answer_schema(&spec, template, answer.status.as_u16()) {
            Ok(schema) => check(&spec, schema, &answer.body, uri, &mut problems),
            Err(e) => problems.push(format!("{uri}: {e}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Successes, bad input and an unreachable store were all checked.
    for status in [200, 400, 503] {
        assert!(
            statuses.contains_key(&status),
            "no {status} checked: {statuses:?}"
        );
    }
    // Null fields were among them.
    assert!(
        answers
            .iter()
            .any(|(_, a)| a.body["average_time_seconds"].is_null()
                && a.body["first_opened_at"].is_null()),
        "no null PR average checked"
    );
}

/// The checker above finds what it must: `null` where the schema does not allow it, a missing
/// or undeclared field, a wrong type or format, and it finds them in poem-openapi's own spec,
/// which the generator-friendly one fixes.
#[test]
fn the_spec_checker_finds_what_it_must() {
    let spec: Value = serde_json::from_str(&github_stats_server::api::spec_json()).unwrap();
    let schema = json!({"$ref": "#/components/schemas/PrAverageBody"});
    let good = json!({
        "repository": "a/b",
        "average_time_seconds": null,
        "total_pull_requests": 0,
        "first_opened_at": null,
        "last_opened_at": null
    });
    let mut problems = Vec::new();
    check(&spec, &schema, &good, "good", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    for (bad, words) in [
        (json!({"repository": "a/b"}), "required total_pull_requests"),
        (
            json!({"repository": null, "total_pull_requests": 1}),
            "not nullable",
        ),
        (
            json!({"repository": "a/b", "total_pull_requests": -1}),
            "is not a",
        ),
        (
            json!({"repository": "a/b", "total_pull_requests": 1.5}),
            "is not a",
        ),
        (
            json!({"repository": "a/b", "total_pull_requests": 1, "first_opened_at": "today"}),
            "is not a",
        ),
        (
            json!({"repository": "a/b", "total_pull_requests": 1, "extra": 1}),
            "not declared",
        ),
        (json!([]), "not an object"),
    ] {
        let mut problems = Vec::new();
        check(&spec, &schema, &bad, "bad", &mut problems);
        assert!(
            problems.iter().any(|p| p.contains(words)),
            "{bad}: expected {words:?} in {problems:?}"
        );
    }
    let health = json!({"$ref": "#/components/schemas/HealthBody"});
    let mut problems = Vec::new();
    let unknown_status = json!({
        "status": "fine", "is_connected": true, "backend_type": "memory", "total_events": 0,
        "store": {}
    });
    check(&spec, &health, &unknown_status, "health", &mut problems);
    assert!(
        problems.iter().any(|p| p.contains("is not one of")),
        "{problems:?}"
    );

    // poem-openapi's own spec refuses the null average of a real answer.
    let state = AppState::new(Arc::new(MemoryStore::new()));
    let raw_spec: Value = serde_json::from_str(
        &OpenApiService::new(
            (
                MetricsApi::new(&state),
                VisualizationApi::new(&state),
                HealthApi::new(&state),
                DebugApi::new(&state),
            ),
            "raw",
            "0",
        )
        .spec(),
    )
    .unwrap();
    let mut problems = Vec::new();
    check(&raw_spec, &schema, &good, "raw", &mut problems);
    assert!(
        problems.iter().any(|p| p.contains("not nullable")),
        "{problems:?}"
    );
}

/// The path of an operation's module in a client generated by openapi-python-client:
/// `get` and the path, every run of other characters than letters and digits as one `_`.
fn generated_operation(path: &str) -> String {
    let mut name = String::from("get");
    for c in path.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('_') {
            name.push('_');
        }
    }
    name.trim_end_matches('_').to_owned()
}

/// The virtualenv with openapi-python-client (scripts/openapi-client-venv.sh makes it once).
fn python_venv() -> PathBuf {
    let script = workspace().join("scripts/openapi-client-venv.sh");
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "cannot make the Python virtualenv of the generated-client test with {} (it needs \
         python3 with venv, and PyPI or a wheel cache): {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Issue #15, item 9: a client generated by openapi-python-client (from PyPI) from the spec the
/// server serves, without a warning, reads every answer of every JSON endpoint, `null`s and
/// errors included, back to the exact JSON sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_reads_every_answer() {
    let venv = python_venv();
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let address = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let app = api::app(
        AppState::new(recorded_store().await),
        Duration::from_secs(30),
    );
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    let base = format!("http://{address}");

    // The spec as served, and a client generated from it.
    let served = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let spec: Value = serde_json::from_str(&served).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openapi.json"), &served).unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        // No formatter run; the chart's SVG read as bytes (the generator has no SVG type).
        "post_hooks: []\ncontent_type_overrides:\n  \"image/svg+xml; charset=utf-8\": \
         application/octet-stream\n",
    )
    .unwrap();
    let package = "github_stats_client";
    let generated = Command::new(venv.join("bin/openapi-python-client"))
        .current_dir(dir.path())
        .args(["generate", "--path", "openapi.json", "--meta", "none"])
        .args(["--config", "config.yaml", "--output-path", package])
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    assert!(generated.status.success(), "{report}");
    for words in ["Warning", "Unable", "Cannot", "removal"] {
        assert!(
            !report.contains(words),
            "the generator says {words:?}: {report}"
        );
    }

    // Every GET of the spec answering JSON, with nulls and errors, through the client.
    let (many, one) = (
        repository_with_opened(None),
        repository_with_opened(Some(1)),
    );
    let split = |repo: &str| {
        let (owner, name) = repo.split_once('/').unwrap();
        json!({"owner": owner, "repo": name})
    };
    let until = "2015-01-01T13:00:00+00:00";
    let calls = [
        (
            "/metrics/pr-average/{owner}/{repo}",
            split(&many),
            200,
            "PrAverageBody",
        ),
        (
            "/metrics/pr-average/{owner}/{repo}",
            split(&one),
            200,
            "PrAverageBody",
        ),
        (
            "/metrics/pr-average/{owner}/{repo}",
            split("no-body/nothing"),
            200,
            "PrAverageBody",
        ),
        (
            "/metrics/pr-average/{owner}/{repo}",
            split("a/b c"),
            400,
            "ErrorBody",
        ),
        (
            "/metrics/pr-average/{owner}/{repo}",
            {
                let mut args = split(&many);
                args["since"] = json!("2015-01-01T12:30:00+00:00");
                args["until"] = json!(until);
                args
            },
            200,
            "PrAverageBody",
        ),
        (
            "/metrics/pr-average/{owner}/{repo}",
            {
                let mut args = split(&many);
                args["since"] = json!(until);
                args["until"] = json!("2015-01-01T12:30:00+00:00");
                args
            },
            400,
            "ErrorBody",
        ),
        (
            "/coverage",
            json!({"since": "2015-01-01T00:00:00+00:00", "until": until}),
            200,
            "CoverageBody",
        ),
        ("/coverage", json!({}), 200, "CoverageBody"),
        (
            "/coverage",
            json!({"since": "2014-01-01T00:00:00+00:00", "until": until}),
            400,
            "ErrorBody",
        ),
        (
            "/metrics/events",
            json!({"offset": 60, "until": until}),
            200,
            "EventCountsBody",
        ),
        ("/metrics/events", json!({"offset": 0}), 400, "ErrorBody"),
        (
            "/metrics/visualization",
            json!({"offset": 60, "until": until}),
            200,
            "TimelineBody",
        ),
        (
            "/metrics/visualization",
            json!({"offset": 60, "bucket_minutes": 0}),
            400,
            "ErrorBody",
        ),
        (
            "/metrics/visualization.svg",
            json!({"offset": 60, "until": until}),
            200,
            "bytes",
        ),
        ("/health", json!({}), 200, "HealthBody"),
        ("/debug/total-events", json!({}), 200, "TotalEventsBody"),
        (
            "/debug/repo-events/{owner}/{repo}",
            split(&many),
            200,
            "RepoEventsBody",
        ),
        (
            "/debug/repo-events/{owner}/{repo}",
            split("o'neil/repo"),
            400,
            "ErrorBody",
        ),
        (
            "/debug/repos-by-event-count",
            json!({"limit": 5}),
            200,
            "list[RepoEventCountBody]",
        ),
        (
            "/debug/repos-by-event-count",
            json!({"limit": 0}),
            400,
            "ErrorBody",
        ),
    ];
    let json_paths: Vec<&String> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, item)| {
            item["get"]["responses"]["200"]["content"]
                .as_object()
                .is_some_and(|c| c.keys().any(|t| t.starts_with("application/json")))
        })
        .map(|(path, _)| path)
        .collect();
    for path in &json_paths {
        assert!(
            calls.iter().any(|c| c.0 == path.as_str() && c.2 == 200),
            "GET {path} answers JSON but the generated client does not call it: add it here"
        );
    }
    let request: Vec<Value> = calls
        .iter()
        .map(|(path, args, _, _)| {
            let operation = &spec["paths"][path]["get"];
            let datetime_args: Vec<&Value> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["schema"]["format"] == "date-time")
                .map(|p| &p["name"])
                .filter(|name| args.get(name.as_str().unwrap()).is_some())
                .collect();
            json!({
                "tag": operation["tags"][0].as_str().unwrap().to_ascii_lowercase(),
                "operation": generated_operation(path),
                "args": args,
                "datetime_args": datetime_args,
            })
        })
        .collect();
    let run = Command::new(venv.join("bin/python"))
        .arg(workspace().join("github-stats-server/tests/api/openapi_client.py"))
        .arg(&base)
        .arg(package)
        .arg(serde_json::to_string(&request).unwrap())
        .env("PYTHONPATH", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let results: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), calls.len(), "{stdout}");
    for ((path, args, status, model), result) in calls.iter().zip(&results) {
        let what = format!("GET {path} {args}");
        assert!(
            result.get("error").is_none(),
            "{what}: the client failed: {}",
            result["error"]
        );
        assert_eq!(result["status"], *status, "{what}: {result}");
        assert_eq!(result["model"], *model, "{what}: {result}");
        if *model != "bytes" {
            assert_eq!(
                result["round_trip"], true,
                "{what}: the model does not give back the JSON sent: {result}"
            );
        }
    }
}

/// Issue #13, item 9: a query parameter that does not parse is answered in plain words; the
/// words come from `params::expectation`, which must know every query parameter of the spec.
#[test]
fn every_query_parameter_has_a_plain_message() {
    let spec: Value = serde_json::from_str(&github_stats_server::api::spec_json()).unwrap();
    let mut seen = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for parameter in item["get"]["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] != "query" {
                continue;
            }
            let name = parameter["name"].as_str().unwrap();
            let expected = api::params::expectation(name).unwrap_or_else(|| {
                panic!("{path}: query parameter {name} has no message in api::params::expectation")
            });
            assert!(
                expected.contains(&format!("such as {name}=")),
                "{name}: {expected}"
            );
            seen += 1;
        }
    }
    assert!(seen >= 8, "{seen} query parameters");
}

/// Issue #15, item 9, the shapes generators refuse, checked on the whole spec: a property that
/// may be absent must be nullable, and no `allOf` may mix a reference with an inline part.
#[test]
fn the_spec_has_no_shape_generators_refuse() {
    let spec: Value = serde_json::from_str(&github_stats_server::api::spec_json()).unwrap();
    for (name, schema) in spec["components"]["schemas"].as_object().unwrap() {
        let required: Vec<&Value> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        for (property, property_schema) in schema["properties"].as_object().into_iter().flatten() {
            if !required.contains(&&Value::String(property.clone())) {
                assert_eq!(
                    property_schema["nullable"], true,
                    "{name}.{property} may be absent but is not nullable"
                );
            }
            if let Some(parts) = property_schema["allOf"].as_array() {
                assert!(
                    parts.iter().all(|p| p.get("$ref").is_some()),
                    "{name}.{property}: allOf mixes a reference and an inline schema"
                );
            }
        }
    }
}
