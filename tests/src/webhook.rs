//! A local stand-in for a Slack incoming webhook or any JSON webhook (the real ones cannot be reached from
//! here): an HTTP server on loopback that records every request it gets and answers 200, or, when told,
//! fails the next requests with a status (500, or 429 with `Retry-After`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

/// How the server answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 OK, as Slack answers a message it took (`ok`).
    Ok,
    /// This status, e.g. 500.
    Status(u16),
    /// 429 Too Many Requests with `Retry-After` in seconds.
    TooManyRequests {
        /// The `Retry-After` header's value.
        retry_after_secs: u64,
    },
}

impl Answer {
    /// The HTTP status it answers with.
    pub fn status(self) -> u16 {
        match self {
            Answer::Ok => 200,
            Answer::Status(status) => status,
            Answer::TooManyRequests { .. } => 429,
        }
    }
}

/// One request the server got.
#[derive(Clone, Debug)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// The status it was answered with.
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its body as JSON (a JSON string holding the raw text if it was not JSON).
    pub body: Value,
}

#[derive(Default)]
struct Recorder {
    failures: Mutex<VecDeque<Answer>>,
    received: Mutex<Vec<Received>>,
}

/// The webhook server; stopped on drop.
pub struct WebhookServer {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookServer {
    /// Starts a server on a free loopback port, answering 200 to everything.
    pub async fn start() -> Self {
        let recorder = Arc::new(Recorder::default());
        let app = axum::Router::new().route("/hook", post(receive)).with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookServer { addr, recorder, task }
    }

    /// The URL to configure (`SLACK_WEBHOOK_URL`, `ALERT_WEBHOOK_URL`).
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers the next requests with these, in order, then 200 again.
    pub fn fail_next(&self, answers: impl IntoIterator<Item = Answer>) {
        self.recorder.failures.lock().unwrap().extend(answers);
    }

    /// Every request so far, in the order they arrived, with what each was answered.
    pub fn requests(&self) -> Vec<Received> {
        self.recorder.received.lock().unwrap().clone()
    }

    /// The bodies of the requests answered with success: what was delivered.
    pub fn delivered(&self) -> Vec<Value> {
        self.requests().into_iter().filter(|r| (200..300).contains(&r.status)).map(|r| r.body).collect()
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(recorder): State<Arc<Recorder>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = recorder.failures.lock().unwrap().pop_front().unwrap_or(Answer::Ok);
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    recorder.received.lock().unwrap().push(Received {
        at: Instant::now(),
        status: answer.status(),
        content_type,
        body,
    });
    let status = StatusCode::from_u16(answer.status()).expect("a valid status");
    match answer {
        Answer::Ok => (status, "ok").into_response(),
        Answer::Status(_) => (status, "scripted failure").into_response(),
        Answer::TooManyRequests { retry_after_secs } => {
            (status, [(header::RETRY_AFTER, retry_after_secs.to_string())], "rate_limited").into_response()
        }
    }
}
