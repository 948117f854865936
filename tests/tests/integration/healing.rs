//! End to end on the real Docker engine: a node and a coordinator (real mutual TLS, real state store) heal
//! a crashed container, leave alone what an operator stopped, and respect the cooldown across restarts.

use std::time::{Duration, Instant};

use hemostat_coordinator::store::StoreConfig;
use hemostat_proto::v1 as pb;
use hemostat_tests::docker::{Scope, crash_again_later, crash_once};
use hemostat_tests::eventually;
use hemostat_tests::fleet::{self, TestFleet, events_of, kinds, node_connected};
use hemostat_tests::redis::RedisServer;

/// Waits until the container is running again after having started at `before`.
async fn restarted(scope: &Scope, name: &str, before: &str, deadline: Duration) {
    eventually(&format!("{name} running again"), deadline, || async {
        let state = scope.state(name);
        if state.status == "running" && state.started_at != before { Ok(()) } else { Err(format!("{state:?}")) }
    })
    .await
}

/// Waits until the container's events have exactly these types.
async fn events_are(client: &fleet::FleetClient, name: &str, expected: &[&str]) -> Vec<pb::Event> {
    eventually(&format!("events {expected:?} for {name}"), Duration::from_secs(10), || async {
        let events = events_of(client, name).await?;
        if kinds(&events) == expected { Ok(events) } else { Err(format!("{:?}", kinds(&events))) }
    })
    .await
}

async fn setup(store: Option<StoreConfig>) -> TestFleet {
    TestFleet::start_with(
        |config| {
            if let Some(store) = store {
                config.store = store;
            }
        },
        |_| {},
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_is_restarted_within_seconds_and_a_second_crash_inside_the_cooldown_is_rejected() {
    let s = setup(None).await;
    // Crashes one second after it starts, and again three seconds after HemoStat restarts it.
    let web = s.scope.run("web", &[], &crash_again_later(1));
    let first_start = s.scope.state(&web).started_at;
    let crashed_at = Instant::now();
    restarted(&s.scope, &web, &first_start, Duration::from_secs(6)).await;
    eprintln!("crash to running again: {:?} (includes the 1 s the container runs)", crashed_at.elapsed());

    let events = events_are(
        &s.client,
        &web,
        &[
            "health_alert",
            "remediation_needed",
            "remediation_complete",
            "health_alert",
            "remediation_needed",
            "rejected",
        ],
    )
    .await;
    assert_eq!(events[0].exit_code, 1);
    assert_eq!(events[0].node, "host-a");
    assert_eq!(events[1].action(), pb::Action::Restart);
    assert_eq!(events[1].analysis_method, "rules");
    assert!((events[1].confidence - 0.9).abs() < 1e-9);
    assert_eq!(events[2].outcome(), pb::Outcome::Success);
    assert_eq!(events[2].command_id, events[1].command_id);
    assert_eq!(events[5].rejection, "cooldown_active");
    assert!(events[5].reason.contains("cooldown"), "{}", events[5].reason);
    let ids: Vec<&String> = events.iter().map(|e| &e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "events are in order: {ids:?}");
    // The rejected crash stays down.
    assert_eq!(s.scope.state(&web).status, "exited");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_stop_a_clean_exit_and_an_opted_out_container_are_left_alone() {
    let s = setup(None).await;
    let stopped = s.scope.run("stopped", &[], "trap 'exit 143' TERM; while true; do sleep 1; done");
    let clean = s.scope.run("clean", &[], "sleep 1; exit 0");
    let opted_out = s.scope.run("optout", &["--label", "hemostat.enable=false"], "sleep 1; exit 1");
    eventually("the stopped container to be running", Duration::from_secs(5), || async {
        if s.scope.state(&stopped).status == "running" { Ok(()) } else { Err("not yet".into()) }
    })
    .await;
    s.scope.docker(&["stop", &stopped]);
    for name in [&clean, &opted_out] {
        eventually(&format!("{name} exited"), Duration::from_secs(5), || async {
            if s.scope.state(name).status == "exited" { Ok(()) } else { Err("running".into()) }
        })
        .await;
    }
    // The node reports in order: once a later crash is handled, the earlier exits have been too.
    let sentinel = s.scope.run("sentinel", &[], &crash_once(3));
    events_are(&s.client, &sentinel, &["health_alert", "remediation_needed", "remediation_complete"]).await;
    for name in [&stopped, &clean, &opted_out] {
        assert_eq!(s.scope.state(name).status, "exited", "{name} was left stopped");
        assert_eq!(events_of(&s.client, name).await.unwrap(), vec![], "no events for {name}");
    }
}

async fn cooldown_survives_a_coordinator_restart(store: Option<StoreConfig>) {
    let mut s = setup(store).await;
    let a = s.scope.run("a", &[], &crash_again_later(1));
    let a_start = s.scope.state(&a).started_at;
    restarted(&s.scope, &a, &a_start, Duration::from_secs(6)).await;
    events_are(
        &s.client,
        &a,
        &[
            "health_alert",
            "remediation_needed",
            "remediation_complete",
            "health_alert",
            "remediation_needed",
            "rejected",
        ],
    )
    .await;

    s.coordinator.kill();
    s.coordinator.restart();
    s.reconnect().await;
    let client = s.client.clone();
    eventually("the node to reconnect by itself", Duration::from_secs(10), || node_connected(&client, "host-a")).await;

    // The node re-sent its containers after reconnecting, so the new coordinator knows them...
    eventually("the containers listed again", Duration::from_secs(10), || fleet::container(&client, &a)).await;
    // ...a new crash is handled...
    let b = s.scope.run("b", &[], &crash_once(2));
    let b_start = s.scope.state(&b).started_at;
    restarted(&s.scope, &b, &b_start, Duration::from_secs(6)).await;
    // ...and the cooldown recorded before the restart still holds.
    s.scope.docker(&["start", &a]);
    events_are(
        &client,
        &a,
        &[
            "health_alert",
            "remediation_needed",
            "remediation_complete",
            "health_alert",
            "remediation_needed",
            "rejected",
            "health_alert",
            "remediation_needed",
            "rejected",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_coordinator_restart_nodes_reconnect_and_the_cooldown_holds_embedded() {
    cooldown_survives_a_coordinator_restart(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_coordinator_restart_nodes_reconnect_and_the_cooldown_holds_redis() {
    let redis = RedisServer::start();
    cooldown_survives_a_coordinator_restart(Some(StoreConfig::Redis { url: redis.url() })).await;
}

/// The next event of a watch, within a deadline.
async fn next(stream: &mut tonic::Streaming<pb::WatchEventsResponse>) -> pb::Event {
    let message = tokio::time::timeout(Duration::from_secs(20), stream.message()).await.expect("an event in time");
    message.expect("the stream stays up").expect("an event").event.expect("with its event")
}

#[tokio::test(flavor = "multi_thread")]
async fn watching_events_resumes_after_a_disconnect_without_missing_or_repeating_any() {
    let s = setup(None).await;
    let first = s.scope.run("first", &[], &crash_once(1));
    events_are(&s.client, &first, &["health_alert", "remediation_needed", "remediation_complete"]).await;
    let watch = |after: String| {
        let client = s.client.clone();
        async move {
            let request = pb::WatchEventsRequest { after_id: after, ..Default::default() };
            client.clone().watch_events(request).await.unwrap().into_inner()
        }
    };
    // Read two events, then drop the stream (a disconnect).
    let mut stream = watch(String::new()).await;
    let (a, b) = (next(&mut stream).await, next(&mut stream).await);
    drop(stream);
    // More happens while nobody watches.
    let second = s.scope.run("second", &[], &crash_once(2));
    events_are(&s.client, &second, &["health_alert", "remediation_needed", "remediation_complete"]).await;
    // Resume after the last one received: the rest, once each, in order, then live events as they come.
    let mut stream = watch(b.id.clone()).await;
    let mut seen = vec![a.id.clone(), b.id.clone()];
    let all = events_of(&s.client, &first).await.unwrap().len() + events_of(&s.client, &second).await.unwrap().len();
    while seen.len() < all {
        seen.push(next(&mut stream).await.id);
    }
    let third = s.scope.run("third", &[], &crash_once(3));
    let live = next(&mut stream).await;
    assert_eq!(live.container_name, third, "a live event arrives without polling by the client");
    seen.push(live.id);
    let mut sorted = seen.clone();
    sorted.sort_by_key(|id| id.parse::<hemostat_coordinator::events::EventId>().unwrap());
    sorted.dedup();
    assert_eq!(seen, sorted, "in order, none repeated");
}
