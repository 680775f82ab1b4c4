#!/usr/bin/env bash
# Cluster mode of the e2e suite: the webhook runs on this machine, a real API server calls it.
#
# Needs KUBECONFIG for a cluster whose API server can reach this machine at
# NETPOL_GUARD_E2E_HOST:NETPOL_GUARD_E2E_PORT (default 127.0.0.1:8443, right when the API
# server runs on this machine; for kind or a VM give an address it can route to).
# Registers both webhook configurations, scoped to throw-away namespaces, applies manifests
# with kubectl (plain and --dry-run=server), asserts the rejections, warnings and stored
# mutations; runs the companions controller (limited by companions.namespaceSelector to the
# namespace it labels) and checks that companions appear, that an ordinary user may not delete
# one and that one deleted by an administrator comes back; removes everything it created.
# Needs a kubeconfig user that may impersonate (cluster-admin).
set -euo pipefail

: "${KUBECONFIG:?cluster mode needs KUBECONFIG}"
bin=${NETPOL_GUARD_BIN:-target/debug/netpol-guard}
host=${NETPOL_GUARD_E2E_HOST:-127.0.0.1}
port=${NETPOL_GUARD_E2E_PORT:-8443}
metrics_port=${NETPOL_GUARD_E2E_METRICS_PORT:-18080}
# the report API the background audit writes: policyreport or openreports
report_api=${NETPOL_GUARD_E2E_REPORT_API:-policyreport}
case "$report_api" in
  policyreport) report_crd=policyreports.wgpolicyk8s.io; report_resource=policyreports.wgpolicyk8s.io ;;
  openreports) report_crd=reports.openreports.io; report_resource=reports.openreports.io ;;
  *) echo "NETPOL_GUARD_E2E_REPORT_API is policyreport or openreports, not $report_api" >&2; exit 2 ;;
esac
ns="netpol-guard-e2e-$RANDOM"
work=$(mktemp -d)
pid=""

layer_crds=""
cleanup() {
  kubectl delete validatingwebhookconfiguration "$ns" --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete adminnetworkpolicies "$ns-allow-dns" "$ns-deny-dns" --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete ciliumclusterwidenetworkpolicies "$ns-dns" --ignore-not-found >/dev/null 2>&1 || true
  [ -n "$layer_crds" ] && kubectl delete -f "$layer_crds" --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete mutatingwebhookconfiguration "$ns" --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete clusterrolebinding,clusterrole "$ns" --ignore-not-found >/dev/null 2>&1 || true
  kubectl delete rolebinding,role "$ns-dns-discovery" -n kube-system --ignore-not-found >/dev/null 2>&1 || true
  for n in "$ns" "$ns-protected" "$ns-companions" "$ns-guard"; do
    kubectl delete namespace "$n" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  done
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  [ -f "$work/serve.log" ] && { echo "--- last lines of the guard's log:" >&2; tail -n 20 "$work/serve.log" >&2; }
  exit 1
}
pass() { echo "ok: $*"; }

if [[ $host =~ ^[0-9.]+$ ]]; then san=(--ip "$host"); else san=(--dns "$host"); fi
ca_bundle=$("$bin" certs --out "$work" "${san[@]}" --dns localhost --days 1)

# the namespace under test is protected, so the deny-all rule can be tried safely; companions
# only go where this run puts its label, never into the rest of the cluster
cat >"$work/config.yaml" <<YAML
protectedNamespaces: [kube-system, kube-public, kube-node-lease, $ns-protected]
adminGroups: [system:masters, netpol-guard-e2e-admins]
companions:
  namespaceSelector: {matchLabels: {netpol-guard-e2e: "$ns"}}
YAML
# the guard runs as its own service account with the chart's RBAC, as in production: its
# writes are recognised as the guard's, and the permissions are proven sufficient
kubectl create namespace "$ns-guard" >/dev/null
kubectl create serviceaccount netpol-guard -n "$ns-guard" >/dev/null
kubectl apply -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: $ns}
rules:
- {apiGroups: [""], resources: [namespaces], verbs: [get, list, watch]}
- {apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [get, list, watch, create, patch, update, delete]}
- {apiGroups: [""], resources: [pods], verbs: [list, watch]}
- {apiGroups: [wgpolicyk8s.io], resources: [policyreports], verbs: [get, list, watch, create, patch, update, delete]}
- {apiGroups: [openreports.io], resources: [reports], verbs: [get, list, watch, create, patch, update, delete]}
- {apiGroups: [policy.networking.k8s.io], resources: [adminnetworkpolicies, baselineadminnetworkpolicies, clusternetworkpolicies], verbs: [get, list, watch]}
- {apiGroups: [cilium.io], resources: [ciliumnetworkpolicies, ciliumclusterwidenetworkpolicies], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: $ns-dns-discovery, namespace: kube-system}
rules:
- {apiGroups: [""], resources: [services], verbs: [get, list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: $ns-dns-discovery, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: $ns-dns-discovery}
subjects: [{kind: ServiceAccount, name: netpol-guard, namespace: $ns-guard}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: $ns-ip-families, namespace: default}
rules:
- {apiGroups: [""], resources: [services], resourceNames: [kubernetes], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: $ns-ip-families, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: $ns-ip-families}
subjects: [{kind: ServiceAccount, name: netpol-guard, namespace: $ns-guard}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: $ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $ns}
subjects: [{kind: ServiceAccount, name: netpol-guard, namespace: $ns-guard}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: leader-election, namespace: $ns-guard}
rules:
- {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [create]}
- {apiGroups: [coordination.k8s.io], resources: [leases], resourceNames: [netpol-guard-controller], verbs: [get, patch, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: leader-election, namespace: $ns-guard}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leader-election}
subjects: [{kind: ServiceAccount, name: netpol-guard, namespace: $ns-guard}]
YAML
# the policy layer CRDs (step 14), installed before the guard starts so that its discovery
# finds them at once; removed again only if this run installed them
if ! kubectl get crd adminnetworkpolicies.policy.networking.k8s.io >/dev/null 2>&1; then
  layer_crds="$(dirname "$0")/crds/policy-layers.yaml"
  kubectl apply -f "$layer_crds" >/dev/null
  kubectl wait --for condition=established --timeout=30s -f "$layer_crds" >/dev/null
fi
kubectl config view --raw --minify >"$work/kubeconfig"
token=$(kubectl create token netpol-guard -n "$ns-guard" --duration=1h)
kubectl --kubeconfig "$work/kubeconfig" config set-credentials netpol-guard-e2e --token="$token" >/dev/null
kubectl --kubeconfig "$work/kubeconfig" config set-context --current --user=netpol-guard-e2e >/dev/null

"$bin" serve --listen "0.0.0.0:$port" --metrics-listen "127.0.0.1:$metrics_port" \
  --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" --config "$work/config.yaml" \
  --kubeconfig "$work/kubeconfig" --controller on --guard-namespace "$ns-guard" \
  --report-api "$report_api" --shutdown-delay 0s >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$metrics_port/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf --cacert "$work/ca.crt" "https://$host:$port/healthz" >/dev/null || fail "webhook not reachable at https://$host:$port"

kubectl create namespace "$ns" >/dev/null
kubectl create namespace "$ns-protected" >/dev/null 2>&1 || true

webhook() { # kind path failurePolicy
  local kind=$1 path=$2 failure=$3
  cat <<YAML
apiVersion: admissionregistration.k8s.io/v1
kind: $kind
metadata:
  name: $ns
webhooks:
- name: networkpolicies.$ns.netpol-guard.io
  admissionReviewVersions: [v1]
  sideEffects: None
  matchPolicy: Equivalent
  timeoutSeconds: 5
  failurePolicy: $failure
$( [ "$kind" = MutatingWebhookConfiguration ] && echo "  reinvocationPolicy: IfNeeded" )
  clientConfig:
    url: https://$host:$port/$path
    caBundle: $ca_bundle
  rules:
  - apiGroups: [networking.k8s.io]
    apiVersions: [v1]
    operations: [CREATE, UPDATE$( [ "$kind" = ValidatingWebhookConfiguration ] && echo ", DELETE" )]
    resources: [networkpolicies]
  namespaceSelector:
    matchExpressions:
    - {key: kubernetes.io/metadata.name, operator: In, values: [$ns, $ns-protected, $ns-companions]}
$( [ "$kind" = ValidatingWebhookConfiguration ] && cat <<LAYERS
- name: policylayers.$ns.netpol-guard.io
  admissionReviewVersions: [v1]
  sideEffects: None
  matchPolicy: Equivalent
  timeoutSeconds: 5
  failurePolicy: Fail
  clientConfig:
    url: https://$host:$port/$path
    caBundle: $ca_bundle
  rules:
  - apiGroups: [policy.networking.k8s.io]
    apiVersions: [v1alpha1]
    operations: [CREATE, UPDATE]
    resources: [adminnetworkpolicies, baselineadminnetworkpolicies]
  - apiGroups: [cilium.io]
    apiVersions: [v2]
    operations: [CREATE, UPDATE]
    resources: [ciliumnetworkpolicies, ciliumclusterwidenetworkpolicies]
  objectSelector:
    matchLabels: {netpol-guard-e2e: "$ns"}
LAYERS
)
YAML
}
webhook ValidatingWebhookConfiguration validate Fail | kubectl apply -f - >/dev/null
webhook MutatingWebhookConfiguration mutate Fail | kubectl apply -f - >/dev/null
sleep 2

policy() { # name annotations spec
  cat <<YAML
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: $1
  annotations: {$2}
spec:
$3
YAML
}
missing_dns='  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {name: kube-system}}}]
    ports: [{port: 53, protocol: UDP}]'
udp_only='  podSelector: {matchLabels: {app: api}}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{port: 53, protocol: UDP}]'

# 1. a GitOps-managed policy without DNS is rejected, in a dry run too
for dry in "" "--dry-run=server"; do
  if out=$(policy gitops '"argocd.argoproj.io/tracking-id": "app:x"' "$missing_dns" | kubectl apply -n "$ns" $dry -f - 2>&1); then
    fail "GitOps policy without DNS was admitted ($dry): $out"
  fi
  grep -q "egress-missing-dns" <<<"$out" || fail "rejection does not name the rule: $out"
  pass "rejected with egress-missing-dns ${dry:-(plain)}"
done

# 2. warnings reach kubectl
out=$(policy udp-only '' "$udp_only" | kubectl apply -n "$ns" -f - 2>&1) || fail "UDP-only DNS was refused: $out"
grep -q "Warning: netpol-guard dns-tcp-missing" <<<"$out" || fail "no dns-tcp-missing warning: $out"
pass "warning shown by kubectl"

# 3. a plain policy without DNS is stored with the DNS rule injected
policy web '' "$missing_dns" | kubectl apply -n "$ns" -f - >/dev/null
stored=$(kubectl get networkpolicy web -n "$ns" -o json)
grep -q '"netpol-guard.io/injected": "dns"' <<<"$stored" || fail "no injection annotation: $stored"
grep -q '"k8s-app": "kube-dns"' <<<"$stored" || fail "no DNS rule stored: $stored"
pass "DNS rule injected and stored"

# 4. a server-side dry run shows the injection and stores nothing (other pods than web's:
#    the stored web policy now gives its pods DNS, and the cache knows it)
out=$(policy dry '' "${missing_dns/app: web/app: batch}" | kubectl apply -n "$ns" --dry-run=server -o json -f -)
grep -q '"netpol-guard.io/injected": "dns"' <<<"$out" || fail "dry run not mutated: $out"
kubectl get networkpolicy dry -n "$ns" >/dev/null 2>&1 && fail "dry run stored an object"
pass "dry run mutated, nothing stored"

# 5. a deny-all in a protected namespace is rejected
if out=$(policy deny-all '' '  podSelector: {}
  policyTypes: [Ingress]' | kubectl apply -n "$ns-protected" -f - 2>&1); then
  fail "deny-all in a protected namespace was admitted"
fi
grep -q "protected-namespace-deny-all" <<<"$out" || fail "rejection does not name the rule: $out"
pass "deny-all in a protected namespace rejected"

# 5b. an IPv6-only "allow everything" in a protected namespace: the cluster's families, read
# from the kubernetes Service (by name, with the chart's Role), make it a refusal where the
# cluster has IPv4 (offline, without --ip-families, it is a warning naming the condition)
families=$(kubectl get service kubernetes -n default -o jsonpath='{.spec.ipFamilies}')
v6_only='  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from: [{ipBlock: {cidr: "::/0"}}]'
if grep -q IPv4 <<<"$families"; then
  out=""
  for _ in $(seq 50); do
    if out=$(policy from-anywhere-v6 '' "$v6_only" | kubectl apply --dry-run=server -n "$ns-protected" -f - 2>&1); then
      sleep 0.2
      continue
    fi
    break
  done
  grep -q "protected-namespace-deny-all" <<<"$out" || fail "::/0 alone in a protected namespace of an IPv4 cluster was admitted: $out"
  pass "::/0 alone refused in a cluster with IPv4 ($families)"
else
  echo "skipped: the cluster has no IPv4 family ($families)"
fi

# 6. companions: a labelled namespace gets both, within seconds
kubectl create namespace "$ns-companions" >/dev/null
kubectl label namespace "$ns-companions" "netpol-guard-e2e=$ns" >/dev/null
companions() {
  kubectl get networkpolicy -n "$ns-companions" -l app.kubernetes.io/managed-by=netpol-guard \
    -o jsonpath='{range .items[*]}{.metadata.name}{" "}{end}' 2>/dev/null
}
wait_for_companions() {
  for _ in $(seq 100); do
    [ "$(companions)" = "netpol-guard-allow-dns netpol-guard-default-deny " ] && return 0
    sleep 0.2
  done
  return 1
}
wait_for_companions || fail "companions did not appear: '$(companions)'; log: $(tail -5 "$work/serve.log")"
pass "companions created in a new namespace"
kubectl get networkpolicy -n "$ns" -l app.kubernetes.io/managed-by=netpol-guard -o name | grep -q . \
  && fail "companions created outside companions.namespaceSelector"
pass "no companions outside the selector"

# 7. an ordinary user (who may edit NetworkPolicies there) cannot delete one
# (a Role of its own: the aggregated `edit` ClusterRole is empty on an API server without
# the controller manager)
kubectl create role e2e-netpol-edit -n "$ns-companions" --resource=networkpolicies.networking.k8s.io \
  --verb=get,list,watch,create,update,patch,delete >/dev/null
kubectl create rolebinding e2e-edit -n "$ns-companions" --role=e2e-netpol-edit \
  --user=e2e-tenant --user=e2e-admin >/dev/null
if out=$(kubectl delete networkpolicy netpol-guard-default-deny -n "$ns-companions" \
  --as=e2e-tenant --as-group=system:authenticated 2>&1); then
  fail "an ordinary user deleted a companion: $out"
fi
grep -q "companion-protected" <<<"$out" || fail "refusal does not name the rule: $out"
pass "ordinary user refused (companion-protected)"

# 8. an administrator may; the controller puts it back
kubectl delete networkpolicy netpol-guard-default-deny -n "$ns-companions" \
  --as=e2e-admin --as-group=netpol-guard-e2e-admins --as-group=system:authenticated >/dev/null \
  || fail "an administrator could not delete a companion"
wait_for_companions || fail "deleted companion not restored: '$(companions)'"
curl -s "http://127.0.0.1:$metrics_port/metrics" | grep -q '^netpol_guard_companion_drift_corrections_total [1-9]' \
  || fail "drift not counted"
pass "companion deleted by an administrator restored"

# 9. the DNS target in use is exported (discovered from kube-system/kube-dns when the cluster
#    has it with EndpointSlices, the configured one otherwise)
target=$(curl -s "http://127.0.0.1:$metrics_port/metrics" | grep '^netpol_guard_dns_target_info{' | grep ' 1$') \
  || fail "no DNS target exported"
pass "DNS target: $target"

# 10. pods decide label-composed policy sets (pods are metadata to the guard: they may stay
#     Pending, only their labels matter)
kubectl get serviceaccount default -n "$ns" >/dev/null 2>&1 || kubectl create serviceaccount default -n "$ns" >/dev/null
policy allow-to-dns '' '  podSelector: {matchLabels: {to-dns: allowed}}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]' | kubectl apply -n "$ns" -f - >/dev/null
to_db() { # pod label value
  policy "$2-to-db" '' "  podSelector: {matchLabels: {$1: $2}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: db}}}]
    ports: [{port: 5432}]"
}
sleep 1
out=$(to_db tier reporting | kubectl apply -n "$ns" --dry-run=server -f - 2>&1) || fail "label-composed policy refused with no pods: $out"
grep -q "only if they also match to-dns=allowed (policy $ns/allow-to-dns)" <<<"$out" || fail "no 'depends' warning: $out"
pass "label-composed policy with no pods yet: admitted with the condition named"
# (tier labels: the policies above already give app=web and app=api pods DNS)
kubectl run worker-1 -n "$ns" --image=registry.invalid/worker --restart=Never --labels=tier=worker >/dev/null
# certain now: the mutating webhook injects the DNS rule, and where it may not (a GitOps-managed
# object) validation refuses, naming the pod
injected=""
for _ in $(seq 50); do
  out=$(to_db tier worker | kubectl apply -n "$ns" --dry-run=server -o json -f - 2>&1) || fail "refused: $out"
  grep -q '"netpol-guard.io/injected": "dns"' <<<"$out" && { injected=1; break; }
  sleep 0.2
done
[ -n "$injected" ] || fail "a pod without the DNS label did not make it certain: $out"
if out=$(to_db tier worker | sed 's/  annotations: {}/  annotations: {"argocd.argoproj.io\/tracking-id": "app:x"}/' \
  | kubectl apply -n "$ns" --dry-run=server -f - 2>&1); then
  fail "GitOps-managed policy for an uncovered pod admitted: $out"
fi
grep -q "pod worker-1" <<<"$out" || fail "the denial does not name the pod: $out"
pass "pod without the DNS label: DNS injected, or (GitOps-managed) refused naming the pod"
kubectl label pod worker-1 -n "$ns" to-dns=allowed >/dev/null
clean=""
for _ in $(seq 50); do
  out=$(to_db tier worker | kubectl apply -n "$ns" --dry-run=server -o json -f - 2>&1) \
    && ! grep -q -e Warning -e 'netpol-guard.io/injected' <<<"$out" && { clean=1; break; }
  sleep 0.2
done
[ -n "$clean" ] || fail "labelled pod still not covered: $out"
pass "every selected pod carries the DNS label: clean"

# 11. netpol-guard audit: the existing policies with the cluster as context
out=$("$bin" audit --kubeconfig "$work/kubeconfig" -n "$ns" --format json 2>/dev/null) \
  || [ $? -eq 1 ] || fail "audit failed: $out"
# (the stored web policy still selects namespaces by a `name` label)
grep -q '"rule": "namespace-selector-name-label"' <<<"$out" || fail "audit misses the web policy's finding: $out"
grep -q '"name": "web"' <<<"$out" || fail "audit does not name the policy: $out"
pass "netpol-guard audit lists the namespace's findings"

# 12. the background audit on the leader: reports when their CRD is installed, read back
# through the API with each finding's field and fix
if kubectl get crd "$report_crd" >/dev/null 2>&1; then
  report=""
  for _ in $(seq 100); do
    report=$(kubectl get "$report_resource" netpol-guard -n "$ns" -o json 2>/dev/null) \
      && grep -q '"rule": "namespace-selector-name-label"' <<<"$report" && break
    report=""
    sleep 0.3
  done
  [ -n "$report" ] || fail "no $report_resource with the audit's findings in $ns"
  grep -q '"fix": ' <<<"$report" || fail "the $report_resource results carry no fix: $report"
  if [ "$report_api" = openreports ]; then
    grep -q '"source": "netpol-guard"' <<<"$report" || fail "the Report names no source: $report"
  fi
  pass "background audit wrote the namespace's $report_resource (results with their fix)"
else
  echo "skipped: the $report_crd CRD is not installed"
fi
audited=""
for _ in $(seq 100); do
  curl -s "http://127.0.0.1:$metrics_port/metrics" | grep -q '^netpol_guard_audit_last_run_timestamp_seconds [1-9]' \
    && audited=yes && break
  sleep 0.3
done
[ -n "$audited" ] || fail "no background audit ran"
pass "background audit metrics exported"

# 14. the policy layers: an Admin-tier DNS allow makes an egress policy without DNS admitted
#     untouched; an Admin DNS deny makes it refused, naming the object; a Cilium clusterwide
#     DNS allow admits it untouched too; a lockdown ANP is refused at its own write
cache_objects() { curl -s "http://127.0.0.1:$metrics_port/metrics" | awk -v r="netpol_guard_cache_objects{resource=\"$1\"}" '$1 == r {print $2}'; }
wait_objects() { # resource count
  for _ in $(seq 100); do [ "$(cache_objects "$1")" = "$2" ] && return 0; sleep 0.2; done
  fail "netpol_guard_cache_objects{resource=\"$1\"} is $(cache_objects "$1"), not $2"
}
dns_to='[{pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}}]'
anp() { # name priority action annotations
  cat <<YAML
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata:
  name: $1
  labels: {netpol-guard-e2e: "$ns"}
  annotations: {$4}
spec:
  priority: $2
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: $ns}}}
  egress:
  - name: cluster-dns
    action: $3
    to: $dns_to
    ports: [{portNumber: {protocol: UDP, port: 53}}, {portNumber: {protocol: TCP, port: 53}}]
YAML
}
layer_probe='  podSelector: {matchLabels: {app: layered}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: db}}}]
    ports: [{port: 5432, protocol: TCP}]'
untouched() { # name: stored, no injection, no warning
  local out
  out=$(policy "$1" "" "$layer_probe" | kubectl apply -n "$ns" -f - 2>&1) || fail "$1 refused: $out"
  grep -q "Warning" <<<"$out" && fail "$1 admitted with a warning: $out"
  kubectl get networkpolicy "$1" -n "$ns" -o json | grep -q 'netpol-guard.io/injected' && fail "$1 was mutated"
  kubectl delete networkpolicy "$1" -n "$ns" >/dev/null
}
anp "$ns-allow-dns" 10 Allow "" | kubectl apply -f - >/dev/null || fail "the DNS allow ANP was refused"
wait_objects adminnetworkpolicies 1
untouched layered-allow
pass "Admin DNS allow: an egress policy without DNS admitted untouched (cache_objects adminnetworkpolicies=1)"
anp "$ns-deny-dns" 5 Deny '"netpol-guard.io/dns": skip' | kubectl apply -f - >/dev/null || fail "the annotated DNS deny ANP was refused"
wait_objects adminnetworkpolicies 2
if out=$(policy layered-deny "" "$layer_probe" | kubectl apply -n "$ns" -f - 2>&1); then
  fail "egress policy admitted under an Admin DNS deny: $out"
fi
grep -q "denied for these pods by AdminNetworkPolicy $ns-deny-dns, priority 5 (rule cluster-dns)" <<<"$out" \
  || fail "the refusal does not name the deciding object: $out"
pass "Admin DNS deny: refused, naming AdminNetworkPolicy $ns-deny-dns, priority 5 (rule cluster-dns)"
kubectl delete adminnetworkpolicies "$ns-deny-dns" "$ns-allow-dns" >/dev/null
wait_objects adminnetworkpolicies 0
kubectl apply -f - >/dev/null <<YAML || fail "the DNS visibility CCNP was refused"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: $ns-dns
  labels: {netpol-guard-e2e: "$ns"}
spec:
  endpointSelector: {matchLabels: {k8s:io.kubernetes.pod.namespace: $ns}}
  enableDefaultDeny: {egress: false}
  egress:
  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s:k8s-app: kube-dns}}]
    toPorts:
    - ports: [{port: "53", protocol: ANY}]
      rules: {dns: [{matchPattern: "*"}]}
YAML
wait_objects ciliumclusterwidenetworkpolicies 1
untouched layered-cilium
pass "Cilium clusterwide DNS allow: an egress policy without DNS admitted untouched"
if out=$(anp "$ns-lockdown" 5 Deny "" | sed 's/    to: .*/    to: [{namespaces: {}}]/' \
  | kubectl apply --dry-run=server -f - 2>&1); then
  fail "a lockdown ANP that denies DNS was admitted: $out"
fi
grep -q "layer-denies-dns" <<<"$out" || fail "the lockdown ANP refused without layer-denies-dns: $out"
pass "an ANP that denies its pods DNS is refused at its own write (layer-denies-dns, dry run)"

# 13. the API server goes away for a minute and comes back (only with commands that stop and
#     start it: NETPOL_GUARD_E2E_API_DOWN / NETPOL_GUARD_E2E_API_UP, e.g. the rig's down.sh/up.sh)
metric() { curl -s "http://127.0.0.1:$metrics_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
if [ -n "${NETPOL_GUARD_E2E_API_DOWN:-}" ] && [ -n "${NETPOL_GUARD_E2E_API_UP:-}" ]; then
  bash -c "$NETPOL_GUARD_E2E_API_DOWN" >/dev/null
  for _ in $(seq 150); do [ "$(metric netpol_guard_cache_synced)" = 0 ] && break; sleep 0.2; done
  [ "$(metric netpol_guard_cache_synced)" = 0 ] || fail "cache_synced still 1 with the API server down"
  pass "API server down: netpol_guard_cache_synced 0"
  review=$(cat <<JSON
{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
 "request": {"uid": "e2e-outage", "operation": "CREATE", "namespace": "$ns-protected", "name": "during-outage",
  "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"},
  "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"},
  "userInfo": {"username": "e2e"},
  "object": {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
   "metadata": {"name": "during-outage", "namespace": "$ns-protected"},
   "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}}}
JSON
)
  for i in $(seq 20); do
    out=$(curl -s --max-time 2 --cacert "$work/ca.crt" -H 'content-type: application/json' \
      --data "$review" "https://$host:$port/validate?timeout=5s") || fail "no answer during the outage (request $i)"
    if ! grep -q '"uid":"e2e-outage"' <<<"$out" || ! grep -q 'protected-namespace-deny-all' <<<"$out"; then
      fail "unexpected answer during the outage: $out"
    fi
    sleep 3
  done
  pass "admission answered 20 reviews over a minute without the API server (deny-all refused from the last snapshot)"
  bash -c "$NETPOL_GUARD_E2E_API_UP" >/dev/null
  for _ in $(seq 600); do [ "$(metric netpol_guard_cache_synced)" = 1 ] && break; sleep 0.2; done
  [ "$(metric netpol_guard_cache_synced)" = 1 ] || fail "cache_synced not back to 1 after the API server returned"
  pass "API server back: netpol_guard_cache_synced 1 after a fresh list"
  kubectl delete networkpolicy netpol-guard-allow-dns -n "$ns-companions" >/dev/null
  for _ in $(seq 300); do [ "$(companions)" = "netpol-guard-allow-dns netpol-guard-default-deny " ] && break; sleep 0.2; done
  wait_for_companions || fail "the controller did not resume: '$(companions)'"
  pass "the controller resumed: a deleted companion restored after the outage"
else
  echo "skipped: API server outage (set NETPOL_GUARD_E2E_API_DOWN and NETPOL_GUARD_E2E_API_UP)"
fi

kubectl delete namespace "$ns-protected" --wait=false >/dev/null 2>&1 || true
echo "cluster mode: all checks passed"
