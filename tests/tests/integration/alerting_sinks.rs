//! The notification sinks end to end: a real coordinator and node healing real containers (a restart that
//! fails, then one that holds), with local servers speaking Discord's, Teams', ntfy's, Gotify's and
//! Alertmanager's webhook formats (Discord's and Teams' refusing what those services refuse), a real SMTP
//! dialogue with STARTTLS and authentication, and per-sink filters.

use std::time::Duration;

use hemostat_coordinator::CoordinatorConfig;
use hemostat_coordinator::alerting::filter::SinkFilter;
use hemostat_coordinator::alerting::links::Links;
use hemostat_coordinator::alerting::notification::Severity;
use hemostat_coordinator::alerting::sinks::email::EmailConfig;
use hemostat_coordinator::alerting::sinks::webhook::WebhookFormat;
use hemostat_proto::v1 as pb;
use hemostat_tests::chat_formats::{discord_problems, teams_problems};
use hemostat_tests::docker::{crash_once, fails_one_restart};
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, events_of};
use hemostat_tests::pki::TestPki;
use hemostat_tests::smtp::SmtpServer;
use hemostat_tests::webhook::{Answer, Received, WebhookServer};
use serde_json::{Value, json};

const DASHBOARD: &str = "https://hemostat.example.com";
const ARCANE: &str = "https://arcane.example.com/containers/{id}";
/// The Compose labels the test containers carry.
const COMPOSE: [&str; 4] = ["--label", "com.docker.compose.project=shop", "--label", "com.docker.compose.service=web"];

/// A fleet whose restarts are never held by a cooldown, after `adjust`.
async fn fleet(adjust: impl FnOnce(&mut CoordinatorConfig) + Send + 'static) -> TestFleet {
    TestFleet::start_with(
        move |config| {
            config.remediation.budget.cooldown = Duration::ZERO;
            config.alerting.links = Links::new(Some(DASHBOARD.into()), Some(ARCANE.into()));
            adjust(config);
        },
        |_| {},
    )
    .await
}

/// Waits until `server` has taken at least `count` requests and returns them all.
async fn taken(server: &WebhookServer, what: &str, count: usize) -> Vec<Received> {
    eventually(what, Duration::from_secs(40), || async {
        let requests = server.requests();
        let ok = requests.iter().filter(|r| r.status == 200).count();
        if ok >= count { Ok(requests) } else { Err(format!("{requests:#?}")) }
    })
    .await
}

/// Waits until the container's remediations have both outcomes, failed then success.
async fn failed_then_fixed(fleet: &TestFleet, name: &str) {
    eventually(&format!("{name} failed once, then fixed"), Duration::from_secs(40), || async {
        let events = events_of(&fleet.client, name).await?;
        let outcomes: Vec<pb::Outcome> =
            events.iter().filter(|e| e.r#type() == pb::EventType::RemediationComplete).map(|e| e.outcome()).collect();
        if outcomes == [pb::Outcome::Failed, pb::Outcome::Success] { Ok(()) } else { Err(format!("{outcomes:?}")) }
    })
    .await;
}

/// Discord's and Teams' Markdown escapes removed, to compare with plain names.
fn unescaped(text: &str) -> String {
    text.replace('\\', "")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_then_fixed_restart_reaches_discord_teams_ntfy_gotify_and_an_alertmanager_webhook() {
    let discord = WebhookServer::start_checking(discord_problems).await;
    let teams = WebhookServer::start_checking(teams_problems).await;
    let (ntfy, gotify, hook) =
        (WebhookServer::start().await, WebhookServer::start().await, WebhookServer::start().await);
    // Discord rate-limits the first message (its body says 0.3 s, its header 3 s); Teams fails once.
    let limited = json!({"message": "You are being rate limited.", "retry_after": 0.3, "global": false});
    discord.fail_next([Answer::Json { status: 429, body: limited, headers: vec![("retry-after", "3".into())] }]);
    teams.fail_next([Answer::Status(502)]);
    let urls = (discord.url(), teams.url(), ntfy.url_for("/hemostat-alerts"), gotify.url_for(""), hook.url());
    let fleet = fleet(move |config| {
        config.alerting.discord_webhook_url = Some(urls.0);
        config.alerting.teams_webhook_url = Some(urls.1);
        config.alerting.ntfy_url = Some(urls.2);
        config.alerting.gotify_url = Some(urls.3);
        config.alerting.gotify_token = Some("AppToken".into());
        config.alerting.webhook_url = Some(urls.4);
        config.alerting.webhook_format = WebhookFormat::Alertmanager;
    })
    .await;
    let web = fleet.scope.run("web", &COMPOSE, &fails_one_restart());
    let id = fleet.scope.docker(&["inspect", "-f", "{{.Id}}", &web]).trim().to_owned();
    failed_then_fixed(&fleet, &web).await;
    let docker_ui = ARCANE.replace("{id}", &id);

    // Discord: the 429 waited what its body said, not its header; every body within Discord's limits.
    let requests = taken(&discord, "Discord's two messages", 2).await;
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses[..2], [429, 200], "{requests:#?}");
    let wait = requests[1].at.duration_since(requests[0].at);
    assert!(wait >= Duration::from_millis(300) && wait < Duration::from_millis(2500), "waited {wait:?}");
    assert!(statuses.iter().all(|s| *s != 400), "Discord would have refused one: {requests:#?}");
    let embeds: Vec<Value> = requests.iter().filter(|r| r.status == 200).map(|r| r.body["embeds"][0].clone()).collect();
    let failed =
        embeds.iter().find(|e| unescaped(e["title"].as_str().unwrap()).ends_with("FAILED")).expect("the failure");
    assert_eq!(unescaped(failed["title"].as_str().unwrap()), format!("Restart of {web} on host-a FAILED"));
    assert_eq!(failed["color"], 0xff0000, "red, as Slack's");
    assert!(failed["url"].as_str().unwrap().starts_with(&format!("{DASHBOARD}/#/timeline?type=remediation_complete")));
    let field = |name: &str| {
        failed["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| unescaped(f["value"].as_str().unwrap()))
    };
    assert_eq!(field("Host").as_deref(), Some("host-a"));
    assert_eq!((field("Compose project").as_deref(), field("Compose service").as_deref()), (Some("shop"), Some("web")));
    assert_eq!(field("Docker UI"), Some(format!("[Open the container]({docker_ui})")));
    assert_eq!(requests[1].body["allowed_mentions"], json!({"parse": []}));

    // Teams: retried after its 502; an Adaptive Card naming the host and Compose service, with buttons.
    let requests = taken(&teams, "Teams' two cards", 2).await;
    assert_eq!(requests[0].status, 502);
    let card = &requests[1].body["attachments"][0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    let facts = card["body"][0]["items"][2]["facts"].to_string();
    assert!(facts.contains("host\\\\-a") && facts.contains("\"shop\""), "{facts}");
    let buttons: Vec<&str> = card["actions"].as_array().unwrap().iter().map(|a| a["url"].as_str().unwrap()).collect();
    assert_eq!(buttons.len(), 2);
    assert_eq!(buttons[1], docker_ui);

    // ntfy: plain text to the topic, the title RFC 2047-encoded, priority and tags by seriousness.
    let requests = taken(&ntfy, "ntfy's two messages", 2).await;
    let failure = requests.iter().find(|r| r.header("x-priority") == Some("4")).expect("the failure, priority 4");
    assert_eq!(failure.path, "/hemostat-alerts");
    let title = failure.header("x-title").unwrap();
    assert!(title.starts_with("=?UTF-8?B?") && title.ends_with("?="), "{title}");
    assert_eq!(failure.header("x-tags"), Some("rotating_light,hemostat"));
    assert_eq!(failure.header("x-actions"), Some(format!("view, Open the container, {docker_ui}").as_str()));
    assert!(failure.header("x-click").unwrap().starts_with(DASHBOARD));
    let text = failure.body.as_str().unwrap();
    assert!(text.contains("Host: host-a") && text.contains("Compose project: shop"), "{text}");

    // Gotify: its /message API with the application token, as plain text.
    let requests = taken(&gotify, "Gotify's two messages", 2).await;
    assert!(requests.iter().all(|r| r.path == "/message" && r.header("x-gotify-key") == Some("AppToken")));
    let priorities: Vec<&Value> = requests.iter().map(|r| &r.body["priority"]).collect();
    assert_eq!(priorities, [&json!(8), &json!(2)], "the failure loud, the fix quiet");
    assert_eq!(requests[0].body["extras"]["client::display"]["contentType"], "text/plain");

    // The webhook in Alertmanager's format: the failure fired, the fix resolved it.
    let payloads = taken(&hook, "the alert firing then resolved", 2).await;
    let statuses: Vec<&str> = payloads.iter().map(|p| p.body["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["firing", "resolved"]);
    let (fired, resolved) = (&payloads[0].body["alerts"][0], &payloads[1].body["alerts"][0]);
    assert_eq!(fired["labels"]["alertname"], "HemoStatRemediationFailed");
    assert_eq!(
        (fired["labels"]["node"].as_str(), fired["labels"]["container"].as_str()),
        (Some("host-a"), Some(web.as_str()))
    );
    assert_eq!(
        (fired["labels"]["compose_project"].as_str(), fired["labels"]["compose_service"].as_str()),
        (Some("shop"), Some("web"))
    );
    assert_eq!(fired["fingerprint"], resolved["fingerprint"]);
    assert_eq!(payloads[0].body["version"], "4");
    assert_eq!(payloads[0].body["externalURL"], format!("{DASHBOARD}/"));
}

#[tokio::test(flavor = "multi_thread")]
async fn email_goes_over_starttls_authenticated_and_a_temporary_refusal_is_retried() {
    let smtp_pki = TestPki::new();
    let smtp = SmtpServer::start(Some(&smtp_pki.coordinator()), Some(("alerts", "s3cr3t"))).await;
    smtp.fail_next([451]);
    let url = format!("smtp://alerts:s3cr3t@localhost:{}", smtp.port());
    let email = EmailConfig::parse(&url, "ops@example.com", None, Some(smtp_pki.dir().join("ca.pem"))).unwrap();
    let fleet = fleet(move |config| config.alerting.email = Some(email)).await;
    let web = fleet.scope.run("web", &COMPOSE, &crash_once(1));
    let mails = eventually("the email, after one 451", Duration::from_secs(40), || async {
        let mails = smtp.mails();
        if mails.iter().any(|m| m.status == 250) { Ok(mails) } else { Err(format!("{mails:#?}")) }
    })
    .await;
    assert_eq!(mails.iter().map(|m| m.status).collect::<Vec<_>>(), [451, 250], "retried once");
    let mail = &mails[1];
    assert!(mail.tls, "sent only after STARTTLS");
    assert_eq!(mail.user.as_deref(), Some("alerts"));
    assert_eq!(mail.to, ["<ops@example.com>"]);
    let data = mail.data.replace("\r\n ", " ");
    assert!(data.contains(&format!("Subject: [HemoStat] Restart of {web} on host-a succeeded")), "{data}");
    for line in [
        "Host: host-a",
        "Compose project: shop",
        "Compose service: web",
        "Dashboard: https://hemostat.example.com/#/timeline",
    ] {
        assert!(data.contains(line), "{line} in {data}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_takes_only_what_its_filter_admits() {
    let (ntfy, gotify) = (WebhookServer::start().await, WebhookServer::start().await);
    let urls = (ntfy.url_for("/only-critical"), gotify.url_for(""));
    let fleet = fleet(move |config| {
        config.alerting.ntfy_url = Some(urls.0);
        config.alerting.gotify_url = Some(urls.1);
        config.alerting.gotify_token = Some("AppToken".into());
        let critical = SinkFilter { min_severity: Some(Severity::Critical), ..SinkFilter::default() };
        config.alerting.filters.insert("ntfy".into(), critical);
    })
    .await;
    let web = fleet.scope.run("web", &[], &fails_one_restart());
    failed_then_fixed(&fleet, &web).await;
    let all = taken(&gotify, "both on Gotify", 2).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    // Then another container fails: once ntfy has that, it would have had web's fix before it (each sink's
    // queue keeps the order of events), had its filter let the fix through.
    let later = fleet.scope.run("later", &[], "sleep 0.5; exit 1");
    let taken_by_ntfy = eventually("later's failure on ntfy", Duration::from_secs(40), || async {
        let requests = ntfy.requests();
        let about_later = requests.iter().any(|r| r.body.as_str().is_some_and(|text| text.contains(&later)));
        if about_later { Ok(requests) } else { Err(format!("{requests:#?}")) }
    })
    .await;
    let priorities: Vec<Option<&str>> = taken_by_ntfy.iter().map(|r| r.header("x-priority")).collect();
    assert!(priorities.iter().all(|p| matches!(p, Some("4" | "5"))), "only critical ones: {taken_by_ntfy:#?}");
    assert!(taken_by_ntfy[0].body.as_str().unwrap().contains(&web), "web's failure came first");
}
