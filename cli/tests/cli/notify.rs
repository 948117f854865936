//! `hemostat notify test` through the binary, against a real `hemostat standalone` configured (through the
//! environment, as an operator would) with a webhook that takes notifications and a Discord webhook that
//! answers 404 (a deleted webhook).

use std::time::Duration;

use hemostat_tests::docker::Scope;
use hemostat_tests::eventually;
use hemostat_tests::webhook::{Answer, WebhookServer};
use serde_json::Value;

use crate::standalone::Standalone;

#[tokio::test(flavor = "multi_thread")]
async fn notify_test_sends_through_each_sink_and_prints_what_each_answered() {
    let (hook, discord) = (WebhookServer::start().await, WebhookServer::start().await);
    discord.fail_next([Answer::Status(404), Answer::Status(404)]);
    let scope = Scope::new();
    let (hook_url, discord_url) = (hook.url(), discord.url());
    let standalone =
        Standalone::start_with(&scope, &[("ALERT_WEBHOOK_URL", &hook_url), ("DISCORD_WEBHOOK_URL", &discord_url)]);
    let out = eventually("the coordinator answering", Duration::from_secs(30), || async {
        let out = standalone.cli(&["notify", "test", "-o", "json"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if stderr.contains("did not take") { Ok(out) } else { Err(stderr) }
    })
    .await;
    assert_eq!(out.status.code(), Some(1), "a sink failed: exit 1");
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results[0]["sink"], "webhook");
    assert_eq!((results[0]["delivered"].as_bool(), results[0]["answer"].as_str()), (Some(true), Some("HTTP 200: ok")));
    assert_eq!(results[1]["sink"], "discord");
    assert_eq!(results[1]["delivered"], false);
    assert!(results[1]["answer"].as_str().unwrap().contains("HTTP 404"), "{results:#}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim(), "hemostat: 1 of 2 sinks did not take the test notification");

    // The webhook got the test, in HemoStat's format, from the admin who asked.
    let test = &hook.delivered()[0];
    assert_eq!((test["type"].as_str(), test["test"].as_bool()), (Some("operator_action"), Some(true)));
    assert!(test["reason"].as_str().unwrap().contains("hemostat notify test"), "{test}");

    let table = standalone.cli(&["notify", "test", "--sink", "webhook"]);
    assert!(table.status.success(), "{table:?}");
    let text = String::from_utf8_lossy(&table.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["SINK", "RESULT", "ANSWER"]);
    assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), ["webhook", "delivered", "HTTP", "200:", "ok"]);
    assert_eq!(hook.delivered().len(), 2);

    let unknown = standalone.cli(&["notify", "test", "--sink", "pager"]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(!unknown.status.success());
    assert!(stderr.contains("no sink \"pager\" is configured; configured: webhook, discord"), "{stderr}");
}
