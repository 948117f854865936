//! A set that remembers at most a given number of items, forgetting the oldest first: the command ids the
//! executor ran, the cuts the outbox said to the coordinator.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

/// The most recent items inserted, at most `capacity` of them.
#[derive(Debug)]
pub struct RecentSet<T> {
    capacity: usize,
    items: HashSet<T>,
    order: VecDeque<T>,
}

impl<T: Clone + Eq + Hash> RecentSet<T> {
    /// An empty set keeping at most `capacity` items (at least one).
    pub fn new(capacity: usize) -> Self {
        RecentSet { capacity: capacity.max(1), items: HashSet::new(), order: VecDeque::new() }
    }

    /// Inserts `item`; returns whether it was new. Past the capacity, the oldest item is forgotten.
    pub fn insert(&mut self, item: T) -> bool {
        if !self.items.insert(item.clone()) {
            return false;
        }
        self.order.push_back(item);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.items.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_newest_items_only() {
        let mut recent = RecentSet::new(2);
        assert!(recent.insert(1));
        assert!(!recent.insert(1));
        assert!(recent.insert(2));
        assert!(recent.insert(3), "1 is forgotten");
        assert!(recent.insert(1));
        assert!(!recent.insert(3));
    }
}
