//! Prometheus exposition: `GET /metrics` over plain HTTP on a port of its own, for the coordinator and the
//! node alike.
//!
//! The answer is the Prometheus text format (version 0.0.4), or OpenMetrics text when the scraper asks for
//! it in `Accept`. Each scrape encodes the registry as it is at that moment, so collectors registered with
//! it (gauges read from live state) are read at scrape time. The endpoint carries no secrets but has no
//! authentication either: bind it to loopback or a private network.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The path metrics are served on.
pub const METRICS_PATH: &str = "/metrics";

/// The `Content-Type` of OpenMetrics text.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Why metrics cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ExpositionError {
    /// The metrics address could not be bound.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("metrics server: {0}")]
    Serve(#[source] std::io::Error),
}

/// Which text format a scrape gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format, version 0.0.4 (`text/plain; version=0.0.4`): what most scrapers and people read.
    Prometheus,
    /// OpenMetrics text 1.0, ending in `# EOF`.
    OpenMetrics,
}

impl Format {
    /// The format a request with this `Accept` header should get.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// The registry's metrics as they are now, in `format`.
pub fn render(registry: &Registry, format: Format) -> String {
    let mut body = String::new();
    let encoded = match format {
        Format::Prometheus => prometheus_text::encode(&mut body, registry),
        Format::OpenMetrics => text::encode(&mut body, registry),
    };
    // Encoding into a String fails only if a collector reports an error; serve what was encoded, and say so.
    if let Err(error) = encoded {
        tracing::warn!(%error, "a metrics collector failed; the scrape is incomplete");
    }
    body
}

/// Binds the metrics address (before anything else starts, so a taken port stops the program at once).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ExpositionError> {
    TcpListener::bind(addr).await.map_err(|source| ExpositionError::Bind { addr, source })
}

/// Serves `registry` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ExpositionError> {
    let app = axum::Router::new().route(METRICS_PATH, axum::routing::get(metrics)).with_state(registry);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await.map_err(ExpositionError::Serve)
}

/// Serves `registry` on `listener` in the background until `shutdown` completes, logging where, and any
/// failure (metrics are never a reason to stop the program).
pub fn spawn(
    listener: TcpListener,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    match listener.local_addr() {
        Ok(addr) => tracing::info!("serving Prometheus metrics on http://{addr}{METRICS_PATH}"),
        Err(error) => tracing::warn!(%error, "serving Prometheus metrics on an unknown address"),
    }
    tokio::spawn(async move {
        if let Err(error) = serve(listener, Arc::new(registry), shutdown).await {
            tracing::error!(%error, "the metrics server stopped");
        }
    })
}

async fn metrics(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = render(&registry, format);
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()))], body).into_response()
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// One HTTP/1.1 request, answered with the status line, the headers and the body.
    async fn get(addr: SocketAddr, path: &str, accept: &str) -> (String, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        (head.to_owned(), body.to_owned())
    }

    #[tokio::test]
    async fn metrics_are_served_as_they_are_at_each_scrape_until_shutdown() {
        let mut registry = Registry::with_prefix("hemostat");
        let restarts = Family::<[(&'static str, String); 1], Counter>::default();
        registry.register("restarts", "Restarts by result", restarts.clone());
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = spawn(listener, registry, async move {
            let _ = stopped.await;
        });

        restarts.get_or_create(&[("result", "success".to_owned())]).inc();
        let (head, body) = get(addr, "/metrics", "*/*").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
        assert!(body.contains("# TYPE hemostat_restarts_total counter\n"), "{body}");
        assert!(body.contains("hemostat_restarts_total{result=\"success\"} 1\n"), "{body}");

        restarts.get_or_create(&[("result", "success".to_owned())]).inc();
        let (head, body) = get(addr, "/metrics", "application/openmetrics-text;version=1.0.0").await;
        assert!(head.contains("application/openmetrics-text"), "{head}");
        assert!(body.contains("hemostat_restarts_total{result=\"success\"} 2\n"), "{body}");
        assert!(body.ends_with("# EOF\n"), "{body}");

        let (head, _) = get(addr, "/", "*/*").await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");

        stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), server).await.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the port is closed after shutdown");
    }

    #[tokio::test]
    async fn a_taken_port_is_a_clear_error() {
        let taken = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = taken.local_addr().unwrap();
        let error = bind(addr).await.unwrap_err().to_string();
        assert!(error.contains(&format!("cannot listen for metrics on {addr}")), "{error}");
    }

    #[test]
    fn openmetrics_is_served_only_to_scrapers_that_ask() {
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("text/plain;version=0.0.4;q=0.3,*/*;q=0.2")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5")),
            Format::OpenMetrics
        );
    }
}
