//! The bounded queue between [`Notifier::notify`](super::Notifier::notify) and a sink's sending task: pushing
//! never waits; when it is full the oldest notification is dropped (the newest say the most about now).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

/// A bounded first-in, first-out queue with one consumer that drops its oldest item when full.
pub struct DropOldestQueue<T> {
    state: Mutex<QueueState<T>>,
    capacity: usize,
    ready: Notify,
}

struct QueueState<T> {
    items: VecDeque<T>,
    closed: bool,
}

impl<T> DropOldestQueue<T> {
    /// An empty queue holding at most `capacity` items (at least one).
    pub fn new(capacity: usize) -> Self {
        DropOldestQueue {
            state: Mutex::new(QueueState { items: VecDeque::new(), closed: false }),
            capacity: capacity.max(1),
            ready: Notify::new(),
        }
    }

    /// Adds `item` at the back without waiting; returns the oldest item if it had to be dropped to make room.
    /// After [`close`](Self::close) the item itself is returned, unqueued.
    pub fn push(&self, item: T) -> Option<T> {
        let dropped = {
            let mut state = self.state.lock().expect("queue lock");
            if state.closed {
                return Some(item);
            }
            let dropped = if state.items.len() >= self.capacity { state.items.pop_front() } else { None };
            state.items.push_back(item);
            dropped
        };
        self.ready.notify_one();
        dropped
    }

    /// Takes the oldest item, waiting for one; `None` once the queue is closed and empty. Cancel-safe: an item
    /// is taken only when this returns it.
    pub async fn pop(&self) -> Option<T> {
        loop {
            {
                let mut state = self.state.lock().expect("queue lock");
                if let Some(item) = state.items.pop_front() {
                    return Some(item);
                }
                if state.closed {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Refuses new items; the consumer still gets those queued, then `None`.
    pub fn close(&self) {
        self.state.lock().expect("queue lock").closed = true;
        self.ready.notify_one();
    }

    /// How many items wait.
    pub fn len(&self) -> usize {
        self.state.lock().expect("queue lock").items.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_its_oldest_and_keeps_order() {
        let queue = DropOldestQueue::new(3);
        assert_eq!(queue.push(1), None);
        assert_eq!(queue.push(2), None);
        assert_eq!(queue.push(3), None);
        assert_eq!(queue.push(4), Some(1), "the oldest goes");
        assert_eq!(queue.push(5), Some(2));
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.pop().await, Some(3));
        assert_eq!(queue.pop().await, Some(4));
        assert_eq!(queue.pop().await, Some(5));
        assert!(queue.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn pop_waits_for_a_push_and_ends_after_close() {
        let queue = Arc::new(DropOldestQueue::new(10));
        let consumer = tokio::spawn({
            let queue = queue.clone();
            async move {
                let mut got = Vec::new();
                while let Some(item) = queue.pop().await {
                    got.push(item);
                }
                got
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        queue.push("a");
        tokio::time::sleep(Duration::from_secs(1)).await;
        queue.push("b");
        queue.close();
        assert_eq!(queue.push("late"), Some("late"), "a closed queue refuses");
        assert_eq!(consumer.await.unwrap(), ["a", "b"], "what was queued before close is still delivered");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pop_cancelled_by_a_timeout_takes_nothing() {
        let queue = DropOldestQueue::new(10);
        assert!(tokio::time::timeout(Duration::from_secs(1), queue.pop()).await.is_err());
        queue.push(7);
        assert_eq!(tokio::time::timeout(Duration::from_secs(1), queue.pop()).await, Ok(Some(7)));
    }
}
