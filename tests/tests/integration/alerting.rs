//! Notifications end to end: a real coordinator and node healing real containers, with a local Slack
//! incoming webhook and a generic JSON webhook (tests/src/webhook.rs) that check what arrives.

use std::collections::BTreeSet;
use std::time::Duration;

use hemostat_coordinator::CoordinatorConfig;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::docker::crash_once;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, events_of, operator, rejection, remediated};
use hemostat_tests::webhook::{Answer, WebhookServer};
use serde_json::Value;

/// A fleet whose coordinator notifies `slack` and `hook`, after `adjust`.
async fn notifying_fleet(
    slack: &WebhookServer,
    hook: &WebhookServer,
    adjust: impl FnOnce(&mut CoordinatorConfig),
) -> TestFleet {
    let (slack_url, hook_url) = (slack.url(), hook.url());
    TestFleet::start_with(
        move |config| {
            config.alerting.slack_webhook_url = Some(slack_url);
            config.alerting.webhook_url = Some(hook_url);
            adjust(config);
        },
        |_| {},
    )
    .await
}

/// A Slack message's field, by title.
fn field(message: &Value, title: &str) -> Option<String> {
    message["attachments"][0]["fields"]
        .as_array()?
        .iter()
        .find(|f| f["title"] == title)
        .and_then(|f| f["value"].as_str())
        .map(str::to_owned)
}

/// The Slack messages delivered about the container `name`.
fn slack_about(slack: &WebhookServer, name: &str) -> Vec<Value> {
    slack.delivered().into_iter().filter(|m| field(m, "Container").as_deref() == Some(name)).collect()
}

/// What Slack showed, one line per notification: a single message's title, or each line of a burst.
fn slack_lines(slack: &WebhookServer) -> Vec<String> {
    let mut lines = Vec::new();
    for message in slack.delivered() {
        let attachment = &message["attachments"][0];
        let title = attachment["title"].as_str().unwrap_or_default();
        if title.ends_with("notifications at once") {
            // "• <time>  <headline> — <reason>"
            for line in attachment["text"].as_str().unwrap_or_default().lines() {
                let headline = line.split("  ").nth(1).and_then(|rest| rest.split(" — ").next());
                lines.push(headline.unwrap_or(line).to_owned());
            }
        } else {
            lines.push(title.to_owned());
        }
    }
    lines
}

/// The event id a single Slack message carries (its "Event" field: `<type> <id>`).
fn slack_event_id(message: &Value) -> String {
    field(message, "Event").and_then(|e| e.split_whitespace().nth(1).map(str::to_owned)).unwrap_or_default()
}

/// Waits until `server` has delivered at least `count` messages and returns them.
async fn delivered(server: &WebhookServer, what: &str, count: usize, deadline: Duration) -> Vec<Value> {
    eventually(what, deadline, || async {
        let delivered = server.delivered();
        if delivered.len() >= count { Ok(delivered) } else { Err(format!("{delivered:?}")) }
    })
    .await
}

/// The ids of the container's events of this type in the event log.
async fn logged_ids(fleet: &TestFleet, name: &str, kind: pb::EventType) -> Vec<String> {
    events_of(&fleet.client, name).await.unwrap().into_iter().filter(|e| e.r#type() == kind).map(|e| e.id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_containers_crashing_together_give_two_slack_notifications_and_two_webhook_posts() {
    let (slack, hook) = (WebhookServer::start().await, WebhookServer::start().await);
    let fleet = notifying_fleet(&slack, &hook, |_| {}).await;
    let web = fleet.scope.run("web", &[], &crash_once(1));
    let db = fleet.scope.run("db", &[], &crash_once(1));
    remediated(&fleet.client, &web, Duration::from_secs(20)).await;
    remediated(&fleet.client, &db, Duration::from_secs(20)).await;

    let messages = delivered(&slack, "two Slack notifications", 2, Duration::from_secs(20)).await;
    assert_eq!(messages.len(), 2, "one message each, not one for both: {messages:#?}");
    for name in [&web, &db] {
        let about = slack_about(&slack, name);
        assert_eq!(about.len(), 1, "{name}: {messages:#?}");
        let message = &about[0];
        let attachment = &message["attachments"][0];
        assert_eq!(attachment["color"], "#36a64f", "green: restarted and verified");
        assert_eq!(attachment["title"], format!("Restart of {name} on host-a succeeded"));
        assert_eq!(field(message, "Node").as_deref(), Some("host-a"));
        assert_eq!(field(message, "Action").as_deref(), Some("restart"));
        assert_eq!(field(message, "Result").as_deref(), Some("success"));
        assert_eq!(field(message, "Method").as_deref(), Some("rules (non_zero_exit)"), "{message:#}");
        assert_eq!(field(message, "Dry run").as_deref(), Some("no"));
        let time = field(message, "Time (UTC)").unwrap();
        assert!(humantime::parse_rfc3339(&time).is_ok() && time.ends_with('Z'), "{time}");
        let logged = logged_ids(&fleet, name, pb::EventType::RemediationComplete).await;
        assert_eq!(vec![slack_event_id(message)], logged, "the message names the stored event");
    }
    assert!(slack.requests().iter().all(|r| r.content_type == "application/json"));

    // The generic webhook gets the same events, one POST each.
    let posts = delivered(&hook, "two webhook posts", 2, Duration::from_secs(10)).await;
    assert_eq!(posts.len(), 2, "{posts:#?}");
    let names: BTreeSet<&str> = posts.iter().map(|p| p["container_name"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from([web.as_str(), db.as_str()]));
    for post in &posts {
        assert_eq!((post["type"].as_str(), post["outcome"].as_str()), (Some("remediation_complete"), Some("success")));
        assert_eq!((post["node"].as_str(), post["action"].as_str()), (Some("host-a"), Some("restart")));
        assert_eq!(post["analysis_method"], "rules");
        assert!(post["confidence"].as_f64().is_some_and(|c| c > 0.0), "{post}");
        let name = post["container_name"].as_str().unwrap();
        assert_eq!(
            vec![post["id"].as_str().unwrap().to_owned()],
            logged_ids(&fleet, name, pb::EventType::RemediationComplete).await
        );
    }
    let slack_ids: BTreeSet<String> = messages.iter().map(slack_event_id).collect();
    let hook_ids: BTreeSet<String> = posts.iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(slack_ids, hook_ids, "both sinks got the same events");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_failing_again_inside_the_dedupe_window_is_notified_once_and_its_exhausted_budget_always() {
    let (slack, hook) = (WebhookServer::start().await, WebhookServer::start().await);
    // A short cooldown: the loop is restarted three times (the hourly budget) within seconds, then the
    // circuit breaker opens.
    let fleet = notifying_fleet(&slack, &hook, |config| {
        config.remediation.budget.cooldown = Duration::from_secs(1);
    })
    .await;
    // Crashes 1.5 s after every start: each restart passes the 1 s verification, then it crashes again.
    let looping = fleet.scope.run("loop", &[], "sleep 1.5; exit 1");

    // The breaker opens after the third restart, and that is notified; Slack's queue is in order, so what
    // was notified before it has arrived by then.
    let open = rejection(&fleet.client, &looping, "circuit_open", Duration::from_secs(40)).await;
    let exhausted = format!("Restart of {looping} on host-a not done: budget exhausted (circuit open)");
    eventually("the circuit_open notification", Duration::from_secs(20), || async {
        let lines = slack_lines(&slack);
        if lines.contains(&exhausted) { Ok(()) } else { Err(format!("{lines:#?}")) }
    })
    .await;
    let restarts = logged_ids(&fleet, &looping, pb::EventType::RemediationComplete).await;
    assert_eq!(restarts.len(), 3, "three restarts were recorded: {restarts:?}");

    let lines = slack_lines(&slack);
    let succeeded = format!("Restart of {looping} on host-a succeeded");
    assert_eq!(
        lines.iter().filter(|l| **l == succeeded).count(),
        1,
        "three successes within the dedupe TTL are notified once: {lines:#?}"
    );
    assert_eq!(lines.iter().filter(|l| **l == exhausted).count(), 1, "{lines:#?}");
    let about = slack_about(&slack, &looping);
    let ids: Vec<String> = about.iter().map(slack_event_id).collect();
    assert_eq!(ids.first(), restarts.first(), "the first success is the one notified");
    assert_eq!(ids.last(), Some(&open.id), "the exhausted budget is notified with its event");
    assert_eq!(about.last().unwrap()["attachments"][0]["color"], "#ff9900");

    // The webhook got the same events.
    let slack_ids = ids;
    let hook_ids = eventually("the same events on the webhook", Duration::from_secs(10), || async {
        let ids: Vec<String> = hook
            .delivered()
            .iter()
            .filter(|p| p["container_name"] == looping.as_str())
            .map(|p| p["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        if ids.len() >= slack_ids.len() { Ok(ids) } else { Err(format!("{ids:?}")) }
    })
    .await;
    assert_eq!(hook_ids, slack_ids);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_slack_delays_its_notifications_but_loses_none_and_never_stalls_remediation() {
    let (slack, hook) = (WebhookServer::start().await, WebhookServer::start().await);
    slack.fail_next([Answer::Status(500), Answer::Status(500), Answer::TooManyRequests { retry_after_secs: 1 }]);
    let fleet = notifying_fleet(&slack, &hook, |_| {}).await;
    let web = fleet.scope.run("web", &[], &crash_once(1));
    // db crashes a second later than web, while Slack is still refusing web's notification.
    let db = fleet.scope.run(
        "db",
        &[],
        "if [ -f /tmp/ran ]; then trap 'exit 0' TERM; sleep 86400 & wait; fi; touch /tmp/ran; sleep 2; exit 1",
    );
    remediated(&fleet.client, &web, Duration::from_secs(20)).await;
    remediated(&fleet.client, &db, Duration::from_secs(20)).await;
    // Slack takes web's notification at the earliest a group window (2 s) and three retries (1 s, 2 s, then
    // the 429's 1 s) after it was recorded, 6 s; db, a second behind web, was healed meanwhile.
    assert!(slack.delivered().is_empty(), "db was healed while Slack still failed: {:#?}", slack.requests());
    for name in [&web, &db] {
        assert_eq!(fleet.scope.state(name).status, "running", "{name} was restarted");
    }

    let messages = delivered(&slack, "both Slack notifications", 2, Duration::from_secs(30)).await;
    assert_eq!(slack_about(&slack, &web).len(), 1, "{messages:#?}");
    assert_eq!(slack_about(&slack, &db).len(), 1, "{messages:#?}");
    let requests = slack.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 429, 200, 200], "retried until delivered, nothing lost");
    let after_429 = requests[3].at.duration_since(requests[2].at);
    assert!(
        after_429 >= Duration::from_secs(1) && after_429 < Duration::from_secs(4),
        "waited the Retry-After (1 s), not the next backoff (4 s): {after_429:?}"
    );
    let before_500 = requests[1].at.duration_since(requests[0].at);
    assert!(before_500 >= Duration::from_secs(1), "backed off after the 500: {before_500:?}");

    // The webhook was not held back by Slack: it had both events before Slack took the first.
    let hooked = hook.requests();
    let names: BTreeSet<&str> = hooked.iter().filter_map(|r| r.body["container_name"].as_str()).collect();
    assert_eq!(names, BTreeSet::from([web.as_str(), db.as_str()]));
    assert!(hooked.iter().all(|r| r.at < requests[3].at && r.status == 200), "{hooked:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_about_a_silenced_container_is_notified() {
    let (slack, hook) = (WebhookServer::start().await, WebhookServer::start().await);
    let fleet = notifying_fleet(&slack, &hook, |_| {}).await;
    let mut admin = operator(&fleet.pki, OperatorRole::Admin, fleet.coordinator.addr()).await;
    let silence = pb::CreateSilenceRequest {
        node: "host-a".into(),
        container: fleet.scope.name("quiet"),
        duration_seconds: 3600,
        reason: "maintenance".into(),
    };
    admin.create_silence(silence).await.expect("silence created");
    let quiet = fleet.scope.run("quiet", &[], &crash_once(1));
    rejection(&fleet.client, &quiet, "silenced", Duration::from_secs(20)).await;
    // A crash elsewhere after it: once its notifications are in, anything about the silenced one would be too.
    let loud = fleet.scope.run("loud", &[], &crash_once(1));
    remediated(&fleet.client, &loud, Duration::from_secs(20)).await;
    eventually("loud's notifications", Duration::from_secs(20), || async {
        let (on_slack, on_hook) = (slack_about(&slack, &loud).len(), hook.delivered().len());
        if on_slack == 1 && on_hook >= 1 { Ok(()) } else { Err(format!("{on_slack} on Slack, {on_hook} posts")) }
    })
    .await;
    let quiet_mentions = |messages: Vec<Value>| messages.into_iter().filter(|m| m.to_string().contains(&quiet)).count();
    assert_eq!(quiet_mentions(slack.delivered()), 0, "{:#?}", slack.delivered());
    assert_eq!(quiet_mentions(hook.delivered()), 0, "{:#?}", hook.delivered());
    assert_eq!(fleet.scope.state(&quiet).status, "exited", "and it was not acted on");
}
