//! `github-stats-backfill`: see the library ([`github_stats_backfill`]) and `docs/backfill.md`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use github_stats_backfill::ProgressMode;
use github_stats_backfill::cli::Parsed;
use github_stats_cli::LogFormat;
use tokio_util::sync::CancellationToken;

/// Exit code of an interrupted import (128 + SIGINT).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    // Before any thread starts: the dotenv file writes the process environment.
    let (parsed, dotenv) = match Parsed::load(std::env::args_os()) {
        Ok(loaded) => loaded,
        Err(e) => return ExitCode::from(e.report("github-stats-backfill")),
    };
    parsed.args.log.init();
    if let Some(path) = &dotenv {
        tracing::debug!(file = %path.display(), "dotenv file loaded");
    }
    let log_format = parsed.args.log.format().unwrap_or_default();

    // A bar would break JSON lines: a log shipper reads stderr even from a terminal session.
    let progress = if std::io::stderr().is_terminal() && log_format == LogFormat::Text {
        ProgressMode::Bar
    } else {
        ProgressMode::Log {
            every: Duration::from_secs(10),
        }
    };
    let config = match parsed.into_config(progress) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot start");
            return ExitCode::from(1);
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("interrupt received: stopping after the current batch (press Ctrl-C again to quit now)");
                on_signal.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(i32::from(INTERRUPTED));
                }
            }
        });
        match github_stats_backfill::run(config, cancel).await {
            Ok(summary) => {
                tracing::info!(
                    files = summary.files,
                    files_read = summary.files_read,
                    files_failed = summary.failed.len(),
                    records = summary.stats.records,
                    kept = summary.stats.kept_total(),
                    inserted = summary.inserted,
                    duplicates = summary.duplicates,
                    malformed = summary.stats.malformed,
                    invalid = summary.stats.invalid,
                    unsupported = summary.stats.unsupported,
                    elapsed_ms = summary.elapsed.as_millis() as u64,
                    interrupted = summary.interrupted,
                    "backfill done"
                );
                println!("{summary}");
                summary.exit_code()
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "backfill failed");
                1
            }
        }
    });
    // Reader threads may be blocked on a slow file after Ctrl-C: do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}
