//! Remediation on the node, on the real Docker engine: the node's own policy refuses what it does not
//! allow whoever asks (a stand-in coordinator with a valid certificate sends the commands), runs a
//! diagnostic command from its allow-list, runs a replayed command once, and verifies restarts.

use std::time::Duration;

use hemostat_proto::v1 as pb;
use hemostat_tests::compose::ComposeProject;
use hemostat_tests::docker::{BuiltImages, Scope, SwarmService};
use hemostat_tests::eventually;
use hemostat_tests::fleet::{self, TestFleet, TestNode, events_of, kinds, rejection, remediated};
use hemostat_tests::peer::CoordinatorPeer;
use hemostat_tests::pki::TestPki;

fn exec(id: &str, container: &str, argv: &[&str]) -> pb::Command {
    pb::Command {
        command_id: id.into(),
        container_id: container.into(),
        container_name: String::new(),
        action: pb::Action::Exec as i32,
        stop_timeout_seconds: 0,
        argv: argv.iter().map(|a| a.to_string()).collect(),
    }
}

fn restart(id: &str, container: &str) -> pb::Command {
    pb::Command { action: pb::Action::Restart as i32, stop_timeout_seconds: 1, ..exec(id, container, &[]) }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_refuses_what_its_policy_does_not_allow_whoever_asks() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let scope = Scope::new();
    let peer = CoordinatorPeer::start(&pki).await;
    let _node = TestNode::start(fleet::node_config(&pki, "host-a", &peer.endpoint(), &scope.selector()));
    let web = scope.run("web", &[], "trap 'exit 0' TERM; sleep 86400 & wait");
    let opted_out =
        scope.run("optout", &["--label", "hemostat.enable=false"], "trap 'exit 0' TERM; sleep 86400 & wait");
    let id = |name: &str| scope.docker(&["inspect", "-f", "{{.Id}}", name]);
    let (web_id, opted_out_id) = (id(&web), id(&opted_out));

    let ask = |command: pb::Command| {
        let peer = &peer;
        async move {
            let id = command.command_id.clone();
            peer.send(command).await;
            let result = peer.result(Duration::from_secs(20)).await.expect("a result");
            assert_eq!(result.command_id, id);
            result
        }
    };

    let allowed = ask(exec("e1", &web_id, &["uname", "-a"])).await;
    assert_eq!(allowed.outcome(), pb::Outcome::Success, "{allowed:?}");
    assert!(allowed.output.contains("Linux"), "the output comes back: {:?}", allowed.output);

    for (n, argv) in [
        &["sh", "-c", "uname -a"][..],
        &["uname"],
        &["uname", "-a", "-r"],
        &["uname -a"],
        &["uname", "-a;", "rm", "-rf", "/"],
        &["env"],
        &["cat", "/etc/shadow"],
    ]
    .iter()
    .enumerate()
    {
        let refused = ask(exec(&format!("r{n}"), &web_id, argv)).await;
        assert_eq!(refused.outcome(), pb::Outcome::Refused, "{argv:?}: {refused:?}");
        assert!(refused.detail.contains("allow-list"), "{}", refused.detail);
        assert!(refused.output.is_empty());
    }

    let refused = ask(restart("o1", &opted_out_id)).await;
    assert_eq!(refused.outcome(), pb::Outcome::Refused, "an opted-out container: {refused:?}");
    let mut unknown = restart("u1", &web_id);
    unknown.action = 42;
    assert_eq!(ask(unknown).await.outcome(), pb::Outcome::Refused);
    let before = scope.state(&web).started_at;
    assert_eq!(scope.state(&web).status, "running");
    assert_eq!(before, scope.state(&web).started_at, "nothing was restarted by the refused commands");

    // A command delivered twice runs once: the replay gets no result, the next command's comes first.
    let first = ask(restart("once", &web_id)).await;
    assert_eq!(first.outcome(), pb::Outcome::Success, "{first:?}");
    let restarted_at = scope.state(&web).started_at;
    peer.send(restart("once", &web_id)).await;
    let next = ask(exec("after", &web_id, &["uptime"])).await;
    assert_eq!(next.command_id, "after");
    assert_eq!(scope.state(&web).started_at, restarted_at, "the replayed restart did not run");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_that_does_not_hold_is_reported_as_failed() {
    let fleet = TestFleet::start().await;
    let (scope, client) = (&fleet.scope, fleet.client.clone());
    // Crashes half a second after every start: the restart does not survive the one-second verification.
    let flaky = scope.run("flaky", &[], "sleep 0.5; exit 1");
    let complete = eventually("the verification's verdict", Duration::from_secs(20), || async {
        let events = events_of(&client, &flaky).await?;
        events
            .into_iter()
            .find(|e| e.r#type() == pb::EventType::RemediationComplete)
            .ok_or_else(|| "no result yet".to_owned())
    })
    .await;
    assert_eq!(complete.outcome(), pb::Outcome::Failed, "{complete:?}");
    assert!(complete.reason.contains("exited again"), "{}", complete.reason);
    eventually("the crash after the restart to meet the cooldown", Duration::from_secs(10), || async {
        let events = events_of(&client, &flaky).await?;
        if kinds(&events).contains(&"rejected".to_owned()) { Ok(()) } else { Err(format!("{:?}", kinds(&events))) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_records_what_would_be_done_and_changes_nothing() {
    let fleet = TestFleet::start_with(|config| config.remediation.dry_run = true, |_| {}).await;
    let (scope, client) = (&fleet.scope, fleet.client.clone());
    let web = scope.run("web", &[], &hemostat_tests::docker::crash_once(1));
    let events = eventually("the dry-run decision", Duration::from_secs(10), || async {
        let events = events_of(&client, &web).await?;
        if kinds(&events) == ["health_alert", "remediation_needed", "rejected"] {
            Ok(events)
        } else {
            Err(format!("{:?}", kinds(&events)))
        }
    })
    .await;
    assert_eq!(events[2].rejection, "dry_run");
    assert!(events[2].reason.contains("would restart"), "{}", events[2].reason);
    assert!(!events[1].evidence.is_empty(), "the decision carries its evidence");
    assert_eq!(scope.state(&web).status, "exited", "nothing was done");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_is_recorded_once_per_episode_not_once_per_alert() {
    let fleet = TestFleet::start().await;
    let (scope, client) = (&fleet.scope, fleet.client.clone());
    let web = scope.run("web", &[], &hemostat_tests::docker::crash_again_later(1));
    let count = |kind: &'static str| {
        let client = client.clone();
        let web = web.clone();
        async move { kinds(&events_of(&client, &web).await.unwrap()).iter().filter(|k| k.as_str() == kind).count() }
    };
    eventually("the first rejection", Duration::from_secs(15), || async {
        if count("rejected").await == 1 { Ok(()) } else { Err("not yet".to_owned()) }
    })
    .await;
    // Two more crashes inside the cooldown (started by hand): two more alerts and decisions...
    for n in 3..=4 {
        scope.docker(&["start", &web]);
        eventually("another alert", Duration::from_secs(15), || async {
            if count("remediation_needed").await == n { Ok(()) } else { Err("not yet".to_owned()) }
        })
        .await;
    }
    // ...and, once a later crash elsewhere is recorded (the node reports in order), still one rejection.
    let sentinel = scope.run("sentinel", &[], &hemostat_tests::docker::crash_once(2));
    remediated(&client, &sentinel, Duration::from_secs(15)).await;
    assert_eq!(count("rejected").await, 1, "{:?}", kinds(&events_of(&client, &web).await.unwrap()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_crash_loop_gets_at_most_the_hourly_budget_of_restarts() {
    // A short cooldown, so that the hourly limit is what stops the loop.
    let fleet =
        TestFleet::start_with(|config| config.remediation.budget.cooldown = Duration::from_secs(1), |_| {}).await;
    let (scope, client) = (&fleet.scope, fleet.client.clone());
    // Crashes 1.5 s after every start: each restart passes the 1 s verification, then it crashes again.
    let looping = scope.run("loop", &[], "sleep 1.5; exit 1");
    let restarts =
        |events: &[pb::Event]| events.iter().filter(|e| e.r#type() == pb::EventType::RemediationComplete).count();
    let events = eventually("the breaker to open after three restarts", Duration::from_secs(40), || async {
        let events = events_of(&client, &looping).await?;
        let open = events.iter().any(|e| e.rejection == "circuit_open");
        if open && restarts(&events) >= 3 { Ok(events) } else { Err(format!("{:?}", kinds(&events))) }
    })
    .await;
    assert_eq!(restarts(&events), 3, "RESPONDER_MAX_RETRIES_PER_HOUR restarts, no more: {:?}", kinds(&events));
    assert!(events.iter().find(|e| e.rejection == "circuit_open").unwrap().reason.contains("circuit open"));
    eventually("the loop to stay down", Duration::from_secs(10), || async {
        if scope.state(&looping).status == "exited" { Ok(()) } else { Err("running".into()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_containers_crashing_at_once_make_a_storm_with_at_most_five_actions_and_one_alert() {
    let fleet = TestFleet::start().await;
    let (scope, client) = (&fleet.scope, fleet.client.clone());
    // Ten containers that wait for one file, then all crash together (a shared dependency going down).
    let names: Vec<String> = (0..10)
        .map(|i| scope.run(&format!("dep{i}"), &[], "while [ ! -f /tmp/go ]; do sleep 0.1; done; exit 1"))
        .collect();
    for name in &names {
        scope.docker(&["exec", name, "touch", "/tmp/go"]);
    }
    let all = || async {
        let mut events = Vec::new();
        for name in &names {
            events.extend(events_of(&client, name).await?);
        }
        Ok::<_, String>(events)
    };
    // The restarted ones crash again at once (the file is still there) and meet their cooldown.
    eventually("every one of the ten settled", Duration::from_secs(60), || async {
        let mut settled = 0;
        let mut seen = Vec::new();
        for name in &names {
            let events = events_of(&client, name).await?;
            if events.iter().any(|e| e.r#type() == pb::EventType::RemediationComplete || e.rejection == "storm") {
                settled += 1;
            }
            seen.push(events.iter().map(|e| format!("{:?}/{}", e.r#type(), e.rejection)).collect::<Vec<_>>());
        }
        if settled == 10 { Ok(()) } else { Err(format!("{settled} settled: {seen:?}")) }
    })
    .await;
    let events = all().await.unwrap();
    let actions = events.iter().filter(|e| e.r#type() == pb::EventType::RemediationComplete).count();
    let storms: Vec<&pb::Event> = events.iter().filter(|e| e.r#type() == pb::EventType::Storm).collect();
    let rejected = events.iter().filter(|e| e.rejection == "storm").count();
    assert!(actions <= 5, "{actions} actions");
    assert!(actions + rejected >= 10, "{actions} actions, {rejected} storm rejections");
    assert_eq!(storms.len(), 1, "one storm alert");
    assert!(
        storms[0].reason.contains("6 containers") || storms[0].reason.contains("containers needed remediation"),
        "{}",
        storms[0].reason
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_cut_off_restarts_a_crash_on_its_own_and_the_coordinator_counts_it() {
    let mut fleet = TestFleet::start_with(|_| {}, |config| config.local_policy.after = Duration::from_secs(2)).await;
    fleet.coordinator.kill();
    let scope = &fleet.scope;
    // Crashes 3 s after it starts (the node is cut off for longer than 2 s by then), and 6 s after a restart.
    let web = scope.run("web", &[], "if [ -f /tmp/ran ]; then sleep 6; exit 1; fi; touch /tmp/ran; sleep 3; exit 1");
    let first = scope.state(&web).started_at;
    eventually("the node's own restart", Duration::from_secs(10), || async {
        let state = scope.state(&web);
        if state.status == "running" && state.started_at != first { Ok(()) } else { Err(format!("{state:?}")) }
    })
    .await;

    fleet.coordinator.restart();
    fleet.reconnect().await;
    let client = fleet.client.clone();
    let events = eventually(
        "the local action reported, and the next crash met the cooldown",
        Duration::from_secs(20),
        || async {
            let events = events_of(&client, &web).await?;
            if kinds(&events).contains(&"rejected".to_owned()) {
                Ok(events)
            } else {
                Err(format!("{:?}", kinds(&events)))
            }
        },
    )
    .await;
    assert_eq!(
        kinds(&events),
        [
            "health_alert",
            "remediation_needed",
            "remediation_complete",
            "health_alert",
            "remediation_needed",
            "rejected"
        ],
        "reported once, after the cut healed"
    );
    assert_eq!((events[1].analysis_method.as_str(), events[1].decided_by.as_str()), ("local", "node_local_policy"));
    assert_eq!(events[2].outcome(), pb::Outcome::Success);
    assert_eq!(events[2].command_id, events[1].command_id);
    assert_eq!(events[5].rejection, "cooldown_active", "the coordinator's budget counted the node's restart");
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_removes_exited_replicas_of_the_service_and_never_the_target_a_running_container_or_a_volume() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let scope = Scope::new();
    let peer = CoordinatorPeer::start(&pki).await;
    let _node = TestNode::start(fleet::node_config(&pki, "host-a", &peer.endpoint(), &scope.selector()));
    let project = ComposeProject::up(
        &scope,
        "services:\n  api:\n    image: IMAGE\n    init: true\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 86400 & wait\"]\n    labels: [SCOPE]\n    volumes: [\"data:/data\"]\n  worker:\n    image: IMAGE\n    command: [\"sh\", \"-c\", \"exit 0\"]\n    labels: [SCOPE]\nvolumes:\n  data: {}\n",
        &["--scale", "api=4"],
    );
    let (target, spare) = (project.container("api", 1), project.container("api", 4));
    let (old2, old3) = (project.container("api", 2), project.container("api", 3));
    scope.docker(&["stop", "-t", "1", &old2, &old3]);
    let plain = scope.run("plain", &[], "exit 0");
    let worker = project.container("worker", 1);
    eventually("the worker and the plain container exited", Duration::from_secs(10), || async {
        let exited = [&worker, &plain].iter().all(|n| scope.state(n).status == "exited");
        if exited { Ok(()) } else { Err("not yet".into()) }
    })
    .await;

    let target_id = scope.docker(&["inspect", "-f", "{{.Id}}", &target]);
    peer.send(pb::Command { action: pb::Action::Cleanup as i32, ..exec("c1", &target_id, &[]) }).await;
    let result = peer.result(Duration::from_secs(20)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::Success, "{result:?}");
    assert!(result.detail.contains("removed 2 exited containers"), "{}", result.detail);

    let exists =
        |name: &str| std::process::Command::new("docker").args(["inspect", name]).output().unwrap().status.success();
    assert!(!exists(&old2) && !exists(&old3), "the exited replicas of the service are gone");
    assert_eq!(scope.state(&target).status, "running", "never the target");
    assert_eq!(scope.state(&spare).status, "running", "never a running container");
    assert!(exists(&worker), "another service's exited container stays");
    assert!(exists(&plain), "a container outside the Compose service stays");
    let volume = format!("{}_data", project.name);
    assert!(
        std::process::Command::new("docker").args(["volume", "inspect", &volume]).output().unwrap().status.success(),
        "named volumes stay"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_up_starts_the_next_replica_of_a_compose_service_and_is_not_applicable_elsewhere() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let scope = Scope::new();
    let peer = CoordinatorPeer::start(&pki).await;
    let _node = TestNode::start(fleet::node_config(&pki, "host-a", &peer.endpoint(), &scope.selector()));
    let project = ComposeProject::up(
        &scope,
        "services:\n  api:\n    image: IMAGE\n    init: true\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 86400 & wait\"]\n    labels: [SCOPE]\n    environment: [ROLE=api]\n    volumes: [\"data:/data\"]\nvolumes:\n  data: {}\n",
        &[],
    );
    let first_id = scope.docker(&["inspect", "-f", "{{.Id}}", &project.container("api", 1)]);
    peer.send(pb::Command { action: pb::Action::ScaleUp as i32, ..exec("s1", &first_id, &[]) }).await;
    let result = peer.result(Duration::from_secs(20)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::Success, "{result:?}");
    let second = project.container("api", 2);
    assert_eq!(scope.state(&second).status, "running");
    let labels = scope.docker(&["inspect", "-f", "{{index .Config.Labels \"com.docker.compose.container-number\"}} {{index .Config.Labels \"com.docker.compose.service\"}}", &second]);
    assert_eq!(labels, "2 api", "the next replica, with the service's labels");
    let env = scope.docker(&["inspect", "-f", "{{json .Config.Env}}", &second]);
    assert!(env.contains("ROLE=api"), "the same configuration: {env}");
    let mounts = scope.docker(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", &second]);
    assert_eq!(mounts, format!("{}_data", project.name), "the same named volume");

    let plain = scope.run("plain", &[], "trap 'exit 0' TERM; sleep 86400 & wait");
    let plain_id = scope.docker(&["inspect", "-f", "{{.Id}}", &plain]);
    peer.send(pb::Command { action: pb::Action::ScaleUp as i32, ..exec("s2", &plain_id, &[]) }).await;
    let result = peer.result(Duration::from_secs(20)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::NotApplicable, "{result:?}");
    assert!(result.detail.contains("not part of a Compose service"), "{}", result.detail);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_approval_required_a_decision_waits_for_an_admin_and_expires() {
    let fleet =
        TestFleet::start_with(|config| config.remediation.approval_ttl = Some(Duration::from_secs(600)), |_| {}).await;
    let (scope, client) = (&fleet.scope, fleet.client.clone());
    let web = scope.run("web", &[], &hemostat_tests::docker::crash_once(1));
    let awaiting = rejection(&client, &web, "awaiting_approval", Duration::from_secs(15)).await;
    assert_eq!(scope.state(&web).status, "exited", "nothing happens before the approval");
    let approve = |id: String| pb::ApproveActionRequest { approval_id: id };

    let mut viewer = client.clone();
    let refused = viewer.approve_action(approve(awaiting.command_id.clone())).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(refused.message().contains("admin role"), "{}", refused.message());
    let mut admin = fleet::operator(&fleet.pki, hemostat_pki::OperatorRole::Admin, fleet.coordinator.addr()).await;
    assert_eq!(
        admin.approve_action(approve("not hex!".into())).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );

    admin.approve_action(approve(awaiting.command_id.clone())).await.expect("approved");
    let events = remediated(&client, &web, Duration::from_secs(15)).await;
    let approved = events.iter().rfind(|e| e.r#type() == pb::EventType::RemediationNeeded).unwrap();
    assert_eq!((approved.analysis_method.as_str(), approved.decided_by.as_str()), ("operator", "operator:op-admin"));
    assert_eq!(
        admin.approve_action(approve(awaiting.command_id.clone())).await.unwrap_err().code(),
        tonic::Code::NotFound,
        "once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_past_its_expiry_does_nothing() {
    let fleet =
        TestFleet::start_with(|config| config.remediation.approval_ttl = Some(Duration::from_secs(1)), |_| {}).await;
    let (scope, client) = (&fleet.scope, fleet.client.clone());
    let web = scope.run("web", &[], &hemostat_tests::docker::crash_once(1));
    let awaiting = rejection(&client, &web, "awaiting_approval", Duration::from_secs(15)).await;
    let recorded = hemostat_proto::timestamp::from_proto(awaiting.time.as_ref().unwrap());
    eventually("the approval window to pass", Duration::from_secs(5), || async {
        if std::time::SystemTime::now() > recorded + Duration::from_millis(1500) {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await;
    let mut admin = fleet::operator(&fleet.pki, hemostat_pki::OperatorRole::Admin, fleet.coordinator.addr()).await;
    let expired =
        admin.approve_action(pb::ApproveActionRequest { approval_id: awaiting.command_id }).await.unwrap_err();
    assert_eq!(expired.code(), tonic::Code::FailedPrecondition);
    assert!(expired.message().contains("expired"), "{}", expired.message());
    assert_eq!(scope.state(&web).status, "exited");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_decision_and_result_is_in_the_audit_log() {
    let fleet = TestFleet::start().await;
    let (scope, client) = (&fleet.scope, fleet.client.clone());
    let web = scope.run("web", &[], &hemostat_tests::docker::crash_once(1));
    let audit = eventually("the audit records", Duration::from_secs(15), || async {
        let request = pb::ListAuditRequest { container: web.clone(), ..Default::default() };
        let events = client.clone().list_audit(request).await.map_err(|e| e.to_string())?.into_inner().events;
        if kinds(&events) == ["remediation_needed", "remediation_complete"] {
            Ok(events)
        } else {
            Err(format!("{:?}", kinds(&events)))
        }
    })
    .await;
    assert_eq!((audit[0].decided_by.as_str(), audit[0].analysis_method.as_str()), ("non_zero_exit", "rules"));
    assert!((audit[0].confidence - 0.9).abs() < 1e-9);
    assert_eq!(audit[1].outcome(), pb::Outcome::Success);
    assert!(audit[1].duration_ms > 0, "the action's duration: {:?}", audit[1]);
    assert_eq!(audit[1].command_id, audit[0].command_id);
}

fn scale_up(id: &str, container: &str) -> pb::Command {
    pb::Command { action: pb::Action::ScaleUp as i32, ..exec(id, container, &[]) }
}

/// A long-running service task's script (exits at once on SIGTERM).
const SERVING: &str = "trap 'exit 0' TERM; sleep 86400 & wait";

/// A node watching `scope`, talking to `peer`, verifying for `window`.
fn swarm_node(pki: &TestPki, peer: &CoordinatorPeer, scope: &Scope, window: Duration) -> TestNode {
    let mut config = fleet::node_config(pki, "host-a", &peer.endpoint(), &scope.selector());
    config.execution.verify_window = window;
    TestNode::start(config)
}

/// Waits until `service` runs `n` tasks and returns the id of one of its containers.
async fn running(service: &SwarmService, n: usize) -> String {
    eventually(&format!("{} running {n} tasks", service.name()), Duration::from_secs(30), || async {
        let containers = service.containers();
        if service.running_tasks() == n && containers.len() == n {
            Ok(containers[0].clone())
        } else {
            Err(service.tasks())
        }
    })
    .await
}

// Each puts the engine in single-node swarm mode while its service exists (see `docker::SwarmLease`).
#[tokio::test(flavor = "multi_thread")]
async fn swarm_scale_up_adds_one_replica_with_the_same_spec_and_waits_for_it_to_run() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let scope = Scope::new();
    let peer = CoordinatorPeer::start(&pki).await;
    let _node = swarm_node(&pki, &peer, &scope, Duration::from_secs(20));
    let service = SwarmService::create(&scope, "api", &["--env", "ROLE=api"], SERVING);
    let task = running(&service, 1).await;
    let (before, version) = service.spec();

    peer.send(scale_up("w1", &task)).await;
    let result = peer.result(Duration::from_secs(30)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::Success, "{result:?}");
    assert!(result.detail.contains("from 1 to 2 replicas"), "{}", result.detail);
    assert_eq!(service.running_tasks(), 2, "the node waited for the new task to run: {}", service.tasks());
    let (after, new_version) = service.spec();
    let mut expected = before;
    expected["Mode"]["Replicated"]["Replicas"] = 2.into();
    assert_eq!(after, expected, "the spec is the same but for the replica count");
    assert!(new_version > version);
}

#[tokio::test(flavor = "multi_thread")]
async fn swarm_scale_up_is_not_applicable_to_a_global_service_and_refused_for_an_opted_out_task() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let scope = Scope::new();
    let peer = CoordinatorPeer::start(&pki).await;
    let _node = swarm_node(&pki, &peer, &scope, Duration::from_secs(20));
    let global = SwarmService::create(&scope, "agent", &["--mode", "global"], SERVING);
    let opted_out = SwarmService::create(&scope, "private", &["--container-label", "hemostat.enable=false"], SERVING);
    let (global_task, opted_out_task) = (running(&global, 1).await, running(&opted_out, 1).await);
    let (global_before, opted_out_before) = (global.spec(), opted_out.spec());

    peer.send(scale_up("g1", &global_task)).await;
    let result = peer.result(Duration::from_secs(30)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::NotApplicable, "{result:?}");
    assert!(result.detail.contains("is global"), "{}", result.detail);

    peer.send(scale_up("o1", &opted_out_task)).await;
    let result = peer.result(Duration::from_secs(30)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::Refused, "{result:?}");
    assert!(result.detail.contains("not watched by this node"), "{}", result.detail);

    assert_eq!(global.spec(), global_before, "the global service is unchanged");
    assert_eq!(opted_out.spec(), opted_out_before, "the opted-out service is unchanged");
    assert_eq!((global.running_tasks(), opted_out.running_tasks()), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn swarm_scale_up_whose_new_replica_cannot_run_fails_with_what_the_node_saw() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let scope = Scope::new();
    let peer = CoordinatorPeer::start(&pki).await;
    let _node = swarm_node(&pki, &peer, &scope, Duration::from_secs(3));
    // Each task reserves more than half of the engine's memory: the first one fits, a second one cannot.
    let total: u64 = scope.docker(&["info", "-f", "{{.MemTotal}}"]).parse().expect("MemTotal");
    let reserve = (total / 5 * 3).to_string();
    let service = SwarmService::create(&scope, "big", &["--reserve-memory", &reserve], SERVING);
    let task = running(&service, 1).await;

    peer.send(scale_up("b1", &task)).await;
    let result = peer.result(Duration::from_secs(30)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::Failed, "{result:?}");
    assert!(result.detail.contains("from 1 to 2 replicas"), "{}", result.detail);
    assert!(result.detail.contains("1 of 2 tasks running"), "{}", result.detail);
    assert!(result.detail.contains("pending"), "what it saw: {}", result.detail);
    assert_eq!(service.running_tasks(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_commands_at_once_are_held_to_the_nodes_rate_and_concurrency_and_the_rest_refused() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let scope = Scope::new();
    let peer = CoordinatorPeer::start(&pki).await;
    let metrics = fleet::free_metrics_addr();
    let mut config = fleet::node_config(&pki, "host-a", &peer.endpoint(), &scope.selector());
    config.execution.exec_allowlist = vec![vec!["sleep".into(), "2".into()]];
    config.execution.commands_per_minute = 15;
    config.execution.command_concurrency = 10;
    config.metrics_listen = Some(metrics);
    let _node = TestNode::start(config);
    let web = scope.run("web", &[], "trap 'exit 0' TERM; sleep 86400 & wait");
    let web_id = scope.docker(&["inspect", "-f", "{{.Id}}", &web]);
    let burst = |round: u32| {
        let (peer, web_id) = (&peer, &web_id);
        async move {
            for n in 0..100 {
                peer.send(exec(&format!("{round}-{n}"), web_id, &["sleep", "2"])).await;
            }
            peer.results(100, Duration::from_secs(60)).await
        }
    };
    let refused_for = |results: &[pb::CommandResult], limit: &str| {
        results.iter().filter(|r| r.outcome() == pb::Outcome::Refused && r.detail.contains(limit)).count()
    };

    // Every exec holds its place for two seconds: ten run, ninety are refused at once.
    let first = burst(1).await;
    let ran: Vec<&pb::CommandResult> = first.iter().filter(|r| r.outcome() == pb::Outcome::Success).collect();
    assert_eq!(ran.len(), 10, "{first:?}");
    assert_eq!(refused_for(&first, "at most 10 commands at once (NODE_COMMAND_CONCURRENCY)"), 90);
    assert!(ran.iter().all(|r| r.duration_ms >= 2000), "they ran: {ran:?}");
    // Within the same minute, five more are accepted (fifteen a minute), the rest refused by the rate.
    let second = burst(2).await;
    assert_eq!(second.iter().filter(|r| r.outcome() == pb::Outcome::Success).count(), 5, "{second:?}");
    assert_eq!(refused_for(&second, "at most 15 commands a minute (NODE_COMMANDS_PER_MINUTE)"), 95);
    let text = fleet::scrape(metrics).await.unwrap();
    assert_eq!(fleet::metric(&text, "hemostat_node_commands_limited_total{limit=\"concurrency\"}"), Some(90.0));
    assert_eq!(fleet::metric(&text, "hemostat_node_commands_limited_total{limit=\"rate\"}"), Some(95.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_up_never_goes_past_the_replica_cap_of_the_label_or_the_node() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let scope = Scope::new();
    let peer = CoordinatorPeer::start(&pki).await;
    let mut config = fleet::node_config(&pki, "host-a", &peer.endpoint(), &scope.selector());
    config.execution.scale_up_max_replicas = 1;
    let _node = TestNode::start(config);
    let project = ComposeProject::up(
        &scope,
        "services:\n  api:\n    image: IMAGE\n    init: true\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 86400 & wait\"]\n    labels: [SCOPE, \"hemostat.scale_up.max=2\"]\n  web:\n    image: IMAGE\n    init: true\n    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 86400 & wait\"]\n    labels: [SCOPE]\n",
        &[],
    );
    let id = |name: &str| scope.docker(&["inspect", "-f", "{{.Id}}", name]);
    let scale = |n: &str, name: &str| pb::Command { action: pb::Action::ScaleUp as i32, ..exec(n, &id(name), &[]) };
    let exists =
        |name: &str| std::process::Command::new("docker").args(["inspect", name]).output().unwrap().status.success();

    peer.send(scale("a1", &project.container("api", 1))).await;
    let result = peer.result(Duration::from_secs(20)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::Success, "one below the label's cap: {result:?}");
    peer.send(scale("a2", &project.container("api", 1))).await;
    let result = peer.result(Duration::from_secs(20)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::Refused, "{result:?}");
    assert!(
        result.detail.contains("has 2 replicas, at its cap of 2 (label hemostat.scale_up.max on the container)"),
        "{}",
        result.detail
    );
    assert!(!exists(&project.container("api", 3)), "no third replica");

    peer.send(scale("w1", &project.container("web", 1))).await;
    let result = peer.result(Duration::from_secs(20)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::Refused, "{result:?}");
    assert!(result.detail.contains("at its cap of 1 (the node's NODE_SCALE_UP_MAX_REPLICAS)"), "{}", result.detail);
    assert!(!exists(&project.container("web", 2)));

    let bad = scope.run(
        "bad",
        &[
            "--label",
            "com.docker.compose.project=p",
            "--label",
            "com.docker.compose.service=s",
            "--label",
            "hemostat.scale_up.max=lots",
        ],
        "trap 'exit 0' TERM; sleep 86400 & wait",
    );
    peer.send(scale("b1", &bad)).await;
    let result = peer.result(Duration::from_secs(20)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::Refused, "{result:?}");
    assert!(result.detail.contains("\"lots\", not a positive whole number"), "{}", result.detail);
}

#[tokio::test(flavor = "multi_thread")]
async fn swarm_scale_up_stops_at_the_services_replica_cap() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let scope = Scope::new();
    let peer = CoordinatorPeer::start(&pki).await;
    let _node = swarm_node(&pki, &peer, &scope, Duration::from_secs(20));
    let service = SwarmService::create(&scope, "capped", &["--label", "hemostat.scale_up.max=1"], SERVING);
    let task = running(&service, 1).await;
    let before = service.spec();
    peer.send(scale_up("c1", &task)).await;
    let result = peer.result(Duration::from_secs(30)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::Refused, "{result:?}");
    assert!(
        result.detail.contains("at its cap of 1 (label hemostat.scale_up.max on the service)"),
        "{}",
        result.detail
    );
    assert_eq!(service.spec(), before, "the service is unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_removes_only_dangling_images_that_only_its_removed_containers_used() {
    hemostat_tests::init();
    let pki = TestPki::new();
    let scope = Scope::new();
    let peer = CoordinatorPeer::start(&pki).await;
    let _node = TestNode::start(fleet::node_config(&pki, "host-a", &peer.endpoint(), &scope.selector()));
    let images = BuiltImages::default();
    let tag = |what: &str| format!("hemostat-test-{what}-{}:1", scope.selector().rsplit('=').next().unwrap());
    let compose = ["--label", "com.docker.compose.project=shop", "--label", "com.docker.compose.service=api"];
    // A watched exited replica of an image that only it uses, left dangling by a rebuild of its tag.
    let watched_image = images.build(&tag("watched"));
    let label = scope.selector();
    let run_exited = |name: &str, extra: &[&str], image: &str| {
        let args =
            [&["run", "-d", "--name", name, "--label", &label][..], extra, &compose, &[image, "sh", "-c", "exit 0"]];
        scope.docker(&args.concat());
    };
    let watched = scope.name("old");
    run_exited(&watched, &[], &tag("watched"));
    images.build(&tag("watched"));
    // An opted-out (unwatched) exited replica of another image that only it uses, dangling too.
    let unwatched_image = images.build(&tag("unwatched"));
    let unwatched = scope.name("optout");
    run_exited(&unwatched, &["--label", "hemostat.enable=false"], &tag("unwatched"));
    images.build(&tag("unwatched"));
    // A dangling image no container uses.
    let orphan_image = images.build(&tag("orphan"));
    images.build(&tag("orphan"));
    let target = scope.run("target", &compose, "trap 'exit 0' TERM; sleep 86400 & wait");
    eventually("the replicas exited", Duration::from_secs(10), || async {
        let exited = [&watched, &unwatched].iter().all(|n| scope.state(n).status == "exited");
        if exited { Ok(()) } else { Err("not yet".into()) }
    })
    .await;

    let target_id = scope.docker(&["inspect", "-f", "{{.Id}}", &target]);
    peer.send(pb::Command { action: pb::Action::Cleanup as i32, ..exec("c1", &target_id, &[]) }).await;
    let result = peer.result(Duration::from_secs(20)).await.expect("a result");
    assert_eq!(result.outcome(), pb::Outcome::Success, "{result:?}");
    assert!(result.detail.contains("removed 1 exited containers of Compose service shop/api"), "{}", result.detail);
    assert!(result.detail.contains("removed 1 dangling images only they used"), "{}", result.detail);
    assert!(result.detail.contains("other dangling images are left alone"), "{}", result.detail);
    let exists =
        |name: &str| std::process::Command::new("docker").args(["inspect", name]).output().unwrap().status.success();
    assert!(!exists(&watched), "the watched exited replica is gone");
    assert!(!BuiltImages::exists(&watched_image), "and the dangling image only it used");
    assert!(exists(&unwatched), "an unwatched container stays");
    assert!(BuiltImages::exists(&unwatched_image), "and so does the image only it uses");
    assert!(BuiltImages::exists(&orphan_image), "the engine's other dangling images are not pruned");
}
