//! FleetService: what operators and their tools ask of the coordinator, over gRPC. A thin adapter: each
//! call turns its request into a [`Fleet`] query or command, and the answer or [`FleetError`] back into the
//! wire form.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hemostat_proto::timestamp::to_proto as timestamp;
use hemostat_proto::v1 as pb;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use crate::auth::authenticated;
use crate::events::{Action, EventId, EventKind, Outcome, StoredEvent, unix_ms};
use crate::fleet::commands::{SilenceRequest, TriggerRequest};
use crate::fleet::event_reads::{EventFilter, EventPage, NameMatch, PageQuery};
use crate::fleet::paging::page_of;
use crate::fleet::queries::BudgetFigures;
use crate::fleet::{Fleet, FleetError};
use crate::remediation::journal::Log;
use crate::silence::Silence;

/// Recent events GetContainer returns when the request does not say, and at most.
const DEFAULT_RECENT_EVENTS: u32 = 20;
const MAX_RECENT_EVENTS: u32 = 200;
/// How far back GetContainer looks for a container's recent events.
const RECENT_EVENTS_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The FleetService implementation.
pub struct FleetApi {
    fleet: Arc<Fleet>,
}

impl FleetApi {
    /// The API over the fleet service.
    pub fn new(fleet: Arc<Fleet>) -> Self {
        FleetApi { fleet }
    }
}

/// A fleet error as a gRPC status.
fn status(error: FleetError) -> Status {
    let message = error.to_string();
    match error {
        FleetError::Invalid(_) => Status::invalid_argument(message),
        FleetError::Forbidden(_) => Status::permission_denied(message),
        FleetError::NotFound(_) => Status::not_found(message),
        FleetError::Stopped(_) | FleetError::TooBroad(_) => Status::failed_precondition(message),
        FleetError::NodeUnreachable(_) | FleetError::Store(_) => Status::unavailable(message),
    }
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
                .and_then(|kind| EventKind::try_from(kind).ok())
                .ok_or_else(|| Status::invalid_argument(format!("types: {raw} is not an event type")))
        })
        .collect()
}

/// An event id the client sent back (`page_token`, `after_id`); empty: none.
fn event_id(field: &str, raw: &str) -> Result<Option<EventId>, Status> {
    match raw {
        "" => Ok(None),
        id => id.parse().map(Some).map_err(|e| Status::invalid_argument(format!("{field}: {e}"))),
    }
}

/// A filter of exact names.
fn filter(types: &[i32], node: String, container: String) -> Result<EventFilter, Status> {
    Ok(EventFilter { types: event_types(types)?, node, container: NameMatch::exactly(container), outcome: None })
}

fn events(events: &[StoredEvent]) -> Vec<pb::Event> {
    events.iter().map(StoredEvent::to_proto).collect()
}

/// A page and the token to read on.
fn page(page: EventPage) -> (Vec<pb::Event>, String) {
    (events(&page.events), page.next.map(|id| id.to_string()).unwrap_or_default())
}

fn budget(figures: BudgetFigures) -> pb::BudgetStatus {
    let status = figures.status;
    pb::BudgetStatus {
        key: figures.key,
        cooldown_remaining_seconds: status.cooldown_seconds(),
        attempts_in_window: status.attempts_in_window,
        max_attempts: figures.max_attempts,
        consecutive_failures: status.consecutive_failures,
        circuit: status.circuit.name().to_owned(),
        circuit_retry_seconds: status.circuit_retry_seconds(),
        last_action: status.last_action_ms.map(|ms| timestamp(UNIX_EPOCH + Duration::from_millis(ms))),
        quarantined: status.quarantined(),
        restart_policy: figures.restart_policy.to_owned(),
    }
}

#[tonic::async_trait]
impl pb::fleet_service_server::FleetService for FleetApi {
    type WatchEventsStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::WatchEventsResponse, Status>> + Send>>;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let request = request.into_inner();
        let filter = filter(&request.types, request.node, request.container)?;
        let after = event_id("after_id", &request.after_id)?;
        let tail = self.fleet.watch(after, filter).map_err(status)?;
        let stream = tail.map(|event| match event {
            Ok(event) => Ok(pb::WatchEventsResponse { event: Some(event.to_proto()) }),
            Err(error) => Err(status(error.into())),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        let request = request.into_inner();
        let nodes = self.fleet.nodes().await.map_err(status)?;
        let page =
            page_of(nodes, |n| vec![n.hello.name.clone()], request.page_size, &request.page_token).map_err(status)?;
        Ok(Response::new(pb::ListNodesResponse {
            nodes: page.items.iter().map(|n| n.to_proto()).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    async fn list_containers(
        &self,
        request: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
        let request = request.into_inner();
        let node = (!request.node.is_empty()).then_some(request.node.as_str());
        let page = self.fleet.container_page(node, request.page_size, &request.page_token).await.map_err(status)?;
        let details = self.fleet.container_details(page.items).await.map_err(status)?;
        Ok(Response::new(pb::ListContainersResponse {
            next_page_token: page.next_token.unwrap_or_default(),
            containers: details
                .into_iter()
                .map(|detail| pb::Container {
                    budget: Some(budget(detail.budget)),
                    silence: detail.silence.map(|s| s.to_proto()),
                    ..detail.entry.to_proto()
                })
                .collect(),
        }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let request = request.into_inner();
        let outcome = match pb::Outcome::try_from(request.outcome) {
            Ok(pb::Outcome::Unspecified) => None,
            Ok(outcome) => Some(Outcome::from(outcome)),
            Err(_) => return Err(Status::invalid_argument(format!("outcome: {} is not an outcome", request.outcome))),
        };
        let since_ms = time_filter("since", request.since)?;
        let until_ms = time_filter("until", request.until)?;
        let query = PageQuery {
            filter: EventFilter { outcome, ..filter(&request.types, request.node, request.container)? },
            page_size: request.page_size,
            after: event_id("page_token", &request.page_token)?,
            since_ms,
            until_ms,
        };
        let (events, next_page_token) = page(self.fleet.page(Log::Events, &query).await.map_err(status)?);
        Ok(Response::new(pb::ListEventsResponse { events, next_page_token }))
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        let request = request.into_inner();
        let query = PageQuery {
            filter: filter(&[], request.node, request.container)?,
            page_size: request.page_size,
            after: event_id("page_token", &request.page_token)?,
            ..PageQuery::default()
        };
        let (events, next_page_token) = page(self.fleet.page(Log::Audit, &query).await.map_err(status)?);
        Ok(Response::new(pb::ListAuditResponse { events, next_page_token }))
    }

    async fn end_storm(&self, request: Request<pb::EndStormRequest>) -> Result<Response<pb::EndStormResponse>, Status> {
        let caller = authenticated(&request)?;
        let cleared = self.fleet.end_storms(&caller.identity).await.map_err(status)?;
        Ok(Response::new(pb::EndStormResponse { cleared }))
    }

    async fn release_container(
        &self,
        request: Request<pb::ReleaseContainerRequest>,
    ) -> Result<Response<pb::ReleaseContainerResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        let request = request.into_inner();
        let released = self.fleet.release(&caller.identity, &request.node, &request.container).await.map_err(status)?;
        Ok(Response::new(pb::ReleaseContainerResponse {
            key: released.key,
            was_quarantined: released.was_quarantined,
            detail: released.detail,
        }))
    }

    async fn approve_action(
        &self,
        request: Request<pb::ApproveActionRequest>,
    ) -> Result<Response<pb::ApproveActionResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        let id = request.into_inner().approval_id;
        let sent = self.fleet.approve(&caller.identity, &id).await.map_err(status)?;
        Ok(Response::new(pb::ApproveActionResponse { command_id: sent.command_id, detail: sent.detail }))
    }

    async fn get_container(
        &self,
        request: Request<pb::GetContainerRequest>,
    ) -> Result<Response<pb::GetContainerResponse>, Status> {
        let request = request.into_inner();
        let detail = self.fleet.container_detail(&request.node, &request.container).await.map_err(status)?;
        let recent = match request.recent_events {
            0 => DEFAULT_RECENT_EVENTS,
            n if n > MAX_RECENT_EVENTS => {
                return Err(Status::invalid_argument(format!(
                    "recent_events {n} is above the maximum of {MAX_RECENT_EVENTS}"
                )));
            }
            n => n,
        } as usize;
        let entry = &detail.entry;
        let filter = EventFilter {
            node: entry.node.clone(),
            container: NameMatch::exactly(entry.facts.name.clone()),
            ..EventFilter::default()
        };
        let since = unix_ms(SystemTime::now()).saturating_sub(RECENT_EVENTS_WINDOW.as_millis() as u64);
        let recent_events = self.fleet.newest_events(&filter, since, None, recent).await.map_err(status)?;
        let state = pb::ContainerState::from(&entry.facts);
        Ok(Response::new(pb::GetContainerResponse {
            recent_metrics: entry.recent.samples().map(|m| m.to_wire(&state)).collect(),
            container: Some(entry.to_proto()),
            budget: Some(budget(detail.budget)),
            silence: detail.silence.map(|s| s.to_proto()),
            recent_events: events(&recent_events.events),
            policy: detail.policy.iter().map(pb::PolicyValue::from).collect(),
        }))
    }

    async fn create_silence(
        &self,
        request: Request<pb::CreateSilenceRequest>,
    ) -> Result<Response<pb::CreateSilenceResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        let request = request.into_inner();
        let request = SilenceRequest {
            node: request.node,
            container: request.container,
            duration_seconds: request.duration_seconds,
            reason: request.reason,
        };
        let silence = self.fleet.create_silence(&caller.identity, request).await.map_err(status)?;
        Ok(Response::new(pb::CreateSilenceResponse { silence: Some(silence.to_proto()) }))
    }

    async fn list_silences(
        &self,
        _request: Request<pb::ListSilencesRequest>,
    ) -> Result<Response<pb::ListSilencesResponse>, Status> {
        let silences = self.fleet.silences().await.map_err(status)?;
        Ok(Response::new(pb::ListSilencesResponse { silences: silences.iter().map(Silence::to_proto).collect() }))
    }

    async fn delete_silence(
        &self,
        request: Request<pb::DeleteSilenceRequest>,
    ) -> Result<Response<pb::DeleteSilenceResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        let id = request.into_inner().id;
        let silence = self.fleet.end_silence(&caller.identity, &id).await.map_err(status)?;
        Ok(Response::new(pb::DeleteSilenceResponse { silence: Some(silence.to_proto()) }))
    }

    async fn get_dry_run(
        &self,
        _request: Request<pb::GetDryRunRequest>,
    ) -> Result<Response<pb::GetDryRunResponse>, Status> {
        let dry_run = self.fleet.dry_run().await.map_err(status)?;
        Ok(Response::new(pb::GetDryRunResponse { enabled: dry_run.enabled, source: dry_run.source.name().to_owned() }))
    }

    async fn set_dry_run(
        &self,
        request: Request<pb::SetDryRunRequest>,
    ) -> Result<Response<pb::SetDryRunResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        let enabled = request.into_inner().enabled;
        let previous = self.fleet.set_dry_run(&caller.identity, enabled).await.map_err(status)?;
        Ok(Response::new(pb::SetDryRunResponse { enabled, previous }))
    }

    async fn test_notifications(
        &self,
        request: Request<pb::TestNotificationsRequest>,
    ) -> Result<Response<pb::TestNotificationsResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        let results =
            self.fleet.test_notifications(&caller.identity, &request.into_inner().sink).await.map_err(status)?;
        let results = results
            .into_iter()
            .map(|r| pb::SinkTestResult { sink: r.sink.to_owned(), delivered: r.delivered, answer: r.answer })
            .collect();
        Ok(Response::new(pb::TestNotificationsResponse { results }))
    }

    async fn trigger_action(
        &self,
        request: Request<pb::TriggerActionRequest>,
    ) -> Result<Response<pb::TriggerActionResponse>, Status> {
        let caller = authenticated(&request)?.clone();
        let request = request.into_inner();
        let action = pb::Action::try_from(request.action).ok().and_then(|action| Action::try_from(action).ok());
        let request = TriggerRequest {
            node: request.node,
            container: request.container,
            action,
            argv: request.argv,
            force: request.force,
            reason: request.reason,
        };
        let sent = self.fleet.trigger(&caller.identity, request).await.map_err(status)?;
        Ok(Response::new(pb::TriggerActionResponse { command_id: sent.command_id, detail: sent.detail }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn each_fleet_error_has_its_grpc_code_and_says_why() {
        let cases = [
            (FleetError::Invalid("bad".into()), tonic::Code::InvalidArgument),
            (FleetError::Forbidden("no".into()), tonic::Code::PermissionDenied),
            (FleetError::NotFound("gone".into()), tonic::Code::NotFound),
            (FleetError::Stopped("cooldown".into()), tonic::Code::FailedPrecondition),
            (FleetError::NodeUnreachable("host-a".into()), tonic::Code::Unavailable),
        ];
        for (error, code) in cases {
            let message = error.to_string();
            let status = status(error);
            assert_eq!((status.code(), status.message()), (code, message.as_str()));
        }
        let store = status(StoreError::Corrupt("x".into()).into());
        assert_eq!(store.code(), tonic::Code::Unavailable);
        assert_eq!(store.message(), "the state store did not answer: stored value is damaged: x");
    }
}
