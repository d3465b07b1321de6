//! A node's StatefulSet: one pod pinned to its zone, its ledger and WAL on a volume claim,
//! its files mounted from the Secrets and ConfigMap, probed on the operations listener.

use serde_json::{Value, json};

use super::secrets::{config_map_name, msp_items, msp_secret_name, tls_secret_name};
use super::{
    ADMIN_PORT, CONFIG_DIR, DATA_DIR, GENERAL_PORT, MSP_DIR, Node, OPERATIONS_PORT, RUN_AS, Spec,
    TLS_DIR, ZONE_LABEL,
};

/// Secret files readable by their group only: the kubelet makes them root's, of group
/// `fsGroup`, which the orderer's process is in.
const SECRET_MODE: u32 = 0o440;

/// The pod labels and selector of the ordering service, and of this node.
pub struct Selectors<'a> {
    pub labels: &'a Value,
    pub service: &'a Value,
    pub node: &'a Value,
}

/// The node's StatefulSet; `config_sha256` is its orderer.yaml's digest, in the pod template so
/// that a changed configuration rolls the pod (the orderer reads the file once at start).
pub fn stateful_set(
    spec: &Spec,
    node: &Node,
    sel: &Selectors<'_>,
    zone_skew: u32,
    config_sha256: &str,
) -> Value {
    let http_get = |path: &str| json!({"path": path, "port": "operations", "scheme": "HTTP"});
    let mut claim = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.storage_size}},
    });
    if let (Some(class), Some(c)) = (&spec.storage_class, claim.as_object_mut()) {
        c.insert("storageClassName".into(), class.clone().into());
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": node.name, "namespace": spec.namespace, "labels": sel.labels},
        "spec": {
            "serviceName": node.name,
            "replicas": 1,
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            // Deleting the StatefulSet must never delete a ledger.
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "selector": {"matchLabels": sel.node},
            "template": {
                "metadata": {
                    "labels": sel.labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": OPERATIONS_PORT.to_string(),
                        "prometheus.io/path": "/metrics",
                        "ordo/config-sha256": config_sha256,
                    },
                },
                "spec": {
                    // The orderer never talks to the Kubernetes API.
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "fsGroupChangePolicy": "OnRootMismatch",
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "affinity": {"nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                            {"matchExpressions": [
                                {"key": ZONE_LABEL, "operator": "In", "values": [node.zone]},
                            ]},
                        ]},
                    }},
                    "topologySpreadConstraints": [
                        // The placement's spread stated to the scheduler as well: it holds the
                        // pods to it should the zone affinity above be loosened.
                        {
                            "maxSkew": zone_skew.max(1),
                            "topologyKey": ZONE_LABEL,
                            "whenUnsatisfiable": "DoNotSchedule",
                            "nodeAffinityPolicy": "Honor",
                            "labelSelector": {"matchLabels": sel.service},
                        },
                        // Two orderers of a zone on two machines when the zone has them, so
                        // that one machine's loss costs one consenter.
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": sel.service},
                        },
                    ],
                    "containers": [{
                        "name": "orderer",
                        "image": spec.image,
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["node", "start", "--config", format!("{CONFIG_DIR}/orderer.yaml")],
                        "env": [{"name": "FABRIC_LOGGING_SPEC", "value": spec.log_spec}],
                        "ports": [
                            {"name": "general", "containerPort": GENERAL_PORT, "protocol": "TCP"},
                            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
                            {"name": "operations", "containerPort": OPERATIONS_PORT, "protocol": "TCP"},
                        ],
                        // Memory limited to its request (no eviction for overuse before others);
                        // no CPU limit, whose throttling would stretch Raft's heartbeats.
                        "resources": {
                            "requests": {"cpu": spec.cpu_request, "memory": spec.memory},
                            "limits": {"memory": spec.memory},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsNonRoot": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        // Started = the operations listener answers, which it does once the
                        // channels are open (replaying a long WAL takes time). /healthz is not
                        // asked here: a node starting while the others are down has no leader.
                        "startupProbe": {
                            "httpGet": http_get("/version"),
                            "periodSeconds": 5,
                            "timeoutSeconds": 3,
                            "failureThreshold": 120,
                        },
                        // Ready = /healthz: no halted channel, a Raft leader on every channel it
                        // is a consenter of, a writable ledger. The disruption budget counts it.
                        "readinessProbe": {
                            "httpGet": http_get("/healthz"),
                            "periodSeconds": 5,
                            "timeoutSeconds": 3,
                            "failureThreshold": 3,
                        },
                        // Restarted only after five minutes of failing /healthz: an election or
                        // a short partition must not restart a node, whose restart can cost the
                        // others their quorum.
                        "livenessProbe": {
                            "httpGet": http_get("/healthz"),
                            "periodSeconds": 10,
                            "timeoutSeconds": 5,
                            "failureThreshold": 30,
                        },
                        "volumeMounts": [
                            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": true},
                            {"name": "msp", "mountPath": MSP_DIR, "readOnly": true},
                            {"name": "tls", "mountPath": TLS_DIR, "readOnly": true},
                            {"name": "data", "mountPath": DATA_DIR},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }],
                    "volumes": [
                        {"name": "config", "configMap": {"name": config_map_name(&node.name)}},
                        {"name": "msp", "secret": {
                            "secretName": msp_secret_name(&node.name),
                            "defaultMode": SECRET_MODE,
                            "items": msp_items(node),
                        }},
                        {"name": "tls", "secret": {
                            "secretName": tls_secret_name(&node.name),
                            "defaultMode": SECRET_MODE,
                        }},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": sel.labels},
                "spec": claim,
            }],
        },
    })
}
