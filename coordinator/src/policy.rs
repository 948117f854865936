//! The safety policy's budget: how often one container may be acted on.
//!
//! Two limits hold per container, checked and recorded together in one atomic step in the state store:
//!
//! | rule | setting | default | rejects with |
//! |---|---|---|---|
//! | cooldown: no action within this long of the previous one | `RESPONDER_COOLDOWN_SECONDS` | 3600 s | `cooldown_active` |
//! | circuit breaker: at most this many attempts in any rolling hour | `RESPONDER_MAX_RETRIES_PER_HOUR` | 3 | `circuit_open` |
//!
//! The breaker is *open* while the last hour holds `max_attempts` attempts and *closed* again as soon as the
//! oldest of them is an hour old. With the default cooldown of an hour the cooldown always rejects first;
//! the breaker bites once the cooldown is set below `window / max_attempts`.
//!
//! [`Budget::evaluate`] is the rule itself. The embedded store runs it inside a write transaction; the Redis
//! store runs the same rule as a Lua script. The conformance suite holds both to the same answers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The limits for one container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Minimum time between two actions.
    pub cooldown: Duration,
    /// Most attempts within `window`.
    pub max_attempts: u32,
    /// The circuit breaker's rolling window (an hour).
    pub window: Duration,
}

impl Budget {
    /// The original's defaults: a one-hour cooldown, three attempts per rolling hour.
    pub const DEFAULT: Budget =
        Budget { cooldown: Duration::from_secs(3600), max_attempts: 3, window: Duration::from_secs(3600) };

    /// Checks `state` at `now_ms` and, when the action may go ahead, records it in `state`.
    pub fn evaluate(&self, state: &mut BudgetState, now_ms: u64) -> BudgetVerdict {
        let cooldown_ms = self.cooldown.as_millis() as u64;
        let window_ms = self.window.as_millis() as u64;
        if let Some(last) = state.last_action_ms
            && now_ms < last.saturating_add(cooldown_ms)
        {
            return BudgetVerdict::CooldownActive { retry_after: Duration::from_millis(last + cooldown_ms - now_ms) };
        }
        state.attempts_ms.retain(|&t| t.saturating_add(window_ms) > now_ms);
        if state.attempts_ms.len() as u64 >= u64::from(self.max_attempts) {
            let oldest = state.attempts_ms.iter().copied().min().unwrap_or(now_ms);
            return BudgetVerdict::CircuitOpen { retry_after: Duration::from_millis(oldest + window_ms - now_ms) };
        }
        state.last_action_ms = Some(now_ms);
        state.attempts_ms.push(now_ms);
        BudgetVerdict::Allowed { attempts_in_window: state.attempts_ms.len() as u32 }
    }
}

/// What the store remembers about one container's budget.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetState {
    /// When the last action was allowed, in Unix milliseconds.
    pub last_action_ms: Option<u64>,
    /// When each attempt within the window was allowed, in Unix milliseconds.
    pub attempts_ms: Vec<u64>,
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
        /// Time until the oldest attempt leaves the window.
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
        assert_eq!(budget.evaluate(&mut state, 0), BudgetVerdict::Allowed { attempts_in_window: 1 });
        assert_eq!(
            budget.evaluate(&mut state, 4 * MIN),
            BudgetVerdict::CooldownActive { retry_after: Duration::from_secs(360) }
        );
        assert_eq!(budget.evaluate(&mut state, 10 * MIN), BudgetVerdict::Allowed { attempts_in_window: 2 });
    }

    #[test]
    fn breaker_opens_at_the_hourly_limit_and_closes_when_the_oldest_attempt_ages_out() {
        let budget = Budget { cooldown: Duration::from_secs(60), ..Budget::DEFAULT };
        let mut state = BudgetState::default();
        for (i, t) in [0, 2 * MIN, 4 * MIN].into_iter().enumerate() {
            assert_eq!(budget.evaluate(&mut state, t), BudgetVerdict::Allowed { attempts_in_window: i as u32 + 1 });
        }
        assert_eq!(
            budget.evaluate(&mut state, 6 * MIN),
            BudgetVerdict::CircuitOpen { retry_after: Duration::from_secs(54 * 60) }
        );
        // A rejection does not count as an attempt.
        assert_eq!(state.attempts_ms.len(), 3);
        assert_eq!(budget.evaluate(&mut state, 60 * MIN), BudgetVerdict::Allowed { attempts_in_window: 3 });
    }
}
