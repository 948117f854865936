//! The live event stream: server-sent events fed from the journal's live tail (the one WatchEvents reads).
//! Each SSE message is one event (its `id` is the event id), so a browser that reconnects sends
//! `Last-Event-ID` and resumes exactly after the last event it received.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::StreamExt;
use serde::Deserialize;

use super::Dashboard;
use super::routes::{ApiError, EventView};
use crate::events::{EventId, unix_ms};
use crate::fleet::event_reads::EventFilter;

/// Where a new stream starts.
#[derive(Debug, Default, Deserialize)]
pub struct StreamStart {
    /// After this event id.
    after: Option<String>,
    /// From this time (Unix milliseconds), when no id is given; default: now.
    since: Option<u64>,
}

/// The position a stream starts after: `Last-Event-ID`, else `after`, else the time `since` (or now).
pub fn start_after(headers: &HeaderMap, start: &StreamStart) -> Result<EventId, ApiError> {
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
    if let Some(id) = resume.or(start.after.as_deref()) {
        return id.parse::<EventId>().map_err(|e| ApiError::bad_request(e.to_string()));
    }
    let since = start.since.unwrap_or_else(|| unix_ms(SystemTime::now()));
    Ok(EventId { ms: since.saturating_sub(1), seq: u64::MAX })
}

/// `GET /api/stream`: every event appended after the start, as it is appended, until the coordinator stops.
pub async fn stream(
    State(dashboard): State<Dashboard>,
    headers: HeaderMap,
    Query(start): Query<StreamStart>,
) -> Result<Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after = start_after(&headers, &start)?;
    let tail = dashboard.fleet.watch(Some(after), EventFilter::default())?;
    let mut stop = dashboard.stop.clone();
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let events = tail
        .map(|event| {
            Ok(match event {
                Ok(event) => {
                    let data = serde_json::to_string(&EventView::of(&event)).expect("events serialize");
                    Event::default().id(event.id.to_string()).data(data)
                }
                Err(error) => {
                    Event::default().event("failure").data(format!("the state store did not answer: {error}"))
                }
            })
        })
        .take_until(stopped);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn dashboard_stream_resumes_after_last_event_id_before_the_query() {
        let mut headers = HeaderMap::new();
        let start = StreamStart { after: Some("5-1".into()), since: Some(100) };
        assert_eq!(start_after(&headers, &start).unwrap(), EventId { ms: 5, seq: 1 });
        headers.insert("last-event-id", HeaderValue::from_static("7-0"));
        assert_eq!(start_after(&headers, &start).unwrap(), EventId { ms: 7, seq: 0 });
        let since = StreamStart { after: None, since: Some(100) };
        assert_eq!(start_after(&HeaderMap::new(), &since).unwrap(), EventId { ms: 99, seq: u64::MAX });
        let bad = StreamStart { after: Some("yesterday".into()), since: None };
        assert!(start_after(&HeaderMap::new(), &bad).is_err());
    }
}
