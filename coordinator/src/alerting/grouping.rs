//! Grouping bursts: notifications that arrive within `ALERT_GROUP_WINDOW_SECONDS` of each other are taken
//! together; one or two are sent as their own messages, three or more as one message listing them.

use std::time::Duration;

use tokio::time::Instant;

use super::queue::DropOldestQueue;

/// The most notifications one burst message lists; more make another burst.
pub const MAX_GROUP: usize = 50;

/// A group never waits longer than this many windows for its last member, so a steady trickle cannot hold
/// the first notification back for ever.
const MAX_SPAN_IN_WINDOWS: u32 = 5;

/// How a group goes out.
#[derive(Clone, Debug, PartialEq)]
pub enum Message<T> {
    /// One notification, on its own.
    Single(T),
    /// Three or more that arrived together, listed in one message.
    Burst(Vec<T>),
}

impl<T> Message<T> {
    /// The notifications it carries, in order.
    pub fn items(&self) -> &[T] {
        match self {
            Message::Single(item) => std::slice::from_ref(item),
            Message::Burst(items) => items,
        }
    }
}

/// The grouping rule: one or two notifications are sent each on its own, three or more as one burst.
pub fn into_messages<T>(group: Vec<T>) -> Vec<Message<T>> {
    if group.len() >= 3 { vec![Message::Burst(group)] } else { group.into_iter().map(Message::Single).collect() }
}

/// Waits for the next notification, then takes those arriving within `window` of the previous one (at most
/// [`MAX_GROUP`], over at most five windows). `None` once the queue is closed and empty. A zero window takes
/// only what is already queued.
pub async fn next_group<T>(queue: &DropOldestQueue<T>, window: Duration) -> Option<Vec<T>> {
    let first = queue.pop().await?;
    Some(gather(queue, first, window).await)
}

/// The group starting with `first` (just taken from `queue`): it and those arriving within `window` of the
/// previous one, at most [`MAX_GROUP`] over at most five windows.
pub async fn gather<T>(queue: &DropOldestQueue<T>, first: T, window: Duration) -> Vec<T> {
    let span_ends = Instant::now() + window * MAX_SPAN_IN_WINDOWS;
    let mut group = vec![first];
    while group.len() < MAX_GROUP {
        let wait = window.min(span_ends.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, queue.pop()).await {
            Ok(Some(item)) => group.push(item),
            Ok(None) | Err(_) => break,
        }
    }
    group
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn one_or_two_go_alone_three_or_more_go_as_one_burst() {
        assert_eq!(into_messages::<u8>(vec![]), vec![]);
        assert_eq!(into_messages(vec![1]), vec![Message::Single(1)]);
        assert_eq!(into_messages(vec![1, 2]), vec![Message::Single(1), Message::Single(2)]);
        assert_eq!(into_messages(vec![1, 2, 3]), vec![Message::Burst(vec![1, 2, 3])]);
        assert_eq!(into_messages((0..10).collect()), vec![Message::Burst((0..10).collect())]);
        assert_eq!(Message::Single(1).items(), [1]);
        assert_eq!(Message::Burst(vec![1, 2, 3]).items(), [1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn notifications_within_the_window_of_each_other_are_one_group() {
        let window = Duration::from_secs(2);
        let queue = Arc::new(DropOldestQueue::new(100));
        let producer = tokio::spawn({
            let queue = queue.clone();
            async move {
                // 1, 2 and 3 arrive 1.5 s apart (a chain within the window); 4 arrives 2.5 s after 3.
                for (delay, item) in [(0.0, 1), (1.5, 2), (1.5, 3), (2.5, 4)] {
                    tokio::time::sleep(Duration::from_secs_f64(delay)).await;
                    queue.push(item);
                }
            }
        });
        let started = Instant::now();
        assert_eq!(next_group(&queue, window).await, Some(vec![1, 2, 3]));
        assert_eq!(started.elapsed(), Duration::from_secs(5), "the group closes a window after its last member");
        assert_eq!(next_group(&queue, window).await, Some(vec![4]));
        producer.await.unwrap();
        queue.close();
        assert_eq!(next_group(&queue, window).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_trickle_is_cut_after_five_windows_and_a_zero_window_takes_what_is_queued() {
        let queue = Arc::new(DropOldestQueue::new(100));
        let producer = tokio::spawn({
            let queue = queue.clone();
            async move {
                for item in 0..20 {
                    queue.push(item);
                    tokio::time::sleep(Duration::from_millis(900)).await;
                }
            }
        });
        let started = Instant::now();
        let group = next_group(&queue, Duration::from_secs(1)).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(5), "not held back longer than five windows");
        assert_eq!(group, (0..6).collect::<Vec<_>>());
        producer.await.unwrap();

        let queue = DropOldestQueue::new(100);
        for item in 0..3 {
            queue.push(item);
        }
        assert_eq!(next_group(&queue, Duration::ZERO).await, Some(vec![0, 1, 2]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_holds_at_most_max_group() {
        let queue = DropOldestQueue::new(200);
        for item in 0..120 {
            queue.push(item);
        }
        assert_eq!(next_group(&queue, Duration::from_secs(2)).await.unwrap().len(), MAX_GROUP);
        assert_eq!(next_group(&queue, Duration::from_secs(2)).await.unwrap().len(), MAX_GROUP);
        assert_eq!(next_group(&queue, Duration::from_secs(2)).await.unwrap().len(), 20);
    }
}
