//! `hemostat events` (the event log, filtered, or followed live) and `hemostat audit` (the audit log).
//!
//! Both show the most recent `--limit` entries that match, oldest first. `events --follow` shows those,
//! then each new event as it is recorded, resuming after the last one it printed when the stream breaks.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use clap::Args;
use hemostat_model::{EventKind, Outcome};
use hemostat_proto::timestamp::to_proto;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::fleet_service_client::FleetServiceClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::commands::{named, show};
use crate::connection::ClientArgs;
use crate::model::Event;
use crate::render::{self, Format};
use crate::rpc_error::{RpcError, code_name, rpc};
use crate::terminal;

/// The most entries one ListEvents or ListAudit call returns.
const PAGE_SIZE: u32 = 1000;
/// The longest pause between two attempts to resume a broken `--follow` stream.
const MAX_RESUME_PAUSE: Duration = Duration::from_secs(5);

/// The time a `--since`/`--until` value names: a duration back from `now` (`10m`, `2h 30m`, `1day`) or
/// an RFC 3339 time (`2026-11-28T14:17:05Z`, `2026-11-28T16:17:05+02:00`; without an offset, UTC).
pub fn parse_time_bound(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return now.checked_sub(ago).ok_or_else(|| format!("{text:?} goes back before 1970"));
    }
    let (local, offset) = split_offset(text);
    match humantime::parse_rfc3339_weak(local) {
        Ok(time) => match offset {
            Some(east) if east >= 0 => Ok(time - Duration::from_secs(east as u64)),
            Some(west) => Ok(time + Duration::from_secs(west.unsigned_abs())),
            None => Ok(time),
        },
        Err(_) => {
            Err(format!("{text:?} is neither a duration (10m, 2h, 1day) nor an RFC 3339 time (2026-11-28T14:17:05Z)"))
        }
    }
}

/// `text` without a trailing `+HH:MM`/`-HH:MM` offset, and the offset in seconds east of UTC.
fn split_offset(text: &str) -> (&str, Option<i64>) {
    let Some(split) = text.len().checked_sub(6) else { return (text, None) };
    let (local, offset) = (&text[..split], &text[split..]);
    let b = offset.as_bytes();
    if !text.is_char_boundary(split) || !matches!(b[0], b'+' | b'-') || b[3] != b':' || !local.contains('T') {
        return (text, None);
    }
    let (Ok(hours), Ok(minutes)) = (offset[1..3].parse::<i64>(), offset[4..6].parse::<i64>()) else {
        return (text, None);
    };
    let seconds = (hours * 60 + minutes) * 60;
    (local, Some(if b[0] == b'-' { -seconds } else { seconds }))
}

/// What the CLI itself checks of each event, so the output matches the flags whatever the coordinator
/// filtered (and the followed stream, which has no time or outcome filter of its own).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    /// Only events recorded at or after this time.
    pub since: Option<SystemTime>,
    /// Only events recorded before this time.
    pub until: Option<SystemTime>,
    /// Only `remediation_complete` events with this outcome.
    pub outcome: Option<String>,
}

impl EventFilter {
    /// Whether `e` passes.
    pub fn matches(&self, e: &Event) -> bool {
        let time = e.time.map(|t| t.0);
        self.since.is_none_or(|since| time.is_some_and(|t| t >= since))
            && self.until.is_none_or(|until| time.is_some_and(|t| t < until))
            && self.outcome.as_ref().is_none_or(|outcome| e.outcome.as_ref() == Some(outcome))
    }
}

/// Arguments of `hemostat events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Only events of this type (repeatable).
    #[arg(long = "type", value_name = "TYPE", ignore_case = true, value_parser = named::<EventKind>(false))]
    types: Vec<EventKind>,
    /// Only this node's events.
    #[arg(long)]
    node: Option<String>,
    /// Only this container's events (by name).
    #[arg(long)]
    container: Option<String>,
    /// Only remediation_complete events that ended so.
    #[arg(long, value_parser = named::<Outcome>(false))]
    outcome: Option<Outcome>,
    /// Only events since then: a duration back from now (10m, 2h) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only events before then: a duration back from now (10m, 2h) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", conflicts_with = "follow")]
    until: Option<String>,
    /// Only events after this event id.
    #[arg(long, value_name = "ID")]
    after: Option<String>,
    /// Show at most this many events: the most recent that match.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    /// Keep watching: after the most recent events, print each new one as it is recorded (JSON lines
    /// with -o json), until interrupted.
    #[arg(long, short = 'f')]
    follow: bool,
}

/// Which log to read, with its filters.
enum Log {
    Events(pb::ListEventsRequest),
    Audit(pb::ListAuditRequest),
}

impl Log {
    /// One page after `token`, and the token to read on.
    async fn page(
        &self,
        client: &mut FleetServiceClient<Channel>,
        token: &str,
    ) -> anyhow::Result<(Vec<pb::Event>, String)> {
        Ok(match self {
            Log::Events(request) => {
                let request =
                    pb::ListEventsRequest { page_size: PAGE_SIZE, page_token: token.to_owned(), ..request.clone() };
                let r = client.list_events(request).await.map_err(rpc("ListEvents"))?.into_inner();
                (r.events, r.next_page_token)
            }
            Log::Audit(request) => {
                let request =
                    pb::ListAuditRequest { page_size: PAGE_SIZE, page_token: token.to_owned(), ..request.clone() };
                let r = client.list_audit(request).await.map_err(rpc("ListAudit"))?.into_inner();
                (r.events, r.next_page_token)
            }
        })
    }
}

/// The most recent `limit` entries of `log` after `after` that pass `filter`, oldest first, and the log
/// position read up to (an id to resume after; empty when the log is empty).
async fn read_log(
    client: &mut FleetServiceClient<Channel>,
    log: &Log,
    filter: &EventFilter,
    after: String,
    limit: usize,
) -> anyhow::Result<(Vec<Event>, String)> {
    let mut kept = VecDeque::with_capacity(limit.min(PAGE_SIZE as usize));
    let mut token = after;
    loop {
        let (page, next) = log.page(client, &token).await?;
        for event in page.into_iter().map(Event::from) {
            if filter.until.is_some_and(|until| event.time.is_some_and(|t| t.0 >= until)) {
                return Ok((kept.into(), event.id));
            }
            if filter.matches(&event) {
                if kept.len() == limit {
                    kept.pop_front();
                }
                kept.push_back(event);
            }
        }
        // The token is the last id read: it stops moving at the end of the log.
        if next.is_empty() || next == token {
            return Ok((kept.into(), token));
        }
        token = next;
    }
}

/// Reads (or follows) the event log.
pub async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let bound = |text: &Option<String>, flag: &str| -> anyhow::Result<Option<SystemTime>> {
        match text {
            Some(text) => match parse_time_bound(text, now) {
                Ok(time) => Ok(Some(time)),
                Err(error) => bail!("--{flag}: {error}"),
            },
            None => Ok(None),
        }
    };
    let filter = EventFilter {
        since: bound(&args.since, "since")?,
        until: bound(&args.until, "until")?,
        outcome: args.outcome.map(|o| o.name().to_owned()),
    };
    let request = pb::ListEventsRequest {
        types: args.types.iter().map(|t| pb::EventType::from(*t) as i32).collect(),
        node: args.node.clone().unwrap_or_default(),
        container: args.container.clone().unwrap_or_default(),
        page_size: PAGE_SIZE,
        page_token: String::new(),
        outcome: args.outcome.map_or(pb::Outcome::Unspecified, pb::Outcome::from) as i32,
        since: filter.since.map(to_proto),
        until: filter.until.map(to_proto),
    };
    let mut client = args.client.connection.settings()?.client().await?;
    let log = Log::Events(request.clone());
    let (events, position) =
        read_log(&mut client, &log, &filter, args.after.clone().unwrap_or_default(), args.limit as usize).await?;
    if !args.follow {
        return show(args.client.output, &events, |e| render::events_table(e));
    }
    let format = args.client.output;
    let mut text = match format {
        Format::Table => render::event_stream_header(),
        Format::Json => String::new(),
    };
    for event in &events {
        text.push_str(&stream_line(format, event));
    }
    terminal::emit(&text)?;
    let watch = pb::WatchEventsRequest {
        after_id: position,
        types: request.types,
        node: request.node,
        container: request.container,
    };
    follow(&mut client, watch, &filter, format).await
}

fn stream_line(format: Format, event: &Event) -> String {
    match format {
        Format::Table => render::event_stream_line(event),
        Format::Json => render::json_line(event),
    }
}

/// Whether a broken stream is worth resuming: the coordinator went away or restarted, rather than
/// refusing the request.
fn resumable(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Aborted | Code::Internal)
}

/// Prints each event after `request.after_id` as it is recorded, until interrupted. When the stream
/// breaks (the coordinator restarts, the network drops), it opens a new one after the last event read,
/// so nothing is missed or repeated.
async fn follow(
    client: &mut FleetServiceClient<Channel>,
    mut request: pb::WatchEventsRequest,
    filter: &EventFilter,
    format: Format,
) -> anyhow::Result<()> {
    let mut pause = Duration::from_millis(250);
    let mut reported = false;
    loop {
        let interruption = match client.watch_events(request.clone()).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => {
                            let Some(event) = message.event else { continue };
                            let event = Event::from(event);
                            request.after_id = event.id.clone();
                            if filter.matches(&event) {
                                terminal::emit(&stream_line(format, &event))?;
                            }
                            pause = Duration::from_millis(250);
                            reported = false;
                        }
                        Ok(None) => {
                            break RpcError::new("WatchEvents", &tonic::Status::unavailable("the stream ended"));
                        }
                        Err(status) => break RpcError::new("WatchEvents", &status),
                    }
                }
            }
            Err(status) => RpcError::new("WatchEvents", &status),
        };
        if !resumable(interruption.code) {
            return Err(interruption.into());
        }
        if !reported {
            let after = if request.after_id.is_empty() { "the start".to_owned() } else { request.after_id.clone() };
            let why = format!("{}: {}", code_name(interruption.code), interruption.message);
            eprintln!("hemostat: the event stream broke ({}); resuming after {after}", terminal::printable(&why));
            reported = true;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RESUME_PAUSE);
    }
}

/// Arguments of `hemostat audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Only this node's records.
    #[arg(long)]
    node: Option<String>,
    /// Only this container's records (by name).
    #[arg(long)]
    container: Option<String>,
    /// Only records since then: a duration back from now (10m, 2h) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only records after this id.
    #[arg(long, value_name = "ID")]
    after: Option<String>,
    /// Show at most this many records: the most recent.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
}

/// Reads the audit log: every decision, action, rejection, approval and result.
pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let since = match &args.since {
        Some(text) => Some(parse_time_bound(text, SystemTime::now()).map_err(|e| anyhow::anyhow!("--since: {e}"))?),
        None => None,
    };
    let filter = EventFilter { since, ..Default::default() };
    let log = Log::Audit(pb::ListAuditRequest {
        node: args.node.unwrap_or_default(),
        container: args.container.unwrap_or_default(),
        page_size: PAGE_SIZE,
        page_token: String::new(),
    });
    let mut client = args.client.connection.settings()?.client().await?;
    let (records, _) =
        read_log(&mut client, &log, &filter, args.after.unwrap_or_default(), args.limit as usize).await?;
    show(args.client.output, &records, |r| render::audit_table(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UtcTime;

    #[test]
    fn time_bounds_are_durations_back_or_rfc3339_times() {
        let now = humantime::parse_rfc3339("2026-11-28T14:20:00Z").unwrap();
        let at = |text| humantime::format_rfc3339_seconds(parse_time_bound(text, now).unwrap()).to_string();
        assert_eq!(at("10m"), "2026-11-28T14:10:00Z");
        assert_eq!(at("1h 30m"), "2026-11-28T12:50:00Z");
        assert_eq!(at("2026-11-28T14:17:05Z"), "2026-11-28T14:17:05Z");
        assert_eq!(at("2026-11-28T14:17:05"), "2026-11-28T14:17:05Z");
        assert_eq!(at("2026-11-28T16:17:05+02:00"), "2026-11-28T14:17:05Z");
        assert_eq!(at("2026-11-28T09:17:05.250-05:00"), "2026-11-28T14:17:05Z");
        for bad in ["yesterday", "2026-13-01T00:00:00Z", "", "10 parsecs"] {
            assert!(parse_time_bound(bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn event_types_are_the_lower_case_names() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            events: EventsArgs,
        }
        let parse_event_type = |name: &str| {
            <Cli as clap::Parser>::try_parse_from(["events", "--type", name])
                .map(|cli| cli.events.types)
                .map_err(|e| e.to_string())
        };
        assert_eq!(parse_event_type("health_alert"), Ok(vec![EventKind::HealthAlert]));
        assert_eq!(parse_event_type("OPERATOR_ACTION"), Ok(vec![EventKind::OperatorAction]));
        assert!(parse_event_type("unspecified").is_err());
        let error = parse_event_type("crash").unwrap_err();
        assert!(error.contains("remediation_complete"), "{error}");
        assert!(error.contains("store_unavailable"), "every kind is listed: {error}");
        for name in EventKind::NAMES {
            assert!(parse_event_type(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn the_filter_checks_time_and_outcome() {
        let t = |s| Some(UtcTime(humantime::parse_rfc3339(s).unwrap()));
        let event = |time, kind: &str, outcome: Option<&str>| {
            let mut e = Event::from(pb::Event::default());
            e.time = time;
            e.kind = Some(kind.to_owned());
            e.outcome = outcome.map(str::to_owned);
            e
        };
        let filter = EventFilter {
            since: t("2026-11-28T14:00:00Z").map(|t| t.0),
            until: t("2026-11-28T15:00:00Z").map(|t| t.0),
            outcome: Some("failed".into()),
        };
        assert!(filter.matches(&event(t("2026-11-28T14:00:00Z"), "remediation_complete", Some("failed"))));
        assert!(!filter.matches(&event(t("2026-11-28T15:00:00Z"), "remediation_complete", Some("failed"))));
        assert!(!filter.matches(&event(t("2026-11-28T13:59:59Z"), "remediation_complete", Some("failed"))));
        assert!(!filter.matches(&event(t("2026-11-28T14:30:00Z"), "remediation_complete", Some("success"))));
        assert!(!filter.matches(&event(t("2026-11-28T14:30:00Z"), "health_alert", None)));
        assert!(EventFilter::default().matches(&event(None, "storm", None)));
    }
}
