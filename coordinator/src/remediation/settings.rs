//! What operators set at runtime — silences and dry-run — read through a one-second cache: a burst of events
//! and decisions costs one read of each, not one per event. Other coordinators' changes show within a second;
//! this one's at once (a change empties the cache).
//!
//! Settings also say when they hold an action back ([`Settings::hold`]): a silence covering the container, or
//! dry-run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::{Stop, Target};
use crate::events::{Action, Rejection, rfc3339, unix_ms};
use crate::silence::Silence;
use crate::store::{SettingsStore, StoreError};

/// How long settings read from the store are trusted before being read again.
const CACHE_FOR: Duration = Duration::from_secs(1);

/// Where the fleet's dry-run setting comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DryRunSource {
    /// An admin set it at runtime (`SetDryRun`, the dashboard's switch).
    Operator,
    /// No admin has: `RESPONDER_DRY_RUN` decides.
    Configuration,
}

impl DryRunSource {
    /// `operator` or `configuration`, as the API and the dashboard say it.
    pub fn name(self) -> &'static str {
        match self {
            DryRunSource::Operator => "operator",
            DryRunSource::Configuration => "configuration",
        }
    }
}

/// The settings as last read from the store.
#[derive(Clone)]
struct Snapshot {
    /// When they were read.
    read_at: Instant,
    /// The silences in force then.
    silences: Vec<Silence>,
    /// Dry-run as an admin set it; `None`: as configured.
    dry_run: Option<bool>,
}

/// Silences and dry-run, through the cache.
pub struct Settings {
    store: Arc<dyn SettingsStore>,
    /// `RESPONDER_DRY_RUN`, for when no admin has set dry-run.
    configured_dry_run: bool,
    /// `None` until read, and after this coordinator changed a setting.
    cache: Mutex<Option<Snapshot>>,
}

impl Settings {
    /// The settings kept in `store`, with dry-run `configured_dry_run` until an admin sets it.
    pub fn new(store: Arc<dyn SettingsStore>, configured_dry_run: bool) -> Self {
        Settings { store, configured_dry_run, cache: Mutex::new(None) }
    }

    async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let cached = self.cache.lock().expect("settings lock").clone();
        if let Some(snapshot) = cached.filter(|s| s.read_at.elapsed() < CACHE_FOR) {
            return Ok(snapshot);
        }
        let snapshot = Snapshot {
            read_at: Instant::now(),
            silences: self.store.silences(unix_ms(SystemTime::now())).await?,
            dry_run: self.store.dry_run_override().await?,
        };
        *self.cache.lock().expect("settings lock") = Some(snapshot.clone());
        Ok(snapshot)
    }

    fn forget(&self) {
        *self.cache.lock().expect("settings lock") = None;
    }

    /// The silences in force now, soonest to expire first.
    pub async fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        let now = unix_ms(SystemTime::now());
        Ok(self.snapshot().await?.silences.into_iter().filter(|s| s.expires_ms > now).collect())
    }

    /// The silence covering the container `name` on `node` (an empty name: only whole-node silences).
    pub async fn silence_for(&self, node: &str, name: &str) -> Result<Option<Silence>, StoreError> {
        let now = unix_ms(SystemTime::now());
        Ok(self.snapshot().await?.silences.into_iter().find(|s| s.covers(node, name, now)))
    }

    /// Whether the fleet is in dry-run now, and who decided it.
    pub async fn dry_run(&self) -> Result<(bool, DryRunSource), StoreError> {
        Ok(match self.snapshot().await?.dry_run {
            Some(enabled) => (enabled, DryRunSource::Operator),
            None => (self.configured_dry_run, DryRunSource::Configuration),
        })
    }

    /// Keeps a silence; it applies at once on this coordinator.
    pub async fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        self.store.put_silence(silence).await?;
        self.forget();
        Ok(())
    }

    /// Ends the silence `id` before it expires; returns it, or `None` if there is none.
    pub async fn remove_silence(&self, id: &str) -> Result<Option<Silence>, StoreError> {
        let removed = self.store.remove_silence(id).await?;
        self.forget();
        Ok(removed)
    }

    /// Turns dry-run on or off for every coordinator on the store; returns what it was before.
    pub async fn set_dry_run(&self, enabled: bool) -> Result<bool, StoreError> {
        let previous = self.store.dry_run_override().await?.unwrap_or(self.configured_dry_run);
        self.store.set_dry_run_override(enabled).await?;
        self.forget();
        Ok(previous)
    }

    /// Why a silence or dry-run holds `action` on `target` back, if one does (the silence first).
    pub async fn hold(&self, target: &Target, action: Action) -> Result<Option<Stop>, StoreError> {
        if let Some(silence) = self.silence_for(&target.node, &target.container_name).await? {
            let until = rfc3339(silence.expires_ms);
            let reason = format!("silenced by {} until {until}: {}", silence.created_by, silence.reason);
            return Ok(Some(Stop { rejection: Rejection::Silenced, reason }));
        }
        if self.dry_run().await?.0 {
            let reason =
                format!("dry run: would {} {}; nothing was done and no budget was used", action.name(), target.key);
            return Ok(Some(Stop { rejection: Rejection::DryRun, reason }));
        }
        Ok(None)
    }
}
