//! Readiness of the shared Triton and of each catalog model: what the
//! gateway's `/ready` reports and what [`Serving::triton_for`] refuses
//! while a model loads.

use crate::catalog::ModelBackend;
use crate::service::Serving;

impl Serving {
    /// Readiness of the shared Triton: the server is live and every
    /// catalog model it serves is ready. Tenants' deployments are left
    /// out on purpose: one that is loading, or failed to load, makes
    /// Triton's own `server_ready` false, but must not take the whole
    /// gateway out of its load balancer.
    pub async fn triton_ready(&self) -> Result<(), String> {
        let Some(t) = self.triton() else {
            return Ok(());
        };
        match t.server_live().await {
            Ok(true) => {}
            Ok(false) => return Err("not live".into()),
            Err(e) => return Err(e.code().to_string()),
        }
        for m in &self.0.catalog {
            if let ModelBackend::Triton { model } = &m.backend {
                match t.model_ready(model).await {
                    Ok(true) => {}
                    Ok(false) => return Err(format!("model {} not ready", m.id)),
                    Err(e) => return Err(format!("model {}: {}", m.id, e.code())),
                }
            }
        }
        Ok(())
    }

    /// Asks Triton which catalog models are ready (every model at once, so
    /// one slow answer does not hold the others).
    pub async fn poll_readiness(&self) {
        let Some(triton) = &self.0.triton else { return };
        let checks = self.0.catalog.iter().filter_map(|m| {
            let name = m.triton_model()?.to_string();
            Some(async move {
                let ok = matches!(
                    tokio::time::timeout(
                        std::time::Duration::from_secs(2),
                        triton.model_ready(&name)
                    )
                    .await,
                    Ok(Ok(true))
                );
                (m.id.clone(), ok)
            })
        });
        let ready: std::collections::HashSet<String> = futures_util::future::join_all(checks)
            .await
            .into_iter()
            .filter_map(|(id, ok)| ok.then_some(id))
            .collect();
        for m in &self.0.catalog {
            metrics::gauge!("llm_model_ready", "model" => m.id.clone())
                .set(if ready.contains(&m.id) { 1.0 } else { 0.0 });
        }
        if let Ok(mut r) = self.0.ready.write() {
            *r = ready;
        }
    }

    /// Polls readiness until `stop` is cancelled.
    pub async fn watch_readiness(
        &self,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => self.poll_readiness().await,
            }
        }
    }

    pub(crate) fn is_ready(&self, id: &str) -> bool {
        self.0.ready.read().is_ok_and(|r| r.contains(id))
    }
}
