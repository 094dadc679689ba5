{{- define "symbot.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "symbot.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "symbot.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "symbot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "symbot.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- /* Refuse settings that would lose or duplicate work. */ -}}
{{- define "symbot.validate" -}}
{{- $r := int .Values.replicaCount -}}
{{- if .Values.ha.enabled -}}
{{- if or (lt $r 2) (gt $r 3) -}}
{{- fail (printf "replicaCount %d: with ha.enabled run 2 or 3 replicas (at most 3 share one database)" $r) -}}
{{- end -}}
{{- if not .Values.ha.databaseURLSecret.name -}}
{{- fail "ha.enabled needs ha.databaseURLSecret.name: a Secret holding the PostgreSQL URL under ha.databaseURLSecret.key" -}}
{{- end -}}
{{- else if ne $r 1 -}}
{{- fail (printf "replicaCount %d: bbolt is a single-writer file, so without ha.enabled (PostgreSQL) run exactly 1 replica" $r) -}}
{{- end -}}
{{- if not .Values.tokensSecret.name -}}
{{- fail "tokensSecret.name: name the Secret holding SLACK_BOT_TOKEN and SLACK_APP_TOKEN" -}}
{{- end -}}
{{- range $k := list "store" "admin" "http" -}}
{{- if hasKey $.Values.config $k -}}
{{- fail (printf "config.%s: the chart sets %s itself; remove it from config" $k $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
