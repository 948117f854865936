//! A local stand-in for the LLM providers (their real servers cannot be reached from here): an HTTP server
//! on loopback that speaks the OpenAI chat-completions and Anthropic Messages wire formats, answers from a
//! script, and records every request it got.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A successful answer carrying this decision object (`{"action":…, "confidence":…, "reason":…}`),
    /// wrapped in the provider's format.
    Decision(Value),
    /// A successful answer whose decision text is this raw string (OpenAI) — e.g. invalid JSON.
    RawContent(String),
    /// The model refused.
    Refusal,
    /// The answer was cut off by the token limit.
    Truncated,
    /// An HTTP error status, with `retry-after` seconds if given.
    Status(u16, Option<u64>),
    /// No answer for this long, then a valid decision.
    Slow(Duration, Value),
}

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<(String, HeaderMap, Value)>>,
}

/// The fake provider.
pub struct FakeProvider {
    addr: SocketAddr,
    script: Arc<Script>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeProvider {
    /// Starts a server on a free loopback port.
    pub async fn start() -> Self {
        let script = Arc::new(Script::default());
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeProvider { addr, script, task }
    }

    /// The OpenAI-compatible base URL (`OPENAI_BASE_URL`).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The Anthropic base URL (`ANTHROPIC_BASE_URL`).
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues the next answers.
    pub fn reply(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.replies.lock().unwrap().extend(replies);
    }

    /// The requests received so far: path, headers, JSON body.
    pub fn requests(&self) -> Vec<(String, HeaderMap, Value)> {
        self.script.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn next(script: &Script, path: &str, headers: HeaderMap, body: Value) -> Reply {
    script.requests.lock().unwrap().push((path.to_owned(), headers, body));
    script.replies.lock().unwrap().pop_front().unwrap_or(Reply::Status(500, None))
}

fn error(status: u16, retry_after: Option<u64>) -> Response {
    let mut response =
        (StatusCode::from_u16(status).unwrap(), Json(json!({"error": {"message": "scripted"}}))).into_response();
    if let Some(secs) = retry_after {
        response.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

async fn openai(State(script): State<Arc<Script>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let model = body["model"].clone();
    let message = |content: Value, refusal: Value, finish: &str| {
        Json(json!({
            "id": "chatcmpl-test", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": refusal}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
        }))
        .into_response()
    };
    match next(&script, "/v1/chat/completions", headers, body.clone()) {
        Reply::Decision(decision) => message(Value::String(decision.to_string()), Value::Null, "stop"),
        Reply::RawContent(text) => message(Value::String(text), Value::Null, "stop"),
        Reply::Refusal => message(Value::Null, Value::String("I can't help with that.".into()), "stop"),
        Reply::Truncated => message(Value::String("{\"action\": \"rest".into()), Value::Null, "length"),
        Reply::Status(status, retry_after) => error(status, retry_after),
        Reply::Slow(delay, decision) => {
            tokio::time::sleep(delay).await;
            message(Value::String(decision.to_string()), Value::Null, "stop")
        }
    }
}

async fn anthropic(State(script): State<Arc<Script>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let model = body["model"].clone();
    let message = |content: Value, stop: &str| {
        Json(json!({
            "id": "msg_test", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 10}
        }))
        .into_response()
    };
    let tool =
        |input: Value| json!([{"type": "tool_use", "id": "toolu_test", "name": "record_decision", "input": input}]);
    match next(&script, "/v1/messages", headers, body.clone()) {
        Reply::Decision(decision) => message(tool(decision), "tool_use"),
        Reply::RawContent(text) => message(json!([{"type": "text", "text": text}]), "end_turn"),
        Reply::Refusal => message(json!([]), "refusal"),
        Reply::Truncated => message(json!([{"type": "text", "text": "{\"action\""}]), "max_tokens"),
        Reply::Status(status, retry_after) => error(status, retry_after),
        Reply::Slow(delay, decision) => {
            tokio::time::sleep(delay).await;
            message(tool(decision), "tool_use")
        }
    }
}
