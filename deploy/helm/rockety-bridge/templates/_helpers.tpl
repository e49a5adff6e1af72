{{/*
The chart's name, or nameOverride.
*/}}
{{- define "rockety-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified name of the release's objects: fullnameOverride, or the
release name if it already contains the chart's name, or release-chart.
*/}}
{{- define "rockety-bridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
chart-version, for the helm.sh/chart label.
*/}}
{{- define "rockety-bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "rockety-bridge.labels" -}}
helm.sh/chart: {{ include "rockety-bridge.chart" . }}
{{ include "rockety-bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ include "rockety-bridge.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: bridge
app.kubernetes.io/part-of: rockety-bridge
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the pods; never change them in an upgrade (a Deployment's
selector is immutable).
*/}}
{{- define "rockety-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rockety-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rockety-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rockety-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rockety-bridge.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "rockety-bridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "rockety-bridge.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
The Secret holding the API token, and its key.
*/}}
{{- define "rockety-bridge.tokenSecretName" -}}
{{- if .Values.rockety.existingSecret }}
{{- .Values.rockety.existingSecret }}
{{- else }}
{{- printf "%s-api-token" (include "rockety-bridge.fullname" .) }}
{{- end }}
{{- end }}

{{- define "rockety-bridge.tokenSecretKey" -}}
{{- if .Values.rockety.existingSecret }}
{{- .Values.rockety.existingSecretKey }}
{{- else -}}
token
{{- end }}
{{- end }}

{{- define "rockety-bridge.natsSecretName" -}}
{{- printf "%s-nats" (include "rockety-bridge.fullname" .) }}
{{- end }}

{{/*
The NATS secrets as a list of dicts: the value's name, its key in the
chart's Secret, the file it becomes (files only), the env var, and the entry
from values. Each is "set" when it has a value or an existing Secret.
*/}}
{{- define "rockety-bridge.natsSecrets" -}}
{{- $n := .Values.nats }}
{{- $list := list
  (dict "name" "password" "chartKey" "password" "file" "" "env" "NATS_PASSWORD" "v" $n.password)
  (dict "name" "token" "chartKey" "token" "file" "" "env" "NATS_TOKEN" "v" $n.token)
  (dict "name" "creds" "chartKey" "nats.creds" "file" "nats.creds" "env" "NATS_CREDS" "v" $n.creds)
  (dict "name" "nkeySeed" "chartKey" "nkey.seed" "file" "nkey.seed" "env" "NATS_NKEY_SEED_FILE" "v" $n.nkeySeed)
  (dict "name" "tls.ca" "chartKey" "ca.crt" "file" "ca.crt" "env" "NATS_TLS_CA" "v" $n.tls.ca)
  (dict "name" "tls.cert" "chartKey" "tls.crt" "file" "tls.crt" "env" "NATS_TLS_CERT" "v" $n.tls.cert)
  (dict "name" "tls.key" "chartKey" "tls.key" "file" "tls.key" "env" "NATS_TLS_KEY" "v" $n.tls.key)
}}
{{- toJson $list }}
{{- end }}

{{/*
Directories the secrets are mounted at.
*/}}
{{- define "rockety-bridge.tokenDir" -}}/etc/rockety-bridge/api-token{{- end }}
{{- define "rockety-bridge.natsDir" -}}/etc/rockety-bridge/nats{{- end }}

{{/*
The port of config.httpAddr (":8080", "0.0.0.0:9090", "[::]:8080").
*/}}
{{- define "rockety-bridge.httpPort" -}}
{{- $port := regexReplaceAll "^.*:" .Values.config.httpAddr "" }}
{{- if not (regexMatch "^[0-9]+$" $port) }}
{{- fail (printf "config.httpAddr %q: want host:port, e.g. \":8080\"" .Values.config.httpAddr) }}
{{- end }}
{{- $port | atoi }}
{{- end }}

{{/*
Seconds in a Go duration such as 30s, 1m30s, 1.5h or 500ms (a float).
*/}}
{{- define "rockety-bridge.seconds" -}}
{{- $d := toString . }}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$" $d) }}
{{- fail (printf "%q is not a duration such as 30s, 5m or 1h30m" $d) }}
{{- end }}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" $d -1 }}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" . | float64 }}
{{- $unit := regexReplaceAll "^[0-9]+(\\.[0-9]+)?" . "" }}
{{- $total = addf $total (mulf $num (get $units $unit)) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the value, checked to be above
BRIDGE_SHUTDOWN_GRACE, or that grace plus terminationGraceExtraSeconds.
*/}}
{{- define "rockety-bridge.terminationGrace" -}}
{{- $grace := include "rockety-bridge.seconds" .Values.config.shutdownGrace | float64 | ceil | int }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $grace .Values.terminationGraceExtraSeconds }}
{{- else }}
{{- $set := .Values.terminationGracePeriodSeconds | int }}
{{- if le $set $grace }}
{{- fail (printf "terminationGracePeriodSeconds %d must be larger than config.shutdownGrace (%s), or the kubelet kills the bridge before its shutdown is done" $set .Values.config.shutdownGrace) }}
{{- end }}
{{- $set }}
{{- end }}
{{- end }}

{{/*
Checks that stop the render with a message that says what to do.
*/}}
{{- define "rockety-bridge.validate" -}}
{{- if not .Values.nats.url }}
{{- fail "nats.url is required: set it to your NATS servers, e.g. --set nats.url=nats://nats.nats.svc:4222 (rockety-bridge's embedded NATS server, used when NATS_URL is empty, is for the demo only: it keeps events and state in the pod and is not shared by replicas)" }}
{{- end }}
{{- if and .Values.rockety.apiToken .Values.rockety.existingSecret }}
{{- fail "rockety.apiToken and rockety.existingSecret are both set: use one" }}
{{- end }}
{{- if not (or .Values.rockety.apiToken .Values.rockety.existingSecret) }}
{{- fail "the Rockety API token is missing: set rockety.existingSecret (and rockety.existingSecretKey) to a Secret holding it, or rockety.apiToken" }}
{{- end }}
{{- if and (hasPrefix "http://" .Values.config.apiUrl) (not .Values.config.allowInsecure) }}
{{- fail (printf "config.apiUrl %s uses http://, which would send the token in clear text: use https://, or set config.allowInsecure=true for a test API" .Values.config.apiUrl) }}
{{- end }}
{{- range (include "rockety-bridge.natsSecrets" . | fromJsonArray) }}
{{- if and .v.value .v.existingSecret }}
{{- fail (printf "nats.%s: set value or existingSecret, not both" .name) }}
{{- end }}
{{- end }}
{{- $cert := or .Values.nats.tls.cert.value .Values.nats.tls.cert.existingSecret }}
{{- $key := or .Values.nats.tls.key.value .Values.nats.tls.key.existingSecret }}
{{- if ne (not $cert) (not $key) }}
{{- fail "nats.tls.cert and nats.tls.key go together: set both or neither" }}
{{- end }}
{{- if and (or .Values.nats.password.value .Values.nats.password.existingSecret) (not .Values.nats.user) }}
{{- fail "nats.password is set without nats.user" }}
{{- end }}
{{- with .Values.podDisruptionBudget }}
{{- if and .enabled (gt (int $.Values.replicaCount) 1) (not (kindIs "string" .minAvailable)) (ge (int .minAvailable) (int $.Values.replicaCount)) }}
{{- fail (printf "podDisruptionBudget.minAvailable %v with replicaCount %v would block every drain: keep it below the replicas" .minAvailable $.Values.replicaCount) }}
{{- end }}
{{- end }}
{{- range $r, $d := .Values.config.pollIntervals }}
{{- if not (has $r $.Values.config.resources) }}
{{- fail (printf "config.pollIntervals: %q is not in config.resources" $r) }}
{{- end }}
{{- end }}
{{- range $r, $p := .Values.config.changedSince }}
{{- if not (or (eq $r "*") (has $r $.Values.config.resources)) }}
{{- fail (printf "config.changedSince: %q is not in config.resources (use \"*\" for every resource)" $r) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
PromQL label matchers of this release's series.
*/}}
{{- define "rockety-bridge.promSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else }}
{{- printf "job=%q, namespace=%q" (include "rockety-bridge.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
ROCKETY_POLL_INTERVALS from the config.pollIntervals map: tasks:10s,users:5m.
*/}}
{{- define "rockety-bridge.pollIntervals" -}}
{{- $pairs := list }}
{{- range $r, $d := .Values.config.pollIntervals }}
{{- $pairs = append $pairs (printf "%s:%s" $r $d) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/*
ROCKETY_CHANGED_SINCE from the config.changedSince map:
*:updated_since,users:modified_after.
*/}}
{{- define "rockety-bridge.changedSince" -}}
{{- $pairs := list }}
{{- range $r, $p := .Values.config.changedSince }}
{{- $pairs = append $pairs (printf "%s:%s" $r $p) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}
