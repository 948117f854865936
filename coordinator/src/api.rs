//! FleetService: what operators and their tools ask of the coordinator.

use std::sync::Arc;

use hemostat_proto::timestamp::to_proto as timestamp;
use hemostat_proto::v1 as pb;
use tonic::{Request, Response, Status};

use hemostat_pki::{OperatorRole, Role};

use crate::auth::{Caller, authenticated};
use crate::directory::Directory;
use crate::events::{Action, EventId, EventKind, EventRecord, Outcome, unix_ms};
use crate::registry::{ContainerEntry, Registry};
use crate::remediation::{ApprovalError, ManualAction, Remediator, TriggerError};
use crate::silence::{MAX_SILENCE, Silence, new_silence_id};
use crate::store::{StateStore, StoreError};

/// Events returned when the request does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most events one ListEvents call returns.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// The most events one ListEvents call examines when filtering, so a narrow filter cannot scan forever.
const MAX_SCAN: usize = 20_000;
/// The longest node or container name a filter may hold.
const MAX_NAME_LEN: usize = 253;
/// The longest reason an operator may give.
const MAX_REASON_LEN: usize = 500;
/// The most arguments an exec may have, and the longest one.
const MAX_ARGS: usize = 32;
const MAX_ARG_LEN: usize = 256;
/// Recent events GetContainer returns when the request does not say, and at most.
const DEFAULT_RECENT_EVENTS: u32 = 20;
const MAX_RECENT_EVENTS: u32 = 200;
/// How far back GetContainer looks for a container's recent events.
const RECENT_EVENTS_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The FleetService implementation.
pub struct FleetApi {
    registry: Arc<Registry>,
    store: Arc<dyn StateStore>,
    remediator: Arc<Remediator>,
    directory: Arc<Directory>,
}

impl FleetApi {
    /// The API over this registry, store and remediator; `directory` adds the nodes connected to other
    /// coordinators of the fleet.
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<dyn StateStore>,
        remediator: Arc<Remediator>,
        directory: Arc<Directory>,
    ) -> Self {
        FleetApi { registry, store, remediator, directory }
    }

    /// The nodes connected to other coordinators, with their containers.
    async fn elsewhere(&self) -> Result<Vec<pb::DirectoryEntry>, Status> {
        self.directory.elsewhere().await.map_err(unavailable)
    }
}

/// Which log a query reads.
#[derive(Clone, Copy)]
enum Log {
    Events,
    Audit,
}

/// A validated-on-use query of a log.
struct Query {
    types: Vec<EventKind>,
    node: String,
    container: String,
    page_size: u32,
    page_token: String,
    /// Only `remediation_complete` events with this outcome.
    outcome: Option<Outcome>,
    /// Only events at or after this time (Unix ms).
    since_ms: Option<u64>,
    /// Only events before this time (Unix ms).
    until_ms: Option<u64>,
}

impl Query {
    /// A query of everything, one default page at a time.
    fn all() -> Self {
        Query {
            types: Vec::new(),
            node: String::new(),
            container: String::new(),
            page_size: 0,
            page_token: String::new(),
            outcome: None,
            since_ms: None,
            until_ms: None,
        }
    }

    /// Whether `record` passes the type, node, container and outcome filters (times are the cursor's job).
    fn matches(&self, r: &EventRecord) -> bool {
        (self.types.is_empty() || self.types.contains(&r.kind))
            && (self.node.is_empty() || r.node == self.node)
            && (self.container.is_empty() || r.container_name == self.container)
            && self.outcome.is_none_or(|outcome| r.outcome == Some(outcome))
    }
}

impl FleetApi {
    /// One page of `log` matching `query`, oldest first, and the token to read on.
    async fn page(&self, log: Log, query: &Query) -> Result<(Vec<pb::Event>, String), Status> {
        check_name("node", &query.node)?;
        check_name("container", &query.container)?;
        let page_size = match query.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(Status::invalid_argument(format!("page_size {n} is above the maximum of {MAX_PAGE_SIZE}")));
            }
            n => n,
        } as usize;
        let mut cursor = match query.page_token.as_str() {
            "" => query.since_ms.map(|ms| EventId { ms: ms.saturating_sub(1), seq: u64::MAX }),
            token => Some(token.parse::<EventId>().map_err(|e| Status::invalid_argument(format!("page_token: {e}")))?),
        };
        let mut events = Vec::new();
        let mut scanned = 0;
        'scan: while events.len() < page_size && scanned < MAX_SCAN {
            let batch = match log {
                Log::Events => self.store.read_events(cursor, 500).await,
                Log::Audit => self.store.read_audit(cursor, 500).await,
            }
            .map_err(unavailable)?;
            if batch.is_empty() {
                break;
            }
            for event in batch {
                if query.until_ms.is_some_and(|until| event.id.ms >= until) {
                    break 'scan;
                }
                scanned += 1;
                cursor = Some(event.id);
                if query.matches(&event.record) {
                    events.push(event.to_proto());
                    if events.len() == page_size {
                        break;
                    }
                }
            }
        }
        Ok((events, cursor.map_or_else(|| query.page_token.clone(), |id| id.to_string())))
    }
}

/// The state store's failure, as operators see it.
fn unavailable(error: StoreError) -> Status {
    Status::unavailable(format!("the state store did not answer: {error}"))
}

/// A required name: present, and not too long.
fn require_name(field: &str, value: &str) -> Result<(), Status> {
    if value.trim().is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    check_name(field, value)
}

/// An operator's reason: at most [`MAX_REASON_LEN`] characters, no control characters.
fn check_reason(value: &str, required: bool) -> Result<(), Status> {
    if required && value.trim().is_empty() {
        return Err(Status::invalid_argument("reason is required: say why, for the people who read the log later"));
    }
    if value.chars().count() > MAX_REASON_LEN {
        return Err(Status::invalid_argument(format!("reason is longer than {MAX_REASON_LEN} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Status::invalid_argument("reason holds control characters"));
    }
    Ok(())
}

/// An optional wire timestamp as Unix milliseconds.
fn time_filter(field: &str, value: Option<prost_types::Timestamp>) -> Result<Option<u64>, Status> {
    value
        .map(|t| {
            if t.seconds < 0 || !(0..1_000_000_000).contains(&t.nanos) {
                return Err(Status::invalid_argument(format!("{field} is not a valid time after 1970")));
            }
            Ok(t.seconds as u64 * 1000 + t.nanos as u64 / 1_000_000)
        })
        .transpose()
}

/// The event types of a filter.
fn event_types(raw: &[i32]) -> Result<Vec<EventKind>, Status> {
    raw.iter()
        .map(|raw| {
            pb::EventType::try_from(*raw)
                .ok()
                .and_then(EventKind::from_proto)
                .ok_or_else(|| Status::invalid_argument(format!("types: {raw} is not an event type")))
        })
        .collect()
}

/// Refuses callers who are not admins, saying which role is needed.
fn require_admin(caller: &Caller) -> Result<(), Status> {
    if caller.identity.role == Role::Operator(OperatorRole::Admin) {
        return Ok(());
    }
    tracing::warn!(caller = %caller.identity, "refused a change: it needs the admin role");
    Err(Status::permission_denied(format!("this needs the admin role; {} is not an admin", caller.identity)))
}

fn check_name(field: &str, value: &str) -> Result<(), Status> {
    if value.len() > MAX_NAME_LEN {
        return Err(Status::invalid_argument(format!("{field} is longer than {MAX_NAME_LEN} bytes")));
    }
    Ok(())
}

/// How often a live reader looks for events recorded by other coordinators on the same store.
const WATCH_POLL: std::time::Duration = std::time::Duration::from_millis(500);

#[tonic::async_trait]
impl pb::fleet_service_server::FleetService for FleetApi {
    type WatchEventsStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::WatchEventsResponse, Status>> + Send>>;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let request = request.into_inner();
        check_name("node", &request.node)?;
        check_name("container", &request.container)?;
        let filter = Query {
            types: event_types(&request.types)?,
            node: request.node,
            container: request.container,
            ..Query::all()
        };
        let mut cursor = match request.after_id.as_str() {
            "" => None,
            id => Some(id.parse::<EventId>().map_err(|e| Status::invalid_argument(format!("after_id: {e}")))?),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let (store, remediator) = (self.store.clone(), self.remediator.clone());
        tokio::spawn(async move {
            loop {
                let appended = remediator.appended();
                let batch = match store.read_events(cursor, 500).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        let _ =
                            tx.send(Err(Status::unavailable(format!("the state store did not answer: {error}")))).await;
                        return;
                    }
                };
                let caught_up = batch.len() < 500;
                for event in batch {
                    cursor = Some(event.id);
                    if filter.matches(&event.record)
                        && tx.send(Ok(pb::WatchEventsResponse { event: Some(event.to_proto()) })).await.is_err()
                    {
                        return;
                    }
                }
                if caught_up {
                    tokio::select! {
                        _ = appended => {}
                        _ = tokio::time::sleep(WATCH_POLL) => {}
                        _ = tx.closed() => return,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn list_nodes(
        &self,
        _request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        let elsewhere = self.elsewhere().await?;
        let mut nodes: Vec<pb::Node> = self
            .registry
            .nodes()
            .iter()
            .filter(|local| !elsewhere.iter().any(|e| e.node.as_ref().is_some_and(|n| n.name == local.hello.name)))
            .map(|node| node.to_proto())
            .collect();
        nodes.extend(elsewhere.into_iter().filter_map(|entry| entry.node));
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(pb::ListNodesResponse { nodes }))
    }

    async fn list_containers(
        &self,
        request: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
        let request = request.into_inner();
        check_name("node", &request.node)?;
        let node = (!request.node.is_empty()).then_some(request.node.as_str());
        let elsewhere = self.elsewhere().await?;
        let moved = |name: &str| elsewhere.iter().any(|e| e.node.as_ref().is_some_and(|n| n.name == name));
        let mut containers: Vec<pb::Container> =
            self.registry.containers(node).iter().filter(|c| !moved(&c.node)).map(ContainerEntry::to_proto).collect();
        for entry in elsewhere {
            containers.extend(entry.containers.into_iter().filter(|c| node.is_none_or(|n| c.node == n)));
        }
        containers.sort_by(|a, b| {
            let name = |c: &pb::Container| c.state.as_ref().map(|s| s.name.clone()).unwrap_or_default();
            (&a.node, name(a)).cmp(&(&b.node, name(b)))
        });
        Ok(Response::new(pb::ListContainersResponse { containers }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let request = request.into_inner();
        let outcome = match pb::Outcome::try_from(request.outcome) {
            Ok(pb::Outcome::Unspecified) => None,
            Ok(outcome) => Some(Outcome::from_proto(outcome)),
            Err(_) => return Err(Status::invalid_argument(format!("outcome: {} is not an outcome", request.outcome))),
        };
        let since_ms = time_filter("since", request.since)?;
        let until_ms = time_filter("until", request.until)?;
        if let (Some(since), Some(until)) = (since_ms, until_ms)
            && since >= until
        {
            return Err(Status::invalid_argument("since must be before until"));
        }
        let query = Query {
            types: event_types(&request.types)?,
            node: request.node,
            container: request.container,
            page_size: request.page_size,
            page_token: request.page_token,
            outcome,
            since_ms,
            until_ms,
        };
        let (events, next_page_token) = self.page(Log::Events, &query).await?;
        Ok(Response::new(pb::ListEventsResponse { events, next_page_token }))
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let request = request.into_inner();
        let query = Query {
            node: request.node,
            container: request.container,
            page_size: request.page_size,
            page_token: request.page_token,
            ..Query::all()
        };
        let (events, next_page_token) = self.page(Log::Audit, &query).await?;
        Ok(Response::new(pb::ListAuditResponse { events, next_page_token }))
    }

    async fn end_storm(&self, request: Request<pb::EndStormRequest>) -> Result<Response<pb::EndStormResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        require_admin(&caller)?;
        let cleared = self.remediator.end_storms(&caller.identity).await.map_err(unavailable)?;
        Ok(Response::new(pb::EndStormResponse { cleared }))
    }

    async fn approve_action(
        &self,
        request: Request<pb::ApproveActionRequest>,
    ) -> Result<Response<pb::ApproveActionResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        require_admin(&caller)?;
        let id = request.into_inner().approval_id;
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Status::invalid_argument(
                "approval_id must be the hexadecimal id of an awaiting_approval event",
            ));
        }
        match self.remediator.approve(&id, &caller.identity).await {
            Ok(detail) => Ok(Response::new(pb::ApproveActionResponse { command_id: id, detail })),
            Err(error @ ApprovalError::Unknown) => Err(Status::not_found(error.to_string())),
            Err(error @ (ApprovalError::Expired | ApprovalError::Rejected(_))) => {
                Err(Status::failed_precondition(error.to_string()))
            }
            Err(ApprovalError::Store(error)) => Err(unavailable(error)),
        }
    }

    async fn get_container(
        &self,
        request: Request<pb::GetContainerRequest>,
    ) -> Result<Response<pb::GetContainerResponse>, Status> {
        let request = request.into_inner();
        let entry = self.container(&request.node, &request.container).await?;
        let recent = match request.recent_events {
            0 => DEFAULT_RECENT_EVENTS,
            n if n > MAX_RECENT_EVENTS => {
                return Err(Status::invalid_argument(format!(
                    "recent_events {n} is above the maximum of {MAX_RECENT_EVENTS}"
                )));
            }
            n => n,
        } as usize;
        let now = unix_ms(std::time::SystemTime::now());
        let key = entry.facts.budget_key(&entry.node);
        let budget = self.remediator.budget().status(&self.store.read_budget(&key).await.map_err(unavailable)?, now);
        let silence = self.remediator.silence_for(&entry.node, &entry.facts.name).await.map_err(unavailable)?;
        let mut recent_events = Vec::new();
        let mut query = Query {
            node: entry.node.clone(),
            container: entry.facts.name.clone(),
            page_size: MAX_PAGE_SIZE,
            since_ms: Some(now.saturating_sub(RECENT_EVENTS_WINDOW.as_millis() as u64)),
            ..Query::all()
        };
        loop {
            let (events, next) = self.page(Log::Events, &query).await?;
            let done = events.is_empty() || next.is_empty();
            recent_events.extend(events);
            let excess = recent_events.len().saturating_sub(recent);
            recent_events.drain(..excess);
            if done {
                break;
            }
            (query.page_token, query.since_ms) = (next, None);
        }
        let circuit_retry = match budget.circuit {
            crate::policy::Circuit::Open { retry_after } => retry_after.as_secs().max(1),
            _ => 0,
        };
        let budget = pb::BudgetStatus {
            key,
            cooldown_remaining_seconds: budget.cooldown_remaining.as_secs_f64().ceil() as u64,
            attempts_in_window: budget.attempts_in_window,
            max_attempts: self.remediator.budget().max_attempts,
            consecutive_failures: budget.consecutive_failures,
            circuit: budget.circuit.name().to_owned(),
            circuit_retry_seconds: circuit_retry,
            last_action: budget
                .last_action_ms
                .map(|ms| timestamp(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))),
        };
        Ok(Response::new(pb::GetContainerResponse {
            recent_metrics: entry.recent.iter().map(|m| m.to_proto(&entry.facts)).collect(),
            container: Some(entry.to_proto()),
            budget: Some(budget),
            silence: silence.map(|s| s.to_proto()),
            recent_events,
        }))
    }

    async fn create_silence(
        &self,
        request: Request<pb::CreateSilenceRequest>,
    ) -> Result<Response<pb::CreateSilenceResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        require_admin(&caller)?;
        let request = request.into_inner();
        require_name("node", &request.node)?;
        check_name("container", &request.container)?;
        check_reason(&request.reason, true)?;
        if request.duration_seconds == 0 || request.duration_seconds > MAX_SILENCE.as_secs() {
            return Err(Status::invalid_argument(format!(
                "duration_seconds must be between 1 and {} (30 days)",
                MAX_SILENCE.as_secs()
            )));
        }
        let now = unix_ms(std::time::SystemTime::now());
        let silence = Silence {
            id: new_silence_id(),
            node: request.node,
            container: (!request.container.is_empty()).then_some(request.container),
            reason: request.reason,
            created_by: crate::remediation::operator(&caller.identity),
            created_ms: now,
            expires_ms: now + request.duration_seconds * 1000,
        };
        let silence = self.remediator.silence(silence).await.map_err(unavailable)?;
        tracing::warn!(admin = %caller.identity, target = %silence.target(), "silence created");
        Ok(Response::new(pb::CreateSilenceResponse { silence: Some(silence.to_proto()) }))
    }

    async fn list_silences(
        &self,
        _request: Request<pb::ListSilencesRequest>,
    ) -> Result<Response<pb::ListSilencesResponse>, Status> {
        let now = unix_ms(std::time::SystemTime::now());
        let silences = self.store.silences(now).await.map_err(unavailable)?;
        Ok(Response::new(pb::ListSilencesResponse { silences: silences.iter().map(Silence::to_proto).collect() }))
    }

    async fn delete_silence(
        &self,
        request: Request<pb::DeleteSilenceRequest>,
    ) -> Result<Response<pb::DeleteSilenceResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        require_admin(&caller)?;
        let id = request.into_inner().id;
        if id.is_empty() || id.len() > 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Status::invalid_argument("id must be a silence's hexadecimal id (see ListSilences)"));
        }
        match self.remediator.unsilence(&id, &caller.identity).await.map_err(unavailable)? {
            Some(silence) => Ok(Response::new(pb::DeleteSilenceResponse { silence: Some(silence.to_proto()) })),
            None => Err(Status::not_found(format!("no silence has the id {id} (it may have expired)"))),
        }
    }

    async fn get_dry_run(
        &self,
        _request: Request<pb::GetDryRunRequest>,
    ) -> Result<Response<pb::GetDryRunResponse>, Status> {
        let (enabled, source) = self.remediator.dry_run().await.map_err(unavailable)?;
        Ok(Response::new(pb::GetDryRunResponse { enabled, source: source.to_owned() }))
    }

    async fn set_dry_run(
        &self,
        request: Request<pb::SetDryRunRequest>,
    ) -> Result<Response<pb::SetDryRunResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        require_admin(&caller)?;
        let enabled = request.into_inner().enabled;
        let previous = self.remediator.set_dry_run(enabled, &caller.identity).await.map_err(unavailable)?;
        Ok(Response::new(pb::SetDryRunResponse { enabled, previous }))
    }

    async fn test_notifications(
        &self,
        request: Request<pb::TestNotificationsRequest>,
    ) -> Result<Response<pb::TestNotificationsResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        require_admin(&caller)?;
        let operator = caller.identity.to_string();
        let response =
            crate::alerting::probe::serve(self.remediator.notifier(), &operator, request.into_inner()).await?;
        Ok(Response::new(response))
    }

    async fn trigger_action(
        &self,
        request: Request<pb::TriggerActionRequest>,
    ) -> Result<Response<pb::TriggerActionResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        require_admin(&caller)?;
        let request = request.into_inner();
        let action = pb::Action::try_from(request.action)
            .ok()
            .and_then(Action::from_proto)
            .ok_or_else(|| Status::invalid_argument("action must be restart, exec, cleanup or scale_up"))?;
        check_reason(&request.reason, false)?;
        match action {
            Action::Exec if request.argv.is_empty() => {
                return Err(Status::invalid_argument("exec needs argv: the command's argument vector"));
            }
            Action::Exec if request.argv.len() > MAX_ARGS || request.argv.iter().any(|a| a.len() > MAX_ARG_LEN) => {
                return Err(Status::invalid_argument(format!(
                    "argv may hold at most {MAX_ARGS} arguments of at most {MAX_ARG_LEN} bytes"
                )));
            }
            Action::Exec => {}
            _ if !request.argv.is_empty() => {
                return Err(Status::invalid_argument(format!("argv is only for exec, not {}", action.name())));
            }
            _ => {}
        }
        let entry = self.container(&request.node, &request.container).await?;
        let manual = ManualAction {
            node: entry.node,
            container: entry.facts,
            action,
            argv: request.argv,
            force: request.force,
            reason: if request.reason.is_empty() { "no reason given".into() } else { request.reason },
        };
        let name = manual.container.name.clone();
        match self.remediator.trigger(manual, &caller.identity).await {
            Ok(command_id) => Ok(Response::new(pb::TriggerActionResponse {
                detail: format!(
                    "sent {} of {name} to node {}; its result arrives as remediation_complete",
                    action.name(),
                    request.node
                ),
                command_id,
            })),
            Err(error @ TriggerError::NotPermitted(_)) => Err(Status::failed_precondition(error.to_string())),
            Err(error @ TriggerError::Rejected(_)) => Err(Status::failed_precondition(error.to_string())),
            Err(TriggerError::NodeNotConnected(error)) => Err(Status::unavailable(error)),
            Err(TriggerError::Store(error)) => Err(unavailable(error)),
        }
    }
}

impl FleetApi {
    /// The container `ident` (its name, full id, or an id prefix of at least 12 characters) on `node`.
    /// Looks in this coordinator's registry, then in the fleet directory (a node connected elsewhere).
    async fn container(&self, node: &str, ident: &str) -> Result<ContainerEntry, Status> {
        require_name("node", node)?;
        require_name("container", ident)?;
        let matches = |e: &ContainerEntry| {
            e.facts.name == ident || e.facts.id == ident || (ident.len() >= 12 && e.facts.id.starts_with(ident))
        };
        let mut entries = self.registry.containers(Some(node));
        if let Some(entry) = self.directory.elsewhere_one(node).await.map_err(unavailable)? {
            entries = entry.containers.iter().filter_map(ContainerEntry::from_proto).collect();
        }
        entries
            .into_iter()
            .find(matches)
            .ok_or_else(|| Status::not_found(format!("node {node:?} has reported no container {ident:?}")))
    }
}
