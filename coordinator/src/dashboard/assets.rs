//! The page's files, embedded in the binary: no build step, no network, nothing to install.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The single page.
const INDEX: &str = include_str!("assets/index.html");
/// Its script: every view, drawn with DOM methods and `textContent` only.
const SCRIPT: &str = include_str!("assets/app.js");
/// Its style sheet.
const STYLE: &str = include_str!("assets/app.css");
/// Its icon.
const ICON: &str = include_str!("assets/favicon.svg");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `GET /`.
pub async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /app.js`.
pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /app.css`.
pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// `GET /favicon.svg`.
pub async fn icon() -> Response {
    asset(ICON, "image/svg+xml")
}
