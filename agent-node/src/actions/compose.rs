//! Compose services as the node sees them, from the labels docker-compose puts on every container it
//! creates: the project, the service, and the replica number. Cleanup and scale_up find a service's
//! containers here.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::ContainerSummary;
use bollard::query_parameters::ListContainersOptions;

/// The label naming a container's Compose project.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The label naming a container's Compose service.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// The label numbering a container among its service's replicas (from 1).
pub const NUMBER_LABEL: &str = "com.docker.compose.container-number";

/// One Compose service: a project and a service name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComposeService {
    /// The project.
    pub project: String,
    /// The service.
    pub service: String,
}

impl std::fmt::Display for ComposeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.project, self.service)
    }
}

impl ComposeService {
    /// The service a container with these labels belongs to, if it is a Compose container.
    pub fn of(labels: &HashMap<String, String>) -> Option<Self> {
        Some(ComposeService {
            project: labels.get(PROJECT_LABEL)?.clone(),
            service: labels.get(SERVICE_LABEL)?.clone(),
        })
    }

    /// The Docker `label` filter values that select this service's containers.
    pub fn label_filter(&self) -> Vec<String> {
        vec![format!("{PROJECT_LABEL}={}", self.project), format!("{SERVICE_LABEL}={}", self.service)]
    }

    /// The service's containers, in any state, narrowed by the extra Docker `filters` (e.g. `status`).
    pub async fn containers(
        &self,
        docker: &Docker,
        mut filters: HashMap<String, Vec<String>>,
    ) -> Result<Vec<ContainerSummary>, bollard::errors::Error> {
        filters.insert("label".to_owned(), self.label_filter());
        docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
            .await
    }
}

/// A container's replica number within its Compose service, if it has one.
pub fn replica_number(labels: &HashMap<String, String>) -> Option<u32> {
    labels.get(NUMBER_LABEL)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_is_read_from_its_labels_and_filtered_by_them() {
        let labels: HashMap<String, String> = [(PROJECT_LABEL, "shop"), (SERVICE_LABEL, "api"), (NUMBER_LABEL, "3")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let service = ComposeService::of(&labels).unwrap();
        assert_eq!(service.to_string(), "shop/api");
        assert_eq!(service.label_filter(), ["com.docker.compose.project=shop", "com.docker.compose.service=api"]);
        assert_eq!(replica_number(&labels), Some(3));
        assert_eq!(ComposeService::of(&HashMap::new()), None);
    }
}
