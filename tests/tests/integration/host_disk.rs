//! The host's disk, end to end on the real engine: with `NODE_DISK_MIN_FREE_PERCENT` above what this
//! machine has free (100 %: the disk is always "low"), the real node reports the host's disk as low, the
//! coordinator decides a cleanup of the host, and the node removes the dangling images that no container
//! uses, and nothing else.
//!
//! This test removes every dangling image no container uses on the engine (what `docker image prune`
//! would): nextest runs it alone (`.config/nextest.toml`), so that no other test's image is caught between
//! its creation and its first use.

use std::time::Duration;

use hemostat_proto::v1 as pb;
use hemostat_tests::docker::{Scope, TEST_IMAGE};
use hemostat_tests::eventually;
use hemostat_tests::fleet::{TestFleet, kinds};

fn image_exists(id: &str) -> bool {
    std::process::Command::new("docker").args(["image", "inspect", id]).output().unwrap().status.success()
}

/// An image of no name (dangling) made from a container of `scope`; the container is removed.
fn dangling_image(scope: &Scope, base: &str) -> String {
    let container = scope.run(base, &[], &format!("echo {base} > /marker; sleep 600"));
    let image = scope.docker(&["commit", &container]);
    scope.docker(&["rm", "-f", &container]);
    image
}

async fn host_events(s: &TestFleet) -> Result<Vec<pb::Event>, String> {
    let request = pb::ListEventsRequest { node: "host-a".into(), page_size: 1000, ..Default::default() };
    let events = s.client.clone().list_events(request).await.map_err(|e| e.to_string())?.into_inner().events;
    Ok(events.into_iter().filter(|e| e.container_name.is_empty() && e.container_id.is_empty()).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_low_disk_on_the_host_is_cleaned_of_the_dangling_images_no_container_uses_and_of_nothing_else() {
    hemostat_tests::init();
    // Made before the node starts: its first measurement already finds the disk low.
    let images = Scope::new();
    let unused = dangling_image(&images, "unused");
    let used = dangling_image(&images, "used");
    let user = images.name("user");
    let selector = images.selector();
    images.docker(&["run", "-d", "--name", &user, "--label", &selector, &used, "sleep", "600"]);

    let s = TestFleet::start_with(
        |_| {},
        |n| {
            n.disk.min_free_percent = 100.0;
            n.poll_interval = Duration::from_secs(1);
        },
    )
    .await;
    let events = eventually("the host cleaned", Duration::from_secs(60), || async {
        let events = host_events(&s).await?;
        let done = events.iter().any(|e| e.r#type() == pb::EventType::RemediationComplete);
        if done { Ok(events) } else { Err(format!("{:?}", kinds(&events))) }
    })
    .await;

    let alert = events.iter().find(|e| e.r#type() == pb::EventType::HealthAlert).expect("the host's alert");
    assert!(alert.reason.starts_with("disk low: "), "{}", alert.reason);
    assert!(alert.reason.contains("under the node's NODE_DISK_MIN_FREE_PERCENT 100 %"), "{}", alert.reason);
    let decision = events.iter().find(|e| e.r#type() == pb::EventType::RemediationNeeded).expect("a decision");
    assert_eq!((decision.action(), decision.decided_by.as_str()), (pb::Action::Cleanup, "low_disk"), "{decision:?}");
    let evidence: serde_json::Value = serde_json::from_str(&decision.evidence).unwrap();
    assert_eq!(evidence["host"]["min_free_percent"], 100.0, "{evidence}");
    let done = events.iter().find(|e| e.r#type() == pb::EventType::RemediationComplete).unwrap();
    assert_eq!(done.outcome(), pb::Outcome::Success, "{done:?}");
    assert!(done.reason.contains("host cleanup: removed") && done.reason.contains("never removed"), "{}", done.reason);

    assert!(!image_exists(&unused), "the dangling image no container used is gone");
    assert!(image_exists(&used), "a dangling image a container uses stays");
    assert!(image_exists(TEST_IMAGE), "tagged images stay");
    assert_eq!(images.state(&user).status, "running", "containers are never touched");

    // One cleanup: the host's budget holds the next one to its cooldown, though the disk is still "low".
    let decisions =
        |events: &[pb::Event]| events.iter().filter(|e| e.r#type() == pb::EventType::RemediationNeeded).count();
    assert_eq!(decisions(&events), 1, "{:?}", kinds(&events));
    images.docker(&["rm", "-f", &user]);
    images.docker(&["rmi", &used]);
}
