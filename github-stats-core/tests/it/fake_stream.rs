//! A fake public event stream (poem on 127.0.0.1): real recorded events, under fresh ids,
//! published at a set rate, served as GitHub serves `/events`: the latest 300 in pages of 100,
//! an ETag per state of the stream (`304` to a match, free), and a rate budget of `limit`
//! requests per window that resets, stated in the `X-RateLimit-*` headers. Time is scaled:
//! one second of the stream lasts `time_unit`, as the poller's `GitHubConfig::time_unit`.
//!
//! Self-contained (no helper of the other fakes), so it can move to a test kit as it is.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use github_stats_core::conformance::fixtures;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Server};
use serde_json::Value;

/// Events a page holds, and pages the window holds.
pub const PAGE: u64 = 100;
pub const PAGES: u64 = 3;

/// The first id of the stream.
const FIRST_ID: u64 = 40_000_000_000;

/// What the fake stream does.
#[derive(Debug, Clone, Copy)]
pub struct StreamSpec {
    /// Events published a second (of the stream's time).
    pub events_per_second: f64,
    /// How long one second of the stream lasts.
    pub time_unit: Duration,
    /// Requests allowed per budget window (`X-RateLimit-Limit`).
    pub limit: u64,
    /// Seconds (of the stream's time) of a budget window.
    pub window_secs: u64,
}

/// A request the fake answered.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    /// Seconds of the stream's time since its start.
    pub at: f64,
    pub page: u64,
    pub status: u16,
    /// Events published when it was answered.
    pub published: u64,
    /// `X-RateLimit-Remaining` of the answer.
    pub remaining: u64,
}

struct State {
    spec: StreamSpec,
    start: Instant,
    /// Recorded events with their `"id"` removed, as JSON text without the opening brace.
    bodies: Vec<String>,
    window: u64,
    remaining: u64,
    served_ids: HashSet<u64>,
    log: Vec<Served>,
    /// The window's events as JSON text, oldest first, from index `rendered_from`: each is
    /// made once, so answering a page costs little of the stream's time.
    rendered: std::collections::VecDeque<String>,
    rendered_from: u64,
}

/// The running fake; stops when dropped.
pub struct FakeStream {
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeStream {
    pub async fn start(spec: StreamSpec) -> FakeStream {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind the fake stream");
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let url = format!("http://{addr}");
        let mut bodies = Vec::new();
        for relative in [
            "api-responses/events-2026-01-25.json",
            "api-responses/events-2020-04-25/01.body.json",
            "api-responses/events-2017-12-29/01.body.json",
        ] {
            for mut event in fixtures::json_records(relative) {
                if let Value::Object(map) = &mut event {
                    map.remove("id");
                }
                let text = serde_json::to_string(&event).unwrap();
                bodies.push(text[1..].to_owned());
            }
        }
        assert!(bodies.len() >= 80, "recorded events: {}", bodies.len());
        let state = Arc::new(Mutex::new(State {
            spec,
            start: Instant::now(),
            bodies,
            window: 0,
            remaining: spec.limit,
            served_ids: HashSet::new(),
            log: Vec::new(),
            rendered: std::collections::VecDeque::new(),
            rendered_from: 0,
        }));
        let endpoint_state = Arc::clone(&state);
        let base = url.clone();
        let endpoint = poem::endpoint::make(move |req: Request| {
            let state = Arc::clone(&endpoint_state);
            let base = base.clone();
            async move { answer(&state, &base, &req) }
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    endpoint,
                    async {
                        let _ = stopped.await;
                    },
                    Some(Duration::from_millis(100)),
                )
                .await;
        });
        FakeStream {
            url,
            state,
            stop: Some(stop),
        }
    }

    /// Every request answered, in order.
    pub fn log(&self) -> Vec<Served> {
        self.state.lock().unwrap().log.clone()
    }

    /// The ids of the events served so far.
    pub fn served_ids(&self) -> HashSet<u64> {
        self.state.lock().unwrap().served_ids.clone()
    }

    /// The JSON text the fake serves for the event `id`.
    pub fn event_text(&self, id: u64) -> String {
        self.state.lock().unwrap().event(id - FIRST_ID)
    }

    /// Distinct events served so far.
    pub fn served_events(&self) -> u64 {
        self.state.lock().unwrap().served_ids.len() as u64
    }
}

impl Drop for FakeStream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl State {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() / self.spec.time_unit.as_secs_f64()
    }

    /// Events published by `now`: a full window's worth from the start (the stream ran
    /// before), then the rate.
    fn published(&self, now: f64) -> u64 {
        PAGE * PAGES + (self.spec.events_per_second * now) as u64
    }

    fn event(&self, index: u64) -> String {
        let body = &self.bodies[(index % self.bodies.len() as u64) as usize];
        format!("{{\"id\":\"{}\",{body}", FIRST_ID + index)
    }

    /// Renders the events up to `published`, keeping the window's.
    fn render(&mut self, published: u64) {
        let oldest = published.saturating_sub(PAGE * PAGES);
        let next = self.rendered_from + self.rendered.len() as u64;
        for index in next.max(oldest)..published {
            let event = self.event(index);
            self.rendered.push_back(event);
        }
        if next < oldest {
            self.rendered.clear();
            self.rendered_from = oldest;
            for index in oldest..published {
                let event = self.event(index);
                self.rendered.push_back(event);
            }
        }
        while self.rendered_from < oldest {
            self.rendered.pop_front();
            self.rendered_from += 1;
        }
    }
}

fn answer(state: &Mutex<State>, base: &str, req: &Request) -> Response {
    let page: u64 = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let if_none_match = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut state = state.lock().unwrap();
    let now = state.now();
    let window = (now / state.spec.window_secs as f64) as u64;
    if window != state.window {
        state.window = window;
        state.remaining = state.spec.limit;
    }
    // The reset as GitHub states it: a Unix time in whole seconds. The poller measures the
    // distance to it against its clock and scales it; so is it sent here.
    let to_reset = (window + 1) as f64 * state.spec.window_secs as f64 - now;
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let reset = (wall + to_reset).round() as u64;
    let published = state.published(now);
    let etag = format!("W/\"{published}\"");

    let (status, body) = if page == 1 && if_none_match.as_deref() == Some(etag.as_str()) {
        (304, String::new())
    } else if state.remaining == 0 {
        (403, r#"{"message":"API rate limit exceeded"}"#.to_owned())
    } else {
        state.remaining -= 1;
        let newest = published.saturating_sub((page - 1) * PAGE);
        let oldest = published
            .saturating_sub(page * PAGE)
            .max(published.saturating_sub(PAGE * PAGES));
        state.render(published);
        let mut body = String::from("[");
        for index in (oldest..newest).rev() {
            if body.len() > 1 {
                body.push(',');
            }
            let text = &state.rendered[(index - state.rendered_from) as usize];
            body.push_str(text);
        }
        state
            .served_ids
            .extend((oldest..newest).map(|i| FIRST_ID + i));
        body.push(']');
        (200, body)
    };
    let remaining = state.remaining;
    state.log.push(Served {
        at: now,
        page,
        status,
        published,
        remaining,
    });
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("X-RateLimit-Limit", state.spec.limit)
        .header("X-RateLimit-Remaining", state.remaining)
        .header("X-RateLimit-Reset", reset)
        .header("X-Poll-Interval", 60);
    if status != 403 {
        builder = builder.header("ETag", etag.as_str());
    }
    if status == 200 {
        builder = builder.header("Content-Type", "application/json; charset=utf-8");
        if page < PAGES {
            builder = builder.header(
                "Link",
                format!(
                    "<{base}/events?per_page=100&page={}>; rel=\"next\", <{base}/events?per_page=100&page={PAGES}>; rel=\"last\"",
                    page + 1
                ),
            );
        }
    }
    builder.body(body)
}
