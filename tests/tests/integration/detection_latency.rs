//! Detection latency on the real Docker engine, run alone (`.config/nextest.toml`) so that no other
//! test's load shares the machine with it: an unhealthy container is reported within a second of Docker's
//! event, with 0 and with 100 idle containers on the host.

use std::time::Duration;

use hemostat_proto::v1 as pb;
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, alerted, events_of};

#[tokio::test(flavor = "multi_thread")]
async fn an_unhealthy_container_is_reported_within_a_second_with_0_and_100_idle_containers() {
    let fleet = TestFleet::start().await;
    let (scope, client) = (&fleet.scope, fleet.client.clone());
    let mut latencies = Vec::new();
    for (round, idle) in [(0, 0), (1, 100)] {
        for i in 0..idle {
            scope.run(&format!("idle{round}-{i}"), &[], "trap 'exit 0' TERM; sleep 86400 & wait");
        }
        let sick = scope.run(
            &format!("sick{round}"),
            &["--health-cmd", "exit 1", "--health-interval", "1s", "--health-retries", "1"],
            "trap 'exit 0' TERM; sleep 86400 & wait",
        );
        let events = eventually("the unhealthy alert", Duration::from_secs(20), || async {
            let events = events_of(&client, &sick).await?;
            if alerted(&events).iter().flatten().any(|(k, _)| k == "unhealthy") {
                Ok(events)
            } else {
                Err(format!("{:?}", alerted(&events)))
            }
        })
        .await;
        let alert = events.iter().find(|e| e.r#type() == pb::EventType::HealthAlert).unwrap();
        let observed = hemostat_proto::timestamp::from_proto(alert.observed_at.as_ref().unwrap());
        let recorded = hemostat_proto::timestamp::from_proto(alert.time.as_ref().unwrap());
        let latency = recorded.duration_since(observed).unwrap_or_default();
        latencies.push((idle, latency));
        assert!(
            latency < Duration::from_secs(1),
            "with {idle} idle containers: {latency:?} from Docker's event to the coordinator"
        );
    }
    eprintln!("unhealthy event to recorded alert: {latencies:?}");
}
