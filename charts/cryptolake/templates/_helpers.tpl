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

{{/* The components that read a Secret of their own: the pipeline's (the spec's kubernetes.secrets), the
     History Server, Airflow's task logs (its S3 identity; Airflow reads the keys from its own connection Secret)
     and the chart's admin tasks. */}}
{{- define "cryptolake.secretRoles" -}}extract transform load backup history airflow admin{{- end -}}

{{/* A component's Secret name. The pipeline's come from the chart's copy of the spec, the names the DAG pods and
     SparkApplications use. Call with (dict "root" $ "role" "load"). */}}
{{- define "cryptolake.secretName" -}}
{{- if eq .role "history" -}}
{{- .root.Values.secrets.historyName -}}
{{- else if eq .role "airflow" -}}
{{- .root.Values.secrets.airflowName -}}
{{- else if eq .role "admin" -}}
{{- .root.Values.secrets.adminName -}}
{{- else -}}
{{- $names := (fromYaml (.root.Files.Get "files/pipeline.yaml")).kubernetes.secrets -}}
{{- required (printf "the pipeline spec (files/pipeline.yaml) names no Secret for %s" .role) (get $names .role) -}}
{{- end -}}
{{- end -}}

{{/* The in-cluster server's environment: user, database, password (from its Secret), PGDATA. */}}
{{- define "cryptolake.postgresql.env" -}}
{{- $pg := .Values.postgresql -}}
- name: POSTGRES_USER
  value: {{ $pg.auth.username | quote }}
- name: POSTGRES_DB
  value: {{ $pg.auth.database | quote }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "cryptolake.postgresql.secretName" . }}
      key: {{ $pg.auth.passwordKey }}
- name: PGDATA
  value: /var/lib/postgresql/data/pgdata
{{- end -}}

{{/* A value that must be given when the chart makes the Secrets (no secrets.existingSecrets). */}}
{{- define "cryptolake.requiredSecretValue" -}}
{{- if not .value -}}
{{- fail (printf "%s is required: give it (e.g. --set %s=...), or create every component's Secret yourself (docs/kubernetes.md, \"Secrets\") and set secrets.existingSecrets=true" .field .field) -}}
{{- end -}}
{{- .value -}}
{{- end -}}

{{/* SQLAlchemy URL of the warehouse for a login. Call with (dict "root" $ "user" "u" "password" "p"). */}}
{{- define "cryptolake.warehouseUrl" -}}
{{- printf "postgresql+psycopg2://%s:%s@%s:%s/%s" .user .password (include "cryptolake.postgresql.host" .root) (include "cryptolake.postgresql.port" .root) .root.Values.postgresql.auth.database -}}
{{- end -}}

{{/* A component's S3 keys as a JSON list [id, secret]. seaweedfs: its own identity, required; minio/external:
     its own when given, else the admin identity (the chart cannot create identities in those stores). */}}
{{- define "cryptolake.s3Keys" -}}
{{- $store := .root.Values.objectStore -}}
{{- $admin := list (include "cryptolake.requiredSecretValue" (dict "value" $store.accessKeyId "field" "objectStore.accessKeyId")) (include "cryptolake.requiredSecretValue" (dict "value" $store.secretAccessKey "field" "objectStore.secretAccessKey")) -}}
{{- $identity := get $store.identities .role -}}
{{- if and $identity (or $identity.secretAccessKey (eq $store.type "seaweedfs")) -}}
{{- list $identity.accessKeyId (include "cryptolake.requiredSecretValue" (dict "value" $identity.secretAccessKey "field" (printf "objectStore.identities.%s.secretAccessKey" .role))) | toJson -}}
{{- else -}}
{{- $admin | toJson -}}
{{- end -}}
{{- end -}}

{{/* A component's Secret data (stringData lines), from values: its S3 identity, and only what else it needs.
     Call with (dict "root" $ "role" "load"). */}}
{{- define "cryptolake.secretData" -}}
{{- $v := .root.Values -}}
{{- $keys := include "cryptolake.s3Keys" . | fromJsonArray -}}
{{- $user := dict "load" "cryptolake_loader_user" "backup" "cryptolake_backup_user" -}}
{{- $password := dict "load" (dict "value" $v.secrets.warehouseLoaderPassword "field" "secrets.warehouseLoaderPassword") "backup" (dict "value" $v.secrets.warehouseBackupPassword "field" "secrets.warehouseBackupPassword") -}}
AWS_ACCESS_KEY_ID: {{ index $keys 0 | quote }}
AWS_SECRET_ACCESS_KEY: {{ index $keys 1 | quote }}
{{- if eq .role "extract" }}
CMC_API_KEY: {{ include "cryptolake.requiredSecretValue" (dict "value" $v.secrets.cmcApiKey "field" "secrets.cmcApiKey") | quote }}
{{- else if hasKey $user .role }}
WAREHOUSE_URL: {{ include "cryptolake.warehouseUrl" (dict "root" .root "user" (get $user .role) "password" (include "cryptolake.requiredSecretValue" (get $password .role))) | quote }}
{{- else if eq .role "admin" }}
WAREHOUSE_URL: {{ include "cryptolake.warehouseUrl" (dict "root" .root "user" $v.postgresql.auth.username "password" (include "cryptolake.requiredSecretValue" (dict "value" $v.postgresql.auth.password "field" "postgresql.auth.password"))) | quote }}
WAREHOUSE_LOADER_PASSWORD: {{ include "cryptolake.requiredSecretValue" (get $password "load") | quote }}
WAREHOUSE_BACKUP_PASSWORD: {{ include "cryptolake.requiredSecretValue" (get $password "backup") | quote }}
{{- with $v.secrets.warehouseAnalystPassword }}
WAREHOUSE_ANALYST_PASSWORD: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod annotation hashing the S3 keys a server reads from the chart-made Secrets (the servers read no other
     key), so new keys roll it and nothing else does. Nothing with secrets.existingSecrets: the chart never reads
     your Secrets (roll the pods yourself, docs/kubernetes.md). Call with (dict "root" $ "roles" (list "admin")). */}}
{{- define "cryptolake.s3KeysChecksum" -}}
{{- if not .root.Values.secrets.existingSecrets -}}
{{- $keys := list -}}
{{- range .roles -}}
{{- $keys = append $keys (include "cryptolake.s3Keys" (dict "root" $.root "role" .)) -}}
{{- end -}}
checksum/s3-keys: {{ join "\n" $keys | sha256sum }}
{{- end -}}
{{- end -}}

{{/* AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from a component's Secret. Call with (dict "root" $ "role" "admin"). */}}
{{- define "cryptolake.s3CredentialsEnv" -}}
{{- $secret := include "cryptolake.secretName" . -}}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: AWS_SECRET_ACCESS_KEY
{{- end -}}

{{/* envFrom of the pipeline's non-secret settings (the ConfigMap); credentials come per component. */}}
{{- define "cryptolake.settingsEnvFrom" -}}
- configMapRef:
    name: {{ .Values.config.name }}
{{- end -}}

{{/* Pod annotation hashing the settings ConfigMap, for pods that read it. */}}
{{- define "cryptolake.settingsChecksum" -}}
checksum/settings: {{ include (print .Template.BasePath "/config/configmap.yaml") . | sha256sum }}
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
