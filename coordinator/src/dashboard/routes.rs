//! The dashboard's JSON API: what the page reads (`GET /api/...`) and the admin's changes (`POST`), each
//! through the same registry, store and remediator methods as FleetService.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Dashboard;
use super::auth::{self, DashboardRole, DashboardUser, Refusal};
use super::metric_series::{SeriesPoint, series};
use crate::container::Anomaly;
use crate::events::{EventId, EventKind, EventRecord, Outcome, StoredEvent, unix_ms};
use crate::fleet::FleetError;
use crate::fleet::analytics::{Analytics, Period};
use crate::fleet::commands::SilenceRequest;
use crate::fleet::event_reads::{EventFilter, NameMatch};
use crate::fleet::queries::ContainerDetail;
use crate::silence::Silence;

/// Events the timeline returns when the request does not say, and at most.
const DEFAULT_LIMIT: usize = 200;
const MAX_LIMIT: usize = 1000;
/// The timeline's default period: the last day.
const DEFAULT_PERIOD: Duration = Duration::from_secs(24 * 3600);
/// Points in an overview trend line: those spanning the last 60 samples.
const TREND_POINTS: usize = 60 / crate::history::SAMPLES_PER_POINT as usize;
/// Events on a container's page.
const CONTAINER_EVENTS: usize = 200;

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
}

impl From<FleetError> for ApiError {
    fn from(error: FleetError) -> Self {
        let status = match &error {
            FleetError::Invalid(_) => StatusCode::BAD_REQUEST,
            FleetError::Forbidden(_) => StatusCode::FORBIDDEN,
            FleetError::NotFound(_) => StatusCode::NOT_FOUND,
            FleetError::Stopped(_) | FleetError::TooBroad(_) => StatusCode::CONFLICT,
            FleetError::NodeUnreachable(_) | FleetError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError { status, message: error.to_string() }
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
        Refusal::TooManyAttempts(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let message = format!("too many failed logins; try again in {seconds}s");
            let mut response = ApiError { status: StatusCode::TOO_MANY_REQUESTS, message }.into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            response
        }
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
pub async fn login(
    State(dashboard): State<Dashboard>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Json(login): Json<Login>,
) -> Response {
    match dashboard.access.login(login.token.trim(), client.ip()) {
        Ok((session, user)) => {
            dashboard.instruments.count_dashboard_login("ok");
            tracing::info!(user = %user.name, role = ?user.role, "dashboard: logged in");
            let mut response = Json(session_view(&dashboard, Some(user))).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&dashboard.access.session_cookie(&session)) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(refusal) => {
            match &refusal {
                Refusal::TooManyAttempts(wait) => {
                    dashboard.instruments.count_dashboard_login("limited");
                    tracing::warn!(%client, ?wait, "dashboard: a login refused, too many failed lately")
                }
                _ => {
                    dashboard.instruments.count_dashboard_login("refused");
                    tracing::warn!(%client, "dashboard: a login with an unknown token was refused")
                }
            }
            refused(refusal)
        }
    }
}

/// `POST /api/logout`: ends the browser session.
pub async fn logout(State(dashboard): State<Dashboard>, headers: HeaderMap) -> Response {
    dashboard.access.logout(&headers);
    let mut response = Json(session_view(&dashboard, None)).into_response();
    let cookie = HeaderValue::from_str(&dashboard.access.expired_cookie()).expect("ascii");
    response.headers_mut().insert(header::SET_COOKIE, cookie);
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
    /// The breaker is open: no automatic action until `hemostat release` or its trial.
    quarantined: bool,
    /// `cooldown` or `backoff`.
    restart_policy: &'static str,
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

/// The page's view of a container, with its budget and silence.
fn container_view(detail: ContainerDetail) -> ContainerView {
    let ContainerDetail { entry, budget, silence, .. } = detail;
    let trend: Vec<_> = entry.recent.samples().skip(entry.recent.len().saturating_sub(TREND_POINTS)).collect();
    let m = entry.metrics.as_ref();
    let status = budget.status;
    ContainerView {
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
            key: budget.key,
            cooldown_remaining_s: status.cooldown_seconds(),
            attempts_in_window: status.attempts_in_window,
            max_attempts: budget.max_attempts,
            consecutive_failures: status.consecutive_failures,
            circuit: status.circuit.name(),
            circuit_retry_s: status.circuit_retry_seconds(),
            last_action_ms: status.last_action_ms,
            quarantined: status.quarantined(),
            restart_policy: budget.restart_policy,
        },
        silence,
    }
}

/// What the overview shows.
#[derive(Serialize)]
pub struct OverviewView {
    now_ms: u64,
    nodes: Vec<NodeView>,
    /// At most [`OVERVIEW_CONTAINERS`] containers: those with anomalies first, then those not running, then
    /// the rest, each by node and name.
    containers: Vec<ContainerView>,
    /// How many containers the fleet has.
    containers_total: usize,
    /// How many anomalies the fleet's containers have now.
    anomalies_total: usize,
    silences: Vec<Silence>,
    dry_run: bool,
    dry_run_source: &'static str,
    /// Whether decisions wait for approval.
    approval_required: bool,
    /// Decisions waiting for an admin, oldest first.
    pending_approvals: Vec<EventView>,
}

/// The most containers the overview lists (with their budgets, read from the store on every refresh); the
/// rest of a large fleet is counted, and listed by `hemostat containers`.
pub const OVERVIEW_CONTAINERS: usize = 500;

/// `GET /api/overview`: the whole fleet's nodes; the containers that need attention first, at most
/// [`OVERVIEW_CONTAINERS`], with their metrics, anomalies, budgets and silences, and the fleet's counts;
/// dry-run; decisions awaiting approval.
pub async fn overview(State(dashboard): State<Dashboard>) -> Result<Json<OverviewView>, ApiError> {
    let fleet = &dashboard.fleet;
    let nodes = fleet
        .nodes()
        .await?
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
    let overview = fleet.overview(OVERVIEW_CONTAINERS).await?;
    let (containers_total, anomalies_total) = (overview.containers_total, overview.anomalies_total);
    let containers = fleet.container_details(overview.containers).await?;
    let dry_run = fleet.dry_run().await?;
    Ok(Json(OverviewView {
        now_ms: now_ms(),
        nodes,
        containers: containers.into_iter().map(container_view).collect(),
        containers_total,
        anomalies_total,
        silences: fleet.silences().await?,
        dry_run: dry_run.enabled,
        dry_run_source: dry_run.source.name(),
        approval_required: fleet.approval_ttl().is_some(),
        pending_approvals: fleet.pending_approvals().await?.iter().map(EventView::of).collect(),
    }))
}

/// The timeline's filters, as the page sends them.
#[derive(Debug, Default, Deserialize)]
pub struct TimelineQuery {
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

impl TimelineQuery {
    /// The filter it asks for: names of types and outcome to the domain's, the container as a search.
    fn filter(&self) -> Result<EventFilter, ApiError> {
        let types = self
            .types
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                serde_json::from_value::<EventKind>(serde_json::Value::String(t.to_owned()))
                    .map_err(|_| ApiError::bad_request(format!("unknown event type {t:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outcome = match self.outcome.as_str() {
            "" => None,
            name => Some(
                Outcome::ALL
                    .into_iter()
                    .find(|o| o.name() == name)
                    .ok_or_else(|| ApiError::bad_request(format!("unknown outcome {name:?}")))?,
            ),
        };
        Ok(EventFilter { types, node: self.node.clone(), container: NameMatch::containing(&self.container), outcome })
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
    Query(query): Query<TimelineQuery>,
) -> Result<Json<EventsView>, ApiError> {
    let filter = query.filter()?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let since = query.since.unwrap_or_else(|| now_ms().saturating_sub(DEFAULT_PERIOD.as_millis() as u64));
    let newest = dashboard.fleet.newest_events(&filter, since, query.until, limit).await?;
    Ok(Json(EventsView {
        events: newest.events.iter().rev().map(EventView::of).collect(),
        matched: newest.matched,
        truncated: newest.truncated,
        since_ms: since,
        until_ms: query.until,
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
    let details = dashboard.fleet.event_details(id).await?;
    let views = |events: &[StoredEvent]| events.iter().map(EventView::of).collect();
    Ok(Json(EventDetails {
        event: EventView::of(&details.event),
        related: views(&details.related),
        audit: views(&details.audit),
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

/// `GET /api/containers/{node}/{container}` (the container's name, id, or an id prefix of 12 characters or
/// more; on any node of the fleet): its charts and events.
pub async fn container(
    State(dashboard): State<Dashboard>,
    Path((node, ident)): Path<(String, String)>,
) -> Result<Json<ContainerPage>, ApiError> {
    let detail = dashboard.fleet.container_detail(&node, &ident).await?;
    let now = now_ms();
    let series = series(detail.entry.recent.samples());
    let hour_ago = now.saturating_sub(3_600_000);
    let since = series.first().map_or(hour_ago, |p| p.t_ms.min(hour_ago));
    let filter = EventFilter {
        node: detail.entry.node.clone(),
        container: NameMatch::exactly(detail.entry.facts.name.clone()),
        ..EventFilter::default()
    };
    let events = dashboard.fleet.newest_events(&filter, since, None, CONTAINER_EVENTS).await?;
    Ok(Json(ContainerPage {
        now_ms: now,
        container: container_view(detail),
        series,
        events: events.events.iter().rev().map(EventView::of).collect(),
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
    Ok(Json(dashboard.fleet.analytics(Period { since_ms: since, until_ms: until }).await?))
}

/// A new silence.
#[derive(Deserialize)]
pub struct SilenceForm {
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
    Json(form): Json<SilenceForm>,
) -> Result<Json<Silence>, ApiError> {
    let request = SilenceRequest {
        node: form.node,
        container: form.container,
        duration_seconds: form.duration_seconds,
        reason: form.reason,
    };
    Ok(Json(dashboard.fleet.create_silence(&user.identity(), request).await?))
}

/// `POST /api/silences/{id}/end` (admins): ends a silence early.
pub async fn end_silence(
    State(dashboard): State<Dashboard>,
    Extension(user): Extension<DashboardUser>,
    Path(id): Path<String>,
) -> Result<Json<Silence>, ApiError> {
    Ok(Json(dashboard.fleet.end_silence(&user.identity(), &id).await?))
}

/// `POST /api/approvals/{id}` (admins): lets a decision waiting for approval go ahead.
pub async fn approve(
    State(dashboard): State<Dashboard>,
    Extension(user): Extension<DashboardUser>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let sent = dashboard.fleet.approve(&user.identity(), &id).await?;
    Ok(Json(serde_json::json!({ "command_id": sent.command_id, "detail": sent.detail })))
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
    let previous = dashboard.fleet.set_dry_run(&user.identity(), request.enabled).await?;
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
        let filter = TimelineQuery {
            types: "remediation_complete, rejected".into(),
            node: "host-a".into(),
            container: "WEB".into(),
            outcome: "success".into(),
            ..TimelineQuery::default()
        };
        let matcher = filter.filter().unwrap();
        let mut done = record(EventKind::RemediationComplete, "host-a", "my-web-1");
        done.outcome = Some(Outcome::Success);
        assert!(matcher.matches(&done));
        assert!(!matcher.matches(&EventRecord { outcome: Some(Outcome::Failed), ..done.clone() }));
        assert!(!matcher.matches(&EventRecord { node: "host-b".into(), ..done.clone() }));
        assert!(!matcher.matches(&EventRecord { container_name: "api".into(), ..done.clone() }));
        assert!(!matcher.matches(&EventRecord { kind: EventKind::HealthAlert, ..done }));
        assert!(TimelineQuery { types: "nope".into(), ..TimelineQuery::default() }.filter().is_err());
        assert!(TimelineQuery { outcome: "great".into(), ..TimelineQuery::default() }.filter().is_err());
        assert!(TimelineQuery::default().filter().unwrap().matches(&record(EventKind::Storm, "", "")));
    }

    #[test]
    fn fleet_errors_become_http_statuses_with_their_message() {
        let cases = [
            (FleetError::Invalid("bad".into()), StatusCode::BAD_REQUEST),
            (FleetError::Forbidden("viewer".into()), StatusCode::FORBIDDEN),
            (FleetError::NotFound("gone".into()), StatusCode::NOT_FOUND),
            (FleetError::Stopped("expired".into()), StatusCode::CONFLICT),
            (FleetError::TooBroad("too many".into()), StatusCode::CONFLICT),
            (FleetError::NodeUnreachable("host-a".into()), StatusCode::SERVICE_UNAVAILABLE),
        ];
        for (error, status) in cases {
            let message = error.to_string();
            let api = ApiError::from(error);
            assert_eq!((api.status, api.message), (status, message));
        }
    }
}
