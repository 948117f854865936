//! Reading the event and audit logs: one filter ([`EventFilter`]) for every read, pages for the API,
//! the newest events of a window for GetContainer and the dashboard, a whole period for analytics, and the
//! live tail for WatchEvents and the dashboard's stream. Every read goes through the journal's one scan or
//! its one tail.

use std::collections::VecDeque;
use std::ops::ControlFlow;

use super::validation::{check_name, check_period};
use super::{Fleet, FleetError};
use crate::events::{EventId, EventKind, EventRecord, Outcome, StoredEvent};
use crate::remediation::journal::{Log, Tail, from_time};

/// Events a page holds when the request does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most events one page holds.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// The most events one page examines when filtering, so a narrow filter cannot scan forever (the next
/// page reads on from where it stopped).
const PAGE_SCAN: usize = 20_000;
/// The most events a read of a window examines, so no request can scan forever.
const WINDOW_SCAN: usize = 500_000;

/// How a filter matches a container's name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NameMatch {
    /// Any container (and events about no container).
    #[default]
    Any,
    /// Exactly this name: FleetService's filters.
    Exactly(String),
    /// Names that contain this, ignoring case (held lowercase): the dashboard's search box.
    Containing(String),
}

impl NameMatch {
    /// Exactly `name`; an empty name matches any.
    pub fn exactly(name: String) -> Self {
        if name.is_empty() { NameMatch::Any } else { NameMatch::Exactly(name) }
    }

    /// Names containing `text`, ignoring case; an empty text matches any.
    pub fn containing(text: &str) -> Self {
        if text.is_empty() { NameMatch::Any } else { NameMatch::Containing(text.to_lowercase()) }
    }

    fn text(&self) -> &str {
        match self {
            NameMatch::Any => "",
            NameMatch::Exactly(text) | NameMatch::Containing(text) => text,
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            NameMatch::Any => true,
            NameMatch::Exactly(exact) => name == exact,
            NameMatch::Containing(part) => name.to_lowercase().contains(part.as_str()),
        }
    }
}

/// Which events a read selects. Node names match exactly; container names as [`NameMatch`] says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// These types only; empty: every type.
    pub types: Vec<EventKind>,
    /// Exactly this node; empty: any.
    pub node: String,
    /// These containers.
    pub container: NameMatch,
    /// Only `remediation_complete` events with this outcome.
    pub outcome: Option<Outcome>,
}

impl EventFilter {
    /// Refuses names too long to be names.
    pub fn check(&self) -> Result<(), FleetError> {
        check_name("node", &self.node)?;
        check_name("container", self.container.text())
    }

    /// Whether `record` passes the type, node, container and outcome filters.
    pub fn matches(&self, r: &EventRecord) -> bool {
        (self.types.is_empty() || self.types.contains(&r.kind))
            && (self.node.is_empty() || r.node == self.node)
            && self.container.matches(&r.container_name)
            && self.outcome.is_none_or(|outcome| r.outcome == Some(outcome))
    }
}

/// A request for one page of a log, oldest first.
#[derive(Clone, Debug, Default)]
pub struct PageQuery {
    /// Which events.
    pub filter: EventFilter,
    /// Events per page; 0: [`DEFAULT_PAGE_SIZE`].
    pub page_size: u32,
    /// Read on after this event (where the previous page stopped); `None`: from `since_ms`, or the start.
    pub after: Option<EventId>,
    /// Only events at or after this time (Unix ms), for the first page.
    pub since_ms: Option<u64>,
    /// Only events before this time (Unix ms).
    pub until_ms: Option<u64>,
}

/// One page of a log.
#[derive(Clone, Debug, PartialEq)]
pub struct EventPage {
    /// The matching events, oldest first.
    pub events: Vec<StoredEvent>,
    /// Where the next page starts reading: the last event examined (or where this page started).
    pub next: Option<EventId>,
}

/// The newest matching events of a window.
#[derive(Clone, Debug, PartialEq)]
pub struct NewestEvents {
    /// The newest matching events, oldest first.
    pub events: Vec<StoredEvent>,
    /// How many events matched in the window in all.
    pub matched: u64,
    /// Whether the read stopped at its limit before the window's end.
    pub truncated: bool,
}

impl Fleet {
    /// One page of `log` matching `query`, oldest first.
    pub async fn page(&self, log: Log, query: &PageQuery) -> Result<EventPage, FleetError> {
        query.filter.check()?;
        check_period(query.since_ms, query.until_ms)?;
        let page_size = match query.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(FleetError::Invalid(format!("page_size {n} is above the maximum of {MAX_PAGE_SIZE}")));
            }
            n => n,
        } as usize;
        let start =
            query.after.or_else(|| query.since_ms.map(|ms| EventId { ms: ms.saturating_sub(1), seq: u64::MAX }));
        let mut events = Vec::new();
        let end = self
            .journal()
            .scan(log, start, query.until_ms, PAGE_SCAN, |event| {
                if query.filter.matches(&event.record) {
                    events.push(event);
                    if events.len() == page_size {
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            })
            .await?;
        Ok(EventPage { events, next: end.last })
    }

    /// The newest `limit` events matching `filter` from `since_ms` (included) to `until_ms` (excluded).
    pub async fn newest_events(
        &self,
        filter: &EventFilter,
        since_ms: u64,
        until_ms: Option<u64>,
        limit: usize,
    ) -> Result<NewestEvents, FleetError> {
        filter.check()?;
        check_period(Some(since_ms), until_ms)?;
        let mut newest: VecDeque<StoredEvent> = VecDeque::with_capacity(limit.min(1024));
        let mut matched = 0;
        let end = self
            .journal()
            .scan(Log::Events, from_time(since_ms), until_ms, WINDOW_SCAN, |event| {
                if filter.matches(&event.record) {
                    matched += 1;
                    if newest.len() == limit {
                        newest.pop_front();
                    }
                    if limit > 0 {
                        newest.push_back(event);
                    }
                }
                ControlFlow::Continue(())
            })
            .await?;
        Ok(NewestEvents { events: newest.into(), matched, truncated: end.truncated })
    }

    /// Every event of `log` from `since_ms` (included) to `until_ms` (excluded), oldest first; refused when
    /// the window holds too many to read exactly.
    pub async fn window(&self, log: Log, since_ms: u64, until_ms: u64) -> Result<Vec<StoredEvent>, FleetError> {
        check_period(Some(since_ms), Some(until_ms))?;
        let mut events = Vec::new();
        let end = self
            .journal()
            .scan(log, from_time(since_ms), Some(until_ms), WINDOW_SCAN, |event| {
                events.push(event);
                ControlFlow::Continue(())
            })
            .await?;
        if end.truncated {
            return Err(FleetError::TooBroad(
                "the period holds too many events to count exactly; choose a shorter one".into(),
            ));
        }
        Ok(events)
    }

    /// The event `id`.
    pub async fn event(&self, id: EventId) -> Result<StoredEvent, FleetError> {
        self.journal()
            .event(id)
            .await?
            .ok_or_else(|| FleetError::NotFound(format!("no event {id} in the log (it may have been trimmed)")))
    }

    /// The events after `after` (from the start when `None`) that match `filter`, live, as they are
    /// recorded (by this coordinator or any other on the store).
    pub fn watch(&self, after: Option<EventId>, filter: EventFilter) -> Result<Tail, FleetError> {
        filter.check()?;
        Ok(self.journal().tail(after, move |record| filter.matches(record)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: EventKind, node: &str, container: &str) -> EventRecord {
        EventRecord::new(kind, node, "id", container, "why")
    }

    #[test]
    fn one_filter_matches_type_node_container_and_outcome() {
        let filter = EventFilter {
            types: vec![EventKind::RemediationComplete, EventKind::Rejected],
            node: "host-a".into(),
            container: NameMatch::exactly("web".into()),
            outcome: Some(Outcome::Success),
        };
        let mut done = record(EventKind::RemediationComplete, "host-a", "web");
        done.outcome = Some(Outcome::Success);
        assert!(filter.matches(&done));
        assert!(!filter.matches(&EventRecord { outcome: Some(Outcome::Failed), ..done.clone() }));
        assert!(!filter.matches(&EventRecord { node: "host-b".into(), ..done.clone() }));
        assert!(!filter.matches(&EventRecord { container_name: "web-2".into(), ..done.clone() }), "exactly");
        assert!(!filter.matches(&EventRecord { kind: EventKind::HealthAlert, ..done.clone() }));
        let search = EventFilter { container: NameMatch::containing("WEB"), ..filter };
        assert!(search.matches(&EventRecord { container_name: "my-Web-1".into(), ..done }), "containing, any case");
        assert!(EventFilter::default().matches(&record(EventKind::Storm, "", "")));
        assert_eq!(NameMatch::exactly(String::new()), NameMatch::Any);
        assert_eq!(NameMatch::containing(""), NameMatch::Any);
    }

    #[test]
    fn a_filter_refuses_names_too_long_to_be_names() {
        let long = "x".repeat(254);
        let node = EventFilter { node: long.clone(), ..EventFilter::default() };
        assert!(matches!(node.check(), Err(FleetError::Invalid(m)) if m == "node is longer than 253 bytes"));
        let container = EventFilter { container: NameMatch::containing(&long), ..EventFilter::default() };
        assert!(matches!(container.check(), Err(FleetError::Invalid(m)) if m.starts_with("container is longer")));
    }
}
