{{/* Names ------------------------------------------------------------- */}}

{{- define "llmops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name (at most 40 characters, so that
"<prefix>-<component>-<suffix>" names stay DNS labels). */}}
{{- define "llmops.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "llmops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels: include "llmops.labels" (dict "root" $ "component" "gateway") */}}
{{- define "llmops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmops.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "llmops.labels" -}}
helm.sh/chart: {{ include "llmops.chart" .root }}
{{ include "llmops.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: llmops
{{- end }}

{{/* Every pod of this release's llmops chart (not the qdrant subchart's). */}}
{{- define "llmops.instanceSelector" -}}
app.kubernetes.io/name: {{ include "llmops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "llmops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llmops.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Images ------------------------------------------------------------ */}}

{{/* include "llmops.imageRef" (dict "repository" … "tag" … "digest" …) */}}
{{- define "llmops.imageRef" -}}
{{- if .digest }}
{{- printf "%s:%s@%s" .repository .tag .digest }}
{{- else }}
{{- printf "%s:%s" .repository .tag }}
{{- end }}
{{- end }}

{{- define "llmops.image" -}}
{{- include "llmops.imageRef" (dict "repository" .Values.image.repository "tag" (default .Chart.AppVersion .Values.image.tag) "digest" .Values.image.digest) }}
{{- end }}

{{- define "llmops.trainerImage" -}}
{{- include "llmops.imageRef" (dict "repository" .Values.trainerImage.repository "tag" (default (printf "%s-trainer" .Chart.AppVersion) .Values.trainerImage.tag) "digest" .Values.trainerImage.digest) }}
{{- end }}

{{/* URLs --------------------------------------------------------------- */}}

{{- define "llmops.qdrantUrl" -}}
{{- if .Values.qdrant.enabled }}
{{- $name := default "qdrant" .Values.qdrant.nameOverride }}
{{- $full := "" }}
{{- if .Values.qdrant.fullnameOverride }}
{{- $full = .Values.qdrant.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains $name .Release.Name }}
{{- $full = .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $full = printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- printf "http://%s:6334" $full }}
{{- else }}
{{- required "externalQdrant.url is required unless qdrant.enabled (split and multi-replica deployments cannot share the embedded vector store)" .Values.externalQdrant.url }}
{{- end }}
{{- end }}

{{- define "llmops.tritonUrl" -}}
{{- if .Values.triton.enabled }}
{{- printf "http://%s-triton:8001" (include "llmops.fullname" .) }}
{{- else }}
{{- .Values.externalTriton.url }}
{{- end }}
{{- end }}

{{/* The services run as their own Deployments (split mode). */}}
{{- define "llmops.serviceNames" -}}
registry serving billing training rag monitoring
{{- end }}

{{/* LLMOPS_SERVICE_URLS in figment's dict syntax, of the enabled services. */}}
{{- define "llmops.serviceUrls" -}}
{{- $root := . }}
{{- $parts := list }}
{{- range $name := splitList " " (include "llmops.serviceNames" .) }}
{{- if (index $root.Values.services $name).enabled }}
{{- $parts = append $parts (printf "%s=\"http://%s-%s:8080\"" $name (include "llmops.fullname" $root) $name) }}
{{- end }}
{{- end }}
{{- printf "{%s}" (join "," $parts) }}
{{- end }}

{{/* Environment -------------------------------------------------------- */}}

{{/* The database URL alone (the migrations Job needs nothing else). */}}
{{- define "llmops.databaseEnv" -}}
{{- $s := .Values.secrets }}
- name: LLMOPS_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ $s.existingSecret | quote }}, key: {{ $s.keys.databaseUrl | quote }}}}
{{- end }}

{{/* The environment of every llmops process:
include "llmops.env" (dict "root" $ "cpuSlots" 0 "split" true) */}}
{{- define "llmops.env" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $s := $v.secrets }}
{{- include "llmops.databaseEnv" $root }}
- name: LLMOPS_REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ $s.existingSecret | quote }}, key: {{ $s.keys.redisUrl | quote }}}}
- name: LLMOPS_JWT_SECRET
  valueFrom: {secretKeyRef: {name: {{ $s.existingSecret | quote }}, key: {{ $s.keys.jwtSecret | quote }}}}
- name: LLMOPS_OPERATOR_TOKEN
  valueFrom: {secretKeyRef: {name: {{ $s.existingSecret | quote }}, key: {{ $s.keys.operatorToken | quote }}}}
{{- if .split }}
- name: LLMOPS_INTERNAL_SECRET
  valueFrom: {secretKeyRef: {name: {{ $s.existingSecret | quote }}, key: {{ required "secrets.keys.internalSecret is required in split mode" $s.keys.internalSecret | quote }}}}
- name: LLMOPS_SERVICE_URLS
  value: {{ include "llmops.serviceUrls" $root | quote }}
{{- end }}
{{- if $s.keys.stripeApiKey }}
- name: LLMOPS_STRIPE_API_KEY
  valueFrom: {secretKeyRef: {name: {{ $s.existingSecret | quote }}, key: {{ $s.keys.stripeApiKey | quote }}, optional: true}}
{{- end }}
{{- if $s.keys.qdrantApiKey }}
- name: LLMOPS_QDRANT_API_KEY
  valueFrom: {secretKeyRef: {name: {{ $s.existingSecret | quote }}, key: {{ $s.keys.qdrantApiKey | quote }}, optional: true}}
{{- end }}
{{- if $s.keys.s3AccessKeyId }}
- name: LLMOPS_S3_ACCESS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ $s.existingSecret | quote }}, key: {{ $s.keys.s3AccessKeyId | quote }}}}
{{- end }}
{{- if $s.keys.s3SecretAccessKey }}
- name: LLMOPS_S3_SECRET_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ $s.existingSecret | quote }}, key: {{ $s.keys.s3SecretAccessKey | quote }}}}
{{- end }}
- name: LLMOPS_LISTEN
  value: "0.0.0.0:8080"
- name: LLMOPS_DATA_DIR
  value: /var/lib/llmops
- name: LLMOPS_AUTO_MIGRATE
  value: "false"
- name: LLMOPS_LOG_FORMAT
  value: {{ $v.config.logFormat | quote }}
{{- with $v.config.logLevel }}
- name: LLMOPS_LOG_LEVEL
  value: {{ . | quote }}
{{- end }}
- name: LLMOPS_ARTIFACTS_URL
  value: {{ required "artifacts.url (s3://bucket/prefix) is required: every replica must see the same artifacts" $v.artifacts.url | quote }}
- name: LLMOPS_S3_REGION
  value: {{ $v.artifacts.region | quote }}
{{- with $v.artifacts.endpoint }}
- name: LLMOPS_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: LLMOPS_QDRANT_URL
  value: {{ include "llmops.qdrantUrl" $root | quote }}
{{- with (include "llmops.tritonUrl" $root) }}
- name: LLMOPS_TRITON_URL
  value: {{ . | quote }}
{{- end }}
- name: LLMOPS_TRAINING_CPU_SLOTS
  value: {{ .cpuSlots | int | toString | quote }}
{{- with $v.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with .extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod pieces ---------------------------------------------------------- */}}

{{- define "llmops.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "llmops.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* The writable directories of a read-only root filesystem. */}}
{{- define "llmops.volumes" -}}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.dataDirSizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpDirSizeLimit }}
{{- end }}

{{- define "llmops.volumeMounts" -}}
- name: data
  mountPath: /var/lib/llmops
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "llmops.probes" -}}
{{- $p := .Values.probes }}
startupProbe:
  httpGet: {path: {{ $p.startup.path }}, port: http}
  periodSeconds: {{ $p.startup.periodSeconds }}
  timeoutSeconds: {{ $p.startup.timeoutSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
livenessProbe:
  httpGet: {path: {{ $p.liveness.path }}, port: http}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
readinessProbe:
  httpGet: {path: {{ $p.readiness.path }}, port: http}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
{{- end }}

{{/* Scheduling of llmops pods: include "llmops.scheduling" (dict "root" $ "component" "gateway") */}}
{{- define "llmops.scheduling" -}}
{{- $v := .root.Values }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- if $v.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: {{ $v.topologySpread.topologyKey }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "llmops.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end }}
