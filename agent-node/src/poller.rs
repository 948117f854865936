//! The poll: every `AGENT_POLL_INTERVAL` a metrics sample of every running watched container.
//!
//! Where the counters come from is `NODE_STATS_SOURCE` ([`StatsSource`]): the container's cgroup files and
//! network counters ([`crate::cgroup`]: a few small reads of kernel files per container, nothing asked of
//! the engine but the list of running containers and one inspect per container run), or Docker's one-shot
//! stats (milliseconds of the engine's CPU each, never the 2-second call), taken concurrently so that the
//! poll's duration does not grow with the number of containers. Both give `docker stats`' figures.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions, StatsOptions};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::cgroup::{self, CgroupError, Location};
use crate::engine::REQUESTS_IN_FLIGHT;
use crate::inventory::ContainerSelector;
use crate::metrics::{self, CpuCounters, Metrics, Reading};
use crate::monitor::Observation;

/// Where the poller reads a container's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatsSource {
    /// The cgroup files of each container whose files this node can read, the engine for the others.
    #[default]
    Auto,
    /// The cgroup files only: a container whose files cannot be read gets no samples (counted, logged).
    Cgroup,
    /// Docker's one-shot stats only.
    Engine,
}

impl StatsSource {
    /// Its name in metrics and settings.
    pub fn name(self) -> &'static str {
        match self {
            StatsSource::Auto => "auto",
            StatsSource::Cgroup => "cgroup",
            StatsSource::Engine => "engine",
        }
    }
}

impl hemostat_settings::Value for StatsSource {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(StatsSource::Auto),
            "cgroup" => Ok(StatsSource::Cgroup),
            "engine" => Ok(StatsSource::Engine),
            _ => Err(format!("{text:?} is not one of auto, cgroup, engine")),
        }
    }
}

/// How one container's counters are read, decided once per run of the container.
#[derive(Debug)]
enum Via {
    Cgroup(Location),
    Engine,
    /// Neither (`NODE_STATS_SOURCE=cgroup` and its files cannot be read): no sample this poll; located again
    /// at the next (a container caught mid-restart has no init process for a moment).
    Nothing,
}

/// Samples metrics on a timer and sends them to the monitor.
pub struct Poller {
    docker: Docker,
    selector: ContainerSelector,
    interval: Duration,
    observations: mpsc::Sender<Observation>,
    source: StatsSource,
    /// The host's cgroup mounts; `None` with the engine as the source.
    host: Option<cgroup::Host>,
    previous: HashMap<String, CpuCounters>,
    via: HashMap<String, Via>,
    /// The running containers whose cgroup files could not be read at the last try: warned about once.
    unreadable: HashSet<String>,
    /// One buffer for every file read by a poll.
    buf: String,
}

impl Poller {
    /// A poller of the containers `selector` picks, every `interval`, from `source`. With
    /// [`StatsSource::Cgroup`] it fails if this host has no cgroup mount it can read; with
    /// [`StatsSource::Auto`] it then uses the engine.
    pub fn new(
        docker: Docker,
        selector: ContainerSelector,
        interval: Duration,
        source: StatsSource,
        observations: mpsc::Sender<Observation>,
    ) -> Result<Self, CgroupError> {
        let host = match source {
            StatsSource::Engine => None,
            StatsSource::Cgroup => Some(cgroup::Host::new()?),
            StatsSource::Auto => cgroup::Host::new()
                .inspect_err(|error| tracing::info!(%error, "cgroup files unreadable; stats from the engine"))
                .ok(),
        };
        Ok(Poller {
            docker,
            selector,
            interval,
            observations,
            source,
            host,
            previous: HashMap::new(),
            via: HashMap::new(),
            unreadable: HashSet::new(),
            buf: String::with_capacity(4096),
        })
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

    /// The running watched containers.
    async fn running(&self) -> Result<Vec<String>, bollard::errors::Error> {
        let mut filters = HashMap::from([("status".to_owned(), vec!["running".to_owned()])]);
        if let Some(label) = self.selector.docker_filter() {
            filters.insert("label".to_owned(), vec![label]);
        }
        let running = self
            .docker
            .list_containers(Some(ListContainersOptions { all: false, filters: Some(filters), ..Default::default() }))
            .await?;
        Ok(running
            .into_iter()
            .filter(|c| {
                let name = c.names.as_ref().and_then(|n| n.first()).map_or("", String::as_str);
                let labels = c.labels.as_ref();
                self.selector.matches(c.id.as_deref().unwrap_or(""), name, labels.unwrap_or(&HashMap::new()))
            })
            .filter_map(|c| c.id)
            .collect())
    }

    /// One sample of every running watched container.
    async fn poll(&mut self) -> Result<Vec<(String, Metrics)>, bollard::errors::Error> {
        let ids = self.running().await?;
        let mut via = std::mem::take(&mut self.via);
        let system = match &self.host {
            Some(host) => match host.system_cpu(&mut self.buf) {
                Ok(system) => Some(system),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the system's CPU time; no cgroup samples this poll");
                    None
                }
            },
            None => None,
        };
        // Containers seen for the first time, or whose init process changed (a restart), are inspected.
        let mut unlocated = Vec::new();
        for id in &ids {
            let fresh = match (via.get(id), &self.host) {
                (Some(Via::Cgroup(location)), Some(host)) => host.still_runs(location, &mut self.buf),
                (Some(Via::Nothing), _) => false,
                (Some(_), _) => true,
                (None, _) => false,
            };
            if !fresh {
                via.remove(id);
                unlocated.push(id.clone());
            }
        }
        let located: Vec<(String, Result<Location, String>)> = match &self.host {
            Some(host) => {
                let docker = &self.docker;
                futures::stream::iter(unlocated)
                    .map(|id| async move {
                        let how = locate(docker, host, &id).await;
                        (id, how)
                    })
                    .buffer_unordered(REQUESTS_IN_FLIGHT)
                    .collect()
                    .await
            }
            None => unlocated.into_iter().map(|id| (id, Err("no cgroup mounts".to_owned()))).collect(),
        };
        for (id, how) in located {
            let how = match how {
                Ok(location) => {
                    self.unreadable.remove(&id);
                    Via::Cgroup(location)
                }
                Err(error) if self.host.is_some() && self.source == StatsSource::Cgroup => {
                    if self.unreadable.insert(id.clone()) {
                        tracing::warn!(container = %id, %error, "cgroup files unreadable; no samples of this container until they are (tried at every poll)");
                    }
                    Via::Nothing
                }
                Err(error) => {
                    if self.host.is_some() {
                        tracing::info!(container = %id, %error, "cgroup files unreadable; stats of this container from the engine");
                    }
                    Via::Engine
                }
            };
            via.insert(id, how);
        }
        // Only the running containers are kept: one that stopped is located again when it runs.
        let mut via: HashMap<String, Via> = ids.iter().filter_map(|id| via.remove_entry(id)).collect();
        self.unreadable.retain(|id| via.contains_key(id));

        let instruments = crate::instruments::global();
        let mut readings = Vec::with_capacity(ids.len());
        let mut from_engine = Vec::new();
        for id in ids {
            match (via.get(&id), &self.host, system) {
                (Some(Via::Cgroup(location)), Some(host), Some(system)) => {
                    match host.read(location, system, &mut self.buf) {
                        Ok(reading) => {
                            instruments.sample_taken("cgroup");
                            readings.push((id, reading));
                        }
                        Err(error) => {
                            // Stopped between the list and the read, most likely: located again if it runs.
                            tracing::debug!(container = %id, %error, "cgroup read failed");
                            instruments.sample_failed("cgroup");
                            via.remove(&id);
                        }
                    }
                }
                (Some(Via::Nothing), ..) => instruments.sample_failed("cgroup"),
                (Some(Via::Cgroup(_)), ..) if self.source == StatsSource::Cgroup => instruments.sample_failed("cgroup"),
                _ => from_engine.push(id),
            }
        }
        let docker = &self.docker;
        let fetched: Vec<(String, Option<Reading>)> = futures::stream::iter(from_engine)
            .map(|id| async move {
                let options = StatsOptions { stream: false, one_shot: true };
                let stats = docker.stats(&id, Some(options)).next().await.and_then(Result::ok);
                (id, stats.as_ref().map(Reading::from_engine))
            })
            .buffer_unordered(REQUESTS_IN_FLIGHT)
            .collect()
            .await;
        for (id, reading) in fetched {
            match reading {
                Some(reading) => {
                    instruments.sample_taken("engine");
                    readings.push((id, reading));
                }
                None => instruments.sample_failed("engine"),
            }
        }

        let mut samples = Vec::with_capacity(readings.len());
        let mut previous = HashMap::with_capacity(readings.len());
        for (id, reading) in readings {
            samples.push((id.clone(), metrics::compute(&reading, self.previous.get(&id).copied())));
            previous.insert(id, reading.cpu);
        }
        // Containers that stopped are forgotten, so a restart starts a fresh CPU baseline.
        self.previous = previous;
        self.via = via;
        Ok(samples)
    }
}

/// Where `id`'s counters are: its cgroup files, if its inspect data leads to readable ones; else why not.
async fn locate(docker: &Docker, host: &cgroup::Host, id: &str) -> Result<Location, String> {
    let fallback = Err::<Location, String>;
    let inspect = match docker.inspect_container(id, None::<InspectContainerOptions>).await {
        Ok(inspect) => inspect,
        Err(error) => return fallback(error.to_string()),
    };
    let pid = inspect.state.as_ref().and_then(|s| s.pid).filter(|p| *p > 0).and_then(|p| u32::try_from(p).ok());
    let Some(pid) = pid else { return fallback("no init process".to_owned()) };
    let network_mode = inspect.host_config.as_ref().and_then(|h| h.network_mode.as_deref());
    let own_network = network_mode != Some("host");
    let mut buf = String::new();
    match host.locate(pid, own_network) {
        // The cgroup of a Docker container carries its id (cgroupfs, systemd, a cgroup parent): anything else
        // is another process with that pid, seen from another pid namespace (a node in a container).
        Ok(location) if !location.cgroup_names(id) => fallback(format!("process {pid}'s cgroup is not {id}'s")),
        Ok(location) if host.still_runs(&location, &mut buf) => Ok(location),
        Ok(_) => fallback(format!("process {pid} left its cgroup")),
        Err(error) => fallback(error.to_string()),
    }
}
