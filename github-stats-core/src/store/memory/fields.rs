//! What the store reads of an event ([`EventFields`]): the fields of an [`Event`], or of a
//! record of the event log being replayed.

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
