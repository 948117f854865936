//! The dashboard: the fleet at a glance, live, in a browser, served by the coordinator on an HTTP port of
//! its own (`HEMOSTAT_DASHBOARD_LISTEN`).
//!
//! A thin adapter over the same application service as FleetService ([`Fleet`]): it sees the whole fleet
//! (every coordinator's nodes, through the fleet directory) and changes things only through the service's
//! commands, with the admin's identity. The page (plain HTML, CSS and JavaScript, [`assets`]) is embedded in
//! the binary and reads JSON under `/api/` ([`routes`]), with a live feed of events ([`events_stream`]) and
//! charts by [`metric_series`]. Who may do what is [`auth`]'s concern.

mod assets;
pub mod auth;
pub mod events_stream;
pub mod metric_series;
mod routes;

pub use routes::OVERVIEW_CONTAINERS;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::fleet::Fleet;
use crate::instruments::CoordinatorInstruments;
use auth::{Access, DashboardTokens};

/// The dashboard's settings.
#[derive(Clone, Debug)]
pub struct DashboardConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Who may use it; required when `listen` is not a loopback address.
    pub tokens: DashboardTokens,
    /// Session cookies carry `Secure`: browsers reach the dashboard over HTTPS (a TLS proxy in front).
    pub secure_cookie: bool,
}

/// Why the dashboard cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A non-loopback address without tokens: anyone on the network could act as an admin.
    #[error(
        "the dashboard listens on {addr}, which is not a loopback address, but no tokens are configured: set \
         HEMOSTAT_DASHBOARD_TOKENS (e.g. viewer:<token>,admin:<token>) or HEMOSTAT_DASHBOARD_TOKENS_FILE, or \
         listen on 127.0.0.1"
    )]
    TokensRequired {
        /// The address.
        addr: SocketAddr,
    },
    /// The tokens are malformed or unreadable.
    #[error(transparent)]
    Tokens(#[from] auth::TokenError),
    /// The address could not be bound.
    #[error("cannot listen for the dashboard on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl DashboardConfig {
    /// The settings, checked: a non-loopback address needs tokens.
    pub fn new(listen: SocketAddr, tokens: DashboardTokens) -> Result<Self, DashboardError> {
        let config = DashboardConfig { listen, tokens, secure_cookie: false };
        config.check()?;
        Ok(config)
    }

    /// The same, with session cookies marked `Secure` or not.
    pub fn with_secure_cookie(self, secure_cookie: bool) -> Self {
        DashboardConfig { secure_cookie, ..self }
    }

    fn check(&self) -> Result<(), DashboardError> {
        if !self.listen.ip().is_loopback() && self.tokens.is_empty() {
            return Err(DashboardError::TokensRequired { addr: self.listen });
        }
        Ok(())
    }
}

/// The dashboard's listener, bound at start-up so a taken port is an error before anything runs.
pub struct DashboardListener {
    listener: TcpListener,
    config: DashboardConfig,
}

/// Checks the settings and binds the address.
pub async fn bind(config: DashboardConfig) -> Result<DashboardListener, DashboardError> {
    config.check()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| DashboardError::Bind { addr: config.listen, source })?;
    Ok(DashboardListener { listener, config })
}

/// What the dashboard reads and changes: the fleet service, and who may use it.
#[derive(Clone)]
pub struct Dashboard {
    fleet: Arc<Fleet>,
    access: Arc<Access>,
    /// Where logins are counted.
    instruments: Arc<CoordinatorInstruments>,
    /// Becomes true when the coordinator stops; live streams end then.
    stop: watch::Receiver<bool>,
}

impl DashboardListener {
    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves the dashboard over the fleet service until `stop` turns true.
    pub fn spawn(self, fleet: Arc<Fleet>, instruments: Arc<CoordinatorInstruments>, stop: watch::Receiver<bool>) {
        let addr = self.local_addr();
        let access = Arc::new(Access::new(self.config.tokens.clone()).with_secure_cookie(self.config.secure_cookie));
        tracing::info!(
            addr = ?addr,
            login = if access.requires_login() { "tokens" } else { "none (loopback only)" },
            secure_cookie = self.config.secure_cookie,
            "serving the dashboard"
        );
        let dashboard = Dashboard { fleet, access, instruments, stop: stop.clone() };
        let router = router(dashboard).into_make_service_with_connect_info::<SocketAddr>();
        let mut stopped = stop;
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(self.listener, router).with_graceful_shutdown(shutdown).await {
                tracing::error!(%error, "the dashboard server failed");
            }
        });
    }
}

/// Every route: the page's files, then the API behind authentication.
fn router(dashboard: Dashboard) -> Router {
    let api = Router::new()
        .route("/api/overview", get(routes::overview))
        .route("/api/events", get(routes::events))
        .route("/api/events/{id}", get(routes::event_details))
        .route("/api/containers/{node}/{container}", get(routes::container))
        .route("/api/analytics", get(routes::analytics))
        .route("/api/stream", get(events_stream::stream))
        .route("/api/silences", post(routes::create_silence))
        .route("/api/silences/{id}/end", post(routes::end_silence))
        .route("/api/approvals/{id}", post(routes::approve))
        .route("/api/dry-run", post(routes::set_dry_run))
        .route_layer(middleware::from_fn_with_state(dashboard.clone(), authenticate));
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::script))
        .route("/app.css", get(assets::style))
        .route("/favicon.svg", get(assets::icon))
        .route("/api/session", get(routes::session))
        .route("/api/login", post(routes::login))
        .route("/api/logout", post(routes::logout))
        .merge(api)
        .fallback(routes::not_found)
        .layer(middleware::from_fn_with_state(dashboard.clone(), guard))
        .with_state(dashboard)
}

/// Every request: in local mode only for loopback host names; every POST only from the same origin; every
/// answer with headers that keep the page from being framed, sniffed or made to run foreign scripts.
async fn guard(State(dashboard): State<Dashboard>, request: Request, next: Next) -> Response {
    if !dashboard.access.requires_login()
        && let Err(refusal) = dashboard.access.user(request.headers())
    {
        return routes::refused(refusal);
    }
    if request.method() != axum::http::Method::GET
        && let Err(refusal) = auth::check_same_origin(request.method(), request.headers())
    {
        tracing::warn!(path = %request.uri().path(), ?refusal, "dashboard: refused a request");
        return routes::refused(refusal);
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The API's requests: who makes them (401 without valid credentials), put in the request for handlers.
/// A wrong bearer token counts as a failed login of the client's address.
async fn authenticate(State(dashboard): State<Dashboard>, mut request: Request, next: Next) -> Response {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    let client = client.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    match dashboard.access.user_from(request.headers(), client) {
        Ok(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        Err(refusal) => routes::refused(refusal),
    }
}
