{{/* Names, labels and the checks every render runs. */}}

{{- define "vouch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name: also the Service's name, so the first label of the Providers' host. */}}
{{- define "vouch.fullname" -}}
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

{{- define "vouch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vouch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vouch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vouch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vouch
{{- end -}}

{{- define "vouch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vouch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vouch.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The Service's DNS names, a JSON list: <svc>, <svc>.<ns>, <svc>.<ns>.svc,
<svc>.<ns>.svc.<clusterDomain>. The generated certificate carries all of them and the
Providers use <svc>.<ns>, as Ratify's chart does.
*/}}
{{- define "vouch.dnsNames" -}}
{{- $svc := include "vouch.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.service.clusterDomain) | toJson -}}
{{- end -}}

{{- define "vouch.providerHost" -}}
{{- printf "%s.%s" (include "vouch.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "vouch.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "vouch.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{- define "vouch.configMapName" -}}
{{- printf "%s-config" (include "vouch.fullname" .) -}}
{{- end -}}

{{/* "true" when vouch reads Ratify's resources from the Kubernetes API (config.source). */}}
{{- define "vouch.fromKubernetes" -}}
{{- if eq .Values.config.source "kubernetes" -}}true{{- end -}}
{{- end -}}

{{/*
The kinds of config.ratify.deislabs.io vouch reads, as vouch_cluster::KINDS lists them (the
chart tests compare): a JSON list of {kind, plural, namespaced}.
*/}}
{{- define "vouch.ratifyKinds" -}}
{{- list
  (dict "kind" "CertificateStore" "plural" "certificatestores" "namespaced" true)
  (dict "kind" "KeyManagementProvider" "plural" "keymanagementproviders" "namespaced" false)
  (dict "kind" "NamespacedKeyManagementProvider" "plural" "namespacedkeymanagementproviders" "namespaced" true)
  (dict "kind" "Store" "plural" "stores" "namespaced" false)
  (dict "kind" "NamespacedStore" "plural" "namespacedstores" "namespaced" true)
  (dict "kind" "Verifier" "plural" "verifiers" "namespaced" false)
  (dict "kind" "NamespacedVerifier" "plural" "namespacedverifiers" "namespaced" true)
  (dict "kind" "Policy" "plural" "policies" "namespaced" false)
  (dict "kind" "NamespacedPolicy" "plural" "namespacedpolicies" "namespaced" true)
  | toJson -}}
{{- end -}}

{{/* kind: namespaced, for the kinds of vouch.ratifyKinds; JSON. */}}
{{- define "vouch.ratifyScopes" -}}
{{- $scopes := dict -}}
{{- range include "vouch.ratifyKinds" . | fromJsonArray -}}
{{- $_ := set $scopes .kind .namespaced -}}
{{- end -}}
{{- toJson $scopes -}}
{{- end -}}

{{/*
The Ratify resources of the values, a JSON list: the documents of config.raw, or those the
pieces make (the AKS Image Integrity guide's with the defaults). Without namespaces: the
ConfigMap holds them as they are, the objects get the release namespace where needed.
*/}}
{{- define "vouch.ratifyResources" -}}
{{- $c := .Values.config -}}
{{- $docs := list -}}
{{- if $c.raw -}}
{{- $kinds := include "vouch.ratifyScopes" . | fromJson -}}
{{- range $i, $text := regexSplit "(?m)^---[ \t]*$" $c.raw -1 -}}
{{- $doc := fromYaml $text -}}
{{- if hasKey $doc "Error" -}}
{{- fail (printf "config.raw, document %d: not YAML: %s" (add $i 1) $doc.Error) -}}
{{- end -}}
{{- if $doc -}}
{{- $what := printf "config.raw, document %d (%s %s)" (add $i 1) (default "no kind" $doc.kind) (default "no apiVersion" $doc.apiVersion) -}}
{{- if not (hasPrefix "config.ratify.deislabs.io/" (default "" $doc.apiVersion)) -}}
{{- fail (printf "%s: only config.ratify.deislabs.io resources belong in config.raw" $what) -}}
{{- end -}}
{{- if not (hasKey $kinds (default "" $doc.kind)) -}}
{{- fail (printf "%s: vouch reads %s" $what (keys $kinds | sortAlpha | join ", ")) -}}
{{- end -}}
{{- if not (and $doc.metadata $doc.metadata.name) -}}
{{- fail (printf "%s has no metadata.name" $what) -}}
{{- end -}}
{{- $docs = append $docs $doc -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- $certificateStores := default dict $c.certificateStores -}}
{{- range $name, $pem := $certificateStores -}}
{{- $docs = append $docs (dict "apiVersion" "config.ratify.deislabs.io/v1beta1" "kind" "CertificateStore" "metadata" (dict "name" $name) "spec" (dict "provider" "inline" "parameters" (dict "value" $pem))) -}}
{{- end -}}
{{- $keyVault := include "vouch.keyVaultProvider" . | fromJson -}}
{{- if $keyVault -}}
{{- $docs = append $docs $keyVault -}}
{{- end -}}
{{- $storeSpec := dict "name" "oras" -}}
{{- $storeParameters := dict -}}
{{- if $c.store.useHttp -}}
{{- $_ := set $storeParameters "useHttp" true -}}
{{- end -}}
{{- with include "vouch.storeAuthProvider" . | fromJson -}}
{{- $_ := set $storeParameters "authProvider" . -}}
{{- end -}}
{{- if $storeParameters -}}
{{- $_ := set $storeSpec "parameters" $storeParameters -}}
{{- end -}}
{{- $docs = append $docs (dict "apiVersion" "config.ratify.deislabs.io/v1beta1" "kind" "Store" "metadata" (dict "name" $c.store.name) "spec" $storeSpec) -}}
{{- $certStores := $c.verifier.verificationCertStores -}}
{{- if not $certStores -}}
{{- $certs := keys $certificateStores | sortAlpha -}}
{{- if $keyVault -}}
{{- $certs = append $certs $keyVault.metadata.name -}}
{{- end -}}
{{- $certStores = dict "certs" $certs -}}
{{- end -}}
{{- $verifierParameters := dict "verificationCertStores" $certStores "trustPolicyDoc" $c.verifier.trustPolicyDoc -}}
{{- $docs = append $docs (dict "apiVersion" "config.ratify.deislabs.io/v1beta1" "kind" "Verifier" "metadata" (dict "name" $c.verifier.name) "spec" (dict "name" "notation" "artifactTypes" $c.verifier.artifactTypes "parameters" $verifierParameters)) -}}
{{- if $c.policy -}}
{{- $docs = append $docs (dict "apiVersion" "config.ratify.deislabs.io/v1beta1" "kind" "Policy" "metadata" (dict "name" "ratify-policy") "spec" (dict "type" "config-policy" "parameters" $c.policy)) -}}
{{- end -}}
{{- end -}}
{{- toJson $docs -}}
{{- end -}}

{{/*
The auth provider of the Store the chart makes, as JSON ({} for none, which is vouch's
dockerConfig): config.store.authProvider verbatim, else azureWorkloadIdentity with
azureWorkloadIdentity.clientId (and its endpoints) when that is set, else awsEcrBasic with
awsIrsa.roleArn. (Both identities at once without config.store.authProvider stop the render.)
*/}}
{{- define "vouch.storeAuthProvider" -}}
{{- $wi := .Values.azureWorkloadIdentity -}}
{{- if .Values.config.store.authProvider -}}
{{- toJson .Values.config.store.authProvider -}}
{{- else if $wi.clientId -}}
{{- $provider := dict "name" "azureWorkloadIdentity" "clientID" $wi.clientId -}}
{{- if $wi.endpoints -}}
{{- $_ := set $provider "endpoints" $wi.endpoints -}}
{{- end -}}
{{- toJson $provider -}}
{{- else if .Values.awsIrsa.roleArn -}}
{{- dict "name" "awsEcrBasic" | toJson -}}
{{- else -}}
{{- toJson dict -}}
{{- end -}}
{{- end -}}

{{/*
Whether the chart makes the Ratify resources, the Store and the KeyManagementProvider among
them (neither config.raw nor config.create=false).
*/}}
{{- define "vouch.makesStore" -}}
{{- if and .Values.config.create (not .Values.config.raw) -}}true{{- end -}}
{{- end -}}

{{/*
The client ID of the Microsoft Entra identity the pod runs as (the ServiceAccount's
client-id annotation, and the pod label that has AKS's webhook project its federated token):
azureWorkloadIdentity.clientId, else, with azureKeyVault.enabled, the Key Vault identity's
(azureKeyVault.clientId). Empty: no workload identity.
*/}}
{{- define "vouch.azureClientId" -}}
{{- $wi := .Values.azureWorkloadIdentity -}}
{{- if $wi.clientId -}}
{{- $wi.clientId -}}
{{- else if .Values.azureKeyVault.enabled -}}
{{- .Values.azureKeyVault.clientId -}}
{{- end -}}
{{- end -}}

{{/*
The KeyManagementProvider (type azurekeyvault) the chart makes with azureKeyVault.enabled, as
JSON ({} when it makes none: off, or config.raw / config.create=false). The identity is
azureKeyVault.clientId/tenantId, else azureWorkloadIdentity's.
*/}}
{{- define "vouch.keyVaultProvider" -}}
{{- $kv := .Values.azureKeyVault -}}
{{- if and $kv.enabled (include "vouch.makesStore" .) -}}
{{- $certificates := list -}}
{{- range $kv.certificates -}}
{{- $item := dict "name" .name -}}
{{- if .version -}}
{{- $_ := set $item "version" .version -}}
{{- end -}}
{{- $certificates = append $certificates $item -}}
{{- end -}}
{{- $parameters := dict "vaultURI" $kv.vaultURI "tenantID" (default .Values.azureWorkloadIdentity.tenantId $kv.tenantId) "clientID" (default .Values.azureWorkloadIdentity.clientId $kv.clientId) "certificates" $certificates -}}
{{- $spec := dict "type" "azurekeyvault" "parameters" $parameters -}}
{{- if $kv.refreshInterval -}}
{{- $_ := set $spec "refreshInterval" $kv.refreshInterval -}}
{{- end -}}
{{- dict "apiVersion" "config.ratify.deislabs.io/v1beta1" "kind" "KeyManagementProvider" "metadata" (dict "name" $kv.name) "spec" $spec | toJson -}}
{{- else -}}
{{- toJson dict -}}
{{- end -}}
{{- end -}}

{{/*
The ServiceAccount's annotations: serviceAccount.annotations; with an Azure identity
(vouch.azureClientId) the workload identity webhook's client-id (and
azureWorkloadIdentity.tenantId's tenant-id); with awsIrsa.roleArn the EKS pod identity
webhook's role-arn.
*/}}
{{- define "vouch.serviceAccountAnnotations" -}}
{{- $annotations := deepCopy (default dict .Values.serviceAccount.annotations) -}}
{{- $wi := .Values.azureWorkloadIdentity -}}
{{- with include "vouch.azureClientId" . -}}
{{- $_ := set $annotations "azure.workload.identity/client-id" . -}}
{{- if $wi.tenantId -}}
{{- $_ := set $annotations "azure.workload.identity/tenant-id" $wi.tenantId -}}
{{- end -}}
{{- end -}}
{{- with .Values.awsIrsa.roleArn -}}
{{- $_ := set $annotations "eks.amazonaws.com/role-arn" . -}}
{{- end -}}
{{- toJson $annotations -}}
{{- end -}}

{{/*
Where the registry CAs for --registry-ca-file come from, as JSON {configMap, key, create}
({} without registryCa).
*/}}
{{- define "vouch.registryCa" -}}
{{- $r := .Values.registryCa -}}
{{- if $r.pem -}}
{{- dict "configMap" (printf "%s-registry-ca" (include "vouch.fullname" .)) "key" "ca.crt" "create" true | toJson -}}
{{- else if $r.existingConfigMap -}}
{{- dict "configMap" $r.existingConfigMap "key" $r.key "create" false | toJson -}}
{{- else -}}
{{- toJson dict -}}
{{- end -}}
{{- end -}}

{{/*
Where Gatekeeper's CA for --ca-cert-file comes from, as JSON {secret, key, create}:
mtls.caCert (a Secret the chart creates), mtls.existingSecret, or Gatekeeper's own
webhook certificate Secret when the release shares Gatekeeper's namespace.
*/}}
{{- define "vouch.clientCa" -}}
{{- $m := .Values.mtls -}}
{{- if $m.caCert -}}
{{- dict "secret" (printf "%s-client-ca" (include "vouch.fullname" .)) "key" "ca.crt" "create" true | toJson -}}
{{- else if $m.existingSecret -}}
{{- dict "secret" $m.existingSecret "key" $m.existingSecretKey "create" false | toJson -}}
{{- else -}}
{{- dict "secret" .Values.gatekeeper.webhookCertSecret "key" "ca.crt" "create" false | toJson -}}
{{- end -}}
{{- end -}}

{{- define "vouch.registrySecretName" -}}
{{- if .Values.registryCredentials.existingSecret -}}
{{- .Values.registryCredentials.existingSecret -}}
{{- else if .Values.registryCredentials.dockerConfigJson -}}
{{- printf "%s-registry" (include "vouch.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Whether a PEM text holds at least one certificate. */}}
{{- define "vouch.isPemCertificate" -}}
{{- if contains "-----BEGIN CERTIFICATE-----" . -}}true{{- end -}}
{{- end -}}

{{/*
Checks that stop the render with a message naming the value and the fix. Included by the
Deployment, which every render has.
*/}}
{{- define "vouch.validate" -}}
{{- $v := .Values -}}
{{- if not $v.image.repository -}}
{{- fail "image.repository is required: there is no published vouch image; build one from the repository's Dockerfile, push it to a registry the cluster pulls from, and set image.repository (and image.tag or image.digest)" -}}
{{- end -}}
{{- $fromKubernetes := include "vouch.fromKubernetes" . -}}
{{- if not $v.config.create -}}
{{- if not $fromKubernetes -}}
{{- fail "config.create=false needs config.source=kubernetes: with config.source=configMap the ConfigMap the chart writes is vouch's only configuration" -}}
{{- end -}}
{{- if or $v.config.raw $v.config.certificateStores -}}
{{- fail "config.create is false, so the chart creates no Ratify resources and would ignore config.raw and config.certificateStores: unset them, or set config.create=true" -}}
{{- end -}}
{{- else if not $v.config.raw -}}
{{- if and (not $v.config.certificateStores) (not $v.azureKeyVault.enabled) -}}
{{- fail "config.certificateStores is empty: vouch needs the certificates you trust (--set-file config.certificateStores.certstore-inline=ca.pem), or an Azure Key Vault holding them (azureKeyVault.enabled=true), or your Ratify resources in config.raw, or (config.source=kubernetes) config.create=false to use the resources already in the cluster" -}}
{{- end -}}
{{- range $name, $pem := $v.config.certificateStores -}}
{{- if not (include "vouch.isPemCertificate" (default "" $pem)) -}}
{{- fail (printf "config.certificateStores.%s holds no PEM certificate: give the CA or signing certificate you trust (--set-file config.certificateStores.%s=ca.pem), or your Ratify resources in config.raw" $name $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $v.tls.existingSecret -}}
{{- if not $v.tls.caBundle -}}
{{- fail (printf "tls.caBundle is required with tls.existingSecret (%s): the base64 of the PEM CA that issued its certificate (base64 -w0 ca.crt); Gatekeeper trusts nothing else" $v.tls.existingSecret) -}}
{{- end -}}
{{- if not (include "vouch.isPemCertificate" (b64dec $v.tls.caBundle)) -}}
{{- fail "tls.caBundle is not the base64 of a PEM certificate (base64 -w0 ca.crt); Gatekeeper rejects such a Provider" -}}
{{- end -}}
{{- else if $v.tls.caBundle -}}
{{- fail "tls.caBundle is set but tls.existingSecret is not: the chart generates the serving certificate and its CA itself unless tls.existingSecret names yours" -}}
{{- end -}}
{{- if $v.mtls.enabled -}}
{{- if and $v.mtls.caCert $v.mtls.existingSecret -}}
{{- fail "mtls.caCert and mtls.existingSecret are both set: choose one source of Gatekeeper's CA" -}}
{{- end -}}
{{- if $v.mtls.caCert -}}
{{- if not (include "vouch.isPemCertificate" $v.mtls.caCert) -}}
{{- fail "mtls.caCert holds no PEM certificate: give Gatekeeper's CA (ca.crt of the gatekeeper-webhook-server-cert Secret)" -}}
{{- end -}}
{{- else if and (not $v.mtls.existingSecret) (ne .Release.Namespace $v.gatekeeper.namespace) -}}
{{- fail (printf "mtls.enabled needs Gatekeeper's CA, and a pod cannot mount the %s Secret of namespace %s from namespace %s: install into %s, or set mtls.caCert (kubectl -n %s get secret %s -o jsonpath='{.data.ca\\.crt}' | base64 -d), or mtls.existingSecret, or mtls.enabled=false" $v.gatekeeper.webhookCertSecret $v.gatekeeper.namespace .Release.Namespace $v.gatekeeper.namespace $v.gatekeeper.namespace $v.gatekeeper.webhookCertSecret) -}}
{{- end -}}
{{- end -}}
{{- if and $v.registryCredentials.existingSecret $v.registryCredentials.dockerConfigJson -}}
{{- fail "registryCredentials.existingSecret and registryCredentials.dockerConfigJson are both set: choose one" -}}
{{- end -}}
{{- if $v.registryCredentials.dockerConfigJson -}}
{{- $docker := fromJson $v.registryCredentials.dockerConfigJson -}}
{{- if or (hasKey $docker "Error") (not (hasKey $docker "auths")) -}}
{{- fail "registryCredentials.dockerConfigJson is not a Docker config.json with an \"auths\" object" -}}
{{- end -}}
{{- end -}}
{{- $wi := $v.azureWorkloadIdentity -}}
{{- if $wi.clientId -}}
{{- if and $wi.endpoints (or (not (include "vouch.makesStore" .)) $v.config.store.authProvider) -}}
{{- fail "azureWorkloadIdentity.endpoints go into the Store the chart makes, and config.raw, config.create=false or config.store.authProvider means the Store is yours: put the endpoints in its authProvider (endpoints: [...]) and unset azureWorkloadIdentity.endpoints" -}}
{{- end -}}
{{- if and $wi.tenantId (not $v.serviceAccount.create) -}}
{{- fail (printf "azureWorkloadIdentity.tenantId is an annotation of the ServiceAccount, and serviceAccount.create is false: annotate yours (kubectl -n %s annotate serviceaccount %s azure.workload.identity/tenant-id=%s) and unset azureWorkloadIdentity.tenantId" .Release.Namespace (include "vouch.serviceAccountName" .) $wi.tenantId) -}}
{{- end -}}
{{- else if or $wi.tenantId $wi.endpoints -}}
{{- fail "azureWorkloadIdentity.tenantId and azureWorkloadIdentity.endpoints take effect only with azureWorkloadIdentity.clientId (the client ID of the identity vouch runs as): set it, or unset them" -}}
{{- end -}}
{{- $kv := $v.azureKeyVault -}}
{{- if $kv.enabled -}}
{{- if not (include "vouch.azureClientId" .) -}}
{{- fail "azureKeyVault.enabled needs the client ID of the Microsoft Entra identity that reads the vault: set azureKeyVault.clientId, or azureWorkloadIdentity.clientId when the identity that pulls from Azure Container Registry reads the vault too (az identity show -g <group> -n <identity> --query clientId -o tsv)" -}}
{{- end -}}
{{- if include "vouch.makesStore" . -}}
{{- if not $kv.vaultURI -}}
{{- fail "azureKeyVault.vaultURI is required with azureKeyVault.enabled: the vault's URI, https://<vault name>.vault.azure.net/ (az keyvault show -n <vault> --query properties.vaultUri -o tsv)" -}}
{{- end -}}
{{- if not (default $wi.tenantId $kv.tenantId) -}}
{{- fail "azureKeyVault.tenantId is required with azureKeyVault.enabled: the directory (tenant) ID of the identity that reads the vault (az account show --query tenantId -o tsv); vouch asks that tenant for the vault's token" -}}
{{- end -}}
{{- if not $kv.certificates -}}
{{- fail "azureKeyVault.certificates is empty: list the vault's certificates to trust, e.g. --set azureKeyVault.certificates[0].name=<certificate name> (a version too to pin one; without, the newest enabled version)" -}}
{{- end -}}
{{- if hasKey (default dict $v.config.certificateStores) $kv.name -}}
{{- fail (printf "azureKeyVault.name %q is also a key of config.certificateStores, and CertificateStores and KeyManagementProviders share one name space: rename one" $kv.name) -}}
{{- end -}}
{{- else if or $kv.vaultURI $kv.certificates -}}
{{- fail "azureKeyVault.vaultURI and azureKeyVault.certificates go into the KeyManagementProvider the chart makes, and with config.raw or config.create=false the Ratify resources are yours: put them in your KeyManagementProvider (type azurekeyvault) and unset them here (azureKeyVault.enabled then only gives the pod the workload identity of azureKeyVault.clientId)" -}}
{{- end -}}
{{- else if or $kv.vaultURI $kv.certificates $kv.clientId $kv.tenantId -}}
{{- fail "azureKeyVault.vaultURI, .certificates, .clientId and .tenantId take effect only with azureKeyVault.enabled=true: set it, or unset them" -}}
{{- end -}}
{{- $aws := $v.awsIrsa -}}
{{- if $aws.roleArn -}}
{{- if not $v.serviceAccount.create -}}
{{- fail (printf "awsIrsa.roleArn is an annotation of the ServiceAccount, and serviceAccount.create is false: annotate yours (kubectl -n %s annotate serviceaccount %s eks.amazonaws.com/role-arn=%s), unset awsIrsa.roleArn and set config.store.authProvider.name=awsEcrBasic" .Release.Namespace (include "vouch.serviceAccountName" .) $aws.roleArn) -}}
{{- end -}}
{{- if and $wi.clientId (include "vouch.makesStore" .) (not $v.config.store.authProvider) -}}
{{- fail "azureWorkloadIdentity.clientId and awsIrsa.roleArn each give the chart's Store its auth provider, and a Store has one: keep one, or say which in config.store.authProvider (the other then only gives the pod its identity)" -}}
{{- end -}}
{{- end -}}
{{- $clientIdFrom := ternary "azureWorkloadIdentity.clientId" "azureKeyVault.clientId" (not (empty $wi.clientId)) -}}
{{- range $key, $from := dict "azure.workload.identity/client-id" (list (include "vouch.azureClientId" .) $clientIdFrom) "azure.workload.identity/tenant-id" (list $wi.tenantId "azureWorkloadIdentity.tenantId") "eks.amazonaws.com/role-arn" (list $aws.roleArn "awsIrsa.roleArn") -}}
{{- $value := index $from 0 -}}
{{- $given := get (default dict $v.serviceAccount.annotations) $key -}}
{{- if and $value $given (ne $given $value) -}}
{{- fail (printf "serviceAccount.annotations gives %s %q and %s %q: keep it in %s only" $key $given (index $from 1) $value (index $from 1)) -}}
{{- end -}}
{{- end -}}
{{- if include "vouch.makesStore" . -}}
{{- $auth := include "vouch.storeAuthProvider" . | fromJson -}}
{{- $authName := default "dockerConfig" $auth.name -}}
{{- if and (include "vouch.registrySecretName" .) (ne $authName "dockerConfig") -}}
{{- $from := "config.store.authProvider" -}}
{{- if not $v.config.store.authProvider -}}
{{- $from = ternary "from azureWorkloadIdentity.clientId" "from awsIrsa.roleArn" (not (empty $wi.clientId)) -}}
{{- end -}}
{{- fail (printf "registryCredentials are read by the Store's dockerConfig auth provider only, and the Store's auth provider is %s (%s): unset registryCredentials, or the auth provider" $authName $from) -}}
{{- end -}}
{{- if and (eq $authName "k8Secrets") (not $fromKubernetes) -}}
{{- fail "config.store.authProvider k8Secrets reads pull Secrets through the Kubernetes API, which vouch calls with config.source=kubernetes only: set that (with rbac.pullSecrets=true), or use registryCredentials (dockerConfig)" -}}
{{- end -}}
{{- end -}}
{{- if and $v.registryCa.pem $v.registryCa.existingConfigMap -}}
{{- fail "registryCa.pem and registryCa.existingConfigMap are both set: choose one source of the registry CAs" -}}
{{- end -}}
{{- if and $v.registryCa.pem (not (include "vouch.isPemCertificate" $v.registryCa.pem)) -}}
{{- fail "registryCa.pem holds no PEM certificate: give the CA certificates that issued your registries' HTTPS certificates (--set-file registryCa.pem=registry-ca.pem)" -}}
{{- end -}}
{{- if $v.provider.enabled -}}
{{- if le (mul $v.provider.verify.timeoutSeconds 1000) (int $v.serve.verifyTimeoutMs) -}}
{{- fail (printf "serve.verifyTimeoutMs (%d) must be below provider.verify.timeoutSeconds (%d s): vouch answers within its own timeout, so that Gatekeeper gets finished keys and VERIFY_TIMEOUT errors instead of a deadline error" (int $v.serve.verifyTimeoutMs) (int $v.provider.verify.timeoutSeconds)) -}}
{{- end -}}
{{- if and $v.provider.mutate.enabled (le (mul $v.provider.mutate.timeoutSeconds 1000) (int $v.serve.mutateTimeoutMs)) -}}
{{- fail (printf "serve.mutateTimeoutMs (%d) must be below provider.mutate.timeoutSeconds (%d s)" (int $v.serve.mutateTimeoutMs) (int $v.provider.mutate.timeoutSeconds)) -}}
{{- end -}}
{{- end -}}
{{- if and $v.gatekeeper.constraint (not (.Capabilities.APIVersions.Has "constraints.gatekeeper.sh/v1beta1/VouchVerification")) -}}
{{- fail "gatekeeper.constraint needs the VouchVerification kind, which Gatekeeper creates from the ConstraintTemplate after it is installed: install with gatekeeper.constraintTemplate=true first, then upgrade with gatekeeper.constraint set (helm template: add --api-versions constraints.gatekeeper.sh/v1beta1/VouchVerification)" -}}
{{- end -}}
{{- end -}}

{{/* host:port for a listener. */}}
{{- define "vouch.listen" -}}
{{- $host := .host -}}
{{- if contains ":" $host -}}{{- $host = printf "[%s]" $host -}}{{- end -}}
{{- printf "%s:%d" $host (int .port) -}}
{{- end -}}

{{/* One Kubernetes object read from a file of the chart, as JSON; fails when it is not. */}}
{{- define "vouch.gatekeeperFile" -}}
{{- $text := .Files.Get .path -}}
{{- if not $text -}}
{{- fail (printf "%s is missing from the chart" .path) -}}
{{- end -}}
{{- $object := fromYaml $text -}}
{{- if or (hasKey $object "Error") (not $object.metadata) -}}
{{- fail (printf "%s is not one Kubernetes object: %s" .path (default "no metadata" $object.Error)) -}}
{{- end -}}
{{- toJson $object -}}
{{- end -}}
