//! A map that forgets its oldest entries beyond a capacity: for what is keyed by what nodes send (commands
//! never answered, rejection episodes, alerts awaiting a decision), so that nothing a node does, or never
//! does, can grow the coordinator for ever.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A map of at most `capacity` entries; inserting beyond it forgets the entry inserted longest ago.
pub struct BoundedMap<K, V> {
    entries: HashMap<K, (V, u64)>,
    /// Keys in insertion order, with the insertion each was (stale once the key was removed or inserted
    /// again), for finding the oldest.
    order: VecDeque<(K, u64)>,
    next: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// An empty map of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        BoundedMap { entries: HashMap::new(), order: VecDeque::new(), next: 0, capacity: capacity.max(1) }
    }

    /// Inserts (or replaces) `key`; returns the entry forgotten to make room, if one was.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        self.next += 1;
        self.entries.insert(key.clone(), (value, self.next));
        self.order.push_back((key, self.next));
        let mut forgotten = None;
        if self.entries.len() > self.capacity {
            while let Some((oldest, insertion)) = self.order.pop_front() {
                if self.entries.get(&oldest).is_some_and(|(_, at)| *at == insertion) {
                    forgotten = self.entries.remove(&oldest).map(|(value, _)| (oldest, value));
                    break;
                }
            }
        }
        // Stale positions are dropped as they reach the front; this keeps them from piling up meanwhile.
        if self.order.len() > 2 * self.capacity + 16 {
            let entries = &self.entries;
            self.order.retain(|(key, insertion)| entries.get(key).is_some_and(|(_, at)| at == insertion));
        }
        forgotten
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.entries.remove(key).map(|(value, _)| value)
    }

    /// The value of `key`.
    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(key, (value, _))| (key, value))
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_its_capacity_it_forgets_the_oldest_insertion() {
        let mut map = BoundedMap::new(2);
        assert_eq!(map.insert("a", 1), None);
        assert_eq!(map.insert("b", 2), None);
        assert_eq!(map.insert("a", 3), None, "replacing is no growth");
        assert_eq!(map.insert("c", 4), Some(("b", 2)), "b is now the oldest insertion");
        assert_eq!((map.get(&"a"), map.get(&"c"), map.len()), (Some(&3), Some(&4), 2));
        assert_eq!(map.remove(&"a"), Some(3));
        assert_eq!(map.insert("d", 5), None);
    }

    #[test]
    fn a_flood_of_keys_holds_it_to_its_capacity_and_its_order_queue_too() {
        let mut map = BoundedMap::new(100);
        for i in 0..100_000u32 {
            map.insert(i % 150, i);
            if i % 3 == 0 {
                map.remove(&(i % 150));
            }
        }
        assert!(map.len() <= 100);
        assert!(map.order.len() <= 2 * 100 + 16, "{}", map.order.len());
    }
}
