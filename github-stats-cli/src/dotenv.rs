//! The dotenv file (`--dotenv PATH`), loaded before clap reads the environment, and the errors
//! of a configuration.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Args;

/// `--dotenv PATH`.
#[derive(Debug, Clone, Args)]
pub struct DotenvArgs {
    /// Load environment variables from this dotenv file first (variables already set win); a
    /// missing file is an error.
    #[arg(long, value_name = "PATH")]
    pub dotenv: Option<PathBuf>,
}

/// Why a configuration was refused. [`ConfigError::report`] prints it and gives the exit code:
/// 2, as clap does for bad usage (0 for `--help` and `--version`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Bad flags or values that clap rejected (its own message, with usage), or `--help`.
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// The dotenv file could not be loaded.
    #[error("cannot load dotenv file {path}: {reason}")]
    Dotenv {
        /// The file.
        path: PathBuf,
        /// The cause (never a line of the file: it may hold a secret).
        reason: String,
    },
    /// Values that parse but cannot work, one line each.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl ConfigError {
    /// Whether this is clap's `--help` or `--version` (printed to stdout, exit code 0).
    pub fn is_help_or_version(&self) -> bool {
        matches!(self, ConfigError::Usage(e) if !e.use_stderr())
    }

    /// Prints the error, clap's way for usage errors and `--help`, else each line after
    /// `program: ` on stderr, and returns the exit code (0 for `--help`, else 2).
    pub fn report(&self, program: &str) -> u8 {
        match self {
            ConfigError::Usage(e) => {
                let _ = e.print();
                if e.use_stderr() { 2 } else { 0 }
            }
            other => {
                for line in other.to_string().lines() {
                    eprintln!("{program}: {line}");
                }
                2
            }
        }
    }
}

/// Parses `args` (the program name first) into `C`, after [`load_dotenv`]. Returns the file
/// loaded.
pub fn parse<C: clap::Parser>(
    args: impl IntoIterator<Item = impl Into<OsString>>,
    default_dotenv: Option<&Path>,
) -> Result<(C, Option<PathBuf>), ConfigError> {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let loaded = load_dotenv(&args, default_dotenv)?;
    Ok((C::try_parse_from(args)?, loaded))
}

/// Loads the dotenv file named by `--dotenv PATH` (or `--dotenv=PATH`) in `args`, or else
/// `default_dotenv` when it exists, into the process environment (variables already set win),
/// and returns the file loaded. A missing file named by `--dotenv` is an error; a missing
/// default file is not.
///
/// Call it before any thread starts (it writes the process environment), and before clap reads
/// the environment.
pub fn load_dotenv(
    args: &[OsString],
    default_dotenv: Option<&Path>,
) -> Result<Option<PathBuf>, ConfigError> {
    match dotenv_argument(args) {
        Some(path) => load(&path).map(|()| Some(path)),
        None => match default_dotenv {
            Some(path) if path.exists() => load(path).map(|()| Some(path.to_path_buf())),
            _ => Ok(None),
        },
    }
}

fn load(path: &Path) -> Result<(), ConfigError> {
    dotenvy::from_path(path).map_err(|e| ConfigError::Dotenv {
        path: path.to_path_buf(),
        reason: match e {
            // Its message quotes the line, which may be a password's.
            dotenvy::Error::LineParse(line, at) => {
                let name: String = line
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                format!("the line of {name:?} is not NAME=VALUE (at character {at})")
            }
            other => other.to_string(),
        },
    })
}

/// The path given to `--dotenv PATH` or `--dotenv=PATH`, found before clap parses anything (the
/// file must be loaded before clap reads the environment).
fn dotenv_argument(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            return None;
        }
        if arg == "--dotenv" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--dotenv=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        dotenv: DotenvArgs,
        #[arg(long, env = "GITHUB_STATS_CLI_DOTENV_TEST")]
        value: Option<String>,
    }

    #[test]
    fn the_dotenv_argument_is_found_in_both_forms() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            dotenv_argument(&args(&["x", "--no-poll", "--dotenv", "gh.env"])),
            Some(PathBuf::from("gh.env"))
        );
        assert_eq!(
            dotenv_argument(&args(&["x", "--dotenv=a.env"])),
            Some(PathBuf::from("a.env"))
        );
        assert_eq!(dotenv_argument(&args(&["x", "--", "--dotenv=a.env"])), None);
        assert_eq!(dotenv_argument(&args(&["x", "--no-poll"])), None);
    }

    #[test]
    fn files_feed_the_environment_and_errors_say_which_file_without_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.env");
        std::fs::write(&good, "GITHUB_STATS_CLI_DOTENV_TEST=from-file\n").unwrap();
        let (cli, loaded) =
            parse::<Cli>(["x".as_ref(), "--dotenv".as_ref(), good.as_os_str()], None).unwrap();
        assert_eq!(cli.value.as_deref(), Some("from-file"));
        assert_eq!(loaded.as_deref(), Some(good.as_path()));

        let missing = dir.path().join("missing.env");
        let err = parse::<Cli>(
            ["x".as_ref(), "--dotenv".as_ref(), missing.as_os_str()],
            None,
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Dotenv { .. }), "{err}");
        assert!(err.to_string().contains("missing.env"), "{err}");
        // A missing default file is fine.
        let (_, loaded) = parse::<Cli>(["x"], Some(&missing)).unwrap();
        assert_eq!(loaded, None);

        let broken = dir.path().join("broken.env");
        std::fs::write(&broken, "GITHUB_STATS_CLI_DOTENV_BROKEN='hunter2\n").unwrap();
        let err = parse::<Cli>(["x"], Some(&broken)).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("GITHUB_STATS_CLI_DOTENV_BROKEN"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");

        let help = parse::<Cli>(["x", "--help"], None).unwrap_err();
        assert!(help.is_help_or_version());
        let usage = parse::<Cli>(["x", "--nope"], None).unwrap_err();
        assert!(!usage.is_help_or_version());
    }
}
