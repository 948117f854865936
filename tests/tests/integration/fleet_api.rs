//! The operators' API end to end: each FleetService RPC with a viewer's and an admin's certificate, bad
//! arguments, silences, dry-run set at runtime, an admin's manual actions, GetContainer's budget view, and
//! node liveness — against a real coordinator, a real node and the real Docker engine.

use std::time::Duration;

use hemostat_pki::OperatorRole;
use hemostat_proto::v1 as pb;
use hemostat_tests::docker::{crash_again_later, crash_once};
use hemostat_tests::eventually;
use hemostat_tests::fleet::{self, FleetClient, TestFleet, TestNode, events_of, kinds, rejection};
use tonic::Code;

const SLEEPER: &str = "trap 'exit 0' TERM; sleep 86400 & wait";

async fn admin(s: &TestFleet) -> FleetClient {
    fleet::operator(&s.pki, OperatorRole::Admin, s.coordinator.addr()).await
}

/// Waits until the coordinator knows the container `name`.
async fn known(client: &FleetClient, name: &str) {
    eventually(&format!("{name} reported"), Duration::from_secs(10), || fleet::container(client, name)).await;
}

/// The event with this command id and type, once it is recorded.
async fn event_of_command(client: &FleetClient, name: &str, command_id: &str, kind: &str) -> pb::Event {
    eventually(&format!("{kind} of command {command_id}"), Duration::from_secs(15), || async {
        let events = events_of(client, name).await?;
        let kinds = kinds(&events);
        events
            .into_iter()
            .zip(kinds)
            .find(|(e, k)| e.command_id == command_id && k == kind)
            .map(|(e, _)| e)
            .ok_or_else(|| "not yet".to_owned())
    })
    .await
}

fn assert_code<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, message: &str) {
    match result {
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert!(status.message().contains(message), "{:?} does not say {message:?}", status.message());
        }
        Ok(answer) => panic!("expected {code:?} ({message}), got {answer:?}"),
    }
}

fn trigger(node: &str, container: &str, action: pb::Action, argv: &[&str], force: bool) -> pb::TriggerActionRequest {
    pb::TriggerActionRequest {
        node: node.into(),
        container: container.into(),
        action: action as i32,
        argv: argv.iter().map(|a| a.to_string()).collect(),
        force,
        reason: "checking".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn viewers_read_and_only_admins_change() {
    let s = TestFleet::start().await;
    let web = s.scope.run("web", &[], SLEEPER);
    known(&s.client, &web).await;
    let mut viewer = s.client.clone();

    viewer.list_nodes(pb::ListNodesRequest::default()).await.unwrap();
    viewer.list_containers(pb::ListContainersRequest::default()).await.unwrap();
    let got = viewer
        .get_container(pb::GetContainerRequest { node: "host-a".into(), container: web.clone(), recent_events: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.container.unwrap().state.unwrap().name, web);
    assert_eq!(got.budget.unwrap().circuit, "closed");
    viewer.list_events(pb::ListEventsRequest::default()).await.unwrap();
    viewer.list_audit(pb::ListAuditRequest::default()).await.unwrap();
    viewer.list_silences(pb::ListSilencesRequest {}).await.unwrap();
    let dry = viewer.get_dry_run(pb::GetDryRunRequest {}).await.unwrap().into_inner();
    assert_eq!((dry.enabled, dry.source.as_str()), (false, "configuration"));

    let silence = pb::CreateSilenceRequest {
        node: "host-a".into(),
        container: web.clone(),
        duration_seconds: 600,
        reason: "deploy".into(),
    };
    let denied = "needs the admin role";
    assert_code(viewer.create_silence(silence.clone()).await, Code::PermissionDenied, denied);
    assert_code(
        viewer.delete_silence(pb::DeleteSilenceRequest { id: "ab".into() }).await,
        Code::PermissionDenied,
        denied,
    );
    assert_code(viewer.set_dry_run(pb::SetDryRunRequest { enabled: true }).await, Code::PermissionDenied, denied);
    assert_code(
        viewer.trigger_action(trigger("host-a", &web, pb::Action::Restart, &[], false)).await,
        Code::PermissionDenied,
        denied,
    );
    assert_code(
        viewer.approve_action(pb::ApproveActionRequest { approval_id: "ab".into() }).await,
        Code::PermissionDenied,
        denied,
    );
    assert_code(viewer.end_storm(pb::EndStormRequest {}).await, Code::PermissionDenied, denied);

    let mut admin = admin(&s).await;
    let created = admin.create_silence(silence).await.unwrap().into_inner().silence.unwrap();
    assert_eq!(created.created_by, "operator:op-admin");
    let listed = viewer.list_silences(pb::ListSilencesRequest {}).await.unwrap().into_inner().silences;
    assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [created.id.as_str()]);
    admin.delete_silence(pb::DeleteSilenceRequest { id: created.id.clone() }).await.unwrap();
    assert!(viewer.list_silences(pb::ListSilencesRequest {}).await.unwrap().into_inner().silences.is_empty());
    assert_code(
        admin.delete_silence(pb::DeleteSilenceRequest { id: created.id }).await,
        Code::NotFound,
        "no silence has the id",
    );

    let set = admin.set_dry_run(pb::SetDryRunRequest { enabled: true }).await.unwrap().into_inner();
    assert_eq!((set.enabled, set.previous), (true, false));
    let dry = viewer.get_dry_run(pb::GetDryRunRequest {}).await.unwrap().into_inner();
    assert_eq!((dry.enabled, dry.source.as_str()), (true, "operator"));
    assert_code(
        admin.approve_action(pb::ApproveActionRequest { approval_id: "abcdef".into() }).await,
        Code::NotFound,
        "no decision awaits approval",
    );
    admin.end_storm(pb::EndStormRequest {}).await.unwrap();

    // Operator actions are in the event log, with who did them.
    let events = viewer
        .list_events(pb::ListEventsRequest { types: vec![pb::EventType::OperatorAction as i32], ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .events;
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(events.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].contains("operator:op-admin silenced") && reasons[2].contains("turned dry-run on"),
        "{reasons:?}"
    );
    assert!(events.iter().all(|e| e.decided_by == "operator:op-admin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_are_refused_with_a_clear_message() {
    let s = TestFleet::start().await;
    let web = s.scope.run("web", &[], SLEEPER);
    known(&s.client, &web).await;
    let mut admin = admin(&s).await;
    let invalid = Code::InvalidArgument;
    let long = "x".repeat(300);

    let list = |f: fn(&mut pb::ListEventsRequest)| {
        let mut request = pb::ListEventsRequest::default();
        f(&mut request);
        request
    };
    assert_code(admin.list_events(list(|r| r.page_size = 5000)).await, invalid, "page_size 5000");
    assert_code(admin.list_events(list(|r| r.types = vec![99])).await, invalid, "99 is not an event type");
    assert_code(admin.list_events(list(|r| r.page_token = "abc".into())).await, invalid, "page_token");
    assert_code(admin.list_events(list(|r| r.outcome = 42)).await, invalid, "not an outcome");
    assert_code(
        admin
            .list_events(list(|r| {
                r.since = Some(prost_types::Timestamp { seconds: 2000, nanos: 0 });
                r.until = Some(prost_types::Timestamp { seconds: 1000, nanos: 0 });
            }))
            .await,
        invalid,
        "since must be before until",
    );
    assert_code(admin.list_events(list(|r| r.node = "x".repeat(300))).await, invalid, "node is longer than 253 bytes");
    let mut watch = admin.clone();
    assert_code(
        watch.watch_events(pb::WatchEventsRequest { after_id: "yesterday".into(), ..Default::default() }).await,
        invalid,
        "after_id",
    );

    let get = |node: &str, container: &str, recent: u32| pb::GetContainerRequest {
        node: node.into(),
        container: container.into(),
        recent_events: recent,
    };
    assert_code(admin.get_container(get("", &web, 0)).await, invalid, "node is required");
    assert_code(admin.get_container(get("host-a", &long, 0)).await, invalid, "container is longer");
    assert_code(admin.get_container(get("host-a", &web, 1000)).await, invalid, "recent_events 1000");
    assert_code(admin.get_container(get("host-a", "nope", 0)).await, Code::NotFound, "no container \"nope\"");

    let silence = |node: &str, seconds: u64, reason: &str| pb::CreateSilenceRequest {
        node: node.into(),
        container: String::new(),
        duration_seconds: seconds,
        reason: reason.into(),
    };
    assert_code(admin.create_silence(silence("", 60, "why")).await, invalid, "node is required");
    assert_code(admin.create_silence(silence("host-a", 0, "why")).await, invalid, "duration_seconds");
    assert_code(admin.create_silence(silence("host-a", 31 * 24 * 3600, "why")).await, invalid, "30 days");
    assert_code(admin.create_silence(silence("host-a", 60, " ")).await, invalid, "reason is required");
    assert_code(admin.create_silence(silence("host-a", 60, &"r".repeat(501))).await, invalid, "500 characters");
    assert_code(admin.create_silence(silence("host-a", 60, "a\u{1b}[31m")).await, invalid, "control characters");
    assert_code(admin.delete_silence(pb::DeleteSilenceRequest { id: "zz".into() }).await, invalid, "hexadecimal");

    assert_code(
        admin.trigger_action(trigger("host-a", &web, pb::Action::None, &[], false)).await,
        invalid,
        "action must be",
    );
    assert_code(admin.trigger_action(trigger("host-a", &web, pb::Action::Exec, &[], false)).await, invalid, "argv");
    let many = vec!["x"; 33];
    assert_code(
        admin.trigger_action(trigger("host-a", &web, pb::Action::Exec, &many, false)).await,
        invalid,
        "at most 32 arguments",
    );
    assert_code(
        admin.trigger_action(trigger("host-a", &web, pb::Action::Restart, &["now"], false)).await,
        invalid,
        "argv is only for exec",
    );
    assert_code(
        admin.trigger_action(trigger("host-b", &web, pb::Action::Restart, &[], false)).await,
        Code::NotFound,
        "node \"host-b\" has reported no container",
    );
    assert_code(
        admin.approve_action(pb::ApproveActionRequest { approval_id: "not-hex".into() }).await,
        invalid,
        "hexadecimal",
    );
    // Nothing of this reached the node: the container was never acted on.
    let events = events_of(&s.client, &web).await.unwrap();
    assert!(events.is_empty(), "{:?}", kinds(&events));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silence_and_runtime_dry_run_hold_actions_back() {
    let s = TestFleet::start().await;
    let mut admin = admin(&s).await;
    let web = s.scope.name("web");
    admin
        .create_silence(pb::CreateSilenceRequest {
            node: "host-a".into(),
            container: web.clone(),
            duration_seconds: 600,
            reason: "migrating <its> @channel data".into(),
        })
        .await
        .unwrap();
    admin.set_dry_run(pb::SetDryRunRequest { enabled: true }).await.unwrap();
    s.scope.run("web", &[], &crash_once(3));
    let api = s.scope.run("api", &[], &crash_again_later(3));

    let silenced = rejection(&s.client, &web, "silenced", Duration::from_secs(10)).await;
    assert!(silenced.reason.contains("migrating <its> @channel data"), "{}", silenced.reason);
    let dry = rejection(&s.client, &api, "dry_run", Duration::from_secs(10)).await;
    assert!(dry.reason.contains("would restart"), "{}", dry.reason);
    // Neither was acted on: both stay exited, and no command reached the node.
    for name in [&web, &api] {
        assert_eq!(s.scope.state(name).status, "exited", "{name}");
        let events = events_of(&s.client, name).await.unwrap();
        assert!(!kinds(&events).contains(&"remediation_complete".to_owned()), "{name}: {:?}", kinds(&events));
    }
    // Dry-run off: the next crash of api (3 s after it is started again) is restarted.
    admin.set_dry_run(pb::SetDryRunRequest { enabled: false }).await.unwrap();
    s.scope.docker(&["start", &api]);
    fleet::remediated(&s.client, &api, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_acts_through_the_policy_or_forces_it_and_get_container_shows_the_budget() {
    let s = TestFleet::start().await;
    let web = s.scope.run("web", &[], SLEEPER);
    known(&s.client, &web).await;
    let mut admin = admin(&s).await;

    // A diagnostic command from the node's allow-list: its output comes back; the budget is untouched.
    let exec = admin
        .trigger_action(trigger("host-a", &web, pb::Action::Exec, &["uname", "-a"], false))
        .await
        .unwrap()
        .into_inner();
    let done = event_of_command(&s.client, &web, &exec.command_id, "remediation_complete").await;
    assert_eq!(done.outcome, pb::Outcome::Success as i32, "{done:?}");
    assert!(done.output.contains("Linux"), "{}", done.output);
    let needed = event_of_command(&s.client, &web, &exec.command_id, "remediation_needed").await;
    assert_eq!(needed.arguments, ["uname", "-a"]);
    assert_eq!((needed.analysis_method.as_str(), needed.decided_by.as_str()), ("operator", "operator:op-admin"));
    // One not on the allow-list is refused by the node.
    let refused = admin
        .trigger_action(trigger("host-a", &web, pb::Action::Exec, &["sh", "-c", "id"], false))
        .await
        .unwrap()
        .into_inner();
    let done = event_of_command(&s.client, &web, &refused.command_id, "remediation_complete").await;
    assert_eq!(done.outcome, pb::Outcome::Refused as i32, "{done:?}");

    // A restart goes through the policy: the first is allowed, the second meets the cooldown.
    let restart = admin.trigger_action(trigger("host-a", &web, pb::Action::Restart, &[], false)).await.unwrap();
    let done = event_of_command(&s.client, &web, &restart.get_ref().command_id, "remediation_complete").await;
    assert_eq!(done.outcome, pb::Outcome::Success as i32, "{done:?}");
    assert_code(
        admin.trigger_action(trigger("host-a", &web, pb::Action::Restart, &[], false)).await,
        Code::FailedPrecondition,
        "cooldown active",
    );
    // Forced, it goes ahead, and still counts.
    let forced = admin.trigger_action(trigger("host-a", &web, pb::Action::Restart, &[], true)).await.unwrap();
    let done = event_of_command(&s.client, &web, &forced.get_ref().command_id, "remediation_complete").await;
    assert_eq!(done.outcome, pb::Outcome::Success as i32, "{done:?}");

    let got = s
        .client
        .clone()
        .get_container(pb::GetContainerRequest { node: "host-a".into(), container: web.clone(), recent_events: 5 })
        .await
        .unwrap()
        .into_inner();
    let budget = got.budget.unwrap();
    assert_eq!(budget.attempts_in_window, 2, "{budget:?}");
    assert!(budget.cooldown_remaining_seconds > 3500, "{budget:?}");
    assert_eq!(budget.circuit, "closed");
    assert!(budget.last_action.is_some());
    assert_eq!(got.recent_events.len(), 5);
    assert_eq!(got.recent_events.last().unwrap().command_id, forced.get_ref().command_id);
    assert!(!got.recent_metrics.is_empty(), "samples every second");

    // The audit log has the arguments.
    let audit = s.client.clone().list_audit(pb::ListAuditRequest::default()).await.unwrap().into_inner().events;
    let restart_audit = audit.iter().find(|e| e.command_id == restart.get_ref().command_id).unwrap();
    assert_eq!(restart_audit.arguments, ["stop_timeout=10s"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_node_is_reported_lost_once_and_recovered_when_it_returns() {
    let mut s = TestFleet::start_with(|c| c.node_lost_after = Duration::from_secs(2), |_| {}).await;
    let client = s.client.clone();
    let liveness = || async {
        let events = client
            .clone()
            .list_events(pb::ListEventsRequest {
                types: vec![pb::EventType::NodeLost as i32, pb::EventType::NodeRecovered as i32],
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner()
            .events;
        Ok::<_, String>(kinds(&events))
    };
    s.node.kill();
    eventually("node_lost", Duration::from_secs(10), || async {
        let kinds = liveness().await?;
        if kinds == ["node_lost"] { Ok(()) } else { Err(format!("{kinds:?}")) }
    })
    .await;
    s.node = TestNode::start(s.node_config());
    eventually("node_recovered", Duration::from_secs(10), || async {
        let kinds = liveness().await?;
        if kinds == ["node_lost", "node_recovered"] { Ok(()) } else { Err(format!("{kinds:?}")) }
    })
    .await;
}
