{{/*
A training worker Deployment (`llmops worker …`): no HTTP, so no Service
and no HTTP probes. A worker that dies restarts with its container; one
that hangs stops renewing its job leases, and the queue hands its jobs to
another worker after training_lease_secs: the database lease is the
worker's health check.

include "llmops.worker" (dict "root" $ "component" "worker" "args" (list …)
  "spec" .Values.worker "image" "…" "serviceAccount" "…" "automountToken" false
  "extraEnv" (list …))
*/}}
{{- define "llmops.worker" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $spec := .spec }}
{{- $labels := dict "root" $root "component" .component }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "llmops.fullname" $root }}-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "llmops.labels" $labels | nindent 4 }}
  annotations:
    checkov.io/skip1: CKV_K8S_8=No HTTP endpoint (llmops worker); liveness is the job lease in the database
    checkov.io/skip2: CKV_K8S_9=No HTTP endpoint (llmops worker); it takes no traffic to be ready for
    {{- if .automountToken }}
    checkov.io/skip3: CKV_K8S_38=The GPU worker creates and follows training Jobs through the Kubernetes API with this token (namespaced Role)
    {{- end }}
spec:
  replicas: {{ $spec.replicas }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "llmops.selectorLabels" $labels | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "llmops.labels" $labels | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ .serviceAccount }}
      automountServiceAccountToken: {{ .automountToken }}
      enableServiceLinks: false
      securityContext:
        {{- include "llmops.podSecurityContext" $root | nindent 8 }}
      # SIGTERM stops the worker, which re-queues its running attempts.
      terminationGracePeriodSeconds: {{ $spec.terminationGracePeriodSeconds }}
      {{- include "llmops.scheduling" $labels | nindent 6 }}
      containers:
        - name: worker
          image: {{ .image | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args: {{ toJson .args }}
          env:
            {{- include "llmops.env" (dict "root" $root "cpuSlots" 0 "split" (eq $v.mode "split") "extraEnv" .extraEnv) | nindent 12 }}
          resources:
            {{- toYaml $spec.resources | nindent 12 }}
          securityContext:
            {{- include "llmops.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            {{- include "llmops.volumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "llmops.volumes" $root | nindent 8 }}
{{- end }}
