//! The bench of issue #22: how much of a public event stream each poll mode reads, and what it
//! spends, against the fake stream of the tests (`tests/it/fake_stream.rs`): recorded events
//! published at 100 and 200 events a second, GitHub's 300-event window, ETags, and GitHub's
//! budget of 5,000 requests an hour scaled to 200 per 144 s.
//!
//! ```sh
//! cargo run --release -p github-stats-core --example stream_capture [-- UNIT_MS]
//! ```
//!
//! `UNIT_MS` (20 by default) is how long a second of the stream lasts: two budget windows
//! (288 s of the stream) then take `288 × UNIT_MS` per run, four runs in all. Results go in
//! `benches/README.md`.

// The tests' own fake, shared as it is; the bench uses part of what the tests do.
#[allow(dead_code)]
#[path = "../tests/it/fake_stream.rs"]
mod fake_stream;

use std::time::Duration;

use fake_stream::{FakeStream, PAGE, StreamSpec};
use github_stats_core::source::github::PollMode;
use github_stats_core::{EventSource, GitHubConfig, GitHubPoller};

const LIMIT: u64 = 200;
const WINDOW_SECS: u64 = 144;
const WINDOWS: u64 = 2;

struct Outcome {
    read: u64,
    published: u64,
    requests: u64,
    refused: u64,
    estimate: Option<f64>,
}

async fn run(mode: PollMode, events_per_second: f64, unit: Duration) -> Outcome {
    let fake = FakeStream::start(StreamSpec {
        events_per_second,
        time_unit: unit,
        limit: LIMIT,
        window_secs: WINDOW_SECS,
    })
    .await;
    let mut config = GitHubConfig::new(&fake.url);
    config.time_unit = unit;
    config.mode = mode;
    config.token = Some("ghp_fake".into());
    // Nothing else shares the token.
    config.reserve = Some(0);
    let poller = GitHubPoller::new(config).expect("a poller");
    let end = tokio::time::Instant::now() + unit.mul_f64((WINDOWS * WINDOW_SECS) as f64);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            polled = poller.next_batch() => if let Err(e) = polled {
                eprintln!("poll failed: {e}");
            },
        }
    }
    let status = poller.status().snapshot();
    let log = fake.log();
    let page_ones: Vec<_> = log
        .iter()
        .filter(|s| s.page == 1 && s.status != 403)
        .collect();
    Outcome {
        read: status.counters.new_events,
        published: page_ones[status.counters.polls as usize - 1].published,
        requests: log.iter().filter(|s| s.status == 200).count() as u64,
        refused: log.iter().filter(|s| s.status == 403).count() as u64,
        estimate: status.capture.seen_share,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let unit_ms: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("UNIT_MS, a number of milliseconds"))
        .unwrap_or(20);
    let unit = Duration::from_millis(unit_ms);
    println!(
        "budget {LIMIT} requests per {WINDOW_SECS} s (5,000 an hour), {WINDOWS} windows, reserve 0, a stream second = {unit_ms} ms"
    );
    println!();
    println!(
        "| mode | stream | share read | seen_share estimate | requests | requests per 1,000 events read | of what the budget allows |"
    );
    println!("|---|---|---|---|---|---|---|");
    for rate in [100.0, 200.0] {
        for mode in [PollMode::Interval, PollMode::Adaptive] {
            let o = run(mode, rate, unit).await;
            let allowed = (WINDOWS * LIMIT * PAGE).min(o.published);
            println!(
                "| {} | {rate} events/s | {:.1}% ({} of {}) | {} | {}{} | {:.2} | {:.1}% |",
                mode.as_str(),
                100.0 * o.read as f64 / o.published as f64,
                o.read,
                o.published,
                o.estimate
                    .map_or("unknown".to_owned(), |s| format!("{:.1}%", 100.0 * s)),
                o.requests,
                if o.refused > 0 {
                    format!(" ({} refused)", o.refused)
                } else {
                    String::new()
                },
                1000.0 * o.requests as f64 / o.read as f64,
                100.0 * o.read as f64 / allowed as f64,
            );
        }
    }
}
