//! A test peer holding a valid coordinator certificate: it accepts one node session, acknowledges
//! everything, sends the commands (or other messages) a test scripts (whatever they are), and hands back the
//! node's results.
//! It stands for a compromised or buggy coordinator, to show what the node refuses on its own.
//! [`crate::node_peer`] is the other way round: a node session a test scripts message by message.

use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use futures::{Stream, StreamExt};
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::pki::TestPki;

/// The peer.
pub struct CoordinatorPeer {
    addr: std::net::SocketAddr,
    responses: mpsc::Sender<pb::SessionResponse>,
    results: tokio::sync::Mutex<mpsc::Receiver<pb::CommandResult>>,
    task: tokio::task::JoinHandle<()>,
}

struct Service {
    responses: Mutex<Option<mpsc::Receiver<pb::SessionResponse>>>,
    results: mpsc::Sender<pb::CommandResult>,
}

type Outbound = Pin<Box<dyn Stream<Item = Result<pb::SessionResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for Service {
    type SessionStream = Outbound;

    async fn session(&self, request: Request<Streaming<pb::SessionRequest>>) -> Result<Response<Outbound>, Status> {
        let mut inbound = request.into_inner();
        let responses = self.responses.lock().unwrap().take().ok_or_else(|| Status::unavailable("one session only"))?;
        let (acks_tx, acks_rx) = mpsc::channel::<pb::SessionResponse>(1024);
        let results = self.results.clone();
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                if let Some(pb::session_request::Body::CommandResult(result)) = message.body {
                    let _ = results.send(result).await;
                }
                if message.seq != 0 {
                    let ack = pb::SessionResponse {
                        body: Some(pb::session_response::Body::Ack(pb::Ack { seq: message.seq })),
                    };
                    let _ = acks_tx.send(ack).await;
                }
            }
        });
        let merged = futures::stream::select(ReceiverStream::new(acks_rx), ReceiverStream::new(responses)).map(Ok);
        Ok(Response::new(Box::pin(merged)))
    }
}

impl CoordinatorPeer {
    /// Starts the peer on a free loopback port with the test CA's coordinator certificate.
    pub async fn start(pki: &TestPki) -> Self {
        let material = pki.coordinator().load().expect("coordinator certificate");
        let config = hemostat_coordinator::tls::server_config(&material).expect("TLS config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (responses_tx, responses_rx) = mpsc::channel(64);
        let (results_tx, results_rx) = mpsc::channel(1024);
        let service = Service { responses: Mutex::new(Some(responses_rx)), results: results_tx };
        let incoming = hemostat_coordinator::tls::accept(listener, config);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AgentServiceServer::new(service))
                .serve_with_incoming(incoming)
                .await;
        });
        CoordinatorPeer { addr, responses: responses_tx, results: tokio::sync::Mutex::new(results_rx), task }
    }

    /// Its address as a node names it.
    pub fn endpoint(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }

    /// Sends a command to the node.
    pub async fn send(&self, command: pb::Command) {
        self.respond(pb::SessionResponse { body: Some(pb::session_response::Body::Command(command)) }).await;
    }

    /// Sends the node `response` as it is: one without a body is what a node decodes from a kind of message
    /// added after it (see the rolling-upgrade tests).
    pub async fn respond(&self, response: pb::SessionResponse) {
        self.responses.send(response).await.expect("the peer runs");
    }

    /// The node's next `n` command results, in the order they come, all within `deadline`; panics otherwise.
    pub async fn results(&self, n: usize, deadline: Duration) -> Vec<pb::CommandResult> {
        let until = tokio::time::Instant::now() + deadline;
        let mut results = Vec::with_capacity(n);
        let mut receiver = self.results.lock().await;
        while results.len() < n {
            match tokio::time::timeout_at(until, receiver.recv()).await {
                Ok(Some(result)) => results.push(result),
                _ => panic!("{} of {n} command results within {deadline:?}", results.len()),
            }
        }
        results
    }

    /// The node's next command result, if one comes within `deadline`.
    pub async fn result(&self, deadline: Duration) -> Option<pb::CommandResult> {
        tokio::time::timeout(deadline, self.results.lock().await.recv()).await.ok().flatten()
    }
}

impl Drop for CoordinatorPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
