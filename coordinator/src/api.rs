//! FleetService: what operators and their tools ask of the coordinator.

use std::sync::Arc;

use hemostat_proto::timestamp::to_proto as timestamp;
use hemostat_proto::v1 as pb;
use tonic::{Request, Response, Status};

use hemostat_pki::{OperatorRole, Role};

use crate::auth::{Caller, authenticated};
use crate::events::{EventId, EventKind};
use crate::registry::Registry;
use crate::remediation::{ApprovalError, Remediator};
use crate::store::StateStore;

/// Events returned when the request does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most events one ListEvents call returns.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// The most events one ListEvents call examines when filtering, so a narrow filter cannot scan forever.
const MAX_SCAN: usize = 20_000;
/// The longest node or container name a filter may hold.
const MAX_NAME_LEN: usize = 253;

/// The FleetService implementation.
pub struct FleetApi {
    registry: Arc<Registry>,
    store: Arc<dyn StateStore>,
    remediator: Arc<Remediator>,
}

impl FleetApi {
    /// The API over this registry, store and remediator.
    pub fn new(registry: Arc<Registry>, store: Arc<dyn StateStore>, remediator: Arc<Remediator>) -> Self {
        FleetApi { registry, store, remediator }
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
}

impl FleetApi {
    /// One page of `log` matching `query`, oldest first, and the token to read on.
    async fn page(&self, log: Log, query: Query) -> Result<(Vec<pb::Event>, String), Status> {
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
            "" => None,
            token => Some(token.parse::<EventId>().map_err(|e| Status::invalid_argument(format!("page_token: {e}")))?),
        };
        let mut events = Vec::new();
        let mut scanned = 0;
        while events.len() < page_size && scanned < MAX_SCAN {
            let batch = match log {
                Log::Events => self.store.read_events(cursor, 500).await,
                Log::Audit => self.store.read_audit(cursor, 500).await,
            }
            .map_err(|e| Status::unavailable(format!("the state store did not answer: {e}")))?;
            if batch.is_empty() {
                break;
            }
            for event in batch {
                scanned += 1;
                cursor = Some(event.id);
                let r = &event.record;
                let matches = (query.types.is_empty() || query.types.contains(&r.kind))
                    && (query.node.is_empty() || r.node == query.node)
                    && (query.container.is_empty() || r.container_name == query.container);
                if matches {
                    events.push(event.to_proto());
                    if events.len() == page_size {
                        break;
                    }
                }
            }
        }
        Ok((events, cursor.map(|id| id.to_string()).unwrap_or(query.page_token)))
    }
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
        let mut types = Vec::with_capacity(request.types.len());
        for raw in &request.types {
            types.push(
                pb::EventType::try_from(*raw)
                    .ok()
                    .and_then(EventKind::from_proto)
                    .ok_or_else(|| Status::invalid_argument(format!("types: {raw} is not an event type")))?,
            );
        }
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
                    let r = &event.record;
                    let matches = (types.is_empty() || types.contains(&r.kind))
                        && (request.node.is_empty() || r.node == request.node)
                        && (request.container.is_empty() || r.container_name == request.container);
                    if matches && tx.send(Ok(pb::WatchEventsResponse { event: Some(event.to_proto()) })).await.is_err()
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
        let nodes = self
            .registry
            .nodes()
            .into_iter()
            .map(|node| pb::Node {
                name: node.hello.name,
                connected: node.connected,
                address: node.address.map(|a| a.to_string()).unwrap_or_default(),
                version: node.hello.version,
                hostname: node.hello.hostname,
                connected_at: Some(timestamp(node.connected_at)),
                last_seen: Some(timestamp(node.last_seen)),
                spool_depth: node.spool_depth,
                spool_dropped: node.spool_dropped,
            })
            .collect();
        Ok(Response::new(pb::ListNodesResponse { nodes }))
    }

    async fn list_containers(
        &self,
        request: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
        let request = request.into_inner();
        check_name("node", &request.node)?;
        let node = (!request.node.is_empty()).then_some(request.node.as_str());
        let containers = self
            .registry
            .containers(node)
            .into_iter()
            .map(|entry| pb::Container {
                metrics: entry.metrics.map(|m| m.to_proto(&entry.facts)),
                anomalies: entry.anomalies.iter().map(|a| a.to_proto()).collect(),
                state: Some(entry.facts.to_proto()),
                updated_at: Some(timestamp(entry.updated_at)),
                node: entry.node,
            })
            .collect();
        Ok(Response::new(pb::ListContainersResponse { containers }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let request = request.into_inner();
        let mut types = Vec::with_capacity(request.types.len());
        for raw in &request.types {
            let kind = pb::EventType::try_from(*raw)
                .ok()
                .and_then(EventKind::from_proto)
                .ok_or_else(|| Status::invalid_argument(format!("types: {raw} is not an event type")))?;
            types.push(kind);
        }
        let query = Query {
            types,
            node: request.node,
            container: request.container,
            page_size: request.page_size,
            page_token: request.page_token,
        };
        let (events, next_page_token) = self.page(Log::Events, query).await?;
        Ok(Response::new(pb::ListEventsResponse { events, next_page_token }))
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let request = request.into_inner();
        let query = Query {
            types: vec![],
            node: request.node,
            container: request.container,
            page_size: request.page_size,
            page_token: request.page_token,
        };
        let (events, next_page_token) = self.page(Log::Audit, query).await?;
        Ok(Response::new(pb::ListAuditResponse { events, next_page_token }))
    }

    async fn end_storm(&self, request: Request<pb::EndStormRequest>) -> Result<Response<pb::EndStormResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        require_admin(&caller)?;
        let cleared = self
            .remediator
            .end_storms(&caller.identity)
            .await
            .map_err(|e| Status::unavailable(format!("the state store did not answer: {e}")))?;
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
            Err(ApprovalError::Store(error)) => {
                Err(Status::unavailable(format!("the state store did not answer: {error}")))
            }
        }
    }
}
