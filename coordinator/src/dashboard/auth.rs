//! Who may use the dashboard, and how state-changing requests are protected.
//!
//! - **Tokens** (`HEMOSTAT_DASHBOARD_TOKENS`, or a file of them): each names a user and a role, viewer or
//!   admin. A request carries one as `Authorization: Bearer <token>`, or a browser logs in once with the
//!   token and then carries a session cookie (`HttpOnly`, `SameSite=Strict`, and `Secure` when
//!   `HEMOSTAT_DASHBOARD_SECURE_COOKIE` says the dashboard is reached over HTTPS, e.g. behind a TLS proxy).
//!   Tokens are compared in full, every one, in a time that depends only on the length of what was sent.
//! - **Logins**: failed logins are limited per client address and in total ([`LoginLimiter`]), answered
//!   429 with `Retry-After`; sessions are bounded per role, the oldest of the same role dropped first, so a
//!   flood of viewer logins never ends an admin's session.
//! - **Loopback without tokens**: when the dashboard listens on a loopback address and no token is
//!   configured, whoever can reach it is on this machine and is treated as the local admin
//!   (`dashboard:local`); requests must then name a loopback host (`Host: localhost`, `127.0.0.1`, `[::1]`),
//!   so a web page cannot reach the dashboard by pointing its own domain name at 127.0.0.1. Listening on any
//!   other address without tokens is refused at start-up.
//! - **Cross-site requests**: every state change is a `POST` that must carry the `X-HemoStat-CSRF` header
//!   (which a cross-site form cannot send, and a cross-site script cannot send without a CORS preflight that
//!   the dashboard never approves), and is refused when the browser says it comes from another site
//!   (`Sec-Fetch-Site`) or another origin (`Origin`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, header};
use hemostat_pki::{Identity, OperatorRole, Role};

/// The header every state-changing browser request must carry (any non-empty value).
pub const CSRF_HEADER: &str = "x-hemostat-csrf";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hemostat_dashboard";
/// How long a browser session lasts after logging in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The shortest token accepted: guessing one must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;
/// The most viewer sessions kept at once; the oldest viewer session is dropped beyond it.
pub const MAX_VIEWER_SESSIONS: usize = 1000;
/// The most admin sessions kept at once; the oldest admin session is dropped beyond it (never by viewers).
pub const MAX_ADMIN_SESSIONS: usize = 100;
/// Failed logins one client address may make in a [`LOGIN_WINDOW`] before it is answered 429.
pub const FAILED_LOGINS_PER_ADDRESS: u32 = 10;
/// Failed logins from all addresses together in a [`LOGIN_WINDOW`] before every login is answered 429.
pub const FAILED_LOGINS_TOTAL: u32 = 100;
/// The window failed logins are counted in.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses whose failures are remembered at once; beyond it new addresses count in the total only.
const TRACKED_ADDRESSES: usize = 10_000;

/// What a dashboard user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DashboardRole {
    /// Read everything, change nothing.
    Viewer,
    /// Read, and silence, approve, switch dry-run.
    Admin,
}

/// A dashboard user: a token's holder, or the local admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DashboardUser {
    /// The token's name (`local` for the local admin).
    pub name: String,
    /// The role.
    pub role: DashboardRole,
}

impl DashboardUser {
    /// The identity the coordinator records for this user's actions: an operator named `dashboard:<name>`.
    pub fn identity(&self) -> Identity {
        let role = match self.role {
            DashboardRole::Viewer => OperatorRole::Viewer,
            DashboardRole::Admin => OperatorRole::Admin,
        };
        Identity { role: Role::Operator(role), name: format!("dashboard:{}", self.name) }
    }
}

/// Why the tokens cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The tokens file could not be read.
    #[error("cannot read the dashboard tokens file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An entry is not `role:token` or `name:role:token`.
    #[error(
        "dashboard token entry {entry}: {problem} (expected `role:token` or `name:role:token`, role viewer or admin)"
    )]
    Malformed {
        /// Which entry, counting from 1.
        entry: usize,
        /// What is wrong.
        problem: String,
    },
    /// Two entries have the same token.
    #[error("dashboard token entry {entry} repeats an earlier token")]
    Duplicate {
        /// Which entry, counting from 1.
        entry: usize,
    },
}

/// The configured tokens.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DashboardTokens {
    entries: Vec<(String, DashboardUser)>,
}

impl std::fmt::Debug for DashboardTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<String> = self.entries.iter().map(|(_, u)| format!("{}:{:?}", u.name, u.role)).collect();
        f.debug_struct("DashboardTokens").field("users", &users).finish()
    }
}

impl DashboardTokens {
    /// Parses entries separated by commas or new lines: `role:token` (the user is named after the role) or
    /// `name:role:token`. Blank entries and lines starting with `#` are skipped.
    pub fn parse(spec: &str) -> Result<Self, TokenError> {
        let mut entries: Vec<(String, DashboardUser)> = Vec::new();
        let raw = spec.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty() && !e.starts_with('#'));
        for (index, entry) in raw.enumerate() {
            let number = index + 1;
            let malformed = |problem: &str| TokenError::Malformed { entry: number, problem: problem.to_owned() };
            let parts: Vec<&str> = entry.split(':').collect();
            let (name, role, token) = match parts.as_slice() {
                [role, token] => (*role, *role, *token),
                [name, role, token] => (*name, *role, *token),
                _ => return Err(malformed("wrong number of `:`-separated parts")),
            };
            let role = match role {
                "viewer" => DashboardRole::Viewer,
                "admin" => DashboardRole::Admin,
                _ => return Err(malformed("the role must be viewer or admin")),
            };
            if hemostat_pki::identity::validate_name(name).is_err() {
                return Err(malformed("the name must be 1 to 63 letters, digits, '.', '_' or '-'"));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(malformed(&format!("the token is shorter than {MIN_TOKEN_LEN} characters")));
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(malformed("the token must be printable ASCII without spaces"));
            }
            if entries.iter().any(|(t, _)| t == token) {
                return Err(TokenError::Duplicate { entry: number });
            }
            entries.push((token.to_owned(), DashboardUser { name: name.to_owned(), role }));
        }
        Ok(DashboardTokens { entries })
    }

    /// Reads a file of entries, one a line (see [`DashboardTokens::parse`]).
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| TokenError::Read { path: path.to_owned(), source })?;
        Self::parse(&text)
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The user holding `token`. Every configured token is compared in full, in constant time per byte.
    pub fn user(&self, token: &str) -> Option<&DashboardUser> {
        let mut found = None;
        for (candidate, user) in &self.entries {
            if constant_time_eq(candidate.as_bytes(), token.as_bytes()) {
                found = Some(user);
            }
        }
        found
    }
}

/// Whether `secret` equals `given`, in a time that depends only on `given`'s length: every byte of `given`
/// is compared (against the secret's bytes, repeated), and the lengths are compared without branching, so
/// neither where the first difference is nor how long the secret is shows in the time taken.
fn constant_time_eq(secret: &[u8], given: &[u8]) -> bool {
    let mut diff = (secret.len() ^ given.len()) as u64;
    if secret.is_empty() {
        return given.is_empty();
    }
    for (i, byte) in given.iter().enumerate() {
        diff |= u64::from(secret[i % secret.len()] ^ byte);
    }
    std::hint::black_box(diff) == 0
}

/// Counts failed logins per client address and in total, over fixed windows of [`LOGIN_WINDOW`].
#[derive(Debug)]
pub struct LoginLimiter {
    per_address: u32,
    total: u32,
    window: Duration,
    state: Mutex<LimiterState>,
}

#[derive(Debug)]
struct LimiterState {
    /// Per address: when its window began, and its failures in it.
    addresses: HashMap<IpAddr, (Instant, u32)>,
    /// The same for all addresses together.
    total: (Instant, u32),
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(FAILED_LOGINS_PER_ADDRESS, FAILED_LOGINS_TOTAL, LOGIN_WINDOW)
    }
}

impl LoginLimiter {
    /// A limiter allowing `per_address` failures per address and `total` in all, per `window`.
    pub fn new(per_address: u32, total: u32, window: Duration) -> Self {
        let state = LimiterState { addresses: HashMap::new(), total: (Instant::now(), 0) };
        LoginLimiter { per_address, total, window, state: Mutex::new(state) }
    }

    /// `Err(wait)` when a login from `address` must not be tried now: its address, or all addresses
    /// together, failed too often in the current window, which ends after `wait`.
    pub fn check(&self, address: IpAddr) -> Result<(), Duration> {
        let mut state = self.state.lock().expect("limiter lock");
        let now = Instant::now();
        let remaining = |(start, count): (Instant, u32), limit: u32| {
            let elapsed = now.duration_since(start);
            (elapsed < self.window && count >= limit).then(|| self.window - elapsed)
        };
        let by_address = state.addresses.get(&address).and_then(|entry| remaining(*entry, self.per_address));
        match by_address.or_else(|| remaining(state.total, self.total)) {
            Some(wait) => Err(wait),
            None => {
                state.total = fresh(state.total, now, self.window);
                Ok(())
            }
        }
    }

    /// Counts a failed login from `address`.
    pub fn failed(&self, address: IpAddr) {
        let mut state = self.state.lock().expect("limiter lock");
        let now = Instant::now();
        let window = self.window;
        let total = fresh(state.total, now, window);
        state.total = (total.0, total.1.saturating_add(1));
        if state.addresses.len() >= TRACKED_ADDRESSES && !state.addresses.contains_key(&address) {
            state.addresses.retain(|_, (start, _)| now.duration_since(*start) < window);
            if state.addresses.len() >= TRACKED_ADDRESSES {
                return;
            }
        }
        let entry = state.addresses.entry(address).or_insert((now, 0));
        *entry = fresh(*entry, now, window);
        entry.1 = entry.1.saturating_add(1);
    }
}

/// A window's count, restarted when the window is over.
fn fresh((start, count): (Instant, u32), now: Instant, window: Duration) -> (Instant, u32) {
    if now.duration_since(start) >= window { (now, 0) } else { (start, count) }
}

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No valid credentials (401).
    Unauthenticated(&'static str),
    /// Authenticated, or local, but not allowed (403).
    Forbidden(String),
    /// Too many failed logins; try again after this long (429).
    TooManyAttempts(Duration),
}

/// The dashboard's access control: tokens, browser sessions, and the local mode.
pub struct Access {
    tokens: DashboardTokens,
    /// No tokens, on loopback: the local admin.
    local: bool,
    sessions: Mutex<HashMap<String, (DashboardUser, Instant)>>,
    limiter: LoginLimiter,
    /// Session cookies carry `Secure`.
    secure_cookie: bool,
}

impl Access {
    /// Access with these tokens; without any, everyone who can reach the (loopback) listener is the local admin.
    pub fn new(tokens: DashboardTokens) -> Self {
        let local = tokens.is_empty();
        Access {
            tokens,
            local,
            sessions: Mutex::new(HashMap::new()),
            limiter: LoginLimiter::default(),
            secure_cookie: false,
        }
    }

    /// The same, with session cookies marked `Secure` (the browser reaches the dashboard over HTTPS).
    pub fn with_secure_cookie(self, secure_cookie: bool) -> Self {
        Access { secure_cookie, ..self }
    }

    /// The same, with another login limiter.
    pub fn with_limiter(self, limiter: LoginLimiter) -> Self {
        Access { limiter, ..self }
    }

    /// The `Set-Cookie` value of a new session.
    pub fn session_cookie(&self, id: &str) -> String {
        format!("{}{}", session_cookie(id), if self.secure_cookie { "; Secure" } else { "" })
    }

    /// The `Set-Cookie` value that ends a session.
    pub fn expired_cookie(&self) -> String {
        format!("{}{}", expired_cookie(), if self.secure_cookie { "; Secure" } else { "" })
    }

    /// Whether requests need credentials (tokens are configured).
    pub fn requires_login(&self) -> bool {
        !self.local
    }

    /// Who makes this request, from its bearer token, its session cookie, or the local mode.
    pub fn user(&self, headers: &HeaderMap) -> Result<DashboardUser, Refusal> {
        if self.local {
            return if host_is_loopback(headers) {
                Ok(DashboardUser { name: "local".into(), role: DashboardRole::Admin })
            } else {
                Err(Refusal::Forbidden(
                    "without tokens the dashboard answers only requests for localhost, 127.0.0.1 or [::1]".into(),
                ))
            };
        }
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
            return token
                .and_then(|t| self.tokens.user(t))
                .cloned()
                .ok_or(Refusal::Unauthenticated("the bearer token is not one of the dashboard's tokens"));
        }
        if let Some(session) = cookie(headers, SESSION_COOKIE) {
            let mut sessions = self.sessions.lock().expect("sessions lock");
            match sessions.get(session) {
                Some((user, started)) if started.elapsed() < SESSION_LIFETIME => return Ok(user.clone()),
                Some(_) => {
                    sessions.remove(session);
                }
                None => {}
            }
            return Err(Refusal::Unauthenticated("the session has ended; log in again"));
        }
        Err(Refusal::Unauthenticated("log in with a dashboard token"))
    }

    /// [`Access::user`] for a request from `client`: a wrong bearer token counts as a failed login, and a
    /// bearer token from a client (or everyone) that failed too often lately is not tried.
    pub fn user_from(&self, headers: &HeaderMap, client: IpAddr) -> Result<DashboardUser, Refusal> {
        if self.local || !headers.contains_key(header::AUTHORIZATION) {
            return self.user(headers);
        }
        self.limiter.check(client).map_err(Refusal::TooManyAttempts)?;
        let answer = self.user(headers);
        if answer.is_err() {
            self.limiter.failed(client);
        }
        answer
    }

    /// Starts a browser session for the holder of `token`, logging in from `client`; returns the session
    /// id for the cookie. Refused without trying the token when `client` (or everyone) failed too often
    /// lately; a wrong token counts as a failure.
    pub fn login(&self, token: &str, client: IpAddr) -> Result<(String, DashboardUser), Refusal> {
        self.limiter.check(client).map_err(Refusal::TooManyAttempts)?;
        let Some(user) = self.tokens.user(token).cloned() else {
            self.limiter.failed(client);
            return Err(Refusal::Unauthenticated("this is not one of the dashboard's tokens"));
        };
        let id = format!("{:032x}", rand::random::<u128>());
        let bound = match user.role {
            DashboardRole::Viewer => MAX_VIEWER_SESSIONS,
            DashboardRole::Admin => MAX_ADMIN_SESSIONS,
        };
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.retain(|_, (_, started)| started.elapsed() < SESSION_LIFETIME);
        let same_role = || sessions.iter().filter(|(_, (u, _))| u.role == user.role);
        if same_role().count() >= bound
            && let Some(oldest) = same_role().min_by_key(|(_, (_, started))| *started).map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), (user.clone(), Instant::now()));
        Ok((id, user))
    }

    /// Ends the session of this request's cookie, if any.
    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(session) = cookie(headers, SESSION_COOKIE) {
            self.sessions.lock().expect("sessions lock").remove(session);
        }
    }
}

/// Refuses a state-changing request that may come from another site: not a POST, sent by a browser from
/// another site or origin, or (unless it carries a bearer token, which browsers never add by themselves)
/// without the [`CSRF_HEADER`].
pub fn check_same_origin(method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
    if method != Method::POST {
        return Err(Refusal::Forbidden("changes are made with POST only".into()));
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Err(Refusal::Forbidden(format!("cross-site request refused (Sec-Fetch-Site: {site})")));
    }
    if let Some(origin) = text("origin") {
        let host = text("host").unwrap_or_default();
        let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
        if origin_host.is_none_or(|h| !h.eq_ignore_ascii_case(host)) {
            return Err(Refusal::Forbidden("cross-origin request refused (Origin does not match Host)".into()));
        }
    }
    let bearer = headers.contains_key(header::AUTHORIZATION);
    if !bearer && text(CSRF_HEADER).is_none_or(str::is_empty) {
        return Err(Refusal::Forbidden(format!("the {CSRF_HEADER} header is required for changes")));
    }
    Ok(())
}

/// Whether the request's `Host` names this machine's loopback interface.
fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':')
            .map_or(host, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host })
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The value of the cookie `name` in the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(id: &str) -> String {
    format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", SESSION_LIFETIME.as_secs())
}

/// The `Set-Cookie` value that ends a session.
pub fn expired_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const ADMIN: &str = "admin-token-0123456789";
    const VIEWER: &str = "viewer-token-0123456789";
    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn dashboard_tokens_parse_with_and_without_names_and_refuse_weak_or_malformed_entries() {
        let tokens = DashboardTokens::parse(&format!("viewer:{VIEWER}, alice:admin:{ADMIN}\n# comment\n")).unwrap();
        assert_eq!(tokens.user(VIEWER), Some(&DashboardUser { name: "viewer".into(), role: DashboardRole::Viewer }));
        assert_eq!(tokens.user(ADMIN), Some(&DashboardUser { name: "alice".into(), role: DashboardRole::Admin }));
        assert_eq!(tokens.user("admin-token-012345678"), None);
        assert_eq!(tokens.user(""), None);
        assert!(!format!("{tokens:?}").contains(ADMIN), "Debug never shows a token");
        for bad in ["admin:short", "root:0123456789abcdefgh", "a:b:c:d", "bad name:admin:0123456789abcdefgh"] {
            assert!(matches!(DashboardTokens::parse(bad), Err(TokenError::Malformed { entry: 1, .. })), "{bad}");
        }
        let repeated = format!("admin:{ADMIN},viewer:{ADMIN}");
        assert!(matches!(DashboardTokens::parse(&repeated), Err(TokenError::Duplicate { entry: 2 })));
        assert!(DashboardTokens::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn dashboard_requests_are_identified_by_bearer_token_or_session_cookie() {
        let access = Access::new(DashboardTokens::parse(&format!("viewer:{VIEWER},admin:{ADMIN}")).unwrap());
        assert!(matches!(access.user(&headers(&[])), Err(Refusal::Unauthenticated(_))));
        let bearer = format!("Bearer {VIEWER}");
        assert_eq!(access.user(&headers(&[("authorization", &bearer)])).unwrap().role, DashboardRole::Viewer);
        let wrong = headers(&[("authorization", "Bearer nope-nope-nope-nope")]);
        assert!(matches!(access.user(&wrong), Err(Refusal::Unauthenticated(_))));
        let (session, user) = access.login(ADMIN, LOCAL).unwrap();
        assert_eq!(user.identity().to_string(), "operator (admin) \"dashboard:admin\"");
        let cookie = format!("other=1; {SESSION_COOKIE}={session}");
        assert_eq!(access.user(&headers(&[("cookie", &cookie)])).unwrap(), user);
        access.logout(&headers(&[("cookie", &cookie)]));
        assert!(matches!(access.user(&headers(&[("cookie", &cookie)])), Err(Refusal::Unauthenticated(_))));
        assert!(access.login("wrong-wrong-wrong-wrong", LOCAL).is_err());
    }

    #[test]
    fn dashboard_without_tokens_serves_only_loopback_host_names() {
        let access = Access::new(DashboardTokens::default());
        for host in ["localhost:8080", "127.0.0.1:8080", "[::1]:8080", "127.0.0.2", "LOCALHOST"] {
            assert_eq!(access.user(&headers(&[("host", host)])).unwrap().role, DashboardRole::Admin, "{host}");
        }
        for host in ["evil.example:8080", "10.0.0.5:8080", "localhost.evil.example"] {
            assert!(matches!(access.user(&headers(&[("host", host)])), Err(Refusal::Forbidden(_))), "{host}");
        }
        assert!(access.user(&headers(&[])).is_err());
    }

    #[test]
    fn dashboard_changes_need_post_the_csrf_header_and_the_same_origin() {
        let ok = headers(&[
            ("host", "h:1"),
            (CSRF_HEADER, "1"),
            ("origin", "http://h:1"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(check_same_origin(&Method::POST, &ok), Ok(()));
        assert!(check_same_origin(&Method::GET, &ok).is_err());
        let no_header = headers(&[("host", "h:1")]);
        assert!(check_same_origin(&Method::POST, &no_header).is_err());
        let bearer = headers(&[("host", "h:1"), ("authorization", "Bearer x")]);
        assert_eq!(check_same_origin(&Method::POST, &bearer), Ok(()), "tools with a bearer token need no header");
        let cross_site = headers(&[("host", "h:1"), (CSRF_HEADER, "1"), ("sec-fetch-site", "cross-site")]);
        assert!(check_same_origin(&Method::POST, &cross_site).is_err());
        let other_origin = headers(&[("host", "h:1"), (CSRF_HEADER, "1"), ("origin", "http://evil.example")]);
        assert!(check_same_origin(&Method::POST, &other_origin).is_err());
        let null_origin = headers(&[("host", "h:1"), ("authorization", "Bearer x"), ("origin", "null")]);
        assert!(check_same_origin(&Method::POST, &null_origin).is_err());
    }

    #[test]
    fn dashboard_tokens_compare_in_full_whatever_their_length() {
        for (secret, given, equal) in [
            ("0123456789abcdef", "0123456789abcdef", true),
            ("0123456789abcdef", "0123456789abcdeX", false),
            ("0123456789abcdef", "0123456789abcde", false),
            ("0123456789abcdef", "0123456789abcdef0123456789abcdef", false),
            ("0123456789abcdef", "", false),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(constant_time_eq(secret.as_bytes(), given.as_bytes()), equal, "{secret:?} vs {given:?}");
        }
    }

    #[test]
    fn failed_logins_are_limited_per_address_and_in_total() {
        let limiter = LoginLimiter::new(3, 5, Duration::from_secs(60));
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
            limiter.failed(a);
        }
        let wait = limiter.check(a).expect_err("a failed 3 times");
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60), "{wait:?}");
        assert!(limiter.check(b).is_ok(), "another address is not limited by a's failures");
        limiter.failed(b);
        limiter.failed(b);
        assert!(limiter.check(c).is_err(), "5 failures in all: every address waits");
        let expired = LoginLimiter::new(1, 1, Duration::ZERO);
        expired.failed(a);
        assert!(expired.check(a).is_ok(), "a window over forgets its failures");
    }

    #[test]
    fn viewer_logins_never_end_an_admin_session() {
        let access = Access::new(DashboardTokens::parse(&format!("viewer:{VIEWER},admin:{ADMIN}")).unwrap());
        let (admin, _) = access.login(ADMIN, LOCAL).unwrap();
        let (first_viewer, _) = access.login(VIEWER, LOCAL).unwrap();
        for _ in 0..MAX_VIEWER_SESSIONS + 10 {
            access.login(VIEWER, LOCAL).unwrap();
        }
        let with = |id: &str| headers(&[("cookie", &format!("{SESSION_COOKIE}={id}"))]);
        assert_eq!(access.user(&with(&admin)).unwrap().role, DashboardRole::Admin);
        assert!(access.user(&with(&first_viewer)).is_err(), "the oldest viewer session made room");
        let sessions = access.sessions.lock().unwrap();
        assert_eq!(sessions.len(), MAX_VIEWER_SESSIONS + 1);
    }

    #[test]
    fn session_cookies_are_secure_only_when_configured() {
        let tokens = DashboardTokens::parse(&format!("admin:{ADMIN}")).unwrap();
        assert!(!Access::new(tokens.clone()).session_cookie("x").contains("Secure"));
        let secure = Access::new(tokens).with_secure_cookie(true);
        assert!(secure.session_cookie("x").ends_with("; Secure"));
        assert!(secure.expired_cookie().ends_with("; Secure"));
    }
}
