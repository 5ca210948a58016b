//! `github-stats-backfill`: see the library ([`github_stats_backfill`]) and `docs/backfill.md`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::CommandFactory;
use github_stats_backfill::ProgressMode;
use github_stats_backfill::cli::{Args, Backend, DotenvOutcome, LogFormat, Parsed, load_dotenv};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Exit code of an interrupted import (128 + SIGINT).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    // First pass: only to find `--dotenv` (and to answer `--help` or a usage error, exit 2).
    let first = Parsed::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
    // Before any thread starts: this writes the process environment.
    let dotenv = match load_dotenv(first.args.dotenv.as_deref()) {
        Ok(outcome) => outcome,
        Err(e) => {
            let _ = Args::command()
                .error(clap::error::ErrorKind::Io, format!("{e:#}"))
                .print();
            return ExitCode::from(2);
        }
    };
    // Second pass: the environment fallbacks now see the dotenv file.
    let parsed = Parsed::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
    if parsed.args.recount && parsed.args.backend != Backend::Clickhouse {
        Args::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--recount corrects ClickHouse tables: it needs --backend clickhouse \
                 (or DATABASE_BACKEND=clickhouse)",
            )
            .exit();
    }
    let log_format = parsed.args.log_format;
    init_tracing(log_format);
    if let DotenvOutcome::Loaded(path) = &dotenv {
        tracing::debug!(file = %path.display(), "dotenv file loaded");
    }

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

/// Logs to stderr, as text or JSON lines: `RUST_LOG` when set, else `LOG_LEVEL`, else `info`.
fn init_tracing(format: LogFormat) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| std::env::var("LOG_LEVEL").ok())
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "info".into());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
