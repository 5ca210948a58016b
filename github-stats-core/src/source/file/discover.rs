//! Finding event files: what counts as one, how several are ordered (by the time in their
//! names), and walking directories without following what is not a regular file.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::source::SourceError;

/// The sort key of an event file: the time in its name (poll files
/// `YYYY-MM-DDTHH-MM-SS.json`, GH Archive `YYYY-MM-DD-H.json.gz`), then the name. Files without
/// a time in their name sort after those with one.
pub(crate) fn file_order_key(path: &Path) -> (bool, [u32; 6], String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match time_in_name(&name) {
        Some(t) => (false, t, name),
        None => (true, [0; 6], name),
    }
}

/// `[year, month, day, hour, minute, second]` from a leading `YYYY-MM-DD[-H|THH-MM-SS]`.
pub(super) fn time_in_name(name: &str) -> Option<[u32; 6]> {
    let mut parts = [0u32; 6];
    let mut rest = name;
    for (i, part) in parts.iter_mut().enumerate() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return if i >= 3 { Some(parts) } else { None };
        }
        *part = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        match rest.as_bytes().first() {
            Some(b'-') | Some(b'T') | Some(b':') if i < 5 => rest = &rest[1..],
            _ => return if i >= 2 { Some(parts) } else { None },
        }
    }
    Some(parts)
}

/// Whether `path` names a file this source reads (`.json`, `.jsonl`, `.ndjson`, optionally
/// `.gz`).
pub(crate) fn is_event_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    name.ends_with(".json") || name.ends_with(".jsonl") || name.ends_with(".ndjson")
}

/// Expands `inputs` (files and directories, walked recursively, following symbolic links) into
/// event files in chronological order. A named file is taken whatever its extension and type (a
/// named pipe, `<(zcat …)`, is read as asked); in directories, only regular event files (`.json`,
/// `.jsonl` or `.ndjson`, each maybe `.gz`). Returned as errors, so the caller can name them:
/// paths that do not exist or cannot be listed, event files in directories that are not regular
/// files (nobody writes a forgotten FIFO: reading it would block forever; a device may never
/// end), and directory symbolic links that lead back to a directory being walked (a loop).
pub fn collect_event_files(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<SourceError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut walked = HashSet::new();
    for input in inputs {
        match std::fs::metadata(input) {
            Ok(meta) if meta.is_dir() => {
                let mut ancestors = Vec::new();
                walk(input, &mut ancestors, &mut walked, &mut files, &mut errors);
            }
            Ok(_) => files.push(input.clone()),
            Err(source) => errors.push(SourceError::File {
                path: input.clone(),
                source,
            }),
        }
    }
    files.sort_by_cached_key(|p| (file_order_key(p), p.clone()));
    files.dedup();
    (files, errors)
}

pub(super) fn not_regular(path: &Path) -> SourceError {
    SourceError::File {
        path: path.to_path_buf(),
        source: not_regular_error(),
    }
}

pub(super) fn not_regular_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a regular file (a FIFO, socket or device), skipped",
    )
}

/// Walks `dir`. `ancestors` are the canonical paths of the directories being walked (a link to
/// one of them is a loop); `walked` every directory walked already (a second link to one adds
/// nothing).
pub(super) fn walk(
    dir: &Path,
    ancestors: &mut Vec<PathBuf>,
    walked: &mut HashSet<PathBuf>,
    files: &mut Vec<PathBuf>,
    errors: &mut Vec<SourceError>,
) {
    let canonical = match std::fs::canonicalize(dir) {
        Ok(canonical) => canonical,
        Err(source) => {
            errors.push(SourceError::File {
                path: dir.to_path_buf(),
                source,
            });
            return;
        }
    };
    if ancestors.contains(&canonical) {
        errors.push(SourceError::File {
            path: dir.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a directory symbolic link loop (back to {}), not followed",
                    canonical.display()
                ),
            ),
        });
        return;
    }
    if !walked.insert(canonical.clone()) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            errors.push(SourceError::File {
                path: dir.to_path_buf(),
                source,
            });
            return;
        }
    };
    ancestors.push(canonical);
    for entry in entries.flatten() {
        let path = entry.path();
        // Follows symbolic links: a linked directory is walked, a linked file read.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, ancestors, walked, files, errors),
            Ok(meta) if meta.is_file() && is_event_file(&path) => files.push(path),
            Ok(_) if is_event_file(&path) => errors.push(not_regular(&path)),
            // A dangling link, or a link loop, named as an event file.
            Err(source) if is_event_file(&path) => errors.push(SourceError::File { path, source }),
            _ => {}
        }
    }
    ancestors.pop();
}
