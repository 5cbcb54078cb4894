{{/*
One llmops HTTP process kind: Deployment, ClusterIP Service, optional
HorizontalPodAutoscaler and PodDisruptionBudget.

include "llmops.server" (dict
  "root" $                 the chart's root context
  "component" "gateway"    app.kubernetes.io/component, and the name suffix
  "services" "gateway"     the --services argument ("all" in single mode)
  "spec" .Values.gateway   replicas, resources, autoscaling, pdb, extraEnv, cpuSlots
  "split" true             split-mode environment (internal secret, service URLs)
  "port" 8080)             the Service port
*/}}
{{- define "llmops.server" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $spec := .spec }}
{{- $name := printf "%s-%s" (include "llmops.fullname" $root) .component }}
{{- $labels := dict "root" $root "component" .component }}
{{- $cpuSlots := int (default 0 $spec.cpuSlots) }}
{{- $image := include "llmops.image" $root }}
{{- if gt $cpuSlots 0 }}
{{- $image = include "llmops.trainerImage" $root }}
{{- end }}
{{- $hpa := $spec.autoscaling | default dict }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "llmops.labels" $labels | nindent 4 }}
spec:
  {{- if not $hpa.enabled }}
  replicas: {{ $spec.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
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
      serviceAccountName: {{ include "llmops.serviceAccountName" $root }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext:
        {{- include "llmops.podSecurityContext" $root | nindent 8 }}
      terminationGracePeriodSeconds: 30
      {{- include "llmops.scheduling" $labels | nindent 6 }}
      containers:
        - name: llmops
          image: {{ $image | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args: ["serve", "--services", {{ .services | quote }}]
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          env:
            {{- include "llmops.env" (dict "root" $root "cpuSlots" $cpuSlots "split" .split "extraEnv" $spec.extraEnv) | nindent 12 }}
          {{- include "llmops.probes" $root | nindent 10 }}
          resources:
            {{- toYaml $spec.resources | nindent 12 }}
          securityContext:
            {{- include "llmops.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            {{- include "llmops.volumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "llmops.volumes" $root | nindent 8 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "llmops.labels" $labels | nindent 4 }}
    llmops.dev/metrics: "true"
spec:
  type: {{ .serviceType | default "ClusterIP" }}
  selector:
    {{- include "llmops.selectorLabels" $labels | nindent 4 }}
  ports:
    - name: http
      port: {{ .port | default 8080 }}
      targetPort: http
      protocol: TCP
{{- if $hpa.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "llmops.labels" $labels | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $hpa.minReplicas }}
  maxReplicas: {{ $hpa.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $hpa.targetCPUUtilizationPercentage }}
    {{- with $hpa.requestsPerSecond }}
    {{- if .enabled }}
    # Needs a custom metrics API (prometheus-adapter) serving this Pods
    # metric from http_requests_total; see values.yaml.
    - type: Pods
      pods:
        metric:
          name: {{ .metricName }}
        target:
          type: AverageValue
          averageValue: {{ .averageValue | quote }}
    {{- end }}
    {{- end }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
      policies:
        - {type: Percent, value: 50, periodSeconds: 60}
    scaleUp:
      stabilizationWindowSeconds: 0
      policies:
        - {type: Percent, value: 100, periodSeconds: 30}
        - {type: Pods, value: 4, periodSeconds: 30}
      selectPolicy: Max
{{- end }}
{{- if $spec.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "llmops.labels" $labels | nindent 4 }}
spec:
  maxUnavailable: {{ $spec.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "llmops.selectorLabels" $labels | nindent 6 }}
{{- end }}
{{- end }}
