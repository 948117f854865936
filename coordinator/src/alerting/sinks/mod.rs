//! The notification services, one module each, and the one place they are registered.
//!
//! A new sink: a module here implementing [`Sink`] with a `new(&AlertingConfig) -> Option<Self>` (`None`
//! when it is not configured), a line in [`configured`], and its settings in
//! [`AlertingSettings`](super::config::AlertingSettings).

use std::sync::Arc;

use super::AlertingConfig;
use super::sink::Sink;

pub mod alertmanager;
pub mod discord;
pub mod email;
pub mod gotify;
pub mod ntfy;
pub mod slack;
pub mod teams;
pub mod webhook;

/// The sinks `config` sets up, in this order.
pub fn configured(config: &AlertingConfig) -> Vec<Arc<dyn Sink>> {
    [
        shared(slack::Slack::new(config)),
        shared(webhook::Webhook::new(config)),
        shared(alertmanager::Alertmanager::new(config)),
        shared(discord::Discord::new(config)),
        shared(teams::Teams::new(config)),
        shared(ntfy::Ntfy::new(config)),
        shared(gotify::Gotify::new(config)),
        shared(email::Email::new(config)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn shared<S: Sink + 'static>(sink: Option<S>) -> Option<Arc<dyn Sink>> {
    sink.map(|sink| Arc::new(sink) as Arc<dyn Sink>)
}
