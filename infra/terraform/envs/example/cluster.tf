# What the cluster needs before the platform: namespaces, an encrypted default
# storage class, NVIDIA's device plugin (advertises nvidia.com/gpu on GPU
# nodes) and the cluster autoscaler (scales the GPU groups up from zero when a
# Triton or training pod is pending, and back down when they are idle).

resource "kubernetes_namespace_v1" "llmops" {
  metadata {
    name = var.namespace
  }

  depends_on = [module.eks]
}

# Training Jobs run here, as the namespace's `default` service account (the
# executor's pods name none), which IRSA maps to the training role. Nothing
# else should run in this namespace.
resource "kubernetes_namespace_v1" "training" {
  metadata {
    name = var.training_namespace
  }

  depends_on = [module.eks]
}

resource "kubernetes_annotations" "training_default_sa" {
  api_version = "v1"
  kind        = "ServiceAccount"

  metadata {
    name      = "default"
    namespace = kubernetes_namespace_v1.training.metadata[0].name
  }

  annotations = {
    "eks.amazonaws.com/role-arn" = module.iam.training_role_arn
  }

  force = true
}

# The training pods take their environment from this Secret
# (training_kube_artifacts_secret). No access keys: with the role above the
# AWS CLI in the pods gets web-identity credentials; only the region is set.
resource "kubernetes_secret_v1" "training_artifacts" {
  metadata {
    name      = "llmops-artifacts"
    namespace = kubernetes_namespace_v1.training.metadata[0].name
  }

  type = "Opaque"
  data = {
    AWS_REGION         = var.region
    AWS_DEFAULT_REGION = var.region
  }
}

resource "kubernetes_storage_class_v1" "gp3" {
  metadata {
    name = "gp3-encrypted"
    annotations = {
      "storageclass.kubernetes.io/is-default-class" = "true"
    }
  }

  storage_provisioner    = "ebs.csi.aws.com"
  reclaim_policy         = "Retain"
  volume_binding_mode    = "WaitForFirstConsumer"
  allow_volume_expansion = true

  parameters = {
    type      = "gp3"
    encrypted = "true"
    kmsKeyId  = module.kms.key_arns["ebs"]
  }

  depends_on = [aws_eks_addon.ebs_csi]
}

resource "helm_release" "nvidia_device_plugin" {
  name       = "nvidia-device-plugin"
  namespace  = "kube-system"
  repository = "https://nvidia.github.io/k8s-device-plugin"
  chart      = "nvidia-device-plugin"
  version    = var.nvidia_device_plugin_chart_version

  values = [yamlencode({
    # Only on the GPU pools' nodes, through their taint.
    affinity = {
      nodeAffinity = {
        requiredDuringSchedulingIgnoredDuringExecution = {
          nodeSelectorTerms = [{
            matchExpressions = [{ key = "llmops.dev/gpu-pool", operator = "Exists" }]
          }]
        }
      }
    }
    tolerations = [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }]
  })]

  depends_on = [module.eks]
}

resource "helm_release" "cluster_autoscaler" {
  name       = "cluster-autoscaler"
  namespace  = "kube-system"
  repository = "https://kubernetes.github.io/autoscaler"
  chart      = "cluster-autoscaler"
  version    = var.cluster_autoscaler_chart_version

  values = [yamlencode({
    cloudProvider = "aws"
    awsRegion     = var.region
    autoDiscovery = { clusterName = module.eks.cluster_name }
    rbac = {
      serviceAccount = {
        create      = true
        name        = "cluster-autoscaler"
        annotations = { "eks.amazonaws.com/role-arn" = module.iam.cluster_autoscaler_role_arn }
      }
    }
    nodeSelector = { "llmops.dev/node-class" = "cpu" }
    extraArgs = {
      # GPU nodes are the cost: remove one 5 minutes after its last GPU pod left.
      "scale-down-unneeded-time"      = "5m"
      "scale-down-delay-after-add"    = "5m"
      "expander"                      = "least-waste"
      "balance-similar-node-groups"   = true
      "skip-nodes-with-local-storage" = false
      "skip-nodes-with-system-pods"   = false
    }
  })]

  depends_on = [module.eks]
}
