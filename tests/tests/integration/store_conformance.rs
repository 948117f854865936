//! One conformance suite for every state store backend: the embedded store, a real redis-server, and a real
//! Redis Cluster of three masters with a replica each (safety writes waiting for one replica). Every check
//! runs against each; they must give the same answers.

use std::sync::Arc;
use std::time::Duration;

use hemostat_coordinator::analysis::HistoryEntry;
use hemostat_coordinator::analysis::patterns::Sample;
use hemostat_coordinator::container::{Anomaly, AnomalyKind, Severity};
use hemostat_coordinator::events::{AuditRetention, EventKind, EventRecord, EventRetention, KEPT_WHATEVER_THEIR_AGE};
use hemostat_coordinator::policy::{Backoff, Budget, BudgetState, BudgetVerdict, Draw, RestartPolicy};
use hemostat_coordinator::silence::Silence;
use hemostat_coordinator::store::{self, DecisionClock, StateStore, StoreConfig, StormConfig, StormVerdict};
use hemostat_tests::eventually;
use hemostat_tests::redis::RedisServer;
use hemostat_tests::redis_cluster::RedisCluster;

const MIN: u64 = 60_000;
const T0: u64 = 1_800_000_000_000;

/// A backend under test, with whatever keeps it alive.
struct Backend {
    store: Arc<dyn StateStore>,
    config: StoreConfig,
    _redis: Option<RedisServer>,
    _cluster: Option<RedisCluster>,
    _dir: tempfile::TempDir,
}

async fn backends() -> Vec<Backend> {
    hemostat_tests::init();
    let dir = tempfile::tempdir().unwrap();
    let embedded = StoreConfig::Embedded { path: dir.path().join("state.redb") };
    let redis = RedisServer::start();
    let redis_config = StoreConfig::Redis { url: redis.url() };
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 1)).await.unwrap();
    let cluster_config = cluster.store_config();
    vec![
        Backend {
            store: store::open_with_clock(&embedded, DecisionClock::Caller).await.unwrap(),
            config: embedded,
            _redis: None,
            _cluster: None,
            _dir: dir,
        },
        Backend {
            store: store::open_with_clock(&redis_config, DecisionClock::Caller).await.unwrap(),
            config: redis_config,
            _redis: Some(redis),
            _cluster: None,
            _dir: tempfile::tempdir().unwrap(),
        },
        Backend {
            store: store::open_with_clock(&cluster_config, DecisionClock::Caller).await.unwrap(),
            config: cluster_config,
            _redis: None,
            _cluster: Some(cluster),
            _dir: tempfile::tempdir().unwrap(),
        },
    ]
}

fn budget(cooldown_secs: u64, max_attempts: u32) -> Budget {
    Budget {
        cooldown: Duration::from_secs(cooldown_secs),
        max_attempts,
        window: Duration::from_secs(3600),
        policy: RestartPolicy::Cooldown,
    }
}

fn backoff(max_attempts: u32) -> Budget {
    Budget { max_attempts, policy: RestartPolicy::Backoff(Backoff::DEFAULT), ..Budget::DEFAULT }
}

/// The times at which a container that needs an action again the moment it is allowed gets one, from `from`.
async fn crash_loop(s: &Arc<dyn StateStore>, key: &str, budget: &Budget, from: u64, actions: usize) -> Vec<u64> {
    let mut times = Vec::new();
    let mut now = from;
    while times.len() < actions {
        match s.try_begin_action(key, now, budget, Draw::NONE).await.unwrap() {
            BudgetVerdict::Allowed { .. } => times.push(now),
            BudgetVerdict::CooldownActive { retry_after } => now += retry_after.as_millis() as u64,
            other => panic!("{} at {now}: {other:?}", s.backend()),
        }
    }
    times
}

#[tokio::test(flavor = "multi_thread")]
async fn backoff_doubles_from_ten_seconds_to_five_minutes_and_starts_over_after_ten_quiet_minutes() {
    for b in backends().await {
        let s = &b.store;
        let budget = backoff(100);
        let times = crash_loop(s, "n/loop", &budget, T0, 8).await;
        let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]) / 1000).collect();
        assert_eq!(gaps, [10, 20, 40, 80, 160, 300, 300], "{}", s.backend());
        let last = *times.last().unwrap();
        assert_eq!(
            s.try_begin_action("n/loop", last + 299_000, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::CooldownActive { retry_after: Duration::from_secs(1) },
            "{}",
            s.backend()
        );
        let state = s.read_budget("n/loop").await.unwrap();
        assert_eq!((state.streak, state.next_action_ms), (8, Some(last + 300_000)), "{}", s.backend());
        // Ten minutes without an action: the next run starts at the first wait again.
        let quiet = last + 10 * MIN;
        assert!(matches!(
            s.try_begin_action("n/loop", quiet, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::Allowed { .. }
        ));
        let state = s.read_budget("n/loop").await.unwrap();
        assert_eq!((state.streak, state.next_action_ms), (1, Some(quiet + 10_000)), "{}", s.backend());
        // Under nine minutes, the run goes on.
        let times = crash_loop(s, "n/other", &budget, T0, 3).await;
        let soon = times[2] + 9 * MIN;
        s.try_begin_action("n/other", soon, &budget, Draw::NONE).await.unwrap();
        let state = s.read_budget("n/other").await.unwrap();
        assert_eq!((state.streak, state.next_action_ms), (4, Some(soon + 80_000)), "{}", s.backend());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_of_budgets_read_at_once_is_each_budget_as_read_alone_in_the_order_asked() {
    for b in backends().await {
        let s = &b.store;
        let budget = budget(60, 3);
        // Keys of different hash slots on a cluster, one never acted on, one with a failure.
        let keys: Vec<String> = (0..40).map(|i| format!("node-{}/app-{i}", i % 7)).collect();
        for (i, key) in keys.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
            for attempt in 0..(i % 3) as u64 {
                s.try_begin_action(key, T0 + attempt * MIN, &budget, Draw::NONE).await.unwrap();
            }
        }
        s.record_outcome(&keys[1], false, T0 + 5 * MIN, &budget).await.unwrap();
        let mut asked = keys.clone();
        asked.push("never/acted-on".into());
        asked.reverse();
        let together = s.read_budgets(&asked).await.unwrap();
        let mut alone = Vec::new();
        for key in &asked {
            alone.push(s.read_budget(key).await.unwrap());
        }
        assert_eq!(together, alone, "{}", s.backend());
        assert_eq!(together[0], BudgetState::default(), "{}: the key never acted on", s.backend());
        assert_eq!(together.iter().filter(|b| b.attempts_ms.len() == 2).count(), 13, "{}", s.backend());
        assert_eq!(together[asked.len() - 2].consecutive_failures, 1, "{}: keys[1]", s.backend());
        assert_eq!(s.read_budgets(&[]).await.unwrap(), [], "{}", s.backend());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backoff_jitter_is_the_same_in_both_stores_and_within_a_quarter() {
    for b in backends().await {
        let s = &b.store;
        let budget = backoff(100);
        for (i, value) in [-1000, -999, -333, 0, 1, 250, 777, 1000].into_iter().enumerate() {
            let key = format!("n/jitter-{i}");
            s.try_begin_action(&key, T0, &budget, Draw::fixed(value)).await.unwrap();
            // The second action of the run: its wait is 20 s before jitter.
            let first_wait = s.read_budget(&key).await.unwrap().next_action_ms.unwrap() - T0;
            assert_eq!(first_wait, Backoff::DEFAULT.wait_ms(1, Draw::fixed(value)), "{} draw {value}", s.backend());
            let second = T0 + first_wait;
            s.try_begin_action(&key, second, &budget, Draw::fixed(value)).await.unwrap();
            let wait = s.read_budget(&key).await.unwrap().next_action_ms.unwrap() - second;
            assert_eq!(wait, Backoff::DEFAULT.wait_ms(2, Draw::fixed(value)), "{} draw {value}", s.backend());
            assert!((15_000..=25_000).contains(&wait), "{} draw {value}: {wait}", s.backend());
        }
        for i in 0..50 {
            let key = format!("n/random-{i}");
            s.try_begin_action(&key, T0, &budget, Draw::random()).await.unwrap();
            let wait = s.read_budget(&key).await.unwrap().next_action_ms.unwrap() - T0;
            assert!((7_500..=12_500).contains(&wait), "{}: {wait}", s.backend());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn releasing_a_container_forgets_its_budget_and_returns_what_it_held() {
    for b in backends().await {
        let s = &b.store;
        let budget = backoff(3);
        crash_loop(s, "n/held", &budget, T0, 3).await;
        s.record_outcome("n/held", false, T0 + 31_000, &budget).await.unwrap();
        assert!(matches!(
            s.try_begin_action("n/held", T0 + 70_000, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::CircuitOpen { .. }
        ));
        let before = s.release("n/held").await.unwrap();
        assert_eq!(before.attempts_ms.len(), 3, "{}", s.backend());
        assert_eq!((before.consecutive_failures, before.streak), (1, 3), "{}", s.backend());
        assert_eq!(s.read_budget("n/held").await.unwrap(), BudgetState::default(), "{}", s.backend());
        assert_eq!(
            s.try_begin_action("n/held", T0 + 71_000, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::Allowed { attempts_in_window: 1 },
            "{}",
            s.backend()
        );
        assert_eq!(s.release("n/never").await.unwrap(), BudgetState::default());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backoff_is_still_capped_by_the_hourly_attempts() {
    for b in backends().await {
        let s = &b.store;
        let times = crash_loop(s, "n/capped", &backoff(3), T0, 3).await;
        assert_eq!(times, [T0, T0 + 10_000, T0 + 30_000]);
        assert_eq!(
            s.try_begin_action("n/capped", T0 + 70_000, &backoff(3), Draw::NONE).await.unwrap(),
            BudgetVerdict::CircuitOpen { retry_after: Duration::from_secs(3600 - 70) },
            "{}",
            s.backend()
        );
    }
}

/// Two coordinators whose clocks are half an hour apart share one store that decides on its own clock:
/// still one action per cooldown, and the wait they are told is the store's, not their clocks'.
#[tokio::test(flavor = "multi_thread")]
async fn skewed_coordinators_get_one_action_per_cooldown_on_the_stores_clock() {
    hemostat_tests::init();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let redis_config = StoreConfig::Redis { url: redis.url() };
    let embedded = store::open(&StoreConfig::Embedded { path: dir.path().join("state.redb") }).await.unwrap();
    let pairs = [
        (store::open(&redis_config).await.unwrap(), store::open(&redis_config).await.unwrap()),
        (embedded.clone(), embedded),
    ];
    let half_hour = 30 * MIN;
    for (ahead, behind) in pairs {
        let now = hemostat_coordinator::events::unix_ms(std::time::SystemTime::now());
        let budget = budget(600, 3);
        for round in 0..20 {
            let key = format!("n/skewed-{round}");
            let (a, b) = tokio::join!(
                ahead.try_begin_action(&key, now + half_hour, &budget, Draw::NONE),
                behind.try_begin_action(&key, now - half_hour, &budget, Draw::NONE)
            );
            let both = [a.unwrap(), b.unwrap()];
            let winners = both.iter().filter(|v| matches!(v, BudgetVerdict::Allowed { .. })).count();
            assert_eq!(winners, 1, "{} round {round}: {both:?}", ahead.backend());
            // The clock that runs half an hour ahead does not end the cooldown early, nor the one behind late.
            for late in [now + 11 * MIN, now - 20 * MIN] {
                match ahead.try_begin_action(&key, late, &budget, Draw::NONE).await.unwrap() {
                    BudgetVerdict::CooldownActive { retry_after } => assert!(
                        retry_after > Duration::from_secs(500) && retry_after <= Duration::from_secs(600),
                        "{}: {retry_after:?}",
                        ahead.backend()
                    ),
                    other => panic!("{}: allowed inside the cooldown: {other:?}", ahead.backend()),
                }
            }
            let recorded = behind.read_budget(&key).await.unwrap().last_action_ms.unwrap();
            assert!(recorded.abs_diff(now) < MIN, "{}: recorded at the store's time", ahead.backend());
        }
        // Failures are dated on the store's clock too.
        ahead.record_outcome("n/skewed-0", false, now + half_hour, &budget).await.unwrap();
        let failed = behind.read_budget("n/skewed-0").await.unwrap().last_failure_ms.unwrap();
        assert!(failed.abs_diff(now) < MIN, "{}", ahead.backend());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cooldown_rejects_inside_and_allows_after() {
    for b in backends().await {
        let s = &b.store;
        let budget = budget(600, 3);
        assert_eq!(
            s.try_begin_action("n/web", T0, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::Allowed { attempts_in_window: 1 }
        );
        assert_eq!(
            s.try_begin_action("n/web", T0 + 4 * MIN, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::CooldownActive { retry_after: Duration::from_secs(360) },
            "{}",
            s.backend()
        );
        // Another container has its own budget.
        assert_eq!(
            s.try_begin_action("n/db", T0 + 4 * MIN, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::Allowed { attempts_in_window: 1 }
        );
        assert_eq!(
            s.try_begin_action("n/web", T0 + 10 * MIN, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::Allowed { attempts_in_window: 2 }
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn breaker_opens_after_the_hourly_limit_and_closes_as_attempts_age_out() {
    for b in backends().await {
        let s = &b.store;
        let budget = budget(60, 3);
        for (i, t) in [0, 2 * MIN, 4 * MIN].into_iter().enumerate() {
            assert_eq!(
                s.try_begin_action("n/web", T0 + t, &budget, Draw::NONE).await.unwrap(),
                BudgetVerdict::Allowed { attempts_in_window: i as u32 + 1 }
            );
        }
        assert_eq!(
            s.try_begin_action("n/web", T0 + 6 * MIN, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::CircuitOpen { retry_after: Duration::from_secs(54 * 60) },
            "{}",
            s.backend()
        );
        assert_eq!(
            s.try_begin_action("n/web", T0 + 60 * MIN, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::Allowed { attempts_in_window: 3 }
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_decisions_allow_exactly_one_per_cooldown() {
    for b in backends().await {
        let budget = budget(3600, 3);
        let attempts = (0..50).map(|_| {
            let store = b.store.clone();
            tokio::spawn(async move { store.try_begin_action("n/contended", T0, &budget, Draw::NONE).await.unwrap() })
        });
        let verdicts = futures::future::join_all(attempts).await;
        let allowed = verdicts.iter().filter(|v| matches!(v.as_ref().unwrap(), BudgetVerdict::Allowed { .. })).count();
        assert_eq!(allowed, 1, "{}", b.store.backend());
    }
}

/// The default event retention.
const KEEP: EventRetention = EventRetention { max_per_type: 10_000, max_age: Duration::from_secs(7 * 24 * 3600) };

#[tokio::test(flavor = "multi_thread")]
async fn the_event_log_keeps_a_count_per_type_and_drops_what_is_too_old() {
    for b in backends().await {
        let s = &b.store;
        let three = EventRetention { max_per_type: 3, ..KEEP };
        for i in 0..5 {
            s.append_event(&record("web", &format!("alert {i}")), &three).await.unwrap();
            let mut resolved = record("web", &format!("resolved {i}"));
            resolved.kind = EventKind::Resolved;
            if i < 2 {
                s.append_event(&resolved, &three).await.unwrap();
            }
        }
        let kept: Vec<String> = s.read_events(None, 100).await.unwrap().into_iter().map(|e| e.record.reason).collect();
        assert_eq!(
            kept,
            ["resolved 0", "resolved 1", "alert 2", "alert 3", "alert 4"],
            "three alerts kept, the two resolved untouched by the alerts' count ({})",
            s.backend()
        );
        // Events older than the age limit are dropped when the next one is appended, but never a type's
        // newest 100: a retention of 1 ms is what a clock stepped forward past every record looks like.
        for i in 0..=KEPT_WHATEVER_THEIR_AGE {
            let mut old = record("web", &format!("old {i}"));
            old.kind = EventKind::Storm;
            s.append_event(&old, &KEEP).await.unwrap();
        }
        let young = EventRetention { max_per_type: 1000, max_age: Duration::from_millis(1) };
        let before = std::time::Instant::now();
        while before.elapsed() < Duration::from_millis(5) {
            tokio::task::yield_now().await;
        }
        s.append_event(&record("web", "new"), &young).await.unwrap();
        let kept: Vec<String> = s.read_events(None, 500).await.unwrap().into_iter().map(|e| e.record.reason).collect();
        let mut expected: Vec<String> =
            ["resolved 0", "resolved 1", "alert 2", "alert 3", "alert 4"].map(str::to_owned).to_vec();
        expected.extend((1..=KEPT_WHATEVER_THEIR_AGE).map(|i| format!("old {i}")));
        expected.push("new".to_owned());
        assert_eq!(kept, expected, "{}: only the 101st newest storm was old enough to go", s.backend());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn silences_are_kept_until_they_expire_or_are_removed() {
    for b in backends().await {
        let s = &b.store;
        let silence = |id: &str, container: Option<&str>, expires_ms: u64| Silence {
            id: id.into(),
            node: "node-a".into(),
            container: container.map(str::to_owned),
            reason: "maintenance <b>".into(),
            created_by: "operator:alice".into(),
            created_ms: T0,
            expires_ms,
        };
        s.put_silence(&silence("aa", Some("web"), T0 + 10 * MIN)).await.unwrap();
        s.put_silence(&silence("bb", None, T0 + 5 * MIN)).await.unwrap();
        s.put_silence(&silence("cc", Some("db"), T0 + MIN)).await.unwrap();
        let ids = |list: Vec<Silence>| list.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(s.silences(T0).await.unwrap()), ["cc", "bb", "aa"], "soonest to expire first ({})", s.backend());
        assert_eq!(ids(s.silences(T0 + 2 * MIN).await.unwrap()), ["bb", "aa"], "expired dropped");
        assert_eq!(s.remove_silence("aa").await.unwrap().map(|s| s.reason), Some("maintenance <b>".into()));
        assert_eq!(s.remove_silence("aa").await.unwrap(), None, "removed once");
        assert_eq!(ids(s.silences(T0).await.unwrap()), ["bb"], "cc expired and was dropped for good");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_set_at_runtime_is_kept_and_budgets_read_back() {
    for b in backends().await {
        let s = &b.store;
        assert_eq!(s.dry_run_override().await.unwrap(), None, "no operator has set it ({})", s.backend());
        s.set_dry_run_override(true).await.unwrap();
        assert_eq!(s.dry_run_override().await.unwrap(), Some(true));
        s.set_dry_run_override(false).await.unwrap();
        assert_eq!(s.dry_run_override().await.unwrap(), Some(false));

        assert_eq!(s.read_budget("n/none").await.unwrap(), BudgetState::default());
        let budget = budget(60, 3);
        s.try_begin_action("n/web", T0, &budget, Draw::NONE).await.unwrap();
        s.try_begin_action("n/web", T0 + 2 * MIN, &budget, Draw::NONE).await.unwrap();
        s.record_outcome("n/web", false, T0 + 3 * MIN, &budget).await.unwrap();
        let state = s.read_budget("n/web").await.unwrap();
        assert_eq!(state.last_action_ms, Some(T0 + 2 * MIN), "{}", s.backend());
        assert_eq!(state.attempts_ms.len(), 2);
        assert_eq!((state.consecutive_failures, state.last_failure_ms), (1, Some(T0 + 3 * MIN)));
    }
}

fn record(container: &str, reason: &str) -> EventRecord {
    EventRecord::new(EventKind::HealthAlert, "node-a", "id", container, reason)
}

#[tokio::test(flavor = "multi_thread")]
async fn events_come_back_in_order_and_resume_after_an_id() {
    for b in backends().await {
        let s = &b.store;
        let mut ids = Vec::new();
        for i in 0..25 {
            ids.push(s.append_event(&record("web", &format!("event {i}")), &KEEP).await.unwrap());
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase ({})", s.backend());
        let all = s.read_events(None, 100).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.record.reason.clone()).collect::<Vec<_>>(),
            (0..25).map(|i| format!("event {i}")).collect::<Vec<_>>()
        );
        assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
        let page = s.read_events(Some(ids[9]), 5).await.unwrap();
        assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), ids[10..15].to_vec(), "{}", s.backend());
        assert!(s.read_events(Some(ids[24]), 5).await.unwrap().is_empty());
        // Untrusted text goes in and comes out unchanged.
        let hostile = "web\n\u{1b}[31m<script>\"'; DROP";
        let id = s.append_event(&record(hostile, hostile), &KEEP).await.unwrap();
        let back = s.read_events(Some(ids[24]), 5).await.unwrap();
        assert_eq!((back[0].id, back[0].record.container_name.as_str()), (id, hostile));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn state_survives_reopening_the_store() {
    for b in backends().await {
        let budget = budget(3600, 3);
        b.store.try_begin_action("n/web", T0, &budget, Draw::NONE).await.unwrap();
        let id = b.store.append_event(&record("web", "before"), &KEEP).await.unwrap();
        let backend = b.store.backend();
        drop(b.store);
        let reopened = open_retrying(&b.config).await;
        assert!(
            matches!(
                reopened.try_begin_action("n/web", T0 + MIN, &budget, Draw::NONE).await.unwrap(),
                BudgetVerdict::CooldownActive { .. }
            ),
            "{backend}"
        );
        assert_eq!(reopened.read_events(None, 10).await.unwrap().last().unwrap().id, id);
    }
}

async fn open_retrying(config: &StoreConfig) -> Arc<dyn StateStore> {
    for _ in 0..50 {
        if let Ok(store) = store::open_with_clock(config, DecisionClock::Caller).await {
            return store;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot reopen the store");
}

fn history_entry(time_ms: u64) -> HistoryEntry {
    HistoryEntry {
        time_ms,
        anomalies: vec![Anomaly {
            kind: AnomalyKind::HighCpu,
            severity: Severity::High,
            threshold: 85.0,
            actual: 90.0,
        }],
        samples: vec![Sample { at_ms: time_ms, cpu: Some(90.0), memory_used: 1, memory_limit: 2 }],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alert_history_is_bounded_expires_and_survives_reopening() {
    for b in backends().await {
        let ttl = Duration::from_secs(3600);
        for i in 0..12 {
            b.store.append_history("n/web", &history_entry(T0 + i * MIN), 10, ttl).await.unwrap();
        }
        b.store.append_history("n/db", &history_entry(T0), 10, ttl).await.unwrap();
        let now = T0 + 11 * MIN;
        let times = |h: Vec<HistoryEntry>| h.iter().map(|e| (e.time_ms - T0) / MIN).collect::<Vec<_>>();
        assert_eq!(
            times(b.store.history("n/web", now, ttl).await.unwrap()),
            (2..12).collect::<Vec<_>>(),
            "{}",
            b.store.backend()
        );
        // Entries older than the TTL no longer count.
        assert_eq!(times(b.store.history("n/web", T0 + 66 * MIN, ttl).await.unwrap()), (6..12).collect::<Vec<_>>());
        assert!(b.store.history("n/none", now, ttl).await.unwrap().is_empty());
        let backend = b.store.backend();
        drop(b.store);
        let reopened = open_retrying(&b.config).await;
        let kept = reopened.history("n/web", now, ttl).await.unwrap();
        assert_eq!(kept.len(), 10, "{backend}: the history survives a restart");
        assert_eq!(kept[9], history_entry(T0 + 11 * MIN));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_verifications_trip_the_breaker_which_half_opens_and_closes() {
    for b in backends().await {
        let s = &b.store;
        let budget = Budget::DEFAULT;
        let hour = 60 * MIN;
        for i in 0..3 {
            let t = T0 + i * (hour + MIN);
            assert!(
                matches!(
                    s.try_begin_action("n/web", t, &budget, Draw::NONE).await.unwrap(),
                    BudgetVerdict::Allowed { .. }
                ),
                "{}",
                s.backend()
            );
            s.record_outcome("n/web", false, t + MIN, &budget).await.unwrap();
        }
        let last_failure = T0 + 2 * (hour + MIN) + MIN;
        assert_eq!(
            s.try_begin_action("n/web", last_failure + hour - MIN, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::CircuitOpen { retry_after: Duration::from_secs(60) },
            "open ({})",
            s.backend()
        );
        // Half-open: one trial; it fails, and the breaker opens again.
        assert!(matches!(
            s.try_begin_action("n/web", last_failure + hour, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::Allowed { .. }
        ));
        s.record_outcome("n/web", false, last_failure + hour + MIN, &budget).await.unwrap();
        let reopened = last_failure + hour + MIN;
        assert!(matches!(
            s.try_begin_action("n/web", reopened + hour - 1, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::CircuitOpen { .. }
        ));
        // The next trial succeeds: closed.
        assert!(matches!(
            s.try_begin_action("n/web", reopened + hour, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::Allowed { .. }
        ));
        s.record_outcome("n/web", true, reopened + hour + MIN, &budget).await.unwrap();
        assert!(
            matches!(
                s.try_begin_action("n/web", reopened + 2 * hour + MIN, &budget, Draw::NONE).await.unwrap(),
                BudgetVerdict::Allowed { .. }
            ),
            "closed ({})",
            s.backend()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_storm_window_counts_distinct_containers_per_scope_and_starts_once() {
    for b in backends().await {
        let s = &b.store;
        let storm = StormConfig { threshold: 2, window: Duration::from_secs(60) };
        let scopes = |node: &str| vec!["fleet".to_owned(), format!("node:{node}")];
        assert_eq!(s.note_need(&scopes("a"), "a/web", T0, &storm).await.unwrap(), StormVerdict::Calm);
        assert_eq!(
            s.note_need(&scopes("a"), "a/web", T0 + 1000, &storm).await.unwrap(),
            StormVerdict::Calm,
            "the same container twice is one"
        );
        assert_eq!(s.note_need(&scopes("b"), "b/db", T0 + 2000, &storm).await.unwrap(), StormVerdict::Calm);
        let third = s.note_need(&scopes("c"), "c/api", T0 + 3000, &storm).await.unwrap();
        assert_eq!(
            third,
            StormVerdict::Storm {
                scope: "fleet".into(),
                started: true,
                members: vec!["a/web".into(), "b/db".into(), "c/api".into()]
            },
            "{}",
            s.backend()
        );
        assert!(matches!(
            s.note_need(&scopes("c"), "c/cache", T0 + 4000, &storm).await.unwrap(),
            StormVerdict::Storm { started: false, .. }
        ));
        // A minute later with nothing new, the rate has fallen.
        assert_eq!(
            s.note_need(&scopes("d"), "d/web", T0 + 4000 + 61_000, &storm).await.unwrap(),
            StormVerdict::Calm,
            "{}",
            s.backend()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_coordinators_on_one_redis_never_both_act_within_a_cooldown() {
    hemostat_tests::init();
    let redis = RedisServer::start();
    let config = StoreConfig::Redis { url: redis.url() };
    let (first, second) = (
        store::open_with_clock(&config, DecisionClock::Caller).await.unwrap(),
        store::open_with_clock(&config, DecisionClock::Caller).await.unwrap(),
    );
    let budget = Budget::DEFAULT;
    let mut allowed = 0;
    for round in 0..1000u64 {
        let key = format!("host-a/name/web-{}", round % 10);
        // Each round is a new cooldown window of the same ten containers.
        let now = T0 + (round / 10) * 3_600_000 * 2;
        let (a, b) = tokio::join!(
            first.try_begin_action(&key, now, &budget, Draw::NONE),
            second.try_begin_action(&key, now, &budget, Draw::NONE)
        );
        let both = [a.unwrap(), b.unwrap()];
        let winners = both.iter().filter(|v| matches!(v, BudgetVerdict::Allowed { .. })).count();
        assert_eq!(winners, 1, "round {round}: {both:?}");
        allowed += winners;
    }
    assert_eq!(allowed, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_taken_elsewhere_counts_in_the_budget() {
    for b in backends().await {
        let budget = budget(600, 3);
        b.store.record_attempt("n/web", T0, &budget).await.unwrap();
        assert_eq!(
            b.store.try_begin_action("n/web", T0 + MIN, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::CooldownActive { retry_after: Duration::from_secs(540) },
            "{}",
            b.store.backend()
        );
        assert_eq!(
            b.store.try_begin_action("n/web", T0 + 10 * MIN, &budget, Draw::NONE).await.unwrap(),
            BudgetVerdict::Allowed { attempts_in_window: 2 }
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_keeps_records_by_age() {
    let keep = |max_age| AuditRetention { max_age, max_entries: 1000 };
    for b in backends().await {
        let s = &b.store;
        let mut old = Vec::new();
        for i in 0..=KEPT_WHATEVER_THEIR_AGE {
            old.push(
                s.append_audit(&record("web", &format!("old {i}")), &keep(Duration::from_secs(3600))).await.unwrap(),
            );
        }
        // Once the clock has moved on, a short retention drops the old records on the next append, but never
        // the newest 100 (what a clock stepped forward looks like).
        let last = *old.last().unwrap();
        eventually("the clock to move", Duration::from_secs(5), || async {
            let now = hemostat_coordinator::events::unix_ms(std::time::SystemTime::now());
            if now > last.ms + 50 { Ok(()) } else { Err("not yet".to_owned()) }
        })
        .await;
        let new = s.append_audit(&record("web", "new"), &keep(Duration::from_millis(20))).await.unwrap();
        let kept = s.read_audit(None, 500).await.unwrap();
        let mut expected = old[2..].to_vec();
        expected.push(new);
        assert_eq!(kept.iter().map(|e| e.id).collect::<Vec<_>>(), expected, "{}: the newest 100", s.backend());
        assert_eq!(kept.last().unwrap().record.reason, "new");
        assert!(s.read_events(None, 10).await.unwrap().is_empty(), "the audit log is its own");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_keeps_records_by_count_too() {
    let retention = AuditRetention { max_age: Duration::from_secs(3600), max_entries: 3 };
    for b in backends().await {
        let s = &b.store;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(s.append_audit(&record("web", &format!("r{i}")), &retention).await.unwrap());
        }
        let kept = s.read_audit(None, 10).await.unwrap();
        assert_eq!(kept.iter().map(|e| e.id).collect::<Vec<_>>(), ids[2..], "{}: the newest 3", s.backend());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_can_end_a_storm() {
    for b in backends().await {
        let s = &b.store;
        let storm = StormConfig { threshold: 1, window: Duration::from_secs(60) };
        let scopes = vec!["fleet".to_owned(), "node:a".to_owned()];
        let now = hemostat_coordinator::events::unix_ms(std::time::SystemTime::now());
        s.note_need(&scopes, "a/one", now, &storm).await.unwrap();
        assert!(matches!(s.note_need(&scopes, "a/two", now, &storm).await.unwrap(), StormVerdict::Storm { .. }));
        let mut cleared = s.end_storms().await.unwrap();
        cleared.sort();
        assert_eq!(cleared, vec!["fleet".to_owned()], "{}", s.backend());
        assert_eq!(
            s.note_need(&scopes, "a/three", now + 1, &storm).await.unwrap(),
            StormVerdict::Calm,
            "{}",
            s.backend()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fleet_directory_expires_its_entries_and_routed_commands_come_out_in_order() {
    for b in backends().await {
        let s = &b.store;
        let minute = Duration::from_secs(60);
        assert!(s.put_directory_entry("node-a", b"summary a", Some(b"entry a"), minute).await.unwrap());
        assert!(
            s.put_directory_entry("node-b", b"summary b", Some(b"entry b"), Duration::from_millis(50)).await.unwrap()
        );
        assert_eq!(s.directory_entry("node-a").await.unwrap(), Some(b"entry a".to_vec()), "{}", s.backend());
        assert_eq!(s.directory_summary("node-a").await.unwrap(), Some(b"summary a".to_vec()), "{}", s.backend());
        assert_eq!(s.directory_entry("node-c").await.unwrap(), None);
        assert!(
            !s.put_directory_entry("node-c", b"summary c", None, minute).await.unwrap(),
            "{}: a summary alone is refused for a node with no entry, so that it is published whole",
            s.backend()
        );
        assert_eq!(s.directory_summary("node-c").await.unwrap(), None, "{}", s.backend());
        eventually("node-b's entry to expire", Duration::from_secs(5), || async {
            if s.directory_entry("node-b").await.unwrap().is_none() { Ok(()) } else { Err("still there".into()) }
        })
        .await;
        assert_eq!(s.directory_summary("node-b").await.unwrap(), None, "{}: its summary with it", s.backend());
        assert_eq!(s.directory_summaries().await.unwrap(), vec![("node-a".to_owned(), Some(b"summary a".to_vec()))]);
        assert_eq!(s.directory_nodes().await.unwrap(), vec!["node-a".to_owned()], "{}", s.backend());

        // A publication without the entry renews the earlier entry's expiry and replaces the summary only.
        assert!(
            s.put_directory_entry("node-d", b"summary d", Some(b"entry d"), Duration::from_millis(400)).await.unwrap()
        );
        assert!(s.put_directory_entry("node-d", b"summary d2", None, minute).await.unwrap(), "{}", s.backend());
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(s.directory_entry("node-d").await.unwrap(), Some(b"entry d".to_vec()), "{}", s.backend());
        assert_eq!(s.directory_summary("node-d").await.unwrap(), Some(b"summary d2".to_vec()), "{}", s.backend());

        for command in [b"one", b"two"] {
            s.route_command("coord-1", command).await.unwrap();
        }
        assert_eq!(s.take_routed_command("coord-2").await.unwrap(), None, "another coordinator's queue");
        assert_eq!(s.take_routed_command("coord-1").await.unwrap(), Some(b"one".to_vec()));
        assert_eq!(s.take_routed_command("coord-1").await.unwrap(), Some(b"two".to_vec()));
        assert_eq!(s.take_routed_command("coord-1").await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_streams_position_only_grows_and_is_its_own() {
    for b in backends().await {
        let s = &b.store;
        assert_eq!(s.stream_position("node-a", "s1").await.unwrap(), 0, "{}: nothing processed yet", s.backend());
        s.advance_stream("node-a", "s1", 7).await.unwrap();
        s.advance_stream("node-a", "s1", 5).await.unwrap();
        assert_eq!(s.stream_position("node-a", "s1").await.unwrap(), 7, "{}: never lowered", s.backend());
        assert_eq!(s.stream_position("node-b", "s1").await.unwrap(), 0, "{}: another node's", s.backend());
        assert_eq!(s.stream_position("node-a", "s2").await.unwrap(), 0, "{}: a new stream starts at 0", s.backend());
        s.advance_stream("node-a", "s2", 3).await.unwrap();
        assert_eq!(s.stream_position("node-a", "s2").await.unwrap(), 3, "{}", s.backend());
        let backend = s.backend();
        drop(b.store);
        let reopened = open_retrying(&b.config).await;
        assert_eq!(reopened.stream_position("node-a", "s2").await.unwrap(), 3, "{backend}: kept");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_waiting_for_analysis_are_bounded_per_node_finished_once_and_taken_over_whole() {
    for b in backends().await {
        let s = &b.store;
        let name = s.backend();
        assert!(s.put_pending_analysis("node-a", "a1", b"alert 1", 2).await.unwrap(), "{name}");
        assert!(s.put_pending_analysis("node-a", "a2", b"alert 2", 2).await.unwrap(), "{name}");
        assert!(!s.put_pending_analysis("node-a", "a3", b"alert 3", 2).await.unwrap(), "{name}: full at 2");
        assert!(s.put_pending_analysis("node-b", "b1", b"alert b", 2).await.unwrap(), "{name}: per node");
        assert!(s.finish_pending_analysis("node-a", "a1").await.unwrap(), "{name}: was waiting");
        assert!(!s.finish_pending_analysis("node-a", "a1").await.unwrap(), "{name}: finished once");
        let mut taken = s.take_pending_analyses("node-a").await.unwrap();
        taken.sort();
        assert_eq!(taken, vec![("a2".to_owned(), b"alert 2".to_vec())], "{name}");
        assert!(s.take_pending_analyses("node-a").await.unwrap().is_empty(), "{name}: taken once");
        assert!(!s.finish_pending_analysis("node-a", "a2").await.unwrap(), "{name}: taken over, not finished");
        assert_eq!(s.take_pending_analyses("node-b").await.unwrap().len(), 1, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_backend_says_whether_other_coordinators_can_share_it() {
    for b in backends().await {
        let shared = matches!(b.config, StoreConfig::Redis { .. } | StoreConfig::RedisCluster(_));
        assert_eq!(b.store.is_shared(), shared, "{}", b.store.backend());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgraded_coordinator_keeps_the_event_and_audit_logs_written_under_the_old_key_names() {
    hemostat_tests::init();
    let redis = RedisServer::start();
    // What HemoStat wrote before its keys had hash tags: the logs under `hemostat:events`, `hemostat:audit`.
    let old = serde_json::to_string(&record("web", "written before the upgrade")).unwrap();
    let id = redis.cli(&["xadd", "hemostat:events", "*", "e", &old]).trim().to_owned();
    redis.cli(&["rpush", "hemostat:events:by_type:health_alert", &id]);
    redis.cli(&["xadd", "hemostat:audit", "*", "e", &old]);

    let store = store::open(&StoreConfig::Redis { url: redis.url() }).await.unwrap();
    let events = store.read_events(None, 10).await.unwrap();
    assert_eq!(events.iter().map(|e| e.record.reason.as_str()).collect::<Vec<_>>(), ["written before the upgrade"]);
    assert_eq!(events[0].id.to_string(), id);
    assert_eq!(store.read_audit(None, 10).await.unwrap().len(), 1, "the audit log moved too");
    // The per-type index moved with the stream: a retention of one event per type drops the old one.
    let one = EventRetention { max_per_type: 1, ..KEEP };
    store.append_event(&record("web", "after"), &one).await.unwrap();
    let kept: Vec<String> = store.read_events(None, 10).await.unwrap().into_iter().map(|e| e.record.reason).collect();
    assert_eq!(kept, ["after"]);
    assert_eq!(redis.cli(&["exists", "hemostat:events"]).trim(), "0", "nothing left under the old name");
}
