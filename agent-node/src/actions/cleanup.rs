//! `cleanup`: removes the exited containers of the target's Compose service (without Compose labels: of its
//! image) that this node watches, keeping their volumes, then the dangling images that only those removed
//! containers used. Never the target, never a running container, never a volume, and never an image that
//! another container (watched or not) still uses: the node acts only on what it watches, so it does not
//! prune the engine's other dangling images.
//!
//! A cleanup of the host ([`host_cleanup`]: a command with no container, which the coordinator sends when
//! the node reports the engine's disk low) removes the dangling images that no container, watched or not,
//! uses: what `docker image prune` removes. Never a container (a stopped one is an operator's or a crash's
//! to keep), a volume or a tagged image.

use hemostat_model::Action;
use std::collections::{BTreeSet, HashMap};

use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{ListContainersOptions, ListImagesOptions, RemoveContainerOptions, RemoveImageOptions};
use hemostat_proto::v1 as pb;

use super::compose::ComposeService;
use super::{ActionContext, ActionHandler, ActionOutcome, Target};

/// The cleanup of a target's exited siblings.
pub struct Cleanup;

#[async_trait::async_trait]
impl ActionHandler for Cleanup {
    fn action(&self) -> Action {
        Action::Cleanup
    }

    async fn execute(&self, context: &ActionContext, target: &Target) -> ActionOutcome {
        let docker = &context.docker;
        let exited = HashMap::from([("status".to_owned(), vec!["exited".to_owned(), "dead".to_owned()])]);
        let compose = ComposeService::of(&target.labels());
        let image = target.inspect.image.clone().unwrap_or_default();
        let (scope, listed) = match &compose {
            Some(service) => (format!("Compose service {service}"), service.containers(docker, exited).await),
            None => {
                let name = target.inspect.config.as_ref().and_then(|c| c.image.clone()).unwrap_or_default();
                let options = ListContainersOptions { all: true, filters: Some(exited), ..Default::default() };
                (format!("image {name}"), docker.list_containers(Some(options)).await)
            }
        };
        let listed = match listed {
            Ok(listed) => listed,
            Err(error) => return ActionOutcome::failed(format!("cannot list containers: {error}")),
        };
        let mut removed = Vec::new();
        let mut images = BTreeSet::new();
        for summary in listed {
            let (Some(id), name) =
                (summary.id.clone(), summary.names.as_ref().and_then(|n| n.first()).cloned().unwrap_or_default())
            else {
                continue;
            };
            let same_image = compose.is_some() || summary.image_id.as_deref() == Some(image.as_str());
            let running = matches!(summary.state, Some(ContainerSummaryStateEnum::RUNNING));
            if id == target.id
                || running
                || !same_image
                || !context.selector.matches(&id, &name, &summary.labels.clone().unwrap_or_default())
            {
                continue;
            }
            // `v: false`: volumes, named or anonymous, are never removed.
            let options = RemoveContainerOptions { v: false, force: false, link: false };
            match docker.remove_container(&id, Some(options)).await {
                Ok(()) => {
                    removed.push(name.trim_start_matches('/').to_owned());
                    images.extend(summary.image_id);
                }
                Err(error) => tracing::warn!(container = %name, %error, "cleanup could not remove a container"),
            }
        }
        let (pruned, bytes) = remove_unused_dangling(context, &images).await;
        let detail = format!(
            "removed {} exited containers of {scope}{}{}; removed {pruned} dangling images only they used ({} MiB); \
             other dangling images are left alone (this node cleans only what it watches)",
            removed.len(),
            if removed.is_empty() { "" } else { ": " },
            removed.join(", "),
            bytes / (1 << 20)
        );
        let outcome = if removed.is_empty() && pruned == 0 { pb::Outcome::NotApplicable } else { pb::Outcome::Success };
        ActionOutcome::new(outcome, detail)
    }
}

/// Removes those of `images` that are dangling (no tag) and that no container uses any more (Docker refuses
/// to remove, without force, an image a container still uses, running or not); returns how many and their
/// size in bytes.
async fn remove_unused_dangling(context: &ActionContext, images: &BTreeSet<String>) -> (usize, u64) {
    let (mut count, mut bytes) = (0, 0);
    for image in images {
        let inspect = match context.docker.inspect_image(image).await {
            Ok(inspect) => inspect,
            Err(error) => {
                tracing::debug!(%image, %error, "cleanup could not inspect an image");
                continue;
            }
        };
        let tagged = inspect.repo_tags.as_ref().is_some_and(|tags| tags.iter().any(|t| t != "<none>:<none>"));
        if tagged {
            continue;
        }
        let options = RemoveImageOptions { force: false, noprune: false, platforms: None };
        match context.docker.remove_image(image, Some(options), None).await {
            Ok(_) => {
                count += 1;
                bytes += inspect.size.unwrap_or(0).max(0) as u64;
            }
            // In use by another container, or a parent of another image: it stays.
            Err(error) => tracing::info!(%image, %error, "cleanup left a dangling image that is still used"),
        }
    }
    (count, bytes)
}

/// Cleans the host: removes the dangling images that no container uses (see the module docs).
pub async fn host_cleanup(context: &ActionContext) -> ActionOutcome {
    let docker = &context.docker;
    let dangling = HashMap::from([("dangling".to_owned(), vec!["true".to_owned()])]);
    let images =
        match docker.list_images(Some(ListImagesOptions { filters: Some(dangling), ..Default::default() })).await {
            Ok(images) => images,
            Err(error) => return ActionOutcome::failed(format!("cannot list the dangling images: {error}")),
        };
    let all = ListContainersOptions { all: true, ..Default::default() };
    let used: BTreeSet<String> = match docker.list_containers(Some(all)).await {
        Ok(containers) => containers.into_iter().filter_map(|c| c.image_id).collect(),
        Err(error) => return ActionOutcome::failed(format!("cannot list the containers: {error}")),
    };
    let (mut removed, mut bytes, mut kept) = (0usize, 0u64, 0usize);
    for image in images {
        if used.contains(&image.id) {
            kept += 1;
            continue;
        }
        let options = RemoveImageOptions { force: false, noprune: false, platforms: None };
        match docker.remove_image(&image.id, Some(options), None).await {
            Ok(_) => {
                removed += 1;
                bytes += image.size.max(0) as u64;
            }
            Err(error) => {
                kept += 1;
                tracing::info!(image = %image.id, %error, "the host's cleanup left a dangling image");
            }
        }
    }
    let detail = format!(
        "host cleanup: removed {removed} dangling images that no container used ({} MiB); left {kept} still in \
         use; containers, volumes and tagged images are never removed",
        bytes / (1 << 20)
    );
    let outcome = if removed == 0 { pb::Outcome::NotApplicable } else { pb::Outcome::Success };
    ActionOutcome::new(outcome, detail)
}
