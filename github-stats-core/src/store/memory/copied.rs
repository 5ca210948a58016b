//! What the store reads of an event, from an [`Event`] or from [`CopiedEvents`]: the copy an
//! async insert hands to the blocking pool. The copy keeps the strings of all its events in one
//! buffer: two allocations for a batch instead of two per event, a third of the cost of cloning
//! the events.

use crate::event::{Event, EventType, InvalidEvent, check_storable_fields};

/// The fields of an event the store keeps.
pub(crate) trait EventFields {
    fn id(&self) -> u64;
    /// `created_at`, in seconds since the epoch.
    fn timestamp(&self) -> i64;
    fn event_type(&self) -> EventType;
    fn repo_id(&self) -> u64;
    fn repo_name(&self) -> &str;
    fn action(&self) -> &str;

    /// Whether this event opens a pull request.
    fn is_pull_request_opened(&self) -> bool {
        self.event_type() == EventType::PullRequestEvent && self.action() == "opened"
    }

    /// [`Event::check_storable`]: whether the log and the indexes can hold it as it is.
    fn check_storable(&self) -> Result<(), InvalidEvent> {
        check_storable_fields(self.repo_name(), self.action(), self.timestamp())
    }
}

impl EventFields for Event {
    fn id(&self) -> u64 {
        self.id
    }
    fn timestamp(&self) -> i64 {
        Event::timestamp(self)
    }
    fn event_type(&self) -> EventType {
        self.event_type
    }
    fn repo_id(&self) -> u64 {
        self.repo_id
    }
    fn repo_name(&self) -> &str {
        &self.repo_name
    }
    fn action(&self) -> &str {
        &self.action
    }
}

/// Events copied out of a borrowed slice.
pub(super) struct CopiedEvents {
    rows: Vec<Row>,
    text: String,
}

struct Row {
    id: u64,
    repo_id: u64,
    timestamp: i64,
    event_type: EventType,
    /// The name, then the action, from here in `text`.
    start: usize,
    name_len: usize,
    action_len: usize,
}

impl CopiedEvents {
    pub(super) fn new(events: &[Event]) -> CopiedEvents {
        let text_len = events
            .iter()
            .map(|e| e.repo_name.len() + e.action.len())
            .sum();
        let mut text = String::with_capacity(text_len);
        let rows = events
            .iter()
            .map(|e| {
                let start = text.len();
                text.push_str(&e.repo_name);
                text.push_str(&e.action);
                Row {
                    id: e.id,
                    repo_id: e.repo_id,
                    timestamp: e.timestamp(),
                    event_type: e.event_type,
                    start,
                    name_len: e.repo_name.len(),
                    action_len: e.action.len(),
                }
            })
            .collect();
        CopiedEvents { rows, text }
    }

    /// The events, to read through [`EventFields`].
    pub(super) fn events(&self) -> Vec<CopiedEvent<'_>> {
        self.rows
            .iter()
            .map(|row| CopiedEvent {
                row,
                text: &self.text,
            })
            .collect()
    }
}

/// One event of [`CopiedEvents`].
pub(super) struct CopiedEvent<'a> {
    row: &'a Row,
    text: &'a str,
}

impl EventFields for CopiedEvent<'_> {
    fn id(&self) -> u64 {
        self.row.id
    }
    fn timestamp(&self) -> i64 {
        self.row.timestamp
    }
    fn event_type(&self) -> EventType {
        self.row.event_type
    }
    fn repo_id(&self) -> u64 {
        self.row.repo_id
    }
    fn repo_name(&self) -> &str {
        &self.text[self.row.start..self.row.start + self.row.name_len]
    }
    fn action(&self) -> &str {
        let start = self.row.start + self.row.name_len;
        &self.text[start..start + self.row.action_len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::event;

    #[test]
    fn a_copy_reads_back_every_field() {
        let events = [
            event(
                1,
                EventType::PullRequestEvent,
                "a/b",
                1_700_000_000,
                "opened",
            ),
            event(2, EventType::WatchEvent, "ü/é", 1_700_000_001, ""),
            event(3, EventType::IssuesEvent, "", 1_700_000_002, "closed"),
        ];
        let copy = CopiedEvents::new(&events);
        let read: Vec<_> = copy
            .events()
            .iter()
            .map(|e| {
                (
                    e.id(),
                    e.timestamp(),
                    e.event_type(),
                    e.repo_id(),
                    e.repo_name().to_owned(),
                    e.action().to_owned(),
                    e.is_pull_request_opened(),
                )
            })
            .collect();
        let expected: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.id,
                    e.timestamp(),
                    e.event_type,
                    e.repo_id,
                    e.repo_name.clone(),
                    e.action.clone(),
                    e.is_pull_request_opened(),
                )
            })
            .collect();
        assert_eq!(read, expected);
    }
}
