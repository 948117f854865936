//! The node's session with the coordinator: connect (mutual TLS), say Hello, send everything the outbox
//! holds that the coordinator has not acknowledged, heartbeat, and execute the commands that come back.
//! When the session breaks for any reason the node connects again, with jittered exponential backoff and
//! no limit on attempts; the coordinator then gets a fresh Hello and every unacknowledged message again.
//! A message of a kind this node does not know (from a newer coordinator) is ignored, counted in
//! `hemostat_node_unknown_messages_total` and logged once per session; the session goes on.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hemostat_pki::TlsMaterial;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::agent_service_client::AgentServiceClient;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::backoff::Backoff;
use crate::config::CoordinatorAddress;
use crate::executor::{CommandRequest, Executor};
use crate::local_policy::Connectivity;
use crate::outbox::Outbox;

/// What a session needs to know.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// The coordinators of the fleet, tried in turn (at least one).
    pub coordinators: Vec<CoordinatorAddress>,
    /// This node's certificates.
    pub tls: TlsMaterial,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// First reconnect delay.
    pub reconnect_initial: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The connection could not be made.
    #[error("cannot connect to the coordinator at {endpoint}: {source}")]
    Connect {
        /// The URL.
        endpoint: String,
        /// The transport's error.
        source: tonic::transport::Error,
    },
    /// The coordinator refused or ended the session.
    #[error("the coordinator {0}")]
    Status(String),
    /// The coordinator closed the session (it is shutting down).
    #[error("the coordinator closed the session")]
    Closed,
    /// Nothing came back from the coordinator for too long: the network or the coordinator is gone.
    #[error("no answer from the coordinator for {0:?}; the connection is considered lost")]
    Silent(Duration),
}

impl From<tonic::Status> for SessionError {
    fn from(status: tonic::Status) -> Self {
        SessionError::Status(explain(&status))
    }
}

/// Runs sessions forever (until the task is dropped). After each connect, `resync` asks for a fresh
/// snapshot of the containers, so a restarted coordinator learns the whole host again. When a session
/// breaks or a connection fails, the next coordinator of the list is tried at once; only after every one
/// has failed in a row does the node back off.
pub async fn run(
    settings: SessionSettings,
    outbox: Arc<Outbox>,
    executor: Arc<Executor>,
    resync: Arc<Notify>,
    connectivity: Arc<Connectivity>,
) {
    let mut backoff = Backoff::new(settings.reconnect_initial, settings.reconnect_max);
    let count = settings.coordinators.len().max(1);
    let (mut index, mut failed_in_a_row) = (0, 0);
    loop {
        let coordinator = &settings.coordinators[index % count];
        let result = serve_one(coordinator, &settings, &outbox, &executor, &mut backoff, &resync, &connectivity).await;
        connectivity.disconnected();
        match &result {
            Err(SessionError::Closed) => {
                tracing::info!(%coordinator, "the coordinator closed the session; reconnecting")
            }
            Err(error) => tracing::warn!(%coordinator, "{error}"),
            Ok(()) => {}
        }
        failed_in_a_row = if matches!(result, Err(SessionError::Connect { .. })) { failed_in_a_row + 1 } else { 1 };
        index += 1;
        if failed_in_a_row >= count {
            let delay = backoff.next_delay();
            tracing::debug!(?delay, unacknowledged = outbox.len(), "reconnecting after a pause");
            tokio::time::sleep(delay).await;
        }
    }
}

async fn connect(coordinator: &CoordinatorAddress, settings: &SessionSettings) -> Result<Channel, SessionError> {
    let error = |source| SessionError::Connect { endpoint: coordinator.url.clone(), source };
    Endpoint::from_shared(coordinator.url.clone())
        .map_err(error)?
        .tls_config(settings.tls.client_config(&coordinator.server_name))
        .map_err(error)?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        .connect()
        .await
        .map_err(error)
}

async fn serve_one(
    coordinator: &CoordinatorAddress,
    settings: &SessionSettings,
    outbox: &Outbox,
    executor: &Arc<Executor>,
    backoff: &mut Backoff,
    resync: &Notify,
    connectivity: &Connectivity,
) -> Result<(), SessionError> {
    let channel = connect(coordinator, settings).await?;
    let (tx, rx) = mpsc::channel::<pb::SessionRequest>(256);
    let (allowed_actions, exec_allowlist) = executor.advertised();
    let hello = pb::Hello {
        node_name: settings.tls.identity.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        stream_id: outbox.stream_id().to_owned(),
        hostname: hostname(),
        allowed_actions,
        exec_allowlist,
    };
    let unsequenced = |body| pb::SessionRequest { seq: 0, body: Some(body) };
    tx.send(unsequenced(pb::session_request::Body::Hello(hello))).await.map_err(|_| SessionError::Closed)?;
    let mut inbound = AgentServiceClient::new(channel).session(ReceiverStream::new(rx)).await?.into_inner();
    backoff.reset();
    connectivity.connected();
    resync.notify_one();
    tracing::info!(%coordinator, unacknowledged = outbox.len(), "session open");

    let mut sent = 0;
    let mut heartbeat = tokio::time::interval(settings.heartbeat);
    // The coordinator answers every heartbeat; three heartbeats without any answer mean the link is gone,
    // long before TCP or HTTP/2 keepalives would say so.
    let silence_limit = (settings.heartbeat * 3).max(Duration::from_secs(3));
    let mut last_heard = tokio::time::Instant::now();
    // Whether this session logged a message of a kind this node does not know (logged once, counted always).
    let mut said_unknown = false;
    loop {
        let changed = outbox.changed();
        for message in outbox.after(sent) {
            sent = message.seq;
            let request = pb::SessionRequest { seq: message.seq, body: Some(message.body) };
            tx.send(request).await.map_err(|_| SessionError::Closed)?;
        }
        tokio::select! {
            _ = changed => {}
            _ = heartbeat.tick() => {
                let beat = pb::Heartbeat {
                    sent_at: Some(hemostat_proto::timestamp::to_proto(SystemTime::now())),
                    spool_depth: outbox.len() as u64,
                    spool_dropped: outbox.dropped(),
                };
                tx.send(unsequenced(pb::session_request::Body::Heartbeat(beat))).await.map_err(|_| SessionError::Closed)?;
            }
            _ = tokio::time::sleep_until(last_heard + silence_limit) => {
                connectivity.disconnected_at(last_heard.into_std());
                return Err(SessionError::Silent(silence_limit));
            }
            message = inbound.message() => {
                let Some(message) = message? else { return Err(SessionError::Closed) };
                last_heard = tokio::time::Instant::now();
                match message.body {
                    Some(pb::session_response::Body::Ack(ack)) => outbox.ack(ack.seq),
                    Some(pb::session_response::Body::Command(command)) => {
                        tracing::info!(command_id = ?command.command_id, container = %command.container_name.escape_debug(), action = command.action, "command received");
                        executor.submit(CommandRequest::from(command));
                    }
                    // A message kind added after this node (prost decodes its body as none): ignored.
                    None => {
                        crate::instruments::global().unknown_message();
                        if !std::mem::replace(&mut said_unknown, true) {
                            tracing::warn!(
                                %coordinator,
                                "ignored a message of a kind this node does not know (is the coordinator newer? \
                                 upgrade the node); further ones in this session are counted in \
                                 hemostat_node_unknown_messages_total, not logged"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A coordinator's refusal in words a person can act on.
fn explain(status: &tonic::Status) -> String {
    let message = status.message();
    match status.code() {
        tonic::Code::PermissionDenied => format!("refused this node: {message}"),
        tonic::Code::Unauthenticated => format!("did not accept this node's certificate: {message}"),
        tonic::Code::Unavailable if message.contains("ertificate") || message.contains("connection closed") => format!(
            "closed the connection during TLS ({message}): is this node's certificate issued by the coordinator's CA?"
        ),
        code => format!("ended the session ({code:?}: {message})"),
    }
}

/// This machine's host name, for people.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}
