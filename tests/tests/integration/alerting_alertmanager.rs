//! HemoStat's alerts in a real Alertmanager (Debian's `prometheus-alertmanager`), read back through its own
//! API and through the notifications it sends on: a failed restart fires `HemoStatRemediationFailed` and
//! stays firing while the container is down (held back by its cooldown), and an admin's successful restart
//! resolves it; a decision awaiting approval fires `HemoStatApprovalPending` until an admin approves it; a
//! lost node fires `HemoStatNodeLost`, stays firing (re-sent) while it is lost, and resolves when it is back.
//! HemoStat's own webhook in Alertmanager's format is compared with the payload Alertmanager sends.

use std::collections::BTreeMap;
use std::time::Duration;

use hemostat_coordinator::CoordinatorConfig;
use hemostat_coordinator::alerting::alerts::fingerprint;
use hemostat_coordinator::alerting::links::Links;
use hemostat_coordinator::alerting::sinks::webhook::WebhookFormat;
use hemostat_node::NodeConfig;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::alertmanager::Alertmanager;
use hemostat_tests::docker::crash_once;
use hemostat_tests::docker::fails_one_restart;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, TestNode, operator, rejection};
use hemostat_tests::webhook::WebhookServer;
use serde_json::Value;

const DASHBOARD: &str = "https://hemostat.example.com";

/// A fleet pushing to `alertmanager`, re-sending every second (so an alert is valid four seconds), and
/// posting Alertmanager's webhook payload to `hook` too.
async fn fleet(alertmanager: &Alertmanager, hook: &WebhookServer, node: impl FnOnce(&mut NodeConfig)) -> TestFleet {
    fleet_with(alertmanager, hook, |_| {}, node).await
}

/// [`fleet`], after `adjust`.
async fn fleet_with(
    alertmanager: &Alertmanager,
    hook: &WebhookServer,
    adjust: impl FnOnce(&mut CoordinatorConfig) + Send + 'static,
    node: impl FnOnce(&mut NodeConfig),
) -> TestFleet {
    let (url, hook_url) = (alertmanager.url().to_owned(), hook.url());
    TestFleet::start_with(
        move |config| {
            adjust(config);
            config.alerting.webhook_url = Some(hook_url);
            config.alerting.webhook_format = WebhookFormat::Alertmanager;
            config.node_lost_after = Duration::from_secs(2);
            config.alerting.alertmanager_urls = vec![url];
            config.alerting.alertmanager_resend = Duration::from_secs(1);
            config.alerting.links = Links::new(Some(DASHBOARD.into()), None);
        },
        node,
    )
    .await
}

/// The alerts Alertmanager holds named `name`.
async fn held(alertmanager: &Alertmanager, name: &str) -> Result<Vec<Value>, String> {
    Ok(alertmanager.alerts().await?.into_iter().filter(|a| a["labels"]["alertname"] == name).collect())
}

/// The notifications Alertmanager sent on about `name`, as (status, alert) pairs.
fn sent_on(receiver: &WebhookServer, name: &str) -> Vec<(String, Value)> {
    receiver
        .delivered()
        .iter()
        .flat_map(|payload| payload["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|alert| alert["labels"]["alertname"] == name)
        .map(|alert| (alert["status"].as_str().unwrap_or_default().to_owned(), alert))
        .collect()
}

fn labels(alert: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(alert["labels"].clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_restart_fires_in_alertmanager_until_an_admins_restart_holds() {
    let (receiver, hook) = (WebhookServer::start().await, WebhookServer::start().await);
    let alertmanager = Alertmanager::start(&receiver.url()).await;
    let fleet = fleet(&alertmanager, &hook, |_| {}).await;
    let web = fleet.scope.run(
        "web",
        &["--label", "com.docker.compose.project=shop", "--label", "com.docker.compose.service=web"],
        &fails_one_restart(),
    );

    // Alertmanager sent the firing alert on, with HemoStat's labels and links.
    let fired = eventually("HemoStatRemediationFailed sent on by Alertmanager", Duration::from_secs(40), || async {
        let sent = sent_on(&receiver, "HemoStatRemediationFailed");
        sent.into_iter()
            .find(|(status, _)| status == "firing")
            .map(|(_, a)| a)
            .ok_or_else(|| format!("{:#?}", receiver.delivered()))
    })
    .await;
    let expected: BTreeMap<String, String> = [
        ("alertname", "HemoStatRemediationFailed"),
        ("compose_project", "shop"),
        ("compose_service", "web"),
        ("container", web.as_str()),
        ("node", "host-a"),
        ("severity", "critical"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(labels(&fired), expected);
    assert_eq!(fired["annotations"]["summary"], format!("Restart of {web} on host-a FAILED"));
    assert!(
        fired["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{DASHBOARD}/#/timeline?type=remediation_complete"))
    );
    assert_eq!(
        fired["fingerprint"].as_str().unwrap(),
        fingerprint(&expected),
        "HemoStat computes Alertmanager's fingerprint"
    );

    // The crash after the failed restart meets the cooldown: the container stays down, the alert firing.
    let held_now = eventually("the alert held", Duration::from_secs(10), || async {
        let held = held(&alertmanager, "HemoStatRemediationFailed").await?;
        held.into_iter().next().ok_or_else(|| "not held".to_owned())
    })
    .await;
    assert_eq!(held_now["status"]["state"], "active");
    assert_eq!(fleet.scope.state(&web).status, "exited");

    // An admin restarts it, and it holds: that success resolves the alert; Alertmanager no longer holds it,
    // and said so.
    let mut admin = operator(&fleet.pki, OperatorRole::Admin, fleet.coordinator.addr()).await;
    let restart = pb::TriggerActionRequest {
        node: "host-a".into(),
        container: web.clone(),
        action: pb::Action::Restart as i32,
        force: true,
        reason: "fixed the configuration".into(),
        ..Default::default()
    };
    admin.trigger_action(restart).await.expect("the restart is accepted");
    eventually("the alert resolved", Duration::from_secs(40), || async {
        let resolved = sent_on(&receiver, "HemoStatRemediationFailed").iter().any(|(status, _)| status == "resolved");
        let still = held(&alertmanager, "HemoStatRemediationFailed").await?;
        if resolved && still.is_empty() {
            Ok(())
        } else {
            Err(format!("resolved sent on: {resolved}; held: {still:#?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_node_stays_firing_while_lost_and_resolves_when_it_is_back() {
    let (receiver, hook) = (WebhookServer::start().await, WebhookServer::start().await);
    let alertmanager = Alertmanager::start(&receiver.url()).await;
    let mut fleet = fleet(&alertmanager, &hook, |_| {}).await;
    fleet.node.kill();

    let first = eventually("HemoStatNodeLost in Alertmanager", Duration::from_secs(30), || async {
        let held = held(&alertmanager, "HemoStatNodeLost").await?;
        held.into_iter().next().ok_or_else(|| "not yet".to_owned())
    })
    .await;
    assert_eq!(first["labels"]["node"], "host-a");
    assert_eq!(first["status"]["state"], "active");
    // Each push is valid four seconds: still held ten seconds on, with a later end, only because HemoStat
    // pushed it again.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = held(&alertmanager, "HemoStatNodeLost").await.unwrap();
    assert_eq!(later.len(), 1, "still firing while the node is lost: {later:#?}");
    let ends = |alert: &Value| humantime::parse_rfc3339(alert["endsAt"].as_str().unwrap()).unwrap();
    assert!(ends(&later[0]) > ends(&first) + Duration::from_secs(5), "re-sent: {first:#?} then {later:#?}");

    fleet.node = TestNode::start(fleet.node_config());
    eventually("HemoStatNodeLost resolved", Duration::from_secs(30), || async {
        let resolved = sent_on(&receiver, "HemoStatNodeLost").iter().any(|(status, _)| status == "resolved");
        let held = held(&alertmanager, "HemoStatNodeLost").await?;
        if resolved && held.is_empty() { Ok(()) } else { Err(format!("resolved sent on: {resolved}; held: {held:#?}")) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_awaiting_approval_fires_until_an_admin_approves_it() {
    let (receiver, hook) = (WebhookServer::start().await, WebhookServer::start().await);
    let alertmanager = Alertmanager::start(&receiver.url()).await;
    let require_approval = |config: &mut CoordinatorConfig| {
        config.remediation.approval_ttl = Some(Duration::from_secs(600));
        config.alerting.approval_ttl = Duration::from_secs(600);
    };
    let fleet = fleet_with(&alertmanager, &hook, require_approval, |_| {}).await;
    let web = fleet.scope.run("web", &[], &crash_once(1));
    let waiting = rejection(&fleet.client, &web, "awaiting_approval", Duration::from_secs(20)).await;

    let pending = eventually("HemoStatApprovalPending in Alertmanager", Duration::from_secs(20), || async {
        let held = held(&alertmanager, "HemoStatApprovalPending").await?;
        held.into_iter().next().ok_or_else(|| "not yet".to_owned())
    })
    .await;
    assert_eq!(pending["labels"]["approval"], waiting.command_id.as_str());
    assert_eq!(
        (pending["labels"]["container"].as_str(), pending["labels"]["severity"].as_str()),
        (Some(web.as_str()), Some("warning"))
    );

    let mut admin = operator(&fleet.pki, OperatorRole::Admin, fleet.coordinator.addr()).await;
    admin.approve_action(pb::ApproveActionRequest { approval_id: waiting.command_id.clone() }).await.expect("approved");
    eventually("HemoStatApprovalPending resolved", Duration::from_secs(20), || async {
        let resolved = sent_on(&receiver, "HemoStatApprovalPending").iter().any(|(status, _)| status == "resolved");
        let held = held(&alertmanager, "HemoStatApprovalPending").await?;
        if resolved && held.is_empty() { Ok(()) } else { Err(format!("resolved sent on: {resolved}; held: {held:#?}")) }
    })
    .await;
}
