//! A local stand-in for a Slack incoming webhook, a Discord or Teams webhook, ntfy, Gotify or any JSON webhook
//! (the real ones cannot be reached from here): an HTTP server on loopback that records every request it
//! gets (path, headers, body) and answers 200, or, when told, fails the next requests with a status (500,
//! 429 with `Retry-After`, or any status with a JSON body, as Discord's rate limits answer). Started with a
//! checker ([`WebhookServer::start_checking`]), it refuses with 400 what the real service would refuse
//! (see [`chat_formats`](crate::chat_formats)).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// How the server answers one request.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// This status with this JSON body and headers (e.g. Discord's 429 with `retry_after` in its body).
    Json {
        /// The status.
        status: u16,
        /// The body.
        body: Value,
        /// Extra headers.
        headers: Vec<(&'static str, String)>,
    },
}

impl Answer {
    /// The HTTP status it answers with.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Ok => 200,
            Answer::Status(status) => *status,
            Answer::TooManyRequests { .. } => 429,
            Answer::Json { status, .. } => *status,
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
    /// Its path and query, e.g. `/hook`.
    pub path: String,
    /// Its headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Its `Content-Type`.
    pub content_type: String,
    /// Its body as JSON (a JSON string holding the raw text if it was not JSON).
    pub body: Value,
}

/// What the real service would refuse: the problems with a body (none for a body it takes).
pub type Checker = fn(&Value) -> Vec<String>;

#[derive(Default)]
struct Recorder {
    failures: Mutex<VecDeque<Answer>>,
    received: Mutex<Vec<Received>>,
    checker: Option<Checker>,
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
        Self::serve(Recorder::default()).await
    }

    /// Starts a server that answers 400, listing the problems, to a body `checker` finds fault with.
    pub async fn start_checking(checker: Checker) -> Self {
        Self::serve(Recorder { checker: Some(checker), ..Recorder::default() }).await
    }

    async fn serve(recorder: Recorder) -> Self {
        let recorder = Arc::new(recorder);
        let app = axum::Router::new().fallback(post(receive)).with_state(recorder.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookServer { addr, recorder, task }
    }

    /// The URL to configure (`SLACK_WEBHOOK_URL`, `ALERT_WEBHOOK_URL`).
    pub fn url(&self) -> String {
        self.url_for("/hook")
    }

    /// The URL of `path` on this server (`/`, for a base URL such as `GOTIFY_URL`).
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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

async fn receive(State(recorder): State<Arc<Recorder>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    let problems = recorder.checker.map(|check| check(&body)).unwrap_or_default();
    let answer = if problems.is_empty() {
        recorder.failures.lock().unwrap().pop_front().unwrap_or(Answer::Ok)
    } else {
        Answer::Json {
            status: 400,
            body: json!({"message": "Invalid Form Body", "problems": problems}),
            headers: vec![],
        }
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let headers = headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    recorder.received.lock().unwrap().push(Received {
        at: Instant::now(),
        status: answer.status(),
        path: uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default(),
        headers,
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
        Answer::Json { body, headers, .. } => {
            let mut response = (status, axum::Json(body)).into_response();
            for (name, value) in headers {
                if let Ok(value) = value.parse() {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
    }
}

impl Received {
    /// The value of header `name` (lower case), if it was sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}
