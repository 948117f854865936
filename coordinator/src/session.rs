//! Node sessions: the `hemostat.v1.AgentService/Session` stream, one per connected node.
//!
//! A session opens with a Hello whose node name must match the node's certificate. After that each node
//! message is processed in order and acknowledged by sequence number; a message already processed in this
//! node boot (a replay after a reconnect) is acknowledged again but not processed twice.
//!
//! Every message is held to the [`crate::intake`] limits before it is processed: what is over them is cut
//! (counted in `/metrics`, said once per session and limit in an `input_refused` event) and the rest is
//! processed and acknowledged as usual, so no message can jam a node's stream.
//!
//! What a newer node sends that this coordinator does not know ([`Unknown`]: a message kind, a host
//! condition, an anomaly type) is ignored, counted in `hemostat_unknown_messages_total{kind}` and logged once
//! per session and kind; the message is acknowledged like any other, so the node's spool lets it go.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use hemostat_proto::v1 as pb;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::authenticated;
use crate::container::{AlertReport, AnomalyKind, ContainerFacts, HostReport, Metrics};
use crate::events::{EventKind, EventRecord};
use crate::intake::{Cuts, Limit, Unknown};
use crate::registry::{NodeAbilities, NodeHello, Outbound, Registry};
use crate::remediation::{CommandReport, Remediator};
use crate::store::{DirectoryStore, StoreError};

/// How long a new session may take to say Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The AgentService implementation.
pub struct AgentSessions {
    registry: Arc<Registry>,
    remediator: Arc<Remediator>,
    /// Where each node stream's position is kept for every coordinator on the store.
    streams: Arc<dyn DirectoryStore>,
    shutdown: watch::Receiver<bool>,
}

impl AgentSessions {
    /// Sessions that register in `registry`, hand problems to `remediator`, keep each node stream's position
    /// in `streams`, and end when `shutdown` turns true.
    pub fn new(
        registry: Arc<Registry>,
        remediator: Arc<Remediator>,
        streams: Arc<dyn DirectoryStore>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        AgentSessions { registry, remediator, streams, shutdown }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<pb::SessionResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::agent_service_server::AgentService for AgentSessions {
    type SessionStream = ResponseStream;

    async fn session(
        &self,
        request: Request<Streaming<pb::SessionRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let caller = authenticated(&request)?.clone();
        let node = caller.identity.name.clone();
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Hello within 10s"))??;
        let Some(pb::SessionRequest { body: Some(pb::session_request::Body::Hello(hello)), .. }) = first else {
            tracing::warn!(node, "refused session: the first message was not a Hello");
            return Err(Status::invalid_argument("the first message of a session must be a Hello"));
        };
        if hello.node_name != node {
            tracing::warn!(
                node,
                claimed = %hello.node_name.escape_debug(),
                "refused session: the Hello names another node than the certificate; a node certificate speaks \
                 only for its own node"
            );
            return Err(Status::permission_denied(format!(
                "this certificate is for node {node:?}; it cannot speak for {:?}",
                hello.node_name
            )));
        }
        let hello = NodeHello {
            name: node.clone(),
            version: hello.version,
            abilities: NodeAbilities::from_hello(&hello.allowed_actions, &hello.exec_allowlist),
            stream_id: hello.stream_id,
            hostname: hello.hostname,
        };
        let (tx, rx) = mpsc::channel(1024);
        let session = self.registry.open_session(hello.clone(), caller.address, tx.clone());
        // A report this stream sent another coordinator (or this one before a restart), processed there but
        // not acknowledged before it stopped, comes again: it is a repeat, whoever processed it.
        match self.streams.stream_position(&node, &hello.stream_id).await {
            Ok(position) => self.registry.mark_processed(&node, position),
            Err(error) => tracing::warn!(
                node, %error,
                "could not read the stream's position from the state store; reports processed elsewhere and sent again \
                 will be recorded again"
            ),
        }
        tracing::info!(node, address = ?caller.address, version = ?hello.version, "node connected");
        let (resuming, resumed_node) = (self.remediator.clone(), node.clone());
        tokio::spawn(async move {
            if let Err(error) = resuming.resume_analyses(&resumed_node).await {
                tracing::warn!(node = resumed_node, %error, "could not take over the alerts left waiting for analysis");
            }
        });

        let (registry, remediator, streams, mut shutdown) =
            (self.registry.clone(), self.remediator.clone(), self.streams.clone(), self.shutdown.clone());
        let stream_id = hello.stream_id.clone();
        tokio::spawn(async move {
            // The limits this session already said it cut by (said once; counted every time).
            let mut reported = BTreeSet::new();
            let mut unknown = UnknownSaid::default();
            loop {
                let message = tokio::select! {
                    message = inbound.message() => message,
                    _ = shutdown.wait_for(|stop| *stop) => break,
                };
                match message {
                    Ok(Some(mut message)) => {
                        registry.touch(&node);
                        let mut cuts = match message.body.as_mut() {
                            Some(body) => registry.limits().bound(body),
                            None => Cuts::default(),
                        };
                        registry.count_cuts(&cuts);
                        let seq = message.seq;
                        let heartbeat = matches!(message.body, Some(pb::session_request::Body::Heartbeat(_)));
                        let recorded = matches!(
                            message.body,
                            Some(
                                pb::session_request::Body::HealthAlert(_)
                                    | pb::session_request::Body::Resolved(_)
                                    | pb::session_request::Body::CommandResult(_)
                                    | pb::session_request::Body::Notice(_)
                                    | pb::session_request::Body::HostAlert(_)
                            )
                        );
                        if registry.already_processed(&node, seq) {
                            tracing::debug!(node, seq, "dropped a message already processed");
                        } else if let Err(error) =
                            handle(&node, message, &registry, &remediator, &mut cuts, &mut unknown).await
                        {
                            remediator.store_failed(&error);
                            // Not acknowledged: the node keeps it and sends it again after reconnecting.
                            tracing::error!(
                                node, seq, %error,
                                "could not record a node's report; closing the session so the node resends it"
                            );
                            break;
                        } else {
                            if recorded {
                                remediator.store_answered().await;
                                if let Err(error) = streams.advance_stream(&node, &stream_id, seq).await {
                                    tracing::warn!(node, seq, %error, "could not record the stream's position");
                                }
                            }
                            registry.mark_processed(&node, seq);
                        }
                        if let Err(error) = report_cuts(&node, &cuts, &mut reported, &registry, &remediator).await {
                            tracing::warn!(node, %error, "could not record what the intake limits cut");
                        }
                        // Every sequenced message is acknowledged; a heartbeat is answered with the latest
                        // acknowledgement, so the node can tell a silent link from a quiet one.
                        let ack = if seq != 0 {
                            seq
                        } else if heartbeat {
                            registry.processed_seq(&node)
                        } else {
                            0
                        };
                        if (seq != 0 || heartbeat) && tx.send(Outbound::Ack(ack)).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        tracing::info!(node, %status, "session stream broke");
                        break;
                    }
                }
            }
            registry.close_session(&node, session);
            tracing::info!(node, "node disconnected");
        });

        let outbound = ReceiverStream::new(rx).map(|message| Ok(to_proto(message)));
        Ok(Response::new(Box::pin(outbound)))
    }
}

/// Says in an `input_refused` event what the intake limits cut, the first time each limit cuts something
/// in this session (`reported`: the limits already said).
async fn report_cuts(
    node: &str,
    cuts: &Cuts,
    reported: &mut BTreeSet<Limit>,
    registry: &Registry,
    remediator: &Remediator,
) -> Result<(), StoreError> {
    for (limit, n) in cuts.iter() {
        if !reported.insert(limit) {
            continue;
        }
        let what = limit.describe(registry.limits());
        tracing::warn!(
            node,
            limit = limit.name(),
            items = n,
            "cut what a node sent over the coordinator's intake limit"
        );
        let reason = format!(
            "node {node} sent {what}: {n} cut or left out in one message (counted in \
             hemostat_intake_cuts_total{{limit=\"{}\"}}; further cuts in this session are counted there, not \
             recorded again)",
            limit.name()
        );
        remediator.record(EventRecord::new(EventKind::InputRefused, node, "", "", reason)).await?;
    }
    Ok(())
}

/// The kinds of [`Unknown`] one session already logged: each is counted every time, logged the first time
/// only (a newer node may send many).
#[derive(Default)]
struct UnknownSaid(BTreeSet<Unknown>);

impl UnknownSaid {
    /// Counts `n` things of `kind` that `node` sent and this coordinator ignored, and logs it the first time.
    fn ignored(&mut self, node: &str, kind: Unknown, n: usize, registry: &Registry) {
        if n == 0 {
            return;
        }
        registry.count_unknown(kind, n as u64);
        if self.0.insert(kind) {
            tracing::warn!(
                node,
                kind = kind.name(),
                "ignored what the node sent of a kind this coordinator does not know (is the node newer? upgrade \
                 the coordinators first); further ones in this session are counted in \
                 hemostat_unknown_messages_total, not logged"
            );
        }
    }
}

/// Anomaly types in `types` (raw wire values) this coordinator does not know: newer than it.
fn unknown_anomaly_types(types: impl Iterator<Item = i32>) -> usize {
    types.filter(|t| pb::AnomalyType::try_from(*t).is_err()).count()
}

/// Processes one node message (already held to the intake limits), adding to `cuts` the containers the
/// registry did not keep, and to `unknown` what this coordinator does not know.
async fn handle(
    node: &str,
    message: pb::SessionRequest,
    registry: &Registry,
    remediator: &Arc<Remediator>,
    cuts: &mut Cuts,
    unknown: &mut UnknownSaid,
) -> Result<(), StoreError> {
    use pb::session_request::Body;
    match message.body {
        // A body prost could not name: a message kind added after this coordinator.
        None => {
            unknown.ignored(node, Unknown::Message, 1, registry);
            Ok(())
        }
        Some(Body::Hello(_)) => Ok(()),
        Some(Body::Heartbeat(beat)) => {
            let dropped = registry.heartbeat(node, beat.spool_depth, beat.spool_dropped);
            if dropped > 0 {
                tracing::warn!(node, dropped, "the node's spool overflowed: it dropped unacknowledged messages");
                let reason = format!(
                    "the node's spool was full while it could not reach a coordinator: it dropped {dropped} \
                     unacknowledged messages ({} since it started), metrics first, alerts last",
                    beat.spool_dropped
                );
                remediator.record(EventRecord::new(EventKind::SpoolOverflow, node, "", "", reason)).await?;
            }
            Ok(())
        }
        Some(Body::Snapshot(snapshot)) => {
            let containers: Vec<ContainerFacts> = snapshot.containers.iter().map(ContainerFacts::from).collect();
            remediator.check_labels(node, &containers).await?;
            let refused = if snapshot.part == 0 && !snapshot.more {
                registry.replace_containers(node, containers)
            } else {
                registry.snapshot_part(node, snapshot.part, snapshot.more, containers)
            };
            cuts.add(Limit::Containers, refused);
            Ok(())
        }
        Some(Body::HostAlert(alert)) => match HostReport::try_from(&alert) {
            Ok(report) => remediator.on_host_alert(node, report).await,
            Err(_) if pb::HostCondition::try_from(alert.condition).is_err() => {
                unknown.ignored(node, Unknown::HostCondition, 1, registry);
                Ok(())
            }
            Err(unspecified) => {
                tracing::warn!(node, %unspecified, "ignored a host alert without a condition");
                Ok(())
            }
        },
        Some(Body::Notice(notice)) => {
            let record = EventRecord::new(
                EventKind::NodeNotice,
                node,
                &notice.container_id,
                &notice.container_name,
                notice.detail,
            );
            remediator.record(record).await
        }
        Some(Body::ContainerEvent(event)) => {
            let Some(container) = event.container.as_ref().map(ContainerFacts::from) else {
                tracing::warn!(node, "ignored a container event without a container");
                return Ok(());
            };
            match event.kind() {
                pb::ContainerEventKind::Destroyed => registry.remove_container(node, &container.id),
                _ => {
                    remediator.check_labels(node, std::slice::from_ref(&container)).await?;
                    if !registry.update_container(node, container) {
                        cuts.add(Limit::Containers, 1);
                    }
                }
            }
            Ok(())
        }
        Some(Body::HealthAlert(alert)) => {
            let newer = unknown_anomaly_types(alert.anomalies.iter().map(|a| a.r#type));
            unknown.ignored(node, Unknown::AnomalyType, newer, registry);
            let Ok(alert) = AlertReport::try_from(&alert) else {
                tracing::warn!(node, "ignored a health alert without a container");
                return Ok(());
            };
            remediator.check_labels(node, std::slice::from_ref(&alert.container)).await?;
            // A container beyond the node's limit is not kept, but its alert is still handled.
            if !registry.update_container(node, alert.container.clone()) {
                cuts.add(Limit::Containers, 1);
            }
            registry.set_anomalies(node, &alert.container, &alert.anomalies);
            remediator.on_alert(node, alert).await
        }
        Some(Body::Resolved(resolved)) => {
            let Some(container) = resolved.container.as_ref().map(ContainerFacts::from) else { return Ok(()) };
            unknown.ignored(
                node,
                Unknown::AnomalyType,
                unknown_anomaly_types(resolved.cleared.iter().copied()),
                registry,
            );
            let cleared: Vec<AnomalyKind> =
                resolved.cleared.iter().filter_map(|t| AnomalyKind::try_from(*t).ok()).collect();
            registry.clear_anomalies(node, &container.id, &cleared);
            remediator.on_resolved(node, &container, &cleared).await
        }
        Some(Body::Metrics(report)) => {
            let samples: Vec<(String, Metrics)> =
                report.samples.iter().map(|m| (m.container_id.clone(), Metrics::from(m))).collect();
            registry.record_metrics(node, samples.clone());
            remediator.on_metrics(node, &samples).await
        }
        Some(Body::CommandResult(result)) => {
            remediator.on_command_result(node, CommandReport::from_proto(result)).await
        }
    }
}

fn to_proto(message: Outbound) -> pb::SessionResponse {
    use pb::session_response::Body;
    let body = match message {
        Outbound::Ack(seq) => Body::Ack(pb::Ack { seq }),
        Outbound::Command(command) => Body::Command(pb::Command {
            command_id: command.id,
            container_id: command.container_id,
            container_name: command.container_name,
            action: pb::Action::from(command.action) as i32,
            stop_timeout_seconds: command.stop_timeout_secs,
            argv: command.argv,
        }),
    };
    pb::SessionResponse { body: Some(body) }
}
