//! The dashboard's JSON API: what the page reads (`GET /api/...`) and the admin's changes (`POST`), each
//! through the same registry, store and remediator methods as FleetService.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Dashboard;
use super::analytics::{self, Analytics, Period};
use super::auth::{self, DashboardRole, DashboardUser, Refusal};
use super::metric_series::{SeriesPoint, series};
use crate::container::Anomaly;
use crate::events::{EventId, EventKind, EventRecord, Outcome, Rejection, StoredEvent, unix_ms};
use crate::registry::ContainerEntry;
use crate::remediation::ApprovalError;
use crate::silence::{MAX_SILENCE, Silence, new_silence_id};
use crate::store::StoreError;

/// Events the timeline returns when the request does not say, and at most.
const DEFAULT_LIMIT: usize = 200;
const MAX_LIMIT: usize = 1000;
/// The timeline's default period: the last day.
const DEFAULT_PERIOD: Duration = Duration::from_secs(24 * 3600);
/// The most events one request reads from the store, so no request can scan forever.
const MAX_SCAN: usize = 500_000;
/// Events read from the store at a time.
const BATCH: usize = 1000;
/// Samples in an overview trend line.
const TREND_SAMPLES: usize = 60;
/// Events on a container's page.
const CONTAINER_EVENTS: usize = 200;
/// How far around an event its details look for the events of the same action.
const DETAILS_WINDOW: Duration = Duration::from_secs(2 * 3600);
/// The longest name, reason and filter accepted.
const MAX_NAME_LEN: usize = 253;
const MAX_REASON_LEN: usize = 500;

/// An API error: a status and a message for people, as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    fn conflict(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::CONFLICT, message: message.into() }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("the state store did not answer: {error}"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

/// A refusal as a response: 401 or 403 with the reason.
pub fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthenticated(message) => {
            let mut response = ApiError { status: StatusCode::UNAUTHORIZED, message: message.into() }.into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Refusal::Forbidden(message) => ApiError { status: StatusCode::FORBIDDEN, message }.into_response(),
    }
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such page")
}

/// An event as the page reads it: its id and its record.
#[derive(Clone, Debug, Serialize)]
pub struct EventView {
    /// The event id.
    pub id: String,
    /// The record, its fields at the top level.
    #[serde(flatten)]
    pub record: EventRecord,
}

impl EventView {
    /// The view of a stored event.
    pub fn of(event: &StoredEvent) -> Self {
        EventView { id: event.id.to_string(), record: event.record.clone() }
    }
}

fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

fn ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The id just before `id`, so that reading after it starts at `id`.
fn just_before(id: EventId) -> Option<EventId> {
    match (id.ms, id.seq) {
        (0, 0) => None,
        (ms, 0) => Some(EventId { ms: ms - 1, seq: u64::MAX }),
        (ms, seq) => Some(EventId { ms, seq: seq - 1 }),
    }
}

/// Reads the event log from `since_ms` while events are before `until_ms`, handing each to `visit`; at
/// most [`MAX_SCAN`] events. Returns whether it stopped at that limit.
async fn scan(
    dashboard: &Dashboard,
    since_ms: u64,
    until_ms: Option<u64>,
    mut visit: impl FnMut(StoredEvent),
) -> Result<bool, ApiError> {
    let mut cursor = just_before(EventId { ms: since_ms, seq: 0 });
    let mut scanned = 0;
    loop {
        let batch = dashboard.store.read_events(cursor, BATCH).await?;
        let full = batch.len() == BATCH;
        for event in batch {
            if until_ms.is_some_and(|until| event.id.ms >= until) {
                return Ok(false);
            }
            cursor = Some(event.id);
            scanned += 1;
            visit(event);
            if scanned >= MAX_SCAN {
                return Ok(true);
            }
        }
        if !full {
            return Ok(false);
        }
    }
}

/// What `/api/session` tells the page.
#[derive(Serialize)]
struct SessionView {
    authenticated: bool,
    login_required: bool,
    name: Option<String>,
    role: Option<DashboardRole>,
    /// The coordinator's clock, Unix milliseconds.
    now_ms: u64,
    /// The header changes must carry.
    csrf_header: &'static str,
}

fn session_view(dashboard: &Dashboard, user: Option<DashboardUser>) -> SessionView {
    SessionView {
        authenticated: user.is_some(),
        login_required: dashboard.access.requires_login(),
        name: user.as_ref().map(|u| u.name.clone()),
        role: user.map(|u| u.role),
        now_ms: now_ms(),
        csrf_header: auth::CSRF_HEADER,
    }
}

/// `GET /api/session`: who the page is logged in as, if anyone.
pub async fn session(State(dashboard): State<Dashboard>, headers: HeaderMap) -> Response {
    let user = dashboard.access.user(&headers).ok();
    Json(session_view(&dashboard, user)).into_response()
}

/// The login form's body.
#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// `POST /api/login`: starts a browser session for a token's holder (a cookie).
pub async fn login(State(dashboard): State<Dashboard>, Json(login): Json<Login>) -> Response {
    match dashboard.access.login(login.token.trim()) {
        Some((session, user)) => {
            tracing::info!(user = %user.name, role = ?user.role, "dashboard: logged in");
            let mut response = Json(session_view(&dashboard, Some(user))).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&auth::session_cookie(&session)) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        None => {
            tracing::warn!("dashboard: a login with an unknown token was refused");
            refused(Refusal::Unauthenticated("this is not one of the dashboard's tokens"))
        }
    }
}

/// `POST /api/logout`: ends the browser session.
pub async fn logout(State(dashboard): State<Dashboard>, headers: HeaderMap) -> Response {
    dashboard.access.logout(&headers);
    let mut response = Json(session_view(&dashboard, None)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&auth::expired_cookie()).expect("ascii"));
    response
}

/// A node, for the page.
#[derive(Serialize)]
struct NodeView {
    name: String,
    connected: bool,
    address: Option<String>,
    version: String,
    hostname: String,
    connected_at_ms: u64,
    last_seen_ms: u64,
    spool_depth: u64,
    spool_dropped: u64,
}

/// A container's budget, for the page.
#[derive(Serialize)]
struct BudgetView {
    key: String,
    cooldown_remaining_s: u64,
    attempts_in_window: u32,
    max_attempts: u32,
    consecutive_failures: u32,
    circuit: &'static str,
    circuit_retry_s: u64,
    last_action_ms: Option<u64>,
}

/// A container, for the page.
#[derive(Serialize)]
struct ContainerView {
    node: String,
    id: String,
    name: String,
    image: String,
    status: &'static str,
    health: &'static str,
    exit_code: i64,
    restart_policy: String,
    labels: BTreeMap<String, String>,
    started_at_ms: Option<u64>,
    updated_at_ms: u64,
    sampled_at_ms: Option<u64>,
    cpu_percent: Option<f64>,
    memory_percent: Option<f64>,
    memory_used: Option<u64>,
    memory_limit: Option<u64>,
    pids: Option<u64>,
    cpu_trend: Vec<Option<f64>>,
    memory_trend: Vec<f64>,
    anomalies: Vec<Anomaly>,
    budget: BudgetView,
    silence: Option<Silence>,
}

/// The page's view of a registry entry, with its budget read from the store and its silence.
async fn container_view(
    dashboard: &Dashboard,
    entry: &ContainerEntry,
    silences: &[Silence],
    now: u64,
) -> Result<ContainerView, ApiError> {
    let key = entry.facts.budget_key(&entry.node);
    let budget = dashboard.remediator.budget();
    let status = budget.status(&dashboard.store.read_budget(&key).await?, now);
    let circuit_retry_s = match status.circuit {
        crate::policy::Circuit::Open { retry_after } => retry_after.as_secs().max(1),
        _ => 0,
    };
    let trend: Vec<_> = entry.recent.iter().skip(entry.recent.len().saturating_sub(TREND_SAMPLES)).collect();
    let m = entry.metrics.as_ref();
    Ok(ContainerView {
        node: entry.node.clone(),
        id: entry.facts.id.clone(),
        name: entry.facts.name.clone(),
        image: entry.facts.image.clone(),
        status: entry.facts.status.name(),
        health: entry.facts.health.name(),
        exit_code: entry.facts.exit_code,
        restart_policy: entry.facts.restart_policy.clone(),
        labels: entry.facts.labels.clone(),
        started_at_ms: entry.facts.started_at.map(ms),
        updated_at_ms: ms(entry.updated_at),
        sampled_at_ms: m.and_then(|m| m.sampled_at).map(ms),
        cpu_percent: m.and_then(|m| m.cpu_percent),
        memory_percent: m.map(|m| m.memory_percent),
        memory_used: m.map(|m| m.memory_used),
        memory_limit: m.map(|m| m.memory_limit),
        pids: m.map(|m| m.pids),
        cpu_trend: trend.iter().map(|m| m.cpu_percent).collect(),
        memory_trend: trend.iter().map(|m| m.memory_percent).collect(),
        anomalies: entry.anomalies.clone(),
        budget: BudgetView {
            key,
            cooldown_remaining_s: status.cooldown_remaining.as_secs_f64().ceil() as u64,
            attempts_in_window: status.attempts_in_window,
            max_attempts: budget.max_attempts,
            consecutive_failures: status.consecutive_failures,
            circuit: status.circuit.name(),
            circuit_retry_s,
            last_action_ms: status.last_action_ms,
        },
        silence: silences.iter().find(|s| s.covers(&entry.node, &entry.facts.name, now)).cloned(),
    })
}

/// What the overview shows.
#[derive(Serialize)]
pub struct OverviewView {
    now_ms: u64,
    nodes: Vec<NodeView>,
    containers: Vec<ContainerView>,
    silences: Vec<Silence>,
    dry_run: bool,
    dry_run_source: &'static str,
    /// Whether decisions wait for approval.
    approval_required: bool,
    /// Decisions waiting for an admin, oldest first.
    pending_approvals: Vec<EventView>,
}

/// `GET /api/overview`: nodes, containers with their metrics, anomalies, budgets and silences; dry-run;
/// decisions awaiting approval.
pub async fn overview(State(dashboard): State<Dashboard>) -> Result<Json<OverviewView>, ApiError> {
    let now = now_ms();
    let silences = dashboard.store.silences(now).await?;
    let nodes = dashboard
        .registry
        .nodes()
        .into_iter()
        .map(|node| NodeView {
            name: node.hello.name,
            connected: node.connected,
            address: node.address.map(|a| a.to_string()),
            version: node.hello.version,
            hostname: node.hello.hostname,
            connected_at_ms: ms(node.connected_at),
            last_seen_ms: ms(node.last_seen),
            spool_depth: node.spool_depth,
            spool_dropped: node.spool_dropped,
        })
        .collect();
    let mut containers = Vec::new();
    for entry in dashboard.registry.containers(None) {
        containers.push(container_view(&dashboard, &entry, &silences, now).await?);
    }
    let (dry_run, dry_run_source) = dashboard.remediator.dry_run().await?;
    let pending_approvals = match dashboard.approval_ttl {
        Some(ttl) => pending_approvals(&dashboard, ttl, now).await?,
        None => Vec::new(),
    };
    Ok(Json(OverviewView {
        now_ms: now,
        nodes,
        containers,
        silences,
        dry_run,
        dry_run_source,
        approval_required: dashboard.approval_ttl.is_some(),
        pending_approvals,
    }))
}

/// The `awaiting_approval` rejections of the last `ttl` that no approval has followed.
async fn pending_approvals(dashboard: &Dashboard, ttl: Duration, now: u64) -> Result<Vec<EventView>, ApiError> {
    let since = now.saturating_sub(ttl.as_millis() as u64);
    let mut waiting: Vec<StoredEvent> = Vec::new();
    let mut approved: HashSet<String> = HashSet::new();
    scan(dashboard, since, None, |event| {
        let r = &event.record;
        match (r.kind, &r.command_id) {
            (EventKind::Rejected, Some(_)) if r.rejection == Some(Rejection::AwaitingApproval) => waiting.push(event),
            (EventKind::RemediationNeeded, Some(command)) if r.analysis_method.as_deref() == Some("operator") => {
                approved.insert(command.clone());
            }
            _ => {}
        }
    })
    .await?;
    let ttl_ms = ttl.as_millis() as u64;
    Ok(waiting
        .iter()
        .filter(|e| e.record.time_ms + ttl_ms > now)
        .filter(|e| e.record.command_id.as_ref().is_some_and(|c| !approved.contains(c)))
        .map(EventView::of)
        .collect())
}

/// The timeline's filters.
#[derive(Debug, Default, Deserialize)]
pub struct EventFilter {
    /// Event types, comma-separated names (`health_alert,rejected`).
    #[serde(default)]
    types: String,
    /// Exactly this node.
    #[serde(default)]
    node: String,
    /// Containers whose name contains this, ignoring case.
    #[serde(default)]
    container: String,
    /// Only `remediation_complete` events with this outcome.
    #[serde(default)]
    outcome: String,
    /// From this time, Unix milliseconds [default: a day ago].
    since: Option<u64>,
    /// Before this time [default: none].
    until: Option<u64>,
    /// At most this many events, the newest [default: 200, at most 1000].
    limit: Option<usize>,
}

/// A parsed filter.
struct Matcher {
    kinds: Vec<EventKind>,
    node: String,
    container: String,
    outcome: Option<Outcome>,
}

impl Matcher {
    fn parse(filter: &EventFilter) -> Result<Self, ApiError> {
        let kinds = filter
            .types
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                serde_json::from_value::<EventKind>(serde_json::Value::String(t.to_owned()))
                    .map_err(|_| ApiError::bad_request(format!("unknown event type {t:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outcome = match filter.outcome.as_str() {
            "" => None,
            name => Some(
                Outcome::ALL
                    .into_iter()
                    .find(|o| o.name() == name)
                    .ok_or_else(|| ApiError::bad_request(format!("unknown outcome {name:?}")))?,
            ),
        };
        if filter.node.len() > MAX_NAME_LEN || filter.container.len() > MAX_NAME_LEN {
            return Err(ApiError::bad_request("a name filter is too long"));
        }
        Ok(Matcher { kinds, node: filter.node.clone(), container: filter.container.to_lowercase(), outcome })
    }

    fn matches(&self, r: &EventRecord) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&r.kind))
            && (self.node.is_empty() || r.node == self.node)
            && (self.container.is_empty() || r.container_name.to_lowercase().contains(&self.container))
            && self.outcome.is_none_or(|o| r.outcome == Some(o))
    }
}

/// What the timeline shows.
#[derive(Serialize)]
pub struct EventsView {
    /// The newest matching events, newest first.
    events: Vec<EventView>,
    /// How many events matched in all.
    matched: u64,
    /// Whether the scan stopped at its limit.
    truncated: bool,
    since_ms: u64,
    until_ms: Option<u64>,
}

/// `GET /api/events`: the newest events matching the filter, newest first.
pub async fn events(
    State(dashboard): State<Dashboard>,
    Query(filter): Query<EventFilter>,
) -> Result<Json<EventsView>, ApiError> {
    let matcher = Matcher::parse(&filter)?;
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let since = filter.since.unwrap_or_else(|| now_ms().saturating_sub(DEFAULT_PERIOD.as_millis() as u64));
    if filter.until.is_some_and(|until| until <= since) {
        return Err(ApiError::bad_request("since must be before until"));
    }
    let mut newest: VecDeque<StoredEvent> = VecDeque::new();
    let mut matched = 0;
    let truncated = scan(&dashboard, since, filter.until, |event| {
        if matcher.matches(&event.record) {
            matched += 1;
            if newest.len() == limit {
                newest.pop_front();
            }
            newest.push_back(event);
        }
    })
    .await?;
    Ok(Json(EventsView {
        events: newest.iter().rev().map(EventView::of).collect(),
        matched,
        truncated,
        since_ms: since,
        until_ms: filter.until,
    }))
}

/// One event with the events of the same action and their audit records.
#[derive(Serialize)]
pub struct EventDetails {
    event: EventView,
    /// The events of the same action (the detection, the decision, rejections, the result), oldest first.
    related: Vec<EventView>,
    /// Their audit records, oldest first.
    audit: Vec<EventView>,
}

/// `GET /api/events/{id}`: an event, with what led to it and what followed.
pub async fn event_details(
    State(dashboard): State<Dashboard>,
    Path(id): Path<String>,
) -> Result<Json<EventDetails>, ApiError> {
    let id: EventId = id.parse().map_err(|e: crate::events::InvalidEventId| ApiError::bad_request(e.to_string()))?;
    let event = dashboard
        .store
        .read_events(just_before(id), 1)
        .await?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no event {id} in the log (it may have been trimmed)")))?;
    let window = dashboard.approval_ttl.unwrap_or_default() + DETAILS_WINDOW;
    let from = id.ms.saturating_sub(window.as_millis() as u64);
    let to = id.ms.saturating_add(window.as_millis() as u64);
    let mut nearby: Vec<StoredEvent> = Vec::new();
    let r = &event.record;
    let same_container = |other: &EventRecord| other.node == r.node && other.container_id == r.container_id;
    scan(&dashboard, from, Some(to), |e| {
        if same_container(&e.record) {
            nearby.push(e);
        }
    })
    .await?;
    // The action this event belongs to: its own command, or (for a detection) that of the decision after it.
    let position = nearby.iter().position(|e| e.id == id).unwrap_or(0);
    let command = r.command_id.clone().or_else(|| {
        (r.kind == EventKind::HealthAlert)
            .then(|| {
                nearby[position..]
                    .iter()
                    .skip(1)
                    .take_while(|e| e.record.kind != EventKind::HealthAlert)
                    .find(|e| matches!(e.record.kind, EventKind::RemediationNeeded | EventKind::FalseAlarm))
                    .and_then(|e| e.record.command_id.clone())
            })
            .flatten()
    });
    let mut related: Vec<&StoredEvent> = match &command {
        Some(command) => nearby.iter().filter(|e| e.record.command_id.as_ref() == Some(command)).collect(),
        None => vec![&event],
    };
    // A detection without an action: the false alarm that followed it.
    if command.is_none() && r.kind == EventKind::HealthAlert {
        let mut next = nearby[position..].iter().skip(1).take_while(|e| e.record.kind != EventKind::HealthAlert);
        if let Some(decision) = next.find(|e| e.record.kind == EventKind::FalseAlarm) {
            related.push(decision);
        }
    }
    // The detection behind the first decision, unless an operator made it.
    let first = related.iter().map(|e| e.id).min();
    if let Some(first_at) = first.and_then(|first| nearby.iter().position(|e| e.id == first))
        && nearby[first_at].record.kind != EventKind::HealthAlert
        && nearby[first_at].record.analysis_method.as_deref() != Some("operator")
        && let Some(alert) = nearby[..first_at].iter().rev().find(|e| e.record.kind == EventKind::HealthAlert)
    {
        related.push(alert);
    }
    related.sort_by_key(|e| e.id);
    related.dedup_by_key(|e| e.id);
    let mut audit = Vec::new();
    let mut cursor = just_before(EventId { ms: from, seq: 0 });
    'read: loop {
        let batch = dashboard.store.read_audit(cursor, BATCH).await?;
        let full = batch.len() == BATCH;
        for record in batch {
            if record.id.ms >= to {
                break 'read;
            }
            cursor = Some(record.id);
            let a = &record.record;
            let belongs = match &command {
                Some(command) => a.command_id.as_ref() == Some(command),
                None => related.iter().any(|e| {
                    e.record.kind == a.kind && e.record.time_ms == a.time_ms && e.record.container_id == a.container_id
                }),
            };
            if belongs {
                audit.push(EventView::of(&record));
            }
        }
        if !full {
            break;
        }
    }
    Ok(Json(EventDetails {
        event: EventView::of(&event),
        related: related.into_iter().map(EventView::of).collect(),
        audit,
    }))
}

/// A container's page.
#[derive(Serialize)]
pub struct ContainerPage {
    now_ms: u64,
    container: ContainerView,
    /// The retained samples, with rates.
    series: Vec<SeriesPoint>,
    /// Its events over the charts' window (at least the last hour), newest first.
    events: Vec<EventView>,
}

/// `GET /api/containers/{node}/{container}` (the container's id or name): its charts and events.
pub async fn container(
    State(dashboard): State<Dashboard>,
    Path((node, ident)): Path<(String, String)>,
) -> Result<Json<ContainerPage>, ApiError> {
    let entry = dashboard
        .registry
        .containers(Some(&node))
        .into_iter()
        .find(|e| e.facts.id == ident || e.facts.name == ident)
        .ok_or_else(|| ApiError::not_found(format!("node {node:?} has reported no container {ident:?}")))?;
    let now = now_ms();
    let silences = dashboard.store.silences(now).await?;
    let view = container_view(&dashboard, &entry, &silences, now).await?;
    let series = series(entry.recent.iter().copied());
    let hour_ago = now.saturating_sub(3_600_000);
    let since = series.first().map_or(hour_ago, |p| p.t_ms.min(hour_ago));
    let mut events: VecDeque<StoredEvent> = VecDeque::new();
    scan(&dashboard, since, None, |event| {
        if event.record.node == entry.node && event.record.container_name == entry.facts.name {
            if events.len() == CONTAINER_EVENTS {
                events.pop_front();
            }
            events.push_back(event);
        }
    })
    .await?;
    Ok(Json(ContainerPage {
        now_ms: now,
        container: view,
        series,
        events: events.iter().rev().map(EventView::of).collect(),
    }))
}

/// The analytics period.
#[derive(Debug, Deserialize)]
pub struct AnalyticsQuery {
    /// From, Unix milliseconds [default: a day before `until`].
    since: Option<u64>,
    /// To [default: now].
    until: Option<u64>,
}

/// `GET /api/analytics`: the period's figures, computed from the event log.
pub async fn analytics(
    State(dashboard): State<Dashboard>,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Json<Analytics>, ApiError> {
    let until = query.until.unwrap_or_else(now_ms);
    let since = query.since.unwrap_or_else(|| until.saturating_sub(DEFAULT_PERIOD.as_millis() as u64));
    if since >= until {
        return Err(ApiError::bad_request("since must be before until"));
    }
    let mut events = Vec::new();
    // Read a minute past the end: a record's time is taken just before the store numbers it.
    let truncated =
        scan(&dashboard, since.saturating_sub(analytics::LOOKBACK_MS), Some(until.saturating_add(60_000)), |e| {
            events.push(e)
        })
        .await?;
    if truncated {
        return Err(ApiError::conflict("the period holds too many events to count exactly; choose a shorter one"));
    }
    Ok(Json(analytics::compute(&events, Period { since_ms: since, until_ms: until })))
}

/// Refuses a user who is not an admin.
fn require_admin(user: &DashboardUser) -> Result<(), ApiError> {
    match user.role {
        DashboardRole::Admin => Ok(()),
        DashboardRole::Viewer => Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: format!("{} is a viewer; this change needs an admin's token", user.name),
        }),
    }
}

/// A reason an admin typed: required, at most [`MAX_REASON_LEN`] characters, no control characters.
fn check_reason(reason: &str) -> Result<(), ApiError> {
    if reason.trim().is_empty() {
        return Err(ApiError::bad_request("a reason is required: say why, for the people who read the log later"));
    }
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(ApiError::bad_request(format!("the reason is longer than {MAX_REASON_LEN} characters")));
    }
    if reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::bad_request("the reason holds control characters"));
    }
    Ok(())
}

fn check_hex_id(what: &str, id: &str, max: usize) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > max || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!("{what} must be a hexadecimal id")));
    }
    Ok(())
}

/// A new silence.
#[derive(Deserialize)]
pub struct SilenceRequest {
    node: String,
    /// A container's name; empty or absent silences the whole node.
    #[serde(default)]
    container: String,
    duration_seconds: u64,
    reason: String,
}

/// `POST /api/silences` (admins): silences a container or a node.
pub async fn create_silence(
    State(dashboard): State<Dashboard>,
    Extension(user): Extension<DashboardUser>,
    Json(request): Json<SilenceRequest>,
) -> Result<Json<Silence>, ApiError> {
    require_admin(&user)?;
    if request.node.trim().is_empty() || request.node.len() > MAX_NAME_LEN || request.container.len() > MAX_NAME_LEN {
        return Err(ApiError::bad_request("a node is required, and names are at most 253 bytes"));
    }
    check_reason(&request.reason)?;
    if request.duration_seconds == 0 || request.duration_seconds > MAX_SILENCE.as_secs() {
        return Err(ApiError::bad_request(format!(
            "duration_seconds must be between 1 and {} (30 days)",
            MAX_SILENCE.as_secs()
        )));
    }
    let now = now_ms();
    let identity = user.identity();
    let silence = Silence {
        id: new_silence_id(),
        node: request.node,
        container: (!request.container.is_empty()).then_some(request.container),
        reason: request.reason,
        created_by: crate::remediation::operator(&identity),
        created_ms: now,
        expires_ms: now + request.duration_seconds * 1000,
    };
    let silence = dashboard.remediator.silence(silence).await?;
    tracing::warn!(admin = %identity, target = %silence.target(), "silence created from the dashboard");
    Ok(Json(silence))
}

/// `POST /api/silences/{id}/end` (admins): ends a silence early.
pub async fn end_silence(
    State(dashboard): State<Dashboard>,
    Extension(user): Extension<DashboardUser>,
    Path(id): Path<String>,
) -> Result<Json<Silence>, ApiError> {
    require_admin(&user)?;
    check_hex_id("the silence id", &id, 32)?;
    match dashboard.remediator.unsilence(&id, &user.identity()).await? {
        Some(silence) => Ok(Json(silence)),
        None => Err(ApiError::not_found(format!("no silence has the id {id} (it may have expired)"))),
    }
}

/// `POST /api/approvals/{id}` (admins): lets a decision waiting for approval go ahead.
pub async fn approve(
    State(dashboard): State<Dashboard>,
    Extension(user): Extension<DashboardUser>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&user)?;
    check_hex_id("the approval id", &id, 64)?;
    let identity = user.identity();
    match dashboard.remediator.approve(&id, &identity).await {
        Ok(detail) => {
            tracing::warn!(admin = %identity, approval = %id, "approved from the dashboard");
            Ok(Json(serde_json::json!({ "command_id": id, "detail": detail })))
        }
        Err(error @ ApprovalError::Unknown) => Err(ApiError::not_found(error.to_string())),
        Err(error @ (ApprovalError::Expired | ApprovalError::Rejected(_))) => {
            Err(ApiError::conflict(error.to_string()))
        }
        Err(ApprovalError::Store(error)) => Err(error.into()),
    }
}

/// The dry-run switch.
#[derive(Deserialize)]
pub struct DryRunRequest {
    enabled: bool,
}

/// `POST /api/dry-run` (admins): turns dry-run on or off for the fleet.
pub async fn set_dry_run(
    State(dashboard): State<Dashboard>,
    Extension(user): Extension<DashboardUser>,
    Json(request): Json<DryRunRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin(&user)?;
    let previous = dashboard.remediator.set_dry_run(request.enabled, &user.identity()).await?;
    Ok(Json(serde_json::json!({ "enabled": request.enabled, "previous": previous })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: EventKind, node: &str, container: &str) -> EventRecord {
        EventRecord::new(kind, node, "id", container, "why")
    }

    #[test]
    fn dashboard_filters_match_type_node_container_and_outcome() {
        let filter = EventFilter {
            types: "remediation_complete, rejected".into(),
            node: "host-a".into(),
            container: "WEB".into(),
            outcome: "success".into(),
            ..EventFilter::default()
        };
        let matcher = Matcher::parse(&filter).unwrap();
        let mut done = record(EventKind::RemediationComplete, "host-a", "my-web-1");
        done.outcome = Some(Outcome::Success);
        assert!(matcher.matches(&done));
        assert!(!matcher.matches(&EventRecord { outcome: Some(Outcome::Failed), ..done.clone() }));
        assert!(!matcher.matches(&EventRecord { node: "host-b".into(), ..done.clone() }));
        assert!(!matcher.matches(&EventRecord { container_name: "api".into(), ..done.clone() }));
        assert!(!matcher.matches(&EventRecord { kind: EventKind::HealthAlert, ..done }));
        assert!(Matcher::parse(&EventFilter { types: "nope".into(), ..EventFilter::default() }).is_err());
        assert!(Matcher::parse(&EventFilter { outcome: "great".into(), ..EventFilter::default() }).is_err());
        assert!(Matcher::parse(&EventFilter::default()).unwrap().matches(&record(EventKind::Storm, "", "")));
    }

    #[test]
    fn dashboard_reads_start_just_before_an_id() {
        assert_eq!(just_before(EventId { ms: 5, seq: 2 }), Some(EventId { ms: 5, seq: 1 }));
        assert_eq!(just_before(EventId { ms: 5, seq: 0 }), Some(EventId { ms: 4, seq: u64::MAX }));
        assert_eq!(just_before(EventId { ms: 0, seq: 0 }), None);
    }
}
