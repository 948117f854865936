//! The safety policy's budget: how often one container may be acted on.
//!
//! Each container (by its stable identity: Compose project, service and replica, else its name) has one
//! budget, checked and recorded in one atomic step in the state store:
//!
//! | rule | setting | default | rejects with |
//! |---|---|---|---|
//! | cooldown (policy `cooldown`): no action within this long of the previous one | `RESPONDER_COOLDOWN_SECONDS` | 3600 s | `cooldown_active` |
//! | backoff (policy `backoff`): a growing wait between actions, see below | `RESPONDER_BACKOFF_*` | 10 s doubling to 300 s | `cooldown_active` |
//! | circuit breaker: at most this many attempts in any rolling hour | `RESPONDER_MAX_RETRIES_PER_HOUR` | 3 | `circuit_open` |
//! | circuit breaker: that many failed verifications in a row | the same | 3 | `circuit_open` |
//!
//! The circuit breaker's states, precisely:
//! - **closed**: fewer than `max_attempts` attempts in the last hour, and fewer than `max_attempts`
//!   consecutive failed verifications. Actions go ahead (subject to the cooldown).
//! - **open**: either the last hour holds `max_attempts` attempts (open until the oldest is an hour old), or
//!   the last `max_attempts` verified results were all failures and the latest failure is less than an hour
//!   old. Every action is rejected with `circuit_open`.
//! - **half-open**: the failures are still `max_attempts` or more, but the latest is an hour old: one trial
//!   action goes ahead. Its success closes the breaker (the failure count resets); its failure opens it
//!   again for another hour.
//!
//! Which of the first two rules applies is the restart policy, `RESPONDER_RESTART_POLICY`: `cooldown` (the
//! default, the original's fixed cooldown) or `backoff`. Under **backoff** the wait after an action depends
//! on how many actions came before it in the same run of trouble (its *streak*): `initial` after the first,
//! doubling after each next one, capped at `max`, then scaled by a jitter of up to ± `jitter_percent` (the
//! store draws it when it allows the action, from a [`Draw`] the caller passes). A run ends, and the next
//! action's streak starts again at one, once the container has gone `reset_after` without an action (it ran
//! that long). The per-hour attempt limit and the failure breaker apply under both policies.
//!
//! A success resets the failure count. With the default cooldown of an hour the cooldown rejects before the
//! hourly attempt limit can; the failed-verification rule still trips.
//!
//! [`Budget::evaluate`] and [`BudgetState::record_outcome`] are the rules themselves. The embedded store
//! runs them inside write transactions; the Redis store runs the same rules as Lua. The conformance suite
//! holds both to the same answers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The limits for one container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Minimum time between two actions, under the `cooldown` policy.
    pub cooldown: Duration,
    /// Most attempts within `window`, and most consecutive failures before the breaker opens.
    pub max_attempts: u32,
    /// The breaker's rolling window, and how long it stays open after failures (an hour).
    pub window: Duration,
    /// Which rule spaces the actions: the fixed cooldown or a backoff.
    pub policy: RestartPolicy,
}

/// How the actions on one container are spaced (`RESPONDER_RESTART_POLICY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    /// `cooldown`: the fixed [`Budget::cooldown`] after every action (the original's rule, the default).
    Cooldown,
    /// `backoff`: a wait that grows with each action of a run (see the module docs).
    Backoff(Backoff),
}

impl RestartPolicy {
    /// `cooldown` or `backoff`.
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::Cooldown => "cooldown",
            RestartPolicy::Backoff(_) => "backoff",
        }
    }
}

/// The backoff policy's curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first action of a run (`RESPONDER_BACKOFF_INITIAL_SECONDS`, 10 s).
    pub initial: Duration,
    /// The longest wait (`RESPONDER_BACKOFF_MAX_SECONDS`, 300 s).
    pub max: Duration,
    /// A container this long without an action starts a new run (`RESPONDER_BACKOFF_RESET_SECONDS`, 600 s).
    pub reset_after: Duration,
    /// Each wait is scaled by up to ± this many percent (`RESPONDER_BACKOFF_JITTER_PERCENT`, 25).
    pub jitter_percent: u32,
}

impl Backoff {
    /// 10 s doubling to 5 minutes, a new run after 10 minutes, 25 % jitter.
    pub const DEFAULT: Backoff = Backoff {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(300),
        reset_after: Duration::from_secs(600),
        jitter_percent: 25,
    };

    /// The wait after the `streak`-th action of a run (1 for the first), with the jitter `draw`, in ms:
    /// `min(initial × 2^(streak-1), max)`, then `× (1 + jitter_percent/100 × draw/1000)`, rounded down.
    /// Integer arithmetic, so that the Redis script (Lua) computes exactly the same.
    pub fn wait_ms(&self, streak: u32, draw: Draw) -> u64 {
        let initial = self.initial.as_millis() as i64;
        let max = self.max.as_millis() as i64;
        let doubled = initial.saturating_mul(1i64 << streak.saturating_sub(1).min(30));
        let capped = doubled.min(max);
        let jitter = (capped * i64::from(self.jitter_percent) * i64::from(draw.0)).div_euclid(100_000);
        (capped + jitter).max(0) as u64
    }
}

/// A uniform random draw in [-1000, 1000] that sets one action's jitter (in thousandths of the largest
/// jitter). Drawn by the caller, so that tests can fix it; the store keeps the wait it produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw(i32);

impl Draw {
    /// No jitter.
    pub const NONE: Draw = Draw(0);

    /// A fresh random draw.
    pub fn random() -> Draw {
        Draw(rand::random_range(-1000..=1000))
    }

    /// The draw `value`, clamped to [-1000, 1000].
    pub fn fixed(value: i32) -> Draw {
        Draw(value.clamp(-1000, 1000))
    }

    /// Its value, in [-1000, 1000].
    pub fn value(self) -> i32 {
        self.0
    }
}

impl Budget {
    /// The original's defaults: a one-hour cooldown, three attempts per rolling hour.
    pub const DEFAULT: Budget = Budget {
        cooldown: Duration::from_secs(3600),
        max_attempts: 3,
        window: Duration::from_secs(3600),
        policy: RestartPolicy::Cooldown,
    };

    /// When the next action may go ahead by the spacing rule (cooldown or backoff), if one was taken.
    fn next_allowed_ms(&self, state: &BudgetState) -> Option<u64> {
        match self.policy {
            RestartPolicy::Cooldown => {
                state.last_action_ms.map(|last| last.saturating_add(self.cooldown.as_millis() as u64))
            }
            RestartPolicy::Backoff(_) => state.next_action_ms,
        }
    }

    /// Checks `state` at `now_ms` and, when the action may go ahead, records it in `state` (under backoff
    /// with the jitter `draw`).
    pub fn evaluate(&self, state: &mut BudgetState, now_ms: u64, draw: Draw) -> BudgetVerdict {
        let window_ms = self.window.as_millis() as u64;
        if let Some(next) = self.next_allowed_ms(state)
            && now_ms < next
        {
            return BudgetVerdict::CooldownActive { retry_after: Duration::from_millis(next - now_ms) };
        }
        if state.consecutive_failures >= self.max_attempts
            && let Some(failed) = state.last_failure_ms
            && now_ms < failed.saturating_add(window_ms)
        {
            return BudgetVerdict::CircuitOpen { retry_after: Duration::from_millis(failed + window_ms - now_ms) };
        }
        state.attempts_ms.retain(|&t| t.saturating_add(window_ms) > now_ms);
        if state.attempts_ms.len() as u64 >= u64::from(self.max_attempts) {
            let oldest = state.attempts_ms.iter().copied().min().unwrap_or(now_ms);
            return BudgetVerdict::CircuitOpen { retry_after: Duration::from_millis(oldest + window_ms - now_ms) };
        }
        if let RestartPolicy::Backoff(backoff) = self.policy {
            let run_goes_on = state
                .last_action_ms
                .is_some_and(|last| now_ms < last.saturating_add(backoff.reset_after.as_millis() as u64));
            state.streak = if run_goes_on { state.streak + 1 } else { 1 };
            state.next_action_ms = Some(now_ms + backoff.wait_ms(state.streak, draw));
        }
        state.last_action_ms = Some(now_ms);
        state.attempts_ms.push(now_ms);
        BudgetVerdict::Allowed { attempts_in_window: state.attempts_ms.len() as u32 }
    }

    /// What `state` means at `now_ms`, for people: the cooldown left, the attempts in the window, and the
    /// circuit breaker's state by the rules above. Changes nothing.
    pub fn status(&self, state: &BudgetState, now_ms: u64) -> BudgetStatus {
        let window_ms = self.window.as_millis() as u64;
        let cooldown_remaining = self
            .next_allowed_ms(state)
            .map(|next| next.saturating_sub(now_ms))
            .map_or(Duration::ZERO, Duration::from_millis);
        let attempts: Vec<u64> =
            state.attempts_ms.iter().copied().filter(|&t| t.saturating_add(window_ms) > now_ms).collect();
        let tripped_until = state.last_failure_ms.map(|failed| failed.saturating_add(window_ms));
        let circuit = if state.consecutive_failures >= self.max_attempts {
            match tripped_until {
                Some(until) if now_ms < until => Circuit::Open { retry_after: Duration::from_millis(until - now_ms) },
                _ => Circuit::HalfOpen,
            }
        } else if attempts.len() as u64 >= u64::from(self.max_attempts) {
            let oldest = attempts.iter().copied().min().unwrap_or(now_ms);
            Circuit::Open { retry_after: Duration::from_millis(oldest + window_ms - now_ms) }
        } else {
            Circuit::Closed
        };
        BudgetStatus {
            cooldown_remaining,
            attempts_in_window: attempts.len() as u32,
            consecutive_failures: state.consecutive_failures,
            circuit,
            last_action_ms: state.last_action_ms,
        }
    }
}

/// A container's budget as people see it (`GetContainer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetStatus {
    /// Time until the cooldown ends; zero when none runs.
    pub cooldown_remaining: Duration,
    /// Attempts within the rolling window.
    pub attempts_in_window: u32,
    /// Failed verifications in a row.
    pub consecutive_failures: u32,
    /// The circuit breaker.
    pub circuit: Circuit,
    /// When the container was last acted on, Unix milliseconds.
    pub last_action_ms: Option<u64>,
}

impl BudgetStatus {
    /// Whole seconds until the cooldown ends, rounded up (0 when none runs): what operators are shown.
    pub fn cooldown_seconds(&self) -> u64 {
        self.cooldown_remaining.as_secs_f64().ceil() as u64
    }

    /// Whole seconds until an open breaker lets a trial through (at least 1 while open; 0 otherwise).
    pub fn circuit_retry_seconds(&self) -> u64 {
        match self.circuit {
            Circuit::Open { retry_after } => retry_after.as_secs().max(1),
            Circuit::Closed | Circuit::HalfOpen => 0,
        }
    }
}

/// The circuit breaker's state (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    /// Actions go ahead (subject to the cooldown).
    Closed,
    /// Every action is rejected for this much longer.
    Open {
        /// Time until a trial (half-open) or closing.
        retry_after: Duration,
    },
    /// One trial action may go ahead.
    HalfOpen,
}

impl Circuit {
    /// `closed`, `open` or `half_open`.
    pub fn name(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open { .. } => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
}

/// What the store remembers about one container's budget.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetState {
    /// When the last action was allowed, in Unix milliseconds.
    pub last_action_ms: Option<u64>,
    /// When each attempt within the window was allowed, in Unix milliseconds.
    pub attempts_ms: Vec<u64>,
    /// Failed verifications since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// When the latest of them was reported.
    #[serde(default)]
    pub last_failure_ms: Option<u64>,
    /// Under backoff: actions in the current run, the last one included.
    #[serde(default)]
    pub streak: u32,
    /// Under backoff: when the next action may go ahead, in Unix milliseconds.
    #[serde(default)]
    pub next_action_ms: Option<u64>,
}

impl BudgetState {
    /// Records an action that already happened (a node's local policy acted while cut off), whatever the
    /// budget said: the next decisions count it.
    pub fn record_attempt(&mut self, at_ms: u64) {
        self.last_action_ms = Some(self.last_action_ms.map_or(at_ms, |last| last.max(at_ms)));
        self.attempts_ms.push(at_ms);
    }

    /// Records a verified result: a success closes the breaker, a failure counts towards opening it.
    pub fn record_outcome(&mut self, success: bool, now_ms: u64) {
        if success {
            self.consecutive_failures = 0;
        } else {
            self.consecutive_failures += 1;
            self.last_failure_ms = Some(now_ms);
        }
    }
}

/// The answer of a budget check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetVerdict {
    /// The action may go ahead; it has been recorded.
    Allowed {
        /// Attempts in the rolling window, this one included.
        attempts_in_window: u32,
    },
    /// Rejected: the cooldown runs for this much longer.
    CooldownActive {
        /// Time until the cooldown ends.
        retry_after: Duration,
    },
    /// Rejected: the breaker is open for this much longer.
    CircuitOpen {
        /// Time until it half-opens or closes.
        retry_after: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn cooldown_rejects_until_it_has_run_out() {
        let budget = Budget { cooldown: Duration::from_secs(600), ..Budget::DEFAULT };
        let mut state = BudgetState::default();
        assert_eq!(budget.evaluate(&mut state, 0, Draw::NONE), BudgetVerdict::Allowed { attempts_in_window: 1 });
        assert_eq!(
            budget.evaluate(&mut state, 4 * MIN, Draw::NONE),
            BudgetVerdict::CooldownActive { retry_after: Duration::from_secs(360) }
        );
        assert_eq!(budget.evaluate(&mut state, 10 * MIN, Draw::NONE), BudgetVerdict::Allowed { attempts_in_window: 2 });
    }

    #[test]
    fn breaker_opens_at_the_hourly_limit_and_closes_when_the_oldest_attempt_ages_out() {
        let budget = Budget { cooldown: Duration::from_secs(60), ..Budget::DEFAULT };
        let mut state = BudgetState::default();
        for (i, t) in [0, 2 * MIN, 4 * MIN].into_iter().enumerate() {
            assert_eq!(
                budget.evaluate(&mut state, t, Draw::NONE),
                BudgetVerdict::Allowed { attempts_in_window: i as u32 + 1 }
            );
        }
        assert_eq!(
            budget.evaluate(&mut state, 6 * MIN, Draw::NONE),
            BudgetVerdict::CircuitOpen { retry_after: Duration::from_secs(54 * 60) }
        );
        // A rejection does not count as an attempt.
        assert_eq!(state.attempts_ms.len(), 3);
        assert_eq!(budget.evaluate(&mut state, 60 * MIN, Draw::NONE), BudgetVerdict::Allowed { attempts_in_window: 3 });
    }

    #[test]
    fn failed_verifications_trip_the_breaker_even_with_the_default_cooldown_then_it_half_opens_and_closes() {
        let budget = Budget::DEFAULT;
        let mut state = BudgetState::default();
        let hour = 60 * MIN;
        // Three actions an hour and a bit apart (the cooldown allows them), each failing verification.
        for i in 0..3 {
            let t = i * (hour + MIN);
            assert!(matches!(budget.evaluate(&mut state, t, Draw::NONE), BudgetVerdict::Allowed { .. }), "attempt {i}");
            state.record_outcome(false, t + MIN);
        }
        let last_failure = 2 * (hour + MIN) + MIN;
        // Open: the cooldown has run out, the breaker has not.
        assert_eq!(
            budget.evaluate(&mut state, last_failure + hour - MIN, Draw::NONE),
            BudgetVerdict::CircuitOpen { retry_after: Duration::from_secs(60) }
        );
        // Half-open: one trial an hour after the last failure; it fails: open again.
        assert!(matches!(budget.evaluate(&mut state, last_failure + hour, Draw::NONE), BudgetVerdict::Allowed { .. }));
        state.record_outcome(false, last_failure + hour + MIN);
        let reopened = last_failure + hour + MIN;
        assert!(matches!(
            budget.evaluate(&mut state, reopened + hour - 1, Draw::NONE),
            BudgetVerdict::CircuitOpen { .. }
        ));
        // The next trial succeeds: closed, the count starts over.
        assert!(matches!(budget.evaluate(&mut state, reopened + hour, Draw::NONE), BudgetVerdict::Allowed { .. }));
        state.record_outcome(true, reopened + hour + MIN);
        assert_eq!(state.consecutive_failures, 0);
        assert!(matches!(
            budget.evaluate(&mut state, reopened + 2 * hour + MIN, Draw::NONE),
            BudgetVerdict::Allowed { .. }
        ));
    }

    #[test]
    fn status_reads_the_cooldown_and_the_breaker_without_changing_them() {
        let budget = Budget { cooldown: Duration::from_secs(60), ..Budget::DEFAULT };
        let mut state = BudgetState::default();
        assert_eq!(budget.status(&state, 0).circuit, Circuit::Closed);
        for t in [0, 2 * MIN, 4 * MIN] {
            budget.evaluate(&mut state, t, Draw::NONE);
        }
        let status = budget.status(&state, 4 * MIN + 30_000);
        assert_eq!(status.cooldown_remaining, Duration::from_secs(30));
        assert_eq!(status.attempts_in_window, 3);
        assert_eq!(status.circuit, Circuit::Open { retry_after: Duration::from_secs(55 * 60 + 30) });
        assert_eq!(budget.status(&state, 61 * MIN).circuit, Circuit::Closed);
        for i in 0..3 {
            state.record_outcome(false, 5 * MIN + i);
        }
        assert!(matches!(budget.status(&state, 30 * MIN).circuit, Circuit::Open { .. }), "failures trip it");
        assert_eq!(budget.status(&state, 5 * MIN + 2 + 60 * MIN).circuit, Circuit::HalfOpen);
        assert_eq!(state.attempts_ms.len(), 3, "status changes nothing");
    }

    fn backoff(max_attempts: u32) -> Budget {
        Budget { max_attempts, policy: RestartPolicy::Backoff(Backoff::DEFAULT), ..Budget::DEFAULT }
    }

    /// The times at which a container that needs an action again the moment it is allowed gets one.
    fn crash_loop(budget: &Budget, state: &mut BudgetState, from: u64, actions: usize) -> Vec<u64> {
        let mut times = Vec::new();
        let mut now = from;
        while times.len() < actions {
            match budget.evaluate(state, now, Draw::NONE) {
                BudgetVerdict::Allowed { .. } => times.push(now),
                BudgetVerdict::CooldownActive { retry_after } => now += retry_after.as_millis() as u64,
                BudgetVerdict::CircuitOpen { retry_after } => panic!("breaker opened at {now}: {retry_after:?}"),
            }
        }
        times
    }

    #[test]
    fn backoff_waits_ten_seconds_then_doubles_up_to_five_minutes() {
        let budget = backoff(100);
        let mut state = BudgetState::default();
        let times = crash_loop(&budget, &mut state, 0, 8);
        let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]) / 1000).collect();
        assert_eq!(gaps, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(state.streak, 8);
        // One second before the wait is over: rejected, with the exact time left.
        let last = *times.last().unwrap();
        assert_eq!(
            budget.evaluate(&mut state, last + 299_000, Draw::NONE),
            BudgetVerdict::CooldownActive { retry_after: Duration::from_secs(1) }
        );
    }

    #[test]
    fn backoff_starts_over_after_ten_minutes_without_an_action() {
        let budget = backoff(100);
        let mut state = BudgetState::default();
        let times = crash_loop(&budget, &mut state, 0, 4);
        let last = *times.last().unwrap();
        // Nine minutes and a bit later the run goes on: the next wait is the fifth (160 s).
        let mut going_on = state.clone();
        assert!(matches!(budget.evaluate(&mut going_on, last + 9 * MIN, Draw::NONE), BudgetVerdict::Allowed { .. }));
        assert_eq!((going_on.streak, going_on.next_action_ms), (5, Some(last + 9 * MIN + 160_000)));
        // Ten minutes later it has started over: the next wait is the first again.
        assert!(matches!(budget.evaluate(&mut state, last + 10 * MIN, Draw::NONE), BudgetVerdict::Allowed { .. }));
        assert_eq!((state.streak, state.next_action_ms), (1, Some(last + 10 * MIN + 10_000)));
    }

    #[test]
    fn backoff_jitter_stays_within_a_quarter_either_way() {
        let curve = Backoff::DEFAULT;
        for streak in 1..12 {
            let plain = curve.wait_ms(streak, Draw::NONE);
            let (low, high) = (plain * 3 / 4, plain * 5 / 4);
            assert_eq!(curve.wait_ms(streak, Draw::fixed(-1000)), low, "streak {streak}");
            assert_eq!(curve.wait_ms(streak, Draw::fixed(1000)), high, "streak {streak}");
            for value in (-1000..=1000).step_by(7) {
                let wait = curve.wait_ms(streak, Draw::fixed(value));
                assert!((low..=high).contains(&wait), "streak {streak}, draw {value}: {wait}");
            }
        }
        assert_eq!(Draw::fixed(5000).value(), 1000, "draws are clamped");
        let draws: std::collections::HashSet<i32> = (0..200).map(|_| Draw::random().value()).collect();
        assert!(draws.len() > 100 && draws.iter().all(|d| (-1000..=1000).contains(d)), "{draws:?}");
    }

    #[test]
    fn backoff_is_still_capped_by_the_hourly_attempts_and_the_failure_breaker() {
        let budget = backoff(3);
        let mut state = BudgetState::default();
        let times = crash_loop(&budget, &mut state, 0, 3);
        assert_eq!(times, [0, 10_000, 30_000]);
        assert_eq!(
            budget.evaluate(&mut state, 70_000, Draw::NONE),
            BudgetVerdict::CircuitOpen { retry_after: Duration::from_secs(3600 - 70) }
        );
        let mut failing = BudgetState::default();
        for t in [0, 10_000, 30_000] {
            assert!(matches!(backoff(10).evaluate(&mut failing, t, Draw::NONE), BudgetVerdict::Allowed { .. }));
            failing.record_outcome(false, t + 1000);
        }
        assert!(matches!(backoff(3).evaluate(&mut failing, 11 * MIN, Draw::NONE), BudgetVerdict::CircuitOpen { .. }));
    }

    #[test]
    fn status_under_backoff_shows_the_wait_left() {
        let budget = backoff(10);
        let mut state = BudgetState::default();
        budget.evaluate(&mut state, 0, Draw::fixed(1000));
        assert_eq!(budget.status(&state, 2_000).cooldown_remaining, Duration::from_millis(10_500));
    }

    #[test]
    fn status_figures_round_the_cooldown_up_and_give_an_open_breaker_at_least_a_second() {
        let status = |cooldown_ms: u64, circuit| BudgetStatus {
            cooldown_remaining: Duration::from_millis(cooldown_ms),
            attempts_in_window: 0,
            consecutive_failures: 0,
            circuit,
            last_action_ms: None,
        };
        assert_eq!(status(0, Circuit::Closed).cooldown_seconds(), 0);
        assert_eq!(status(1, Circuit::Closed).cooldown_seconds(), 1);
        assert_eq!(status(59_001, Circuit::Closed).cooldown_seconds(), 60);
        assert_eq!(status(0, Circuit::Closed).circuit_retry_seconds(), 0);
        assert_eq!(status(0, Circuit::HalfOpen).circuit_retry_seconds(), 0);
        let open = |ms| Circuit::Open { retry_after: Duration::from_millis(ms) };
        assert_eq!(status(0, open(200)).circuit_retry_seconds(), 1);
        assert_eq!(status(0, open(90_500)).circuit_retry_seconds(), 90);
    }
}
