{{/* Chart name, truncated to 63 characters (a DNS label). */}}
{{- define "cryptolake.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name: the release name alone when it already contains the chart name. */}}
{{- define "cryptolake.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's object name: <fullname>-<component>, within 63 characters. */}}
{{- define "cryptolake.componentName" -}}
{{- printf "%s-%s" (include "cryptolake.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cryptolake.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of a component. Call with (dict "root" $ "component" "postgresql"). */}}
{{- define "cryptolake.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cryptolake.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every label of a component's objects. Call with (dict "root" $ "component" "postgresql"). */}}
{{- define "cryptolake.labels" -}}
{{ include "cryptolake.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: cryptolakehouse
helm.sh/chart: {{ include "cryptolake.chart" .root }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* repository:tag of an image value. */}}
{{- define "cryptolake.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{- define "cryptolake.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ .name }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod-level security context, Pod Security "restricted". Call with (dict "uid" 185) or (dict) for the
     image's own numeric USER. */}}
{{- define "cryptolake.podSecurityContext" -}}
runAsNonRoot: true
{{- if .uid }}
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container security context, Pod Security "restricted" with a read-only root filesystem. */}}
{{- define "cryptolake.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The ServiceAccount of the chart's own pods (no API token mounted). */}}
{{- define "cryptolake.serviceAccountName" -}}
{{- include "cryptolake.fullname" . -}}
{{- end -}}

{{/* S3 endpoint (empty for AWS S3 itself). */}}
{{- define "cryptolake.s3.endpoint" -}}
{{- $ns := .Release.Namespace -}}
{{- if eq .Values.objectStore.type "seaweedfs" -}}
{{- printf "http://%s.%s.svc.%s:8333" (include "cryptolake.componentName" (dict "root" . "component" "seaweedfs")) $ns .Values.clusterDomain -}}
{{- else if eq .Values.objectStore.type "minio" -}}
{{- printf "http://%s.%s.svc.%s:9000" (include "cryptolake.componentName" (dict "root" . "component" "minio")) $ns .Values.clusterDomain -}}
{{- else -}}
{{- .Values.objectStore.external.endpoint -}}
{{- end -}}
{{- end -}}

{{/* The in-cluster object store's component name, empty for external. */}}
{{- define "cryptolake.s3.component" -}}
{{- if ne .Values.objectStore.type "external" }}{{ .Values.objectStore.type }}{{ end -}}
{{- end -}}

{{- define "cryptolake.lakeUri" -}}
{{- printf "s3://%s" .Values.objectStore.bucket -}}
{{- end -}}

{{- define "cryptolake.sparkEventsUri" -}}
{{- printf "s3a://%s/spark-events" .Values.objectStore.bucket -}}
{{- end -}}

{{- define "cryptolake.postgresql.host" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s.%s.svc.%s" (include "cryptolake.componentName" (dict "root" . "component" "postgresql")) .Release.Namespace .Values.clusterDomain -}}
{{- else -}}
{{- .Values.postgresql.external.host -}}
{{- end -}}
{{- end -}}

{{- define "cryptolake.postgresql.port" -}}
{{- if .Values.postgresql.enabled }}5432{{ else }}{{ .Values.postgresql.external.port }}{{ end -}}
{{- end -}}

{{/* The in-cluster server's password Secret and key. */}}
{{- define "cryptolake.postgresql.secretName" -}}
{{- default (include "cryptolake.componentName" (dict "root" . "component" "postgresql")) .Values.postgresql.auth.existingSecret -}}
{{- end -}}

{{/* A value that must be given when no existingSecret replaces the chart's Secret. */}}
{{- define "cryptolake.requiredSecretValue" -}}
{{- if not .value -}}
{{- fail (printf "%s is required: give it (e.g. --set %s=...) or create the Secret %q yourself with the keys CMC_API_KEY, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and WAREHOUSE_URL and set secrets.existingSecret=%s" .field .field .secret .secret) -}}
{{- end -}}
{{- .value -}}
{{- end -}}

{{/* Environment of the S3 credentials from the cryptolake Secret. */}}
{{- define "cryptolake.s3CredentialsEnv" -}}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.name }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.name }}
      key: AWS_SECRET_ACCESS_KEY
{{- end -}}

{{/* envFrom of the pipeline's settings: the ConfigMap and the Secret. */}}
{{- define "cryptolake.settingsEnvFrom" -}}
- configMapRef:
    name: {{ .Values.config.name }}
- secretRef:
    name: {{ .Values.secrets.name }}
{{- end -}}

{{/* Volumes every container needs with a read-only root filesystem. */}}
{{- define "cryptolake.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end -}}

{{/* The TCP port of the external S3 endpoint (443 for AWS S3 itself). */}}
{{- define "cryptolake.s3.externalPort" -}}
{{- $endpoint := .Values.objectStore.external.endpoint -}}
{{- if not $endpoint -}}443
{{- else -}}
{{- $url := urlParse $endpoint -}}
{{- $hostPort := splitList ":" $url.host -}}
{{- if gt (len $hostPort) 1 -}}{{ last $hostPort }}{{- else if eq $url.scheme "https" -}}443{{- else -}}80{{- end -}}
{{- end -}}
{{- end -}}
