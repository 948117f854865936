//! The notification sink: what differs between Slack, Discord, Alertmanager, email, ... and nothing else.
//!
//! A sink formats a notification, or a burst of them, into its service's request and reads the service's
//! answer. Everything shared (which events notify, deduplication, per-sink filters, grouping, the bounded
//! drop-oldest queue, retries with backoff and `Retry-After`, counters) is the [`Notifier`]'s, written once.
//! A new sink is one module in [`sinks`](super::sinks) and one line registering it there.
//!
//! [`Notifier`]: super::Notifier

use std::time::{Duration, SystemTime};

use super::delivery::{Verdict, http_verdict};
use super::filter::SinkFilter;
use super::grouping::Message;
use super::notification::Notification;
use super::transport::{Reply, Request};

/// How a sink takes notifications that arrive together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// Those within the group window are taken together: one or two sent alone, three or more as one
    /// burst message (for people: a crashed dependency is one message, not twenty).
    Bursts,
    /// Each on its own, at once (for programs).
    EachAlone,
}

/// One notification service.
pub trait Sink: Send + Sync {
    /// Its name in logs, settings and `hemostat notify test`: `slack`, `discord`, `alertmanager`, ...
    fn name(&self) -> &'static str;

    /// How it takes notifications arriving together.
    fn grouping(&self) -> Grouping {
        Grouping::Bursts
    }

    /// Whether it takes `notification`. `selected` says whether the shared rules (which events notify,
    /// silences, quiet success, deduplication) let it through; `filter` is this sink's own. Sinks that track
    /// conditions (Alertmanager) also take what ends one, whatever those rules say.
    fn wants(&self, notification: &Notification, selected: bool, filter: &SinkFilter) -> bool {
        selected && filter.admits(notification)
    }

    /// Whether it takes events the shared rules did not select (those that end a condition): the notifier
    /// hands it every event then, not only the selected ones.
    fn tracks_conditions(&self) -> bool {
        false
    }

    /// The requests carrying `message` (usually one; none when it changes nothing for this service).
    fn render(&self, message: &Message<Notification>) -> Vec<Request>;

    /// The requests of a test notification (`hemostat notify test`).
    fn render_test(&self, notification: &Notification) -> Vec<Request> {
        self.render(&Message::Single(notification.clone()))
    }

    /// What the service's answer means.
    fn classify(&self, reply: &Reply) -> Verdict {
        http_verdict(reply)
    }

    /// How often it sends [`refresh`](Self::refresh), if ever.
    fn refresh_every(&self) -> Option<Duration> {
        None
    }

    /// What it sends again every [`refresh_every`](Self::refresh_every) (Alertmanager: the alerts still
    /// firing, so they stay active there).
    fn refresh(&self, _now: SystemTime) -> Vec<Request> {
        Vec::new()
    }
}
