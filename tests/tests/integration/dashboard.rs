//! The dashboard in a real browser (headless Chromium through chromedriver) against a real coordinator, a
//! real node and the real Docker engine: a known scenario's numbers on the overview, the timeline and the
//! analytics; a new event appearing live; filters; details on click; untrusted HTML shown as text; an
//! admin's silence, approval and dry-run switch recorded with the admin's identity. Access control is
//! checked with plain HTTP requests. Each page's screenshot is saved under the target folder
//! (`dashboard-screenshots/`), for a person to look at.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hemostat_coordinator::dashboard::DashboardConfig;
use hemostat_coordinator::dashboard::auth::DashboardTokens;
use hemostat_coordinator::{Coordinator, CoordinatorConfig};
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::docker::crash_once;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{self, FleetClient, TestFleet, events_of, kinds, rejection, remediated};
use serde_json::{Value, json};

/// HTML that a container writes to its log and carries in a label: it must show as text.
const LOG_HTML: &str = "<img src=x onerror=alert(1)><b>bold</b>";
const LABEL_HTML: &str = "<i>italic</i><script>alert(2)</script>";
const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef";
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const DEADLINE: Duration = Duration::from_secs(60);

/// A free loopback address for the dashboard.
fn dashboard_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], hemostat_tests::redis::free_port()))
}

/// Where screenshots go: `<target>/dashboard-screenshots`.
fn screenshot_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().map_or(tmp.clone(), |target| target.to_path_buf()).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

/// Headless Chromium driven through a chromedriver of our own, in a process group of its own so that the
/// browser goes with it.
struct Browser {
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
    base: String,
}

impl Browser {
    async fn start(base: &str) -> Self {
        use std::os::unix::process::CommandExt;
        let port = hemostat_tests::redis::free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver is installed (apt-get install chromium chromium-driver)");
        let profile = tempfile::tempdir().expect("profile folder");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1440,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let mut browser = Browser { client: None, driver, _profile: profile, base: base.to_owned() };
        let url = format!("http://127.0.0.1:{port}");
        let client = eventually("chromedriver answering", Duration::from_secs(20), || {
            let (url, capabilities) = (url.clone(), capabilities.clone());
            async move {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                ClientBuilder::new(connector).capabilities(capabilities).connect(&url).await.map_err(|e| e.to_string())
            }
        })
        .await;
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("a browser session")
    }

    async fn open(&self, path: &str) {
        self.client().goto(&format!("{}{path}", self.base)).await.expect("navigate");
    }

    /// Runs a script in the page and returns its value.
    async fn js(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.client().execute(script, args).await.map_err(|e| e.to_string())
    }

    /// The `textContent` of the first element matching `css` (exactly the text, as a DOM would hold it).
    async fn text(&self, css: &str) -> Result<String, String> {
        let value = self
            .js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", vec![json!(css)])
            .await?;
        value.as_str().map(str::to_owned).ok_or_else(|| format!("nothing matches {css}"))
    }

    /// The `textContent` of every element matching `css`.
    async fn texts(&self, css: &str) -> Result<Vec<String>, String> {
        let value = self
            .js("return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent);", vec![json!(css)])
            .await?;
        Ok(value.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect())
    }

    async fn count(&self, css: &str) -> Result<usize, String> {
        Ok(self.texts(css).await?.len())
    }

    /// Waits until the element `css` holds exactly `expected`.
    async fn wait_text(&self, css: &str, expected: &str) {
        eventually(&format!("{css} to read {expected:?}"), DEADLINE, || async {
            let text = self.text(css).await?;
            if text.trim() == expected { Ok(()) } else { Err(format!("{text:?}")) }
        })
        .await;
    }

    /// Waits until `css` matches exactly `n` elements.
    async fn wait_count(&self, css: &str, n: usize) {
        eventually(&format!("{n} × {css}"), DEADLINE, || async {
            let texts = self.texts(css).await?;
            if texts.len() == n { Ok(()) } else { Err(format!("{} found: {texts:?}", texts.len())) }
        })
        .await;
    }

    async fn click(&self, css: &str) {
        let element = eventually(&format!("{css} to click"), DEADLINE, || async {
            self.client().find(Locator::Css(css)).await.map_err(|e| e.to_string())
        })
        .await;
        element.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = eventually(&format!("{css} to type into"), DEADLINE, || async {
            self.client().find(Locator::Css(css)).await.map_err(|e| e.to_string())
        })
        .await;
        element.clear().await.expect("clear");
        element.send_keys(text).await.expect("type");
    }

    async fn select(&self, css: &str, value: &str) {
        let element = self.client().find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        element.select_by_value(value).await.unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    /// Saves a screenshot of the whole page (the window grown to its height) as `<name>.png` and prints its
    /// path.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let height =
            self.js("return document.documentElement.scrollHeight;", vec![]).await.ok().and_then(|h| h.as_u64());
        let height = height.unwrap_or(1000).clamp(1000, 2400) as u32;
        self.client().set_window_size(1440, height + 100).await.expect("resize the window");
        let png = self.client().screenshot().await.expect("screenshot");
        self.client().set_window_size(1440, 1000).await.expect("resize the window back");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        println!("dashboard screenshot: {}", path.display());
        path
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole process group: chromedriver and the browser it started.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.driver.id())]).status();
        let _ = self.driver.wait();
    }
}

/// One plain HTTP/1.1 request; returns the status, the head and the body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the dashboard");
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// The detection-to-recovery time of each remediated container in `events`, as the analytics define it:
/// the `health_alert` before the decision (observed time) to the `remediation_complete` of its command.
fn recovery_ms(events: &[pb::Event]) -> Vec<u64> {
    let ms = |t: &Option<prost_types::Timestamp>| {
        t.as_ref().map_or(0, |t| t.seconds as u64 * 1000 + t.nanos as u64 / 1_000_000)
    };
    let mut times = Vec::new();
    for done in events.iter().filter(|e| e.r#type() == pb::EventType::RemediationComplete) {
        let decision = events
            .iter()
            .position(|e| e.r#type() == pb::EventType::RemediationNeeded && e.command_id == done.command_id)
            .expect("a decision for each remediation");
        let alert = events[..decision]
            .iter()
            .rev()
            .find(|e| e.r#type() == pb::EventType::HealthAlert && e.container_id == events[decision].container_id)
            .expect("a detection before each decision");
        let detected = if alert.observed_at.is_some() { ms(&alert.observed_at) } else { ms(&alert.time) };
        times.push(ms(&done.time) - detected);
    }
    times
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_a_known_scenario_exactly_live_and_as_text() {
    let addr = dashboard_addr();
    let s = TestFleet::start_with(
        |c| {
            c.dashboard = Some(DashboardConfig::new(addr, DashboardTokens::default()).expect("loopback needs no token"))
        },
        |_| {},
    )
    .await;
    // The scenario: two containers crash once and are restarted; one is restarted by Docker's own policy
    // (a false alarm). `api` writes HTML to its log and carries HTML in a label.
    let web = s.scope.run("web", &[], &crash_once(1));
    let api = s.scope.run(
        "api",
        &["--label", &format!("note={LABEL_HTML}")],
        &format!("echo '{LOG_HTML}'; {}", crash_once(2)),
    );
    let batch = s.scope.run("batch", &["--restart", "on-failure:1"], &crash_once(3));
    let web_events = remediated(&s.client, &web, DEADLINE).await;
    let api_events = remediated(&s.client, &api, DEADLINE).await;
    let batch_events = eventually("batch's false alarm", DEADLINE, || async {
        let events = events_of(&s.client, &batch).await?;
        if kinds(&events).contains(&"false_alarm".to_owned()) {
            Ok(events)
        } else {
            Err(format!("{:?}", kinds(&events)))
        }
    })
    .await;
    for (name, events) in [(&web, &web_events), (&api, &api_events)] {
        assert_eq!(kinds(events), ["health_alert", "remediation_needed", "remediation_complete"], "{name}");
        assert_eq!(events[2].outcome(), pb::Outcome::Success, "{name}");
    }
    assert_eq!(kinds(&batch_events), ["health_alert", "false_alarm"]);
    for name in [&web, &api, &batch] {
        eventually(&format!("{name} running again"), DEADLINE, || async {
            let state = fleet::container(&s.client, name).await?.state.unwrap_or_default();
            if state.status() == pb::ContainerStatus::Running { Ok(()) } else { Err(format!("{state:?}")) }
        })
        .await;
    }
    let recoveries: Vec<u64> = [&web_events, &api_events].iter().flat_map(|e| recovery_ms(e)).collect();
    let mean = (recoveries.iter().sum::<u64>() as f64 / recoveries.len() as f64).round() as u64;
    let mttr = format!("{}.{:03} s", mean / 1000, mean % 1000);

    let browser = Browser::start(&format!("http://127.0.0.1:{}", addr.port())).await;

    // Overview: one node, three containers, all running, the two remediated ones in their cooldown.
    browser.open("/#/overview").await;
    browser.wait_text("[data-card=containers] .value", "3").await;
    assert_eq!(browser.text("[data-card=nodes] .value").await.unwrap(), "1 / 1");
    assert_eq!(browser.text("[data-card=anomalies] .value").await.unwrap(), "0");
    assert_eq!(browser.text("#nodes tr[data-node=host-a] .n-state").await.unwrap(), "connected");
    assert_eq!(browser.count("#containers tbody tr").await.unwrap(), 3);
    for name in [&web, &api] {
        let policy = browser.text(&format!("#containers tr[data-container={name}] .c-policy")).await.unwrap();
        assert!(policy.contains("cooldown 60 min") && policy.contains("1/3"), "{name}: {policy}");
    }
    let policy = browser.text(&format!("#containers tr[data-container={batch}] .c-policy")).await.unwrap();
    assert!(!policy.contains("cooldown") && policy.contains("0/3"), "{policy}");
    for name in [&web, &api, &batch] {
        let state = browser.text(&format!("#containers tr[data-container={name}] .c-state")).await.unwrap();
        assert_eq!(state, "running", "{name}");
    }
    eventually("CPU and memory figures for every container", DEADLINE, || async {
        let cells = browser.texts("#containers tbody .c-memory .metric span").await?;
        if cells.len() == 3 && cells.iter().all(|c| c.ends_with(" %")) { Ok(()) } else { Err(format!("{cells:?}")) }
    })
    .await;
    browser.screenshot("overview").await;

    // Timeline: the eight events, newest first; a filter narrows it; a click shows the details.
    browser.open("/#/timeline").await;
    browser.wait_text("#event-count", "8 events").await;
    let shown = browser.texts("#events tbody tr .t-type").await.unwrap();
    assert_eq!(shown.len(), 8);
    assert_eq!(shown.iter().filter(|t| *t == "health alert").count(), 3);
    assert_eq!(shown.iter().filter(|t| *t == "remediation complete").count(), 2);
    let ids = browser
        .js("return Array.from(document.querySelectorAll('#events tbody tr')).map(r => r.dataset.id);", vec![])
        .await
        .unwrap();
    let ids: Vec<(u64, u64)> = ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let (ms, seq) = v.as_str().unwrap().split_once('-').unwrap();
            (ms.parse().unwrap(), seq.parse().unwrap())
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    browser.select("#f-type", "false_alarm").await;
    browser.wait_text("#event-count", "1 event").await;
    assert_eq!(browser.texts("#events tbody tr .t-container").await.unwrap(), std::slice::from_ref(&batch));
    browser.select("#f-type", "").await;
    browser.wait_text("#event-count", "8 events").await;
    browser.type_into("#f-container", "api").await;
    browser.click("#filters button[type=submit]").await;
    browser.wait_text("#event-count", "3 events").await;
    assert!(browser.texts("#events tbody tr .t-container").await.unwrap().iter().all(|c| c == &api));

    let decision = api_events.iter().find(|e| e.r#type() == pb::EventType::RemediationNeeded).unwrap();
    browser.click(&format!("#events tbody tr[data-id='{}']", decision.id)).await;
    browser.wait_text("#details dd[data-field=analysis_method]", "rules").await;
    assert_eq!(
        browser.text("#details dd[data-field=confidence]").await.unwrap(),
        format!("{:.2}", decision.confidence)
    );
    assert_eq!(browser.text("#details dd[data-field=action]").await.unwrap(), "restart");
    assert_eq!(browser.text("#details dd[data-field=command_id]").await.unwrap(), decision.command_id);
    browser.wait_count("#details-related li", 3).await;
    let related = browser.texts("#details-related li").await.unwrap();
    assert!(related[0].contains("health alert") && related[2].contains("remediation complete"), "{related:?}");
    assert!(related[2].contains("success"), "{related:?}");
    assert_eq!(browser.count("#details-audit li").await.unwrap(), 2, "the decision and the result are audited");
    let log_tail = browser.text("#details .evidence-log-tail").await.unwrap();
    assert!(log_tail.contains(LOG_HTML), "the log line shows as text: {log_tail:?}");
    assert_eq!(
        browser.count("#details img, #details b, #details script").await.unwrap(),
        0,
        "no HTML from a log became an element"
    );
    browser.screenshot("timeline").await;

    // Analytics: two remediations, both verified; one false alarm among three decisions; the mean time from
    // detection to recovery computed from the events above.
    browser.open("/#/analytics").await;
    browser.wait_text("[data-metric=remediations] .value", "2").await;
    assert_eq!(browser.text("[data-metric=success_rate] .value").await.unwrap(), "100.0 %");
    assert_eq!(browser.text("[data-metric=false_alarm_rate] .value").await.unwrap(), "33.3 %");
    assert_eq!(browser.text("[data-metric=mttr] .value").await.unwrap(), mttr, "recoveries {recoveries:?}");
    let top = browser.texts("#most-remediated tbody tr").await.unwrap();
    assert_eq!(top, [format!("{api}host-a11"), format!("{web}host-a11")]);
    browser.screenshot("analytics").await;

    // Container page: the label's HTML as text, the charts with the crash marked, and an admin's silence.
    browser.open("/#/overview").await;
    browser.click(&format!("#containers tr[data-container={api}] .c-name a")).await;
    browser.wait_text("#container-name", &format!("{api} running")).await;
    let labels = browser.texts("#labels td").await.unwrap();
    assert!(labels.contains(&LABEL_HTML.to_owned()), "{labels:?}");
    assert_eq!(browser.count("#labels i, #labels script").await.unwrap(), 0);
    assert_eq!(browser.count("#charts .chart").await.unwrap(), 4);
    eventually("CPU and memory plotted, the crash and the restart marked", DEADLINE, || async {
        let lines = browser.count("#charts .chart[data-chart=memory] path[stroke='#8a3ffc']").await?;
        let markers = browser.count("#charts .chart[data-chart=cpu] .marker").await?;
        if lines == 1 && markers >= 1 { Ok(()) } else { Err(format!("{lines} lines, {markers} markers")) }
    })
    .await;
    let reason = "<b>maintenance</b> window";
    browser.type_into("#silence-reason", reason).await;
    browser.click("#silence-submit").await;
    eventually("the silence shown", DEADLINE, || async {
        let text = browser.text("#silence-state").await?;
        if text.ends_with(&format!("by operator:dashboard:local: {reason}")) { Ok(()) } else { Err(text) }
    })
    .await;
    assert_eq!(browser.count("#silence-state b").await.unwrap(), 0);
    let silences = s
        .client
        .clone()
        .list_silences(pb::ListSilencesRequest::default())
        .await
        .expect("silences")
        .into_inner()
        .silences;
    assert_eq!(silences.len(), 1);
    assert_eq!((silences[0].container.as_str(), silences[0].reason.as_str()), (api.as_str(), reason));
    assert_eq!(silences[0].created_by, "operator:dashboard:local");
    browser.screenshot("container").await;

    // Live: a new crash appears on the open timeline without a reload.
    browser.open("/#/timeline").await;
    browser.wait_text("#event-count", "9 events").await;
    browser.js("window.notReloaded = true; return true;", vec![]).await.unwrap();
    let late = s.scope.run("late", &[], &crash_once(4));
    eventually("the new crash on the open timeline", DEADLINE, || async {
        let rows = browser.texts("#events tbody tr[data-kind=health_alert] .t-container").await?;
        if rows.contains(&late) { Ok(()) } else { Err(format!("{rows:?}")) }
    })
    .await;
    assert_eq!(browser.js("return window.notReloaded === true;", vec![]).await.unwrap(), json!(true), "no reload");
    assert_eq!(browser.text("#live").await.unwrap(), "live");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_access_needs_a_token_off_loopback_and_refuses_viewers_and_cross_site_changes() {
    // Refused at start-up: a non-loopback address without tokens.
    hemostat_tests::init();
    let pki = hemostat_tests::pki::TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let store = hemostat_coordinator::store::StoreConfig::Embedded { path: dir.path().join("state.redb") };
    let open = DashboardConfig {
        listen: SocketAddr::from(([0, 0, 0, 0], 0)),
        tokens: DashboardTokens::default(),
        secure_cookie: false,
    };
    let config = CoordinatorConfig { dashboard: Some(open), ..fleet::coordinator_config(&pki, store) };
    let error = Coordinator::bind(config).await.err().expect("no tokens on 0.0.0.0 is refused").to_string();
    assert!(error.contains("not a loopback address"), "{error}");

    let port = hemostat_tests::redis::free_port();
    let tokens = DashboardTokens::parse(&format!("viewer:{VIEWER_TOKEN},alice:admin:{ADMIN_TOKEN}")).unwrap();
    let listen = SocketAddr::from(([0, 0, 0, 0], port));
    let s = TestFleet::start_with(|c| c.dashboard = Some(DashboardConfig::new(listen, tokens).unwrap()), |_| {}).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let viewer = format!("Bearer {VIEWER_TOKEN}");
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let csrf = ("X-HemoStat-CSRF", "1");
    let json = ("Content-Type", "application/json");

    let (status, head, _) = http(addr, "GET", "/", &[], "").await;
    assert_eq!(status, 200, "the page itself holds no data");
    assert!(
        head.to_ascii_lowercase().contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    for path in ["/api/overview", "/api/events", "/api/analytics", "/api/stream"] {
        let (status, head, body) = http(addr, "GET", path, &[], "").await;
        assert_eq!(status, 401, "{path} without a token: {body}");
        assert!(head.contains("www-authenticate: Bearer"), "{head}");
    }
    let (status, _, _) =
        http(addr, "GET", "/api/overview", &[("Authorization", "Bearer wrong-token-0123456789")], "").await;
    assert_eq!(status, 401);
    let (status, _, body) = http(addr, "GET", "/api/overview", &[("Authorization", &viewer)], "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"name\":\"host-a\""), "{body}");

    // A viewer changes nothing.
    for (path, body) in [
        ("/api/dry-run", r#"{"enabled":true}"#),
        ("/api/silences", r#"{"node":"host-a","duration_seconds":60,"reason":"x"}"#),
        ("/api/approvals/abcdef", "{}"),
    ] {
        let (status, _, answer) = http(addr, "POST", path, &[("Authorization", &viewer), json, csrf], body).await;
        assert_eq!(status, 403, "{path}: {answer}");
        assert!(answer.contains("needs an admin"), "{answer}");
    }
    // Cross-site: refused even with an admin's credentials.
    let dry_run = r#"{"enabled":true}"#;
    for headers in [
        vec![("Authorization", admin.as_str()), json, ("Origin", "http://evil.example")],
        vec![("Authorization", admin.as_str()), json, ("Sec-Fetch-Site", "cross-site")],
        vec![("Authorization", admin.as_str()), json, ("Origin", "null")],
    ] {
        let (status, _, answer) = http(addr, "POST", "/api/dry-run", &headers, dry_run).await;
        assert_eq!(status, 403, "{headers:?}: {answer}");
    }
    let (status, _, _) = http(addr, "GET", "/api/dry-run", &[("Authorization", &admin)], "").await;
    assert_eq!(status, 405, "changes are POST only");
    // A browser session: the cookie alone (what a cross-site form would send) does not change anything.
    let login = format!(r#"{{"token":"{ADMIN_TOKEN}"}}"#);
    let (status, _, _) =
        http(addr, "POST", "/api/login", &[json, ("Origin", "http://evil.example"), csrf], &login).await;
    assert_eq!(status, 403, "a cross-origin login");
    let (status, _, _) = http(addr, "POST", "/api/login", &[json, csrf], r#"{"token":"wrong-token-0123456789"}"#).await;
    assert_eq!(status, 401);
    let (status, head, _) = http(addr, "POST", "/api/login", &[json, csrf], &login).await;
    assert_eq!(status, 200);
    let cookie_line =
        head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a session cookie");
    assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"), "{cookie_line}");
    let cookie = cookie_line.split_once(':').unwrap().1.trim().split(';').next().unwrap().to_owned();
    let (status, _, body) = http(addr, "GET", "/api/session", &[("Cookie", &cookie)], "").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""name":"alice","role":"admin""#), "{body}");
    let (status, _, answer) = http(addr, "POST", "/api/dry-run", &[("Cookie", &cookie), json], dry_run).await;
    assert_eq!(status, 403, "no CSRF header: {answer}");
    let (status, _, answer) = http(
        addr,
        "POST",
        "/api/dry-run",
        &[("Cookie", &cookie), json, ("Sec-Fetch-Site", "same-site"), csrf],
        dry_run,
    )
    .await;
    assert_eq!(status, 403, "another site of the same domain: {answer}");
    let dry = s.client.clone().get_dry_run(pb::GetDryRunRequest {}).await.unwrap().into_inner();
    assert!(!dry.enabled, "nothing refused changed anything");
    let (status, _, answer) = http(addr, "POST", "/api/dry-run", &[("Cookie", &cookie), json, csrf], dry_run).await;
    assert_eq!(status, 200, "{answer}");
    let dry = s.client.clone().get_dry_run(pb::GetDryRunRequest {}).await.unwrap().into_inner();
    assert!(dry.enabled && dry.source == "operator");
    let (status, _, _) = http(addr, "POST", "/api/logout", &[("Cookie", &cookie), csrf], "").await;
    assert_eq!(status, 200);
    let (status, _, _) = http(addr, "GET", "/api/overview", &[("Cookie", &cookie)], "").await;
    assert_eq!(status, 401, "the session ended");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_logs_in_approves_a_pending_action_and_switches_dry_run_from_the_page() {
    let port = hemostat_tests::redis::free_port();
    let tokens = DashboardTokens::parse(&format!("viewer:{VIEWER_TOKEN},alice:admin:{ADMIN_TOKEN}")).unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let s = TestFleet::start_with(
        |c| {
            c.dashboard = Some(DashboardConfig::new(listen, tokens).unwrap());
            c.remediation.approval_ttl = Some(Duration::from_secs(3600));
        },
        |_| {},
    )
    .await;
    let web = s.scope.run("web", &[], &crash_once(1));
    let waiting = rejection(&s.client, &web, "awaiting_approval", DEADLINE).await;

    let browser = Browser::start(&format!("http://localhost:{port}")).await;
    browser.open("/").await;
    browser.click("#login-token").await;
    browser.screenshot("login").await;
    browser.type_into("#login-token", "not-a-token-0123456789").await;
    browser.click("#login-submit").await;
    browser.wait_text("#login-error", "this is not one of the dashboard's tokens").await;

    // A viewer sees the pending action but no button to approve it, nor the dry-run switch.
    browser.type_into("#login-token", VIEWER_TOKEN).await;
    browser.click("#login-submit").await;
    browser.wait_text("[data-card=approvals] .value", "1").await;
    assert_eq!(browser.count("#approvals button.approve, #dry-run-toggle").await.unwrap(), 0);
    browser.click("#logout").await;

    browser.type_into("#login-token", ADMIN_TOKEN).await;
    browser.click("#login-submit").await;
    browser.wait_text("#who", "alice (admin) Log out").await;
    browser.wait_text("[data-card=approvals] .value", "1").await;
    assert_eq!(
        browser.text("#approvals tbody tr").await.map(|_| ()),
        Ok(()),
        "the decision waiting for approval is listed"
    );
    browser.screenshot("approvals").await;
    browser.click(&format!("#approvals tr[data-command='{}'] button.approve", waiting.command_id)).await;
    let events = remediated(&s.client, &web, DEADLINE).await;
    let approval = events
        .iter()
        .find(|e| e.r#type() == pb::EventType::RemediationNeeded && e.analysis_method == "operator")
        .expect("the approval is recorded");
    assert_eq!(approval.command_id, waiting.command_id);
    assert_eq!(approval.decided_by, "operator:dashboard:alice");
    browser.wait_text("[data-card=approvals] .value", "0").await;

    assert_eq!(browser.text("#dry-run-state").await.unwrap(), "dry-run off");
    browser.click("#dry-run-toggle").await;
    browser.wait_text("#dry-run-state", "dry-run on (operator)").await;
    let dry = s.client.clone().get_dry_run(pb::GetDryRunRequest {}).await.unwrap().into_inner();
    assert!(dry.enabled);
    let admin: FleetClient = fleet::operator(&s.pki, OperatorRole::Viewer, s.coordinator.addr()).await;
    let request = pb::ListEventsRequest { types: vec![pb::EventType::OperatorAction as i32], ..Default::default() };
    let operator_events = admin.clone().list_events(request).await.unwrap().into_inner().events;
    assert!(
        operator_events.iter().any(|e| e.reason == "operator:dashboard:alice turned dry-run on"),
        "{operator_events:?}"
    );
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_of_one_coordinator_shows_the_nodes_connected_to_another() {
    use hemostat_coordinator::store::StoreConfig;
    use hemostat_tests::docker::Scope;
    use hemostat_tests::fleet::{TestCoordinator, TestNode};
    use hemostat_tests::redis::RedisServer;

    hemostat_tests::init();
    let (pki, redis) = (hemostat_tests::pki::TestPki::new(), RedisServer::start());
    let config = || fleet::coordinator_config(&pki, StoreConfig::Redis { url: redis.url() });
    let one = TestCoordinator::start(config());
    let addr = dashboard_addr();
    let _two = TestCoordinator::start(CoordinatorConfig {
        dashboard: Some(DashboardConfig::new(addr, DashboardTokens::default()).expect("loopback needs no token")),
        ..config()
    });
    let scope = Scope::new();
    let _node = TestNode::start(fleet::node_config(&pki, "host-a", &one.endpoint(), &scope.selector()));
    let web = scope.run("web", &[], "trap 'exit 0' TERM; sleep 86400 & wait");

    // Coordinator two holds no session, yet its dashboard lists host-a and its container, from the directory.
    let overview = eventually("host-a and its container on coordinator two's dashboard", DEADLINE, || async {
        let (status, _, body) = http(addr, "GET", "/api/overview", &[], "").await;
        let overview: Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}: {body}"))?;
        let connected =
            overview["nodes"].as_array().into_iter().flatten().any(|n| n["name"] == "host-a" && n["connected"] == true);
        let listed = overview["containers"].as_array().into_iter().flatten().any(|c| c["name"] == web.as_str());
        if status == 200 && connected && listed { Ok(overview) } else { Err(body) }
    })
    .await;
    let container = overview["containers"].as_array().unwrap().iter().find(|c| c["name"] == web.as_str()).unwrap();
    assert_eq!((container["node"].as_str(), container["status"].as_str()), (Some("host-a"), Some("running")));
    assert_eq!(container["budget"]["circuit"], "closed", "{container}");

    // Its page too: found through the directory, not this coordinator's registry.
    let (status, _, body) = http(addr, "GET", &format!("/api/containers/host-a/{web}"), &[], "").await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["container"]["name"], web.as_str());
    let (status, _, body) = http(addr, "GET", "/api/containers/host-a/nope", &[], "").await;
    assert_eq!(status, 404, "{body}");
}

/// The real coordinator binary with its dashboard on a free loopback port, the viewer's and alice's (admin)
/// tokens, and `env`; returns once the dashboard answers.
async fn coordinator_binary(
    pki: &hemostat_tests::pki::TestPki,
    env: &[(&str, &str)],
) -> (hemostat_tests::loadgen::CoordinatorProcess, SocketAddr) {
    let dashboard = dashboard_addr();
    let (listen, tokens) = (dashboard.to_string(), format!("viewer:{VIEWER_TOKEN},alice:admin:{ADMIN_TOKEN}"));
    let mut all = vec![("HEMOSTAT_DASHBOARD_LISTEN", listen.as_str()), ("HEMOSTAT_DASHBOARD_TOKENS", tokens.as_str())];
    all.extend_from_slice(env);
    let binary = hemostat_tests::images::ensure_binaries().join("hemostat-coordinator");
    let process = hemostat_tests::loadgen::CoordinatorProcess::start_with(&binary, pki, &all, None).expect("starts");
    eventually("the dashboard answering", DEADLINE, || async {
        tokio::net::TcpStream::connect(dashboard).await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
    (process, dashboard)
}

/// Logs in with `token`; the status, and the `Set-Cookie` line when there is one.
async fn login(addr: SocketAddr, token: &str) -> (u16, String, Option<String>) {
    let body = format!(r#"{{"token":"{token}"}}"#);
    let headers = [("Content-Type", "application/json"), ("X-HemoStat-CSRF", "1")];
    let (status, head, _) = http(addr, "POST", "/api/login", &headers, &body).await;
    let cookie = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).map(str::to_owned);
    (status, head, cookie)
}

/// The `name=value` of a `Set-Cookie` line.
fn cookie_pair(line: &str) -> String {
    line.split_once(':').unwrap().1.trim().split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_logins_are_rate_limited_and_a_flood_of_viewers_never_ends_an_admin_session() {
    hemostat_tests::init();
    let pki = hemostat_tests::pki::TestPki::new();
    let metrics = fleet::free_metrics_addr();
    let metrics_listen = metrics.to_string();
    let (_coordinator, addr) = coordinator_binary(&pki, &[("HEMOSTAT_METRICS_LISTEN", &metrics_listen)]).await;
    let (status, _, cookie) = login(addr, ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    let admin = cookie_pair(&cookie.expect("a session cookie"));

    // 1,000 viewer logins (more than the viewer sessions kept): the admin's session stays.
    let viewers = hemostat_coordinator::dashboard::auth::MAX_VIEWER_SESSIONS;
    for _ in 0..viewers {
        let (status, _, _) = login(addr, VIEWER_TOKEN).await;
        assert_eq!(status, 200, "successful logins are not limited");
    }
    let (status, _, body) = http(addr, "GET", "/api/session", &[("Cookie", &admin)], "").await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""authenticated":true,"login_required":true,"name":"alice","role":"admin""#), "{body}");
    let (status, _, _) = http(addr, "GET", "/api/overview", &[("Cookie", &admin)], "").await;
    assert_eq!(status, 200, "the admin's cookie still works after {viewers} viewer logins");

    // Failed logins from one address: refused, then answered 429 with Retry-After, even for a right token.
    let limit = hemostat_coordinator::dashboard::auth::FAILED_LOGINS_PER_ADDRESS;
    for _ in 0..limit {
        let (status, _, _) = login(addr, "wrong-token-0123456789").await;
        assert_eq!(status, 401);
    }
    for token in ["wrong-token-0123456789", ADMIN_TOKEN] {
        let (status, head, _) = login(addr, token).await;
        assert_eq!(status, 429, "{head}");
        let retry = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after:").map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("a Retry-After header: {head}"));
        let seconds: u64 = retry.parse().expect("Retry-After in seconds");
        assert!((1..=60).contains(&seconds), "{seconds}");
    }
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let (status, _, _) = http(addr, "GET", "/api/overview", &[("Authorization", &bearer)], "").await;
    assert_eq!(status, 429, "guessing bearer tokens is limited the same way");
    let (status, _, _) = http(addr, "GET", "/api/overview", &[("Cookie", &admin)], "").await;
    assert_eq!(status, 200, "an existing session is not limited");
    let text = fleet::scrape(metrics).await.unwrap();
    let logins = |result: &str| {
        fleet::metric(&text, &format!("hemostat_dashboard_logins_total{{result=\"{result}\"}}")).unwrap_or(0.0)
    };
    assert_eq!(logins("ok"), (viewers + 1) as f64, "{text}");
    assert_eq!(logins("refused"), f64::from(limit), "{text}");
    assert_eq!(logins("limited"), 2.0, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_session_cookies_are_secure_behind_a_tls_proxy_only() {
    hemostat_tests::init();
    let pki = hemostat_tests::pki::TestPki::new();
    for (env, secure) in [(vec![], false), (vec![("HEMOSTAT_DASHBOARD_SECURE_COOKIE", "true")], true)] {
        let (_coordinator, addr) = coordinator_binary(&pki, &env).await;
        let (status, _, cookie) = login(addr, ADMIN_TOKEN).await;
        assert_eq!(status, 200);
        let cookie = cookie.expect("a session cookie");
        let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
        assert_eq!(attributes.contains(&"Secure"), secure, "{env:?}: {cookie}");
        assert!(attributes.contains(&"HttpOnly") && attributes.contains(&"SameSite=Strict"), "{cookie}");
        let pair = cookie_pair(&cookie);
        let (status, head, _) =
            http(addr, "POST", "/api/logout", &[("Cookie", &pair), ("X-HemoStat-CSRF", "1")], "").await;
        assert_eq!(status, 200);
        let ended = head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a cookie");
        assert_eq!(ended.contains("; Secure"), secure, "{ended}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_overview_of_a_large_fleet_lists_a_bounded_page_with_the_containers_not_running_first() {
    use hemostat_coordinator::dashboard::OVERVIEW_CONTAINERS;
    use hemostat_coordinator::store::StoreConfig;
    use hemostat_tests::fleet::TestCoordinator;
    use hemostat_tests::node_peer::{NodePeer, container};
    use pb::session_request::Body;

    hemostat_tests::init();
    let pki = hemostat_tests::pki::TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let addr = dashboard_addr();
    let coordinator = TestCoordinator::start(CoordinatorConfig {
        dashboard: Some(DashboardConfig::new(addr, DashboardTokens::default()).expect("loopback needs no token")),
        ..fleet::coordinator_config(&pki, StoreConfig::Embedded { path: dir.path().join("state.redb") })
    });
    let mut peer = NodePeer::connect(&coordinator.endpoint(), &pki.node("big"), "big", "s1").await.unwrap();
    // 1,200 containers in parts of 400; three of them (late in name order) exited.
    let exited = ["app-01190", "app-00950", "app-00700"];
    for part in 0..3u32 {
        let containers = (part * 400..(part + 1) * 400)
            .map(|i| {
                let name = format!("app-{i:05}");
                let mut state = container(&format!("{i:064x}"), &name, &[]);
                if exited.contains(&name.as_str()) {
                    state.status = pb::ContainerStatus::Exited as i32;
                }
                state
            })
            .collect();
        let snapshot = pb::ContainerSnapshot { containers, part, more: part < 2 };
        peer.send_acked(Body::Snapshot(snapshot), Duration::from_secs(30)).await.unwrap();
    }
    let overview = eventually("the overview of 1,200 containers", DEADLINE, || async {
        let (status, _, body) = http(addr, "GET", "/api/overview", &[], "").await;
        let overview: Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}: {body:.200}"))?;
        if overview["containers_total"] == 1_200 { Ok(overview) } else { Err(format!("{:.300}", body)) }
    })
    .await;
    let listed = overview["containers"].as_array().unwrap();
    assert_eq!(listed.len(), OVERVIEW_CONTAINERS, "a bounded page");
    let names: Vec<&str> = listed.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names[..3], ["app-00700", "app-00950", "app-01190"], "the ones not running first, by name");
    assert_eq!(names[3], "app-00000", "then the rest by name");
    assert_eq!(overview["anomalies_total"], 0);
}
