//! The recent decisions, by command id, so a result or rejection can say how it was decided.
//!
//! A `remediation_complete` record carries the outcome but not the confidence or method of the decision
//! (`remediation_needed`, same command id) that led to it. The notifier sees every event, so it remembers
//! the last few thousand decisions; older ones are forgotten first, and a result whose decision is forgotten
//! (or was made by another coordinator) is notified without those fields.

use std::collections::{HashMap, VecDeque};

use crate::events::{EventKind, EventRecord};

use super::notification::Decision;

/// How many decisions are remembered.
pub const REMEMBERED_DECISIONS: usize = 4096;

/// Decisions by command id, oldest forgotten first.
pub struct DecisionMemory {
    capacity: usize,
    by_command: HashMap<String, Decision>,
    order: VecDeque<String>,
}

impl DecisionMemory {
    /// Remembers up to `capacity` decisions.
    pub fn new(capacity: usize) -> Self {
        DecisionMemory { capacity: capacity.max(1), by_command: HashMap::new(), order: VecDeque::new() }
    }

    /// Remembers the decision of a `remediation_needed` record that has a command id; ignores other records.
    pub fn remember(&mut self, record: &EventRecord) {
        let (EventKind::RemediationNeeded, Some(command_id), Some(decision)) =
            (record.kind, &record.command_id, Decision::of(record))
        else {
            return;
        };
        if self.by_command.insert(command_id.clone(), decision).is_none() {
            self.order.push_back(command_id.clone());
        }
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.by_command.remove(&oldest);
            }
        }
    }

    /// The decision behind `record`'s command, if remembered.
    pub fn recall(&self, record: &EventRecord) -> Option<Decision> {
        self.by_command.get(record.command_id.as_deref()?).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Outcome;

    fn decided(command_id: &str, confidence: f64) -> EventRecord {
        EventRecord {
            command_id: Some(command_id.into()),
            confidence: Some(confidence),
            analysis_method: Some("rules".into()),
            decided_by: Some("unexpected_exit".into()),
            ..EventRecord::new(EventKind::RemediationNeeded, "host-a", "c1", "web", "crashed")
        }
    }

    fn completed(command_id: &str) -> EventRecord {
        EventRecord {
            command_id: Some(command_id.into()),
            outcome: Some(Outcome::Success),
            ..EventRecord::new(EventKind::RemediationComplete, "host-a", "c1", "web", "restarted")
        }
    }

    #[test]
    fn a_result_recalls_its_decision_and_the_oldest_are_forgotten_first() {
        let mut memory = DecisionMemory::new(2);
        memory.remember(&decided("a", 0.9));
        memory.remember(&completed("a"));
        assert_eq!(memory.recall(&completed("a")).and_then(|d| d.confidence), Some(0.9));
        assert_eq!(memory.recall(&completed("a")).unwrap().analysis_method.as_deref(), Some("rules"));
        memory.remember(&decided("b", 0.8));
        memory.remember(&decided("c", 0.7));
        assert_eq!(memory.recall(&completed("a")), None, "forgotten");
        assert!(memory.recall(&completed("b")).is_some() && memory.recall(&completed("c")).is_some());
        assert_eq!(memory.recall(&EventRecord { command_id: None, ..completed("b") }), None);
    }
}
