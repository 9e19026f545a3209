{{/* Names and labels shared by every object of the chart. */}}

{{- define "sysward.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sysward.fullname" -}}
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

{{- define "sysward.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sysward.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sysward.labels" -}}
{{ include "sysward.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: sysward
{{- end }}

{{- define "sysward.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sysward.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sysward.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The agent's config.yaml: the user's `config` block plus the two keys the chart owns.
*/}}
{{- define "sysward.configYaml" -}}
{{- $cfg := deepCopy .Values.config }}
{{- /* rules.d exists in the pod only when the ConfigMap projects a file into it. */}}
{{- $_ := set $cfg "rules" (ternary (list "/etc/sysward/rules.d") (list) (not (empty .Values.customRules))) }}
{{- $_ := set $cfg "server" (dict "enabled" true "listen" (printf "0.0.0.0:%d" (int .Values.metrics.port))) }}
{{- /* The node's /run is mounted at /host/run (daemonset.yaml) for the CRI sockets. */}}
{{- $_ := set $cfg.cri "host_root" "/host" }}
{{- toYaml $cfg }}
{{- end }}

{{/*
Linux capabilities of the agent container; docs/deployment.md explains each one.
*/}}
{{- define "sysward.capabilities" -}}
{{- $caps := list "BPF" "PERFMON" "SYS_RESOURCE" "SYS_PTRACE" }}
{{- if .Values.securityContext.sysAdmin }}
{{- $caps = append $caps "SYS_ADMIN" }}
{{- end }}
{{- if eq (toString .Values.config.enforce.mode) "on" }}
{{- $caps = append $caps "KILL" }}
{{- $caps = append $caps "NET_ADMIN" }}
{{- end }}
{{- range .Values.securityContext.extraCapabilities }}
{{- $caps = append $caps . }}
{{- end }}
{{- toYaml (uniq $caps) }}
{{- end }}
