//! A node's files as Kubernetes objects: its MSP and TLS material as Secrets, its orderer.yaml
//! as a ConfigMap, and the volume items that lay them out again as folders in the pod.
//!
//! A Secret's keys cannot hold '/', so each MSP file gets a flat key (`cacerts/ca.pem` becomes
//! `cacerts.ca.pem`) and the volume's `items` map every key back to its path. The TLS Secret is
//! of type `kubernetes.io/tls` with the usual `tls.crt`, `tls.key` and `ca.crt` keys, so that a
//! certificate manager can take over renewals; the orderer reloads changed TLS files without a
//! restart, and the kubelet updates mounted Secrets in place (no `subPath` is used for that).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::Node;
use super::names::is_data_key;

/// The key of each MSP file in the Secret, by its path under `msp/`.
pub fn msp_keys(paths: impl IntoIterator<Item = String>) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let mut taken = std::collections::BTreeSet::new();
    for path in paths {
        let base = flat_key(&path);
        // Two paths may flatten alike (`a/b.pem` and `a.b.pem`): later ones get a suffix.
        let mut key = base.clone();
        let mut n = 2;
        while !taken.insert(key.clone()) {
            key = format!("{base}.{n}");
            n += 1;
        }
        keys.insert(path, key);
    }
    keys
}

/// `path` with '/' as '.' and anything a key cannot hold as '_'.
fn flat_key(path: &str) -> String {
    let mut key: String = path
        .chars()
        .map(|c| match c {
            '/' => '.',
            c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') => c,
            _ => '_',
        })
        .collect();
    if !is_data_key(&key) {
        key = format!("_{key}");
    }
    key.truncate(240);
    key
}

pub fn msp_secret_name(node: &str) -> String {
    format!("{node}-msp")
}

pub fn tls_secret_name(node: &str) -> String {
    format!("{node}-tls")
}

pub fn config_map_name(node: &str) -> String {
    format!("{node}-config")
}

/// The Secret with the node's MSP folder.
pub fn msp_secret(node: &Node, namespace: &str, labels: &Value) -> Value {
    let keys = msp_keys(node.material.msp.keys().cloned());
    let data: Map<String, Value> = node
        .material
        .msp
        .iter()
        .map(|(path, bytes)| (keys[path].clone(), Value::String(STANDARD.encode(bytes))))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": msp_secret_name(&node.name), "namespace": namespace, "labels": labels},
        "type": "Opaque",
        "data": data,
    })
}

/// The `items` of the MSP Secret's volume: every key back at its path.
pub fn msp_items(node: &Node) -> Value {
    let keys = msp_keys(node.material.msp.keys().cloned());
    Value::Array(
        keys.iter()
            .map(|(path, key)| json!({"key": key, "path": path}))
            .collect(),
    )
}

/// The `kubernetes.io/tls` Secret with the node's TLS certificate, key and CA.
pub fn tls_secret(node: &Node, namespace: &str, labels: &Value) -> Value {
    let tls = &node.material.tls;
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": tls_secret_name(&node.name), "namespace": namespace, "labels": labels},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": STANDARD.encode(&tls.cert),
            "tls.key": STANDARD.encode(&tls.key),
            "ca.crt": STANDARD.encode(&tls.ca),
        },
    })
}

/// The ConfigMap with the node's orderer.yaml text.
pub fn config_map(node: &Node, namespace: &str, labels: &Value, orderer_yaml: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_map_name(&node.name), "namespace": namespace, "labels": labels},
        "data": {"orderer.yaml": orderer_yaml},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msp_paths_get_distinct_valid_keys() {
        let keys = msp_keys(
            [
                "cacerts/ca.example.com-cert.pem",
                "admincerts/Admin@example.com-cert.pem",
                "a/b.pem",
                "a.b.pem",
                "..hidden",
            ]
            .map(String::from),
        );
        assert_eq!(
            keys["cacerts/ca.example.com-cert.pem"],
            "cacerts.ca.example.com-cert.pem"
        );
        assert_eq!(
            keys["admincerts/Admin@example.com-cert.pem"],
            "admincerts.Admin_example.com-cert.pem"
        );
        assert_ne!(keys["a/b.pem"], keys["a.b.pem"]);
        assert!(keys.values().all(|k| is_data_key(k)), "{keys:?}");
        let distinct: std::collections::BTreeSet<_> = keys.values().collect();
        assert_eq!(distinct.len(), keys.len());
    }
}
