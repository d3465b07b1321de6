//! The objects around the orderers' pods: the Namespace, a Service per node (the stable name
//! other orderers and clients dial) and the ordering service's PodDisruptionBudget.

use serde_json::{Value, json};

use super::{ADMIN_PORT, GENERAL_PORT, Node, OPERATIONS_PORT};

/// The namespace, held to the `restricted` Pod Security Standard, which the orderers' pods
/// meet (non-root, no privilege escalation, no capabilities, the runtime's seccomp profile).
pub fn namespace(name: &str, labels: &Value) -> Value {
    let mut labels = labels.clone();
    if let Some(l) = labels.as_object_mut() {
        l.insert(
            "pod-security.kubernetes.io/enforce".into(),
            "restricted".into(),
        );
    }
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    })
}

/// The node's Service. Its name is the host that the channel's consenter entry and clients
/// use, and the node's TLS certificate names. Not-ready pods stay published: a consenter that
/// has lost its Raft leader is not ready (its /healthz fails), yet the other consenters must
/// still reach it to elect one.
pub fn service(node: &Node, namespace: &str, labels: &Value, selector: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": node.name, "namespace": namespace, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "publishNotReadyAddresses": true,
            "ports": [
                {"name": "general", "port": GENERAL_PORT, "targetPort": "general", "protocol": "TCP"},
                {"name": "admin", "port": ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"},
                {"name": "operations", "port": OPERATIONS_PORT, "targetPort": "operations", "protocol": "TCP"},
            ],
        },
    })
}

/// One budget over every orderer pod of the ordering service: a drain or an upgrade takes at
/// most one orderer at a time, and none while another is down or not ready (no leader).
pub fn disruption_budget(name: &str, namespace: &str, labels: &Value, selector: &Value) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector},
        },
    })
}
