//! Dependents, end to end on the real engine with docker-compose (a node and a coordinator in-process): after
//! a Compose service is healed, the service sharing its network namespace (`network_mode: service:app`) and
//! a container labelled `hemostat.depends_on=<its name>` are restarted after it, one after the other, each
//! as its own decision on its own budget, and the sidecar is back in the app's new namespace; a sidecar left
//! in the namespace of an app that was recreated is reported with what to do. And with a stand-in node: a
//! chain of dependents never restarts a container twice, a result the coordinator did not ask for names
//! no dependents, and with approvals required each dependent waits for its own.

use std::time::{Duration, SystemTime};

use hemostat_coordinator::store::StoreConfig;
use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::compose::ComposeProject;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{
    TestCoordinator, TestFleet, coordinator_config, events_of, kinds, operator, rejection, remediated,
};
use hemostat_tests::node_peer::{NodePeer, container, crash_alert};
use hemostat_tests::pki::TestPki;
use pb::session_request::Body;

/// An app that exits 1 when `/tmp/crash` appears (and deletes it, so a restart holds), a sidecar in its
/// network namespace, and a worker that depends on it by label.
const PROJECT: &str = r#"services:
  app:
    image: IMAGE
    init: true
    labels: [SCOPE]
    command: ["sh", "-c", "trap 'exit 0' TERM; while [ ! -f /tmp/crash ]; do sleep 0.2; done; rm /tmp/crash; exit 1"]
  sidecar:
    image: IMAGE
    init: true
    network_mode: "service:app"
    labels: [SCOPE]
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"]
  worker:
    image: IMAGE
    init: true
    labels: [SCOPE, "hemostat.depends_on=PROJECT_app_1"]
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"]
"#;

/// When Docker says the container last started.
fn started_at(s: &TestFleet, name: &str) -> SystemTime {
    humantime::parse_rfc3339_weak(&s.scope.state(name).started_at).expect("StartedAt")
}

/// The network namespace the container's main process is in, as the host sees it.
fn netns(s: &TestFleet, name: &str) -> String {
    let pid = s.scope.docker(&["inspect", "-f", "{{.State.Pid}}", name]);
    std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("the host's /proc").display().to_string()
}

/// Waits until the node reported every container of the project (the coordinator lists them).
async fn listed(s: &TestFleet, names: &[&str]) {
    eventually("the project's containers listed", Duration::from_secs(20), || async {
        let listed = s
            .client
            .clone()
            .list_containers(pb::ListContainersRequest::default())
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .containers;
        let known = |name: &&str| listed.iter().any(|c| c.state.as_ref().is_some_and(|st| st.name == *name));
        if names.iter().all(known) { Ok(()) } else { Err(format!("{} listed", listed.len())) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_heal_the_namespace_sharer_and_the_labelled_dependent_are_restarted_after_it_in_order() {
    let s = TestFleet::start().await;
    let project = ComposeProject::up(&s.scope, PROJECT, &[]);
    let (app, sidecar, worker) =
        (project.container("app", 1), project.container("sidecar", 1), project.container("worker", 1));
    listed(&s, &[&app, &sidecar, &worker]).await;
    assert_eq!(netns(&s, &sidecar), netns(&s, &app), "the sidecar starts in the app's namespace");
    let (sidecar_start, worker_start) = (started_at(&s, &sidecar), started_at(&s, &worker));

    s.scope.docker(&["exec", &app, "touch", "/tmp/crash"]);
    remediated(&s.client, &app, Duration::from_secs(30)).await;
    let app_events = events_of(&s.client, &app).await.unwrap();
    let sidecar_events = remediated(&s.client, &sidecar, Duration::from_secs(30)).await;
    let worker_events = remediated(&s.client, &worker, Duration::from_secs(30)).await;

    let decision = |events: &[pb::Event]| {
        events.iter().find(|e| e.r#type() == pb::EventType::RemediationNeeded).cloned().expect("a decision")
    };
    let completed = |events: &[pb::Event]| {
        events.iter().find(|e| e.r#type() == pb::EventType::RemediationComplete).cloned().expect("a result")
    };
    let sidecar_decision = decision(&sidecar_events);
    assert!(
        sidecar_decision.reason.contains(&format!("dependent of {app}"))
            && sidecar_decision.reason.contains("network namespace"),
        "{}",
        sidecar_decision.reason
    );
    let worker_decision = decision(&worker_events);
    assert!(worker_decision.reason.contains("hemostat.depends_on"), "{}", worker_decision.reason);
    for events in [&sidecar_events, &worker_events] {
        assert_eq!(completed(events).outcome(), pb::Outcome::Success, "{:?}", kinds(events));
    }
    // In order: the app healed, then the sidecar, then the worker.
    let at = |e: &pb::Event| e.time.as_ref().map(hemostat_proto::timestamp::from_proto).unwrap();
    assert!(at(&completed(&app_events)) <= at(&sidecar_decision), "the sidecar after the app's verified restart");
    assert!(at(&completed(&sidecar_events)) <= at(&worker_decision), "the worker after the sidecar's");
    assert!(started_at(&s, &sidecar) > sidecar_start && started_at(&s, &worker) > worker_start);
    assert_eq!(netns(&s, &sidecar), netns(&s, &app), "the sidecar is back in the app's new namespace");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sidecar_left_in_the_namespace_of_a_recreated_app_is_reported_with_what_to_do() {
    let s = TestFleet::start().await;
    let project = ComposeProject::up(&s.scope, PROJECT, &[]);
    let (app, sidecar) = (project.container("app", 1), project.container("sidecar", 1));
    let old_app = s.scope.docker(&["inspect", "-f", "{{.Id}}", &app]);
    project.run(&["up", "-d", "--no-deps", "--force-recreate", "app"]);
    assert_ne!(s.scope.docker(&["inspect", "-f", "{{.Id}}", &app]), old_app, "recreated");
    assert_eq!(
        s.scope.docker(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", &sidecar]),
        format!("container:{old_app}"),
        "the sidecar still points at the old app"
    );
    listed(&s, &[&app, &sidecar]).await;
    let sidecar_start = s.scope.state(&sidecar).started_at;

    s.scope.docker(&["exec", &app, "touch", "/tmp/crash"]);
    let events = remediated(&s.client, &app, Duration::from_secs(30)).await;
    let result = events.iter().find(|e| e.r#type() == pb::EventType::RemediationComplete).unwrap();
    let expected = format!(
        "{sidecar} shares the network namespace of container {}, which no longer exists (its parent was \
         recreated): a restart cannot bring it back; recreate it (docker compose -p {} up -d --force-recreate \
         sidecar)",
        &old_app[..12],
        project.name
    );
    assert!(result.reason.contains(&expected), "{}", result.reason);
    assert_eq!(result.outcome(), pb::Outcome::Success);
    // Not restarted: a restart cannot mend it (and nothing was recorded for it).
    assert_eq!(s.scope.state(&sidecar).started_at, sidecar_start);
    let sidecar_events = events_of(&s.client, &sidecar).await.unwrap();
    assert!(sidecar_events.is_empty(), "{:?}", kinds(&sidecar_events));
}

/// A verified restart of `container_id` that names `dependents`, as a node reports it.
fn healed(command_id: &str, container_id: &str, dependents: &[&str]) -> Body {
    Body::CommandResult(pb::CommandResult {
        command_id: command_id.to_owned(),
        container_id: container_id.to_owned(),
        outcome: pb::Outcome::Success as i32,
        detail: "restarted; running for 1s".to_owned(),
        duration_ms: 1000,
        output: String::new(),
        dependents: dependents.iter().map(|d| d.to_string()).collect(),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_of_dependents_restarts_each_once_and_an_unasked_result_names_none() {
    hemostat_tests::init();
    let wait = Duration::from_secs(15);
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let coordinator =
        TestCoordinator::start(coordinator_config(&pki, StoreConfig::Embedded { path: dir.path().join("state.redb") }));
    let client = operator(&pki, OperatorRole::Viewer, coordinator.addr()).await;
    let mut node = NodePeer::connect(&coordinator.endpoint(), &pki.node("host-a"), "host-a", "a1").await.unwrap();
    let (web, side, worker) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
    let containers =
        vec![container(&web, "web", &[]), container(&side, "side", &[]), container(&worker, "worker", &[])];
    node.send_acked(Body::Snapshot(pb::ContainerSnapshot { containers, ..Default::default() }), wait).await.unwrap();

    // A result for a command never sent is refused, and its dependents with it.
    node.send_acked(healed(&"f".repeat(32), &web, &[&side]), wait).await.unwrap();
    node.send_acked(Body::HealthAlert(crash_alert(container(&web, "web", &[]), vec![])), wait).await.unwrap();
    let restart = node.command(wait).await.expect("web restarted");
    assert_eq!(restart.container_id, web, "the crash's restart comes first: the unasked result sent nothing");
    // web names side (and itself, and side again); side names web (restarted already) and worker; worker
    // names side again.
    node.send_acked(healed(&restart.command_id, &web, &[&side, &web, &side]), wait).await.unwrap();
    let restart = node.command(wait).await.expect("side restarted after web");
    assert_eq!((restart.container_id.as_str(), restart.action()), (side.as_str(), pb::Action::Restart));
    node.send_acked(healed(&restart.command_id, &side, &[&web, &worker]), wait).await.unwrap();
    let restart = node.command(wait).await.expect("worker restarted after side");
    assert_eq!(restart.container_id, worker);
    node.send_acked(healed(&restart.command_id, &worker, &[&side]), wait).await.unwrap();
    eventually("worker's restart recorded", wait, || async {
        let events = events_of(&client, "worker").await?;
        if kinds(&events).contains(&"remediation_complete".to_owned()) {
            Ok(())
        } else {
            Err(format!("{:?}", kinds(&events)))
        }
    })
    .await;
    for (name, decisions) in [("web", 1), ("side", 1), ("worker", 1)] {
        let events = events_of(&client, name).await.unwrap();
        let n = kinds(&events).iter().filter(|k| *k == "remediation_needed").count();
        assert_eq!(n, decisions, "{name}: {:?}", kinds(&events));
    }
    let side_events = events_of(&client, "side").await.unwrap();
    assert!(side_events[0].reason.starts_with("dependent of web, restarted after it"), "{}", side_events[0].reason);
    let worker_events = events_of(&client, "worker").await.unwrap();
    assert!(worker_events[0].reason.starts_with("dependent of side"), "{}", worker_events[0].reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_approvals_required_each_dependent_waits_for_its_own() {
    hemostat_tests::init();
    let wait = Duration::from_secs(15);
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config = coordinator_config(&pki, StoreConfig::Embedded { path: dir.path().join("state.redb") });
    config.remediation.approval_ttl = Some(Duration::from_secs(600));
    let coordinator = TestCoordinator::start(config);
    let client = operator(&pki, OperatorRole::Viewer, coordinator.addr()).await;
    let mut admin = operator(&pki, OperatorRole::Admin, coordinator.addr()).await;
    let mut node = NodePeer::connect(&coordinator.endpoint(), &pki.node("host-a"), "host-a", "a1").await.unwrap();
    let (web, side) = ("a".repeat(64), "b".repeat(64));
    let containers = vec![container(&web, "web", &[]), container(&side, "side", &[])];
    node.send_acked(Body::Snapshot(pb::ContainerSnapshot { containers, ..Default::default() }), wait).await.unwrap();
    node.send_acked(Body::HealthAlert(crash_alert(container(&web, "web", &[]), vec![])), wait).await.unwrap();
    let approve = |id: String| pb::ApproveActionRequest { approval_id: id };

    let awaiting = rejection(&client, "web", "awaiting_approval", wait).await;
    admin.approve_action(approve(awaiting.command_id.clone())).await.expect("web approved");
    let restart = node.command(wait).await.expect("web restarted once approved");
    node.send_acked(healed(&restart.command_id, &web, &[&side]), wait).await.unwrap();
    // The dependent is parked too: nothing is sent for it until an admin approves it.
    let awaiting = rejection(&client, "side", "awaiting_approval", wait).await;
    assert!(awaiting.reason.contains("hemostat approve"), "{}", awaiting.reason);
    admin.approve_action(approve(awaiting.command_id.clone())).await.expect("side approved");
    let restart = node.command(wait).await.expect("side restarted once approved");
    assert_eq!(
        (restart.container_id.as_str(), restart.command_id.as_str()),
        (side.as_str(), awaiting.command_id.as_str())
    );
}
