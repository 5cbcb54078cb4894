# The platform: the chart in infra/helm/llmops, with values from this
# configuration's outputs. Names follow the chart's values.yaml.

locals {
  release_name     = "llmops"
  artifacts_prefix = "artifacts"
  artifacts_url    = "s3://${module.s3.artifacts_bucket}/${local.artifacts_prefix}"

  gpu_tolerations = [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }]

  llmops_values = {
    mode = var.mode

    image = {
      repository = local.image_repository
      tag        = var.image_tag
    }

    # Every secret comes from the Secret written in secrets.tf; S3 access from
    # the pods' IRSA role (no access keys).
    secrets = {
      existingSecret = kubernetes_secret_v1.platform.metadata[0].name
    }

    artifacts = {
      url    = local.artifacts_url
      region = var.region
    }

    serviceAccount = {
      create      = true
      name        = local.release_name
      annotations = { "eks.amazonaws.com/role-arn" = module.iam.llmops_role_arn }
    }

    # The platform's own pods stay on the CPU nodes.
    nodeSelector = { "llmops.dev/node-class" = "cpu" }

    triton = {
      enabled  = true
      replicas = var.triton_replicas
      image = {
        repository = local.triton_image_repository
        tag        = var.triton_image_tag
      }
      gpu = { count = var.triton_gpu_count }
      # With GPUs: the serving pool's nodes. Without (triton_gpu_count = 0,
      # the shipped image's models run on the CPU): the CPU nodes. The chart's
      # default selector (nvidia.com/gpu.present, set by NVIDIA's feature
      # discovery, not installed here) is removed: null deletes a Helm default.
      nodeSelector = merge(
        { "nvidia.com/gpu.present" = null },
        var.triton_gpu_count > 0 ? { "llmops.dev/gpu-pool" = module.eks.gpu_serving_pool } : { "llmops.dev/node-class" = "cpu" },
      )
      tolerations = var.triton_gpu_count > 0 ? local.gpu_tolerations : []
    }

    # Qdrant's official chart (a subchart of ours): one replica on the CPU
    # nodes, its volume from the default gp3-encrypted class.
    qdrant = {
      enabled      = var.qdrant_mode == "subchart"
      nodeSelector = { "llmops.dev/node-class" = "cpu" }
    }

    externalQdrant = {
      url = var.qdrant_mode == "external" ? var.external_qdrant_url : ""
    }

    gateway = {
      ingress = {
        enabled       = var.gateway_ingress.enabled
        className     = var.gateway_ingress.class_name
        host          = var.gateway_ingress.enabled ? var.gateway_ingress.host : "llmops.example.com"
        annotations   = var.gateway_ingress.annotations
        tlsSecretName = var.gateway_ingress.tls_secret_name
      }
    }

    gpuWorker = {
      enabled         = var.gpu_worker_enabled
      gpuType         = var.gpu_worker_gpu_type
      pool            = var.gpu_worker_enabled ? module.eks.gpu_training_pool : ""
      namespace       = kubernetes_namespace_v1.training.metadata[0].name
      trainingImage   = var.training_image
      artifactsSecret = kubernetes_secret_v1.training_artifacts.metadata[0].name
      poolLabel       = "llmops.dev/gpu-pool"
    }
  }
}

resource "helm_release" "llmops" {
  name      = local.release_name
  namespace = kubernetes_namespace_v1.llmops.metadata[0].name
  chart     = "${path.module}/../../../helm/llmops"

  # The chart declares Qdrant's chart as a dependency (used or not): fetch it
  # into charts/ before installing.
  dependency_update = true

  values = [yamlencode(local.llmops_values)]

  # The subchart's API key: the same value the platform reads from its Secret.
  dynamic "set_sensitive" {
    for_each = var.qdrant_mode == "subchart" ? [1] : []
    content {
      name  = "qdrant.apiKey"
      value = local.app_secrets["qdrant-api-key"]
    }
  }

  # The pre-install/pre-upgrade migration Job runs first; Triton waits for a
  # GPU node the autoscaler brings up from zero (several minutes).
  wait    = true
  timeout = 1200

  depends_on = [
    helm_release.cluster_autoscaler,
    helm_release.nvidia_device_plugin,
    kubernetes_storage_class_v1.gp3,
    kubernetes_annotations.training_default_sa,
  ]
}
