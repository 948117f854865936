//! The Redis Cluster store through a failover: a master killed (SIGKILL) while two coordinators' stores decide
//! and record under load, its replica promoted, the old master back as its replica. What the store
//! acknowledged survives: no cooldown lost, no action allowed twice, no event lost; and a write no replica got
//! is not acknowledged (so while a promoted master has no replica yet, its shard's decisions wait).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hemostat_coordinator::events::{EventKind, EventRecord, EventRetention};
use hemostat_coordinator::policy::{Budget, BudgetVerdict, Draw, RestartPolicy};
use hemostat_coordinator::store::cluster_slots::key_slot;
use hemostat_coordinator::store::redis::RedisStore;
use hemostat_coordinator::store::{self, BudgetStore, DecisionClock, StateStore, StoreConfig, StoreError};
use hemostat_tests::eventually;
use hemostat_tests::redis_cluster::RedisCluster;
use tokio::sync::Mutex;

const T0: u64 = 1_800_000_000_000;
const HOUR: u64 = 3_600_000;
/// Round `r` decides at `T0 + r * ROUND`: a new cooldown for every container each round.
const ROUND: u64 = 2 * HOUR;
const KEEP: EventRetention = EventRetention { max_per_type: 100_000, max_age: Duration::from_secs(365 * 24 * 3600) };

/// What the load saw: for each (container, round), the verdicts the two coordinators were given; and every
/// event the store acknowledged, by its reason.
#[derive(Default)]
struct Seen {
    verdicts: BTreeMap<(String, u64), Vec<Result<BudgetVerdict, String>>>,
    events: BTreeMap<String, hemostat_coordinator::events::EventId>,
    failed_events: usize,
    /// The newest refusal, to say what the store answered when a deadline passes.
    last_error: Option<String>,
}

/// How long one store call may take before the load counts it as unanswered (the client's own retries
/// through a failover take a few seconds; a call that never returns would stall every later round).
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// `call`, or an error if it has not answered within [`CALL_DEADLINE`].
async fn answered<T>(call: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(CALL_DEADLINE, call).await.unwrap_or_else(|_| {
        Err(StoreError::Unavailable { backend: "redis", message: format!("no answer within {CALL_DEADLINE:?}") })
    })
}

/// `count` container keys whose budget keys live on the master `port`, and `count` elsewhere.
fn containers(cluster: &RedisCluster, port: u16, count: usize) -> Vec<String> {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for i in 0.. {
        let key = format!("host-a/name/web-{i}");
        let here = cluster.master_of(&format!("hemostat:{{{key}}}:budget")) == port;
        match (here, on.len() < count, off.len() < count) {
            (true, true, _) => on.push(key),
            (false, _, true) => off.push(key),
            _ => {}
        }
        if on.len() == count && off.len() == count {
            break;
        }
    }
    on.into_iter().chain(off).collect()
}

/// One round: both coordinators decide for every container at once; each allowed action is recorded as an
/// event.
async fn round(stores: &[Arc<dyn StateStore>; 2], containers: &[String], r: u64, seen: &Mutex<Seen>) {
    let budget = Budget {
        cooldown: Duration::from_secs(3600),
        max_attempts: 1000,
        window: Duration::from_secs(3600),
        policy: RestartPolicy::Cooldown,
    };
    let decisions = containers.iter().flat_map(|key| {
        stores.iter().enumerate().map(move |(who, store)| async move {
            let verdict = answered(store.try_begin_action(key, T0 + r * ROUND, &budget, Draw::NONE)).await;
            let mut event = None;
            if let Ok(BudgetVerdict::Allowed { .. }) = verdict {
                let reason = format!("{key} round {r} by {who}");
                let record = EventRecord::new(EventKind::RemediationComplete, "host-a", "id", key, &reason);
                event = Some((reason, answered(store.append_event(&record, &KEEP)).await));
            }
            (key, verdict, event)
        })
    });
    for (key, verdict, event) in futures::future::join_all(decisions).await {
        let mut seen = seen.lock().await;
        if let Err(e) = &verdict {
            seen.last_error = Some(format!("{key} round {r}: {e}"));
        }
        seen.verdicts.entry((key.clone(), r)).or_default().push(verdict.map_err(|e| e.to_string()));
        match event {
            Some((reason, Ok(id))) => {
                seen.events.insert(reason, id);
            }
            Some((reason, Err(e))) => {
                seen.failed_events += 1;
                seen.last_error = Some(format!("event {reason}: {e}"));
            }
            None => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_killed_under_load_loses_no_cooldown_no_event_and_allows_nothing_twice() {
    hemostat_tests::init();
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 1)).await.unwrap();
    let config = cluster.store_config();
    // The victim holds the event log and half the containers' budgets.
    let victim = cluster.master_of("hemostat:{events}");
    let containers = Arc::new(containers(&cluster, victim, 10));
    let stores: Arc<[Arc<dyn StateStore>; 2]> = Arc::new([
        store::open_with_clock(&config, DecisionClock::Caller).await.unwrap(),
        store::open_with_clock(&config, DecisionClock::Caller).await.unwrap(),
    ]);

    let seen = Arc::new(Mutex::new(Seen::default()));
    let rounds = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (stores, containers, seen, rounds, stop) =
            (stores.clone(), containers.clone(), seen.clone(), rounds.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                let r = rounds.load(Ordering::SeqCst);
                round(&stores, &containers, r, &seen).await;
                rounds.store(r + 1, Ordering::SeqCst);
            }
        }
    });
    let rounds_done = |at_least: u64| {
        let (rounds, seen) = (rounds.clone(), seen.clone());
        move || {
            let (rounds, seen) = (rounds.clone(), seen.clone());
            async move {
                let done = rounds.load(Ordering::SeqCst);
                if done >= at_least {
                    Ok(())
                } else {
                    let last_error = seen.lock().await.last_error.clone();
                    Err(format!("{done} of {at_least} rounds; the store's last refusal: {last_error:?}"))
                }
            }
        }
    };
    eventually("the load to run", Duration::from_secs(30), rounds_done(5)).await;

    // SIGKILL the master in the middle of the load; its replica takes over.
    let killed_at = rounds.load(Ordering::SeqCst);
    let slots = cluster.slots_of(victim);
    let cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        cluster.kill(victim);
        cluster.wait_for_failover(victim, &slots, Duration::from_secs(60));
        cluster
    })
    .await
    .unwrap();
    assert_ne!(cluster.master_of("hemostat:{events}"), victim, "the replica serves the event log now");
    // The promoted master has no replica: its shard's safety writes are refused until the old master is back
    // as its replica.
    let promoted_at = rounds.load(Ordering::SeqCst);
    let cluster = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        cluster.resume(victim);
        cluster.wait_until_ok(Duration::from_secs(30));
        cluster.wait_for_replicas(3, Duration::from_secs(60));
        cluster
    })
    .await
    .unwrap();
    // The load goes on through the new master.
    let after = rounds.load(Ordering::SeqCst) + 5;
    eventually("rounds after the failover", Duration::from_secs(60), rounds_done(after)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();

    let seen = seen.lock().await;
    let total = rounds.load(Ordering::SeqCst);
    // No action twice: at most one coordinator was allowed for each container in each round, and in the rounds
    // after the failover exactly one was (the store answers again).
    let mut last_allowed: BTreeMap<&str, u64> = BTreeMap::new();
    let mut errors = 0;
    for ((key, r), verdicts) in &seen.verdicts {
        let allowed = verdicts.iter().filter(|v| matches!(v, Ok(BudgetVerdict::Allowed { .. }))).count();
        assert!(allowed <= 1, "{key} round {r}: allowed twice: {verdicts:?}");
        errors += verdicts.iter().filter(|v| v.is_err()).count();
        if *r >= after {
            assert_eq!(allowed, 1, "{key} round {r} after the failover: {verdicts:?}");
        }
        if allowed == 1 {
            last_allowed.insert(key, *r);
        }
    }
    // No cooldown lost: each container's last acknowledged action still holds its cooldown on the new master.
    for (key, r) in &last_allowed {
        let budget = Budget { cooldown: Duration::from_secs(3600), ..Budget::DEFAULT };
        for store in stores.iter() {
            // A refused (timed-out) decision is no verdict: ask until the store answers.
            let verdict = eventually("the store to answer after the failover", Duration::from_secs(30), || async {
                answered(store.try_begin_action(key, T0 + r * ROUND + 60_000, &budget, Draw::NONE))
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            assert!(matches!(verdict, BudgetVerdict::CooldownActive { .. }), "{key} round {r}: {verdict:?}");
        }
    }
    // No event lost: every event the store acknowledged is in the log, in the order of its ids.
    let mut logged = Vec::new();
    loop {
        let page = stores[0].read_events(logged.last().map(|(id, _)| *id), 1000).await.unwrap();
        if page.is_empty() {
            break;
        }
        logged.extend(page.into_iter().map(|e| (e.id, e.record.reason)));
    }
    let logged_reasons: BTreeSet<&str> = logged.iter().map(|(_, reason)| reason.as_str()).collect();
    let lost: Vec<&String> = seen.events.keys().filter(|reason| !logged_reasons.contains(reason.as_str())).collect();
    assert!(lost.is_empty(), "events acknowledged and lost: {lost:?}");
    for (reason, id) in &seen.events {
        assert!(logged.contains(&(*id, reason.clone())), "{reason} under its id {id}");
    }
    eprintln!(
        "{total} rounds of {} containers × 2 coordinators, master killed at round {killed_at}, replica promoted \
         by round {promoted_at}; {errors} decisions and {} events refused until the shard had a replica again; \
         {} events kept",
        containers.len(),
        seen.failed_events,
        seen.events.len()
    );
    assert!(killed_at <= promoted_at && promoted_at < after && total >= after);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_its_replica_did_not_get_is_not_acknowledged() {
    hemostat_tests::init();
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 1)).await.unwrap();
    let store = store::open_with_clock(&cluster.store_config(), DecisionClock::Caller).await.unwrap();
    let key = "host-a/name/db";
    let master = cluster.master_of(&format!("hemostat:{{{key}}}:budget"));
    let replica = cluster.replica_of(master);
    let budget = Budget::DEFAULT;

    // The replica frozen, the master would accept the decision, but it could be lost with the master: it is
    // refused, and nothing is acted on.
    cluster.freeze(replica);
    let verdict = store.try_begin_action(key, T0, &budget, Draw::NONE).await;
    cluster.unfreeze(replica);
    match verdict {
        Err(StoreError::Unavailable { message, .. }) => {
            assert!(message.contains("0 of the 1 replicas"), "{message}")
        }
        other => panic!("a decision no replica has was acknowledged: {other:?}"),
    }
    // Once the replica is back, decisions are acknowledged again (the refused one did reach the master, so the
    // container's cooldown runs: the safe side).
    eventually("the replica to acknowledge again", Duration::from_secs(10), || async {
        match store.record_outcome(key, true, T0, &budget).await {
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    assert!(matches!(
        store.try_begin_action(key, T0 + 60_000, &budget, Draw::NONE).await.unwrap(),
        BudgetVerdict::CooldownActive { .. }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_of_budgets_is_one_pipeline_per_master_and_is_read_right_through_a_failover() {
    hemostat_tests::init();
    let mut cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 1)).await.unwrap();
    let StoreConfig::RedisCluster(settings) = cluster.store_config() else { unreachable!("a cluster's config") };
    let store = RedisStore::connect_cluster(&settings).await.unwrap();

    // Our slot of a key is the cluster's own, hostile keys included (a page's reads are grouped by it).
    for key in
        ["hemostat:{n/app}:budget", "", "{", "}{", "{}", "a{}b{c}", "a{{b}}", "x{é ☃}y", "hemostat:{a}b}:attempts"]
    {
        let theirs: u16 = cluster.cli(&["cluster", "keyslot", key]).trim().parse().unwrap();
        assert_eq!(key_slot(key.as_bytes()), theirs, "{key:?}");
    }

    let budget = Budget::DEFAULT;
    let keys: Vec<String> = (0..300).map(|i| format!("node-{}/app-{i}", i % 11)).collect();
    for (i, key) in keys.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        store.try_begin_action(key, T0 + i as u64, &budget, Draw::NONE).await.unwrap();
    }
    let mut alone = Vec::new();
    for key in &keys {
        alone.push(store.read_budget(key).await.unwrap());
    }
    assert_eq!(alone.iter().filter(|b| b.last_action_ms.is_some()).count(), 150);
    assert_eq!(store.read_budgets(&keys).await.unwrap(), alone);
    assert_eq!(store.read_budgets(&keys).await.unwrap(), alone);
    assert_eq!(store.grouped_read_fallbacks(), 0, "a cluster at rest: one pipeline per master, every time");

    // A master dies and its replica takes its slots over: the map the grouped read kept is stale. The read
    // still answers every budget as it is (key by key, through the client, which follows the cluster), then
    // reads the map again and groups once more.
    let victim = cluster.master_of(&format!("hemostat:{{{}}}:budget", keys[0]));
    let slots = cluster.slots_of(victim);
    cluster.kill(victim);
    tokio::task::block_in_place(|| cluster.wait_for_failover(victim, &slots, Duration::from_secs(30)));
    eventually("the budgets to read again after the failover", Duration::from_secs(30), || async {
        store.read_budgets(&keys).await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(store.read_budgets(&keys).await.unwrap(), alone, "every budget, as before the failover");
    let fallbacks = store.grouped_read_fallbacks();
    assert!(fallbacks >= 1, "the stale map was noticed");
    assert_eq!(store.read_budgets(&keys).await.unwrap(), alone);
    assert_eq!(store.grouped_read_fallbacks(), fallbacks, "grouped by master again, on the new map");
}
