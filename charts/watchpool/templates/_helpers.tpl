{{/*
Name of the chart, or nameOverride.
*/}}
{{- define "watchpool.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's resources: fullnameOverride, or <release>-<name> unless the release
name already contains the chart name. Truncated to 63 characters (DNS label).
*/}}
{{- define "watchpool.fullname" -}}
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
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "watchpool.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the operator pods. Never change them across releases: a Deployment's
selector is immutable.
*/}}
{{- define "watchpool.selectorLabels" -}}
app.kubernetes.io/name: {{ include "watchpool.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Standard labels of every resource.
*/}}
{{- define "watchpool.labels" -}}
helm.sh/chart: {{ include "watchpool.chart" . }}
{{ include "watchpool.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: watchpool
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Name of the ServiceAccount.
*/}}
{{- define "watchpool.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "watchpool.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image: repository:tag, or repository@digest when a digest is set.
*/}}
{{- define "watchpool.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
"true" when leader election is on: asked for, or more than one replica.
*/}}
{{- define "watchpool.leaderElection" -}}
{{- if or .Values.operator.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{- end }}
{{- end }}

{{/*
Name of the leader-election Lease.
*/}}
{{- define "watchpool.leaseName" -}}
{{- default (include "watchpool.fullname" .) .Values.operator.leaderElection.leaseName }}
{{- end }}

{{/*
Every watchable resource: the defaults followed by the extras.
*/}}
{{- define "watchpool.watchableResources" -}}
{{- toYaml (concat .Values.watchableResources .Values.extraWatchableResources) }}
{{- end }}
