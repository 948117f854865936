//! A stand-in node holding a valid node certificate: it opens one session with a coordinator and sends
//! whatever messages a test scripts (oversized, forged, out of order), reading the coordinator's
//! acknowledgements and commands. It stands for a compromised or buggy node, to show what the coordinator
//! refuses on its own.

use std::time::Duration;

use hemostat_pki::TlsFiles;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::agent_service_client::AgentServiceClient;
use pb::session_request::Body;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

/// One node session driven by a test.
pub struct NodePeer {
    outbound: mpsc::Sender<pb::SessionRequest>,
    seq: u64,
    acked: watch::Receiver<u64>,
    commands: mpsc::Receiver<pb::Command>,
    ended: watch::Receiver<Option<String>>,
    reader: tokio::task::JoinHandle<()>,
}

impl NodePeer {
    /// Opens a session as the node of certificate `tls` (its Hello names `name`, stream `stream_id`) with
    /// the coordinator at `endpoint` (`localhost:<port>`).
    pub async fn connect(endpoint: &str, tls: &TlsFiles, name: &str, stream_id: &str) -> Result<Self, String> {
        let material = tls.load().map_err(|e| e.to_string())?;
        let channel = Endpoint::from_shared(format!("https://{endpoint}"))
            .map_err(|e| e.to_string())?
            .tls_config(material.client_config("localhost"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (outbound, rx) = mpsc::channel(64);
        let hello = pb::Hello {
            node_name: name.to_owned(),
            version: "node-peer".to_owned(),
            stream_id: stream_id.to_owned(),
            hostname: format!("{name}-host"),
            ..Default::default()
        };
        outbound
            .send(pb::SessionRequest { seq: 0, body: Some(Body::Hello(hello)) })
            .await
            .map_err(|e| e.to_string())?;
        let mut client =
            AgentServiceClient::new(channel).max_decoding_message_size(16 << 20).max_encoding_message_size(16 << 20);
        let mut inbound =
            client.session(ReceiverStream::new(rx)).await.map_err(|s| format!("session refused: {s}"))?.into_inner();
        let (acked_tx, acked) = watch::channel(0);
        let (commands_tx, commands) = mpsc::channel(1024);
        let (ended_tx, ended) = watch::channel(None);
        let reader = tokio::spawn(async move {
            let why = loop {
                match inbound.message().await {
                    Ok(Some(pb::SessionResponse { body: Some(pb::session_response::Body::Ack(ack)) })) => {
                        acked_tx.send_modify(|acked| *acked = (*acked).max(ack.seq));
                    }
                    Ok(Some(pb::SessionResponse { body: Some(pb::session_response::Body::Command(command)) })) => {
                        let _ = commands_tx.send(command).await;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break "the coordinator closed the session".to_owned(),
                    Err(status) => break format!("the session broke: {status}"),
                }
            };
            let _ = ended_tx.send(Some(why));
        });
        Ok(NodePeer { outbound, seq: 0, acked, commands, ended, reader })
    }

    /// Sends `body` as the next sequenced message; returns its sequence number.
    pub async fn send(&mut self, body: Body) -> Result<u64, String> {
        self.seq += 1;
        self.send_as(self.seq, body).await?;
        Ok(self.seq)
    }

    /// Sends `body` with the sequence number `seq` (0: unsequenced), whatever came before.
    pub async fn send_as(&mut self, seq: u64, body: Body) -> Result<(), String> {
        self.outbound
            .send(pb::SessionRequest { seq, body: Some(body) })
            .await
            .map_err(|_| self.why_ended().unwrap_or_else(|| "the session's stream closed".to_owned()))
    }

    /// Sends `request` as it is but for its sequence number, the next one (returned): a message without a
    /// body is what this build decodes from a kind of message added after it (see the rolling-upgrade
    /// tests).
    pub async fn send_request(&mut self, mut request: pb::SessionRequest) -> Result<u64, String> {
        self.seq += 1;
        request.seq = self.seq;
        self.outbound
            .send(request)
            .await
            .map_err(|_| self.why_ended().unwrap_or_else(|| "the session's stream closed".to_owned()))?;
        Ok(self.seq)
    }

    /// Sends `body` and waits until the coordinator acknowledged it (so it was processed), within `deadline`.
    pub async fn send_acked(&mut self, body: Body, deadline: Duration) -> Result<u64, String> {
        let seq = self.send(body).await?;
        self.acked(seq, deadline).await?;
        Ok(seq)
    }

    /// Waits until the coordinator acknowledged `seq`, within `deadline`.
    pub async fn acked(&mut self, seq: u64, deadline: Duration) -> Result<(), String> {
        let mut acked = self.acked.clone();
        match tokio::time::timeout(deadline, acked.wait_for(|acked| *acked >= seq)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(format!(
                "message {seq} not acknowledged within {deadline:?} (acknowledged up to {}; {})",
                *self.acked.borrow(),
                self.why_ended().unwrap_or_else(|| "the session is open".to_owned())
            )),
        }
    }

    /// The next command the coordinator sent, if one comes within `deadline`.
    pub async fn command(&mut self, deadline: Duration) -> Option<pb::Command> {
        tokio::time::timeout(deadline, self.commands.recv()).await.ok().flatten()
    }

    /// Why the session ended, if it did.
    pub fn why_ended(&self) -> Option<String> {
        self.ended.borrow().clone()
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A running container's state as a node reports it: `id`, `name`, and these labels.
pub fn container(id: &str, name: &str, labels: &[(&str, &str)]) -> pb::ContainerState {
    pb::ContainerState {
        id: id.to_owned(),
        name: name.to_owned(),
        image: "busybox:test".to_owned(),
        status: pb::ContainerStatus::Running as i32,
        health: pb::HealthStatus::None as i32,
        restart_policy: "no".to_owned(),
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    }
}

/// The health alert a node sends when `container` exited with code 1 (a `non_zero_exit` of high severity),
/// with `log_tail`: the container's state marked exited.
pub fn crash_alert(mut container: pb::ContainerState, log_tail: Vec<String>) -> pb::HealthAlert {
    container.status = pb::ContainerStatus::Exited as i32;
    container.exit_code = 1;
    pb::HealthAlert {
        container: Some(container),
        anomalies: vec![pb::Anomaly {
            r#type: pb::AnomalyType::NonZeroExit as i32,
            severity: pb::Severity::High as i32,
            threshold: 0.0,
            actual: 1.0,
        }],
        exit: Some(pb::ExitDetails { exit_code: 1, oom_killed: false, stop_requested: false }),
        log_tail,
        ..Default::default()
    }
}
