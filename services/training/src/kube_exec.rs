//! The Kubernetes executor's client (kube-rs): applies an attempt's
//! objects (server-side apply, field manager `llmops`), reads its Job's
//! state back, follows the rank-0 pod's log (the recipe's protocol lines,
//! read as the local executor reads a recipe's stdout), and deletes the
//! attempt's objects when it is cancelled, paused or lost.
//!
//! What a Job's status means ([`state_of`]) and which API an object goes
//! to ([`resource_of`]) are pure and tested offline; no cluster runs here,
//! so the calls themselves are written against the Kubernetes API as
//! kube-rs documents it and have not met a real API server.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams,
};
use serde_json::Value;

/// The field manager of everything the executor applies.
pub const MANAGER: &str = "llmops";

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("a rendered object is malformed: {0}")]
    Object(String),
}

/// Where an attempt's Job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeState {
    /// No such Job (deleted, or never created).
    Missing,
    /// Created, no pod running yet (scheduling, pulling, or held by Kueue).
    Pending,
    Running,
    Succeeded,
    /// Failed, with the Job's reason and message.
    Failed(String),
}

/// What a Job's status says.
pub fn state_of(job: &Job) -> KubeState {
    let Some(status) = &job.status else {
        return KubeState::Pending;
    };
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if holds("Complete").is_some() || holds("SuccessCriteriaMet").is_some() {
        return KubeState::Succeeded;
    }
    if let Some(c) = holds("Failed").or_else(|| holds("FailureTarget")) {
        return KubeState::Failed(format!(
            "{}: {}",
            c.reason.as_deref().unwrap_or("Failed"),
            c.message.as_deref().unwrap_or("the Job failed")
        ));
    }
    if holds("Suspended").is_some() {
        return KubeState::Pending;
    }
    if status.active.unwrap_or(0) > 0 {
        KubeState::Running
    } else {
        KubeState::Pending
    }
}

/// The API a rendered object goes to, and its name.
pub fn resource_of(obj: &Value) -> Result<(ApiResource, String), KubeError> {
    let field = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| KubeError::Object(format!("no `{k}`")))
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or_else(|| KubeError::Object(format!("a {kind} without metadata.name")))?;
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Ok((ApiResource::from_gvk(&gvk), name.to_string()))
}

/// A namespace of a cluster, reached with the process's kubeconfig or its
/// in-cluster service account.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
    namespace: String,
}

impl Cluster {
    pub async fn connect(namespace: &str) -> Result<Self, KubeError> {
        Ok(Self {
            client: kube::Client::try_default().await?,
            namespace: namespace.to_string(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn dynamic(&self, ar: &ApiResource) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, ar)
    }

    /// Applies the objects in order (server-side apply, so a retry of the
    /// same attempt changes nothing).
    pub async fn apply(&self, objects: &[Value]) -> Result<(), KubeError> {
        for obj in objects {
            let (ar, name) = resource_of(obj)?;
            self.dynamic(&ar)
                .patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(obj),
                )
                .await?;
        }
        Ok(())
    }

    /// The state of the attempt's Job.
    pub async fn state(&self, name: &str) -> Result<KubeState, KubeError> {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace);
        Ok(match jobs.get_opt(name).await? {
            Some(job) => state_of(&job),
            None => KubeState::Missing,
        })
    }

    /// Deletes the attempt's Job (its pods with it), Service and
    /// ConfigMap; what is gone already is no error.
    pub async fn delete(&self, name: &str) -> Result<(), KubeError> {
        let mut first_error = None;
        for (group, version, kind) in [
            ("batch", "v1", "Job"),
            ("", "v1", "Service"),
            ("", "v1", "ConfigMap"),
        ] {
            let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
            match self
                .dynamic(&ar)
                .delete(name, &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Why the attempt's pods cannot start, if a container waits for a
    /// reason that will not pass by itself (an image that cannot be
    /// pulled, a missing Secret).
    pub async fn pending_problem(&self, name: &str) -> Result<Option<String>, KubeError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let found = pods
            .list(&ListParams::default().labels(&format!("job-name={name}")))
            .await?;
        Ok(found.items.iter().find_map(stuck))
    }

    /// The rank-0 pod's `train` log from its start, followed, line by
    /// line; `None` while the pod has not started.
    pub async fn rank0_log(
        &self,
        name: &str,
    ) -> Result<
        Option<impl futures_util::Stream<Item = std::io::Result<String>> + Unpin + use<>>,
        KubeError,
    > {
        use futures_util::AsyncBufReadExt;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let found = pods
            .list(&ListParams::default().labels(&format!(
                "job-name={name},batch.kubernetes.io/job-completion-index=0"
            )))
            .await?;
        // The newest started pod (a preempted Job's replacement, say).
        let started = found
            .items
            .into_iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|phase| matches!(phase, "Running" | "Succeeded" | "Failed"))
            })
            .max_by_key(|p| p.metadata.creation_timestamp.clone());
        let Some(pod) = started.and_then(|p| p.metadata.name) else {
            return Ok(None);
        };
        let log = pods
            .log_stream(
                &pod,
                &LogParams {
                    container: Some("train".into()),
                    follow: true,
                    ..LogParams::default()
                },
            )
            .await?;
        Ok(Some(Box::pin(log.lines())))
    }
}

/// Container waiting reasons that do not pass by themselves.
const STUCK: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// Why a pod's containers cannot start, if for good.
pub fn stuck(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let all = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in all {
        let waiting = c.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(w) = waiting
            && let Some(reason) = w.reason.as_deref()
            && STUCK.contains(&reason)
        {
            return Some(format!(
                "container {}: {reason}: {}",
                c.name,
                w.message.as_deref().unwrap_or("")
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(status: Value) -> Job {
        serde_json::from_value(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "ftjob-x-a1"},
            "status": status,
        }))
        .expect("a Job")
    }

    #[test]
    fn a_jobs_status_becomes_the_attempts_state() {
        assert_eq!(state_of(&job(json!({}))), KubeState::Pending);
        assert_eq!(state_of(&job(json!({"active": 2}))), KubeState::Running);
        assert_eq!(
            state_of(&job(json!({"active": 0, "conditions": [
                {"type": "Suspended", "status": "True", "reason": "JobSuspended"}]}))),
            KubeState::Pending,
            "held by Kueue"
        );
        assert_eq!(
            state_of(&job(json!({"succeeded": 2, "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"}]}))),
            KubeState::Succeeded
        );
        assert_eq!(
            state_of(&job(json!({"failed": 1, "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}]}))),
            KubeState::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            )
        );
        // A condition that no longer holds does not count.
        assert_eq!(
            state_of(&job(json!({"active": 1, "conditions": [
                {"type": "Suspended", "status": "False"}]}))),
            KubeState::Running
        );
    }

    #[test]
    fn a_pod_that_cannot_pull_its_image_is_stuck() {
        let pod = |reason: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": "p"},
                "status": {"phase": "Pending", "containerStatuses": [{
                    "name": "train", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": "pull access denied"}}}]},
            }))
            .expect("a Pod")
        };
        assert_eq!(
            stuck(&pod("ImagePullBackOff")).as_deref(),
            Some("container train: ImagePullBackOff: pull access denied")
        );
        assert_eq!(stuck(&pod("ContainerCreating")), None);
    }

    #[test]
    fn objects_go_to_their_apis() {
        let (ar, name) = resource_of(&json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "ftjob-x-a1"}}))
        .expect("a Job");
        assert_eq!(
            (ar.group.as_str(), ar.version.as_str(), ar.plural.as_str()),
            ("batch", "v1", "jobs")
        );
        assert_eq!(name, "ftjob-x-a1");
        let (ar, _) = resource_of(&json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}))
        .expect("a ConfigMap");
        assert_eq!((ar.group.as_str(), ar.plural.as_str()), ("", "configmaps"));
        assert!(resource_of(&json!({"apiVersion": "v1", "kind": "Service"})).is_err());
        assert!(resource_of(&json!({"kind": "Service", "metadata": {"name": "s"}})).is_err());
    }
}
