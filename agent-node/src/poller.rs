//! The poll: every `AGENT_POLL_INTERVAL` a metrics sample of every running watched container, from
//! Docker's one-shot stats (milliseconds each, never the 2-second call), taken concurrently so that the
//! poll's duration does not grow with the number of containers.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, StatsOptions};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::inventory::ContainerSelector;
use crate::metrics::{self, CpuCounters, Metrics};
use crate::monitor::Observation;

/// Stats requests in flight at once.
const CONCURRENCY: usize = 16;

/// Samples metrics on a timer and sends them to the monitor.
pub struct Poller {
    docker: Docker,
    selector: ContainerSelector,
    interval: Duration,
    observations: mpsc::Sender<Observation>,
    previous: HashMap<String, CpuCounters>,
}

impl Poller {
    /// A poller of the containers `selector` picks, every `interval`.
    pub fn new(
        docker: Docker,
        selector: ContainerSelector,
        interval: Duration,
        observations: mpsc::Sender<Observation>,
    ) -> Self {
        Poller { docker, selector, interval, observations, previous: HashMap::new() }
    }

    /// Runs until the task is dropped.
    pub async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let started = Instant::now();
            match self.poll().await {
                Ok(samples) => {
                    crate::instruments::global().poll_finished(started.elapsed());
                    tracing::debug!(containers = samples.len(), elapsed = ?started.elapsed(), "poll done");
                    if self.observations.send(Observation::Samples { at: SystemTime::now(), samples }).await.is_err() {
                        return;
                    }
                }
                Err(error) => tracing::warn!(%error, "poll failed; will retry at the next interval"),
            }
        }
    }

    /// One sample of every running watched container.
    async fn poll(&mut self) -> Result<Vec<(String, Metrics)>, bollard::errors::Error> {
        let mut filters = HashMap::from([("status".to_owned(), vec!["running".to_owned()])]);
        if let Some(label) = self.selector.docker_filter() {
            filters.insert("label".to_owned(), vec![label]);
        }
        let running = self
            .docker
            .list_containers(Some(ListContainersOptions { all: false, filters: Some(filters), ..Default::default() }))
            .await?;
        let ids: Vec<String> = running
            .into_iter()
            .filter(|c| {
                let name = c.names.as_ref().and_then(|n| n.first()).map_or("", String::as_str);
                self.selector.matches(c.id.as_deref().unwrap_or(""), name, &c.labels.clone().unwrap_or_default())
            })
            .filter_map(|c| c.id)
            .collect();
        let docker = &self.docker;
        let fetched: Vec<(String, Option<bollard::models::ContainerStatsResponse>)> = futures::stream::iter(ids)
            .map(|id| async move {
                let options = StatsOptions { stream: false, one_shot: true };
                let stats = docker.stats(&id, Some(options)).next().await.and_then(Result::ok);
                (id, stats)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut samples = Vec::with_capacity(fetched.len());
        let mut previous = HashMap::with_capacity(fetched.len());
        for (id, stats) in fetched {
            let Some(stats) = stats else { continue };
            let (metrics, counters) = metrics::compute(&stats, self.previous.get(&id).copied());
            previous.insert(id.clone(), counters);
            samples.push((id, metrics));
        }
        // Containers that stopped are forgotten, so a restart starts a fresh CPU baseline.
        self.previous = previous;
        Ok(samples)
    }
}
