//! Limits on the commands a node runs, whatever its coordinator sends: at most `NODE_COMMANDS_PER_MINUTE`
//! ([`DEFAULT_PER_MINUTE`]) accepted in any rolling minute, and at most `NODE_COMMAND_CONCURRENCY`
//! ([`DEFAULT_CONCURRENCY`]) running at once (a restart runs until its verification ends). A command past
//! either limit is refused at once, with the limit in its detail, and counted
//! (`hemostat_node_commands_limited_total`): a compromised or looping coordinator cannot make the node do
//! more than this.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Commands accepted per rolling minute by default.
pub const DEFAULT_PER_MINUTE: u32 = 60;
/// Commands running at once by default.
pub const DEFAULT_CONCURRENCY: u32 = 10;

const MINUTE: Duration = Duration::from_secs(60);

/// Why a command was refused by a limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitRefusal {
    /// Too many commands within the last minute.
    #[error(
        "this node accepts at most {per_minute} commands a minute (NODE_COMMANDS_PER_MINUTE); the next is accepted in {}s",
        retry_in.as_secs().max(1)
    )]
    Rate {
        /// The limit.
        per_minute: u32,
        /// When a command will be accepted again.
        retry_in: Duration,
    },
    /// Too many commands running.
    #[error("this node runs at most {max} commands at once (NODE_COMMAND_CONCURRENCY); {max} are running")]
    Concurrency {
        /// The limit.
        max: u32,
    },
}

impl LimitRefusal {
    /// The limit's name, as in metrics: `rate` or `concurrency`.
    pub fn limit(&self) -> &'static str {
        match self {
            LimitRefusal::Rate { .. } => "rate",
            LimitRefusal::Concurrency { .. } => "concurrency",
        }
    }
}

/// The gate every command passes before it runs.
#[derive(Debug)]
pub struct CommandGate {
    per_minute: u32,
    concurrency: u32,
    state: Arc<Mutex<GateState>>,
}

#[derive(Debug, Default)]
struct GateState {
    accepted: VecDeque<Instant>,
    running: u32,
}

/// A running command's place under the concurrency limit, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    state: Arc<Mutex<GateState>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.state.lock().expect("gate lock").running -= 1;
    }
}

impl CommandGate {
    /// A gate accepting `per_minute` commands in any rolling minute and `concurrency` at once (each at
    /// least 1).
    pub fn new(per_minute: u32, concurrency: u32) -> Self {
        CommandGate { per_minute: per_minute.max(1), concurrency: concurrency.max(1), state: Default::default() }
    }

    /// Admits a command at `now`, or says which limit refuses it. A refused command does not count.
    pub fn admit(&self, now: Instant) -> Result<Permit, LimitRefusal> {
        let mut state = self.state.lock().expect("gate lock");
        while state.accepted.front().is_some_and(|at| now.saturating_duration_since(*at) >= MINUTE) {
            state.accepted.pop_front();
        }
        if state.running >= self.concurrency {
            return Err(LimitRefusal::Concurrency { max: self.concurrency });
        }
        if state.accepted.len() >= self.per_minute as usize {
            let oldest = *state.accepted.front().expect("not empty");
            return Err(LimitRefusal::Rate {
                per_minute: self.per_minute,
                retry_in: MINUTE.saturating_sub(now.saturating_duration_since(oldest)),
            });
        }
        state.accepted.push_back(now);
        state.running += 1;
        Ok(Permit { state: self.state.clone() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_rate_in_any_rolling_minute() {
        let gate = CommandGate::new(3, 100);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        for at in [t0, t0 + s(10), t0 + s(20)] {
            drop(gate.admit(at).expect("within the rate"));
        }
        let refused = gate.admit(t0 + s(30)).unwrap_err();
        assert_eq!(refused, LimitRefusal::Rate { per_minute: 3, retry_in: s(30) });
        assert!(refused.to_string().contains("at most 3 commands a minute (NODE_COMMANDS_PER_MINUTE)"), "{refused}");
        assert!(refused.to_string().contains("accepted in 30s"), "{refused}");
        assert!(gate.admit(t0 + s(59)).is_err(), "a refused command does not extend the window, nor pass");
        drop(gate.admit(t0 + s(60)).expect("the first one left the window"));
        assert!(gate.admit(t0 + s(61)).is_err());
        drop(gate.admit(t0 + s(70)).expect("the second one left the window"));
    }

    #[test]
    fn at_most_the_concurrency_at_once_and_a_finished_command_frees_its_place() {
        let gate = CommandGate::new(100, 2);
        let now = Instant::now();
        let first = gate.admit(now).unwrap();
        let _second = gate.admit(now).unwrap();
        let refused = gate.admit(now).unwrap_err();
        assert_eq!(refused.limit(), "concurrency");
        assert!(refused.to_string().contains("at most 2 commands at once (NODE_COMMAND_CONCURRENCY)"), "{refused}");
        drop(first);
        assert!(gate.admit(now).is_ok(), "the first one finished");
    }
}
