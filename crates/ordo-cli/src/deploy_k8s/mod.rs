//! The Kubernetes manifests of an Ordo ordering service spread over zones (`ordo deploy
//! kubernetes`): pure functions from the placement, the settings and the nodes' crypto
//! material (read by [`material`]) to one object per manifest. Nothing here touches the disk
//! or a cluster.
//!
//! Per orderer node: its MSP and TLS Secrets, a ConfigMap with its orderer.yaml, a Service
//! whose name is the host in the node's TLS certificate, and a one-pod StatefulSet with
//! required affinity to its zone. For the whole service: the Namespace and one
//! PodDisruptionBudget (`maxUnavailable: 1`).

pub mod material;
pub mod names;
mod objects;
mod orderer_yaml;
pub mod placement;
mod secrets;
#[cfg(test)]
mod tests;
mod workload;

use serde_json::{Value, json};

use material::NodeMaterial;
use names::{first_covered, is_dns_1035_label, is_dns_1123_label, service_dns_names};
use placement::{Placement, PlacementError};

/// The general (Broadcast, Deliver and Raft) port, as in Fabric.
pub const GENERAL_PORT: u16 = 7050;
/// The channel participation (admin) port.
pub const ADMIN_PORT: u16 = 7053;
/// The operations port: /healthz, /metrics, /version.
pub const OPERATIONS_PORT: u16 = 9443;
/// The image's user and group (`deploy/Dockerfile`).
pub const RUN_AS: u32 = 10001;
/// The well-known node label of a node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The pods' `app.kubernetes.io/name`.
pub const APP_NAME: &str = "ordo-orderer";

const CONFIG_DIR: &str = "/etc/ordo/config";
const MSP_DIR: &str = "/etc/ordo/msp";
const TLS_DIR: &str = "/etc/ordo/tls";
const DATA_DIR: &str = "/var/hyperledger/production";

/// Why no manifests were made.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error(transparent)]
    Material(#[from] material::MaterialError),
    #[error("{what} {value:?} is not a valid Kubernetes name: {rule}")]
    BadName {
        what: &'static str,
        value: String,
        rule: &'static str,
    },
    #[error("{what} {value:?} is not a Kubernetes quantity (for example 500m, 2, 512Mi, 20Gi)")]
    BadQuantity { what: &'static str, value: String },
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error(
        "orderer folder {folder:?} gives the node name {name:?}, which is not a Kubernetes Service name (lower-case letters, digits and '-', starting with a letter, at most 63): the Service name must be the host in its TLS certificate"
    )]
    BadNodeName { folder: String, name: String },
    #[error("orderers {0:?} would have the same node name {1:?}")]
    DuplicateNode(String, String),
    #[error("--nodes names {0:?} twice")]
    NamedTwice(String),
    #[error("--nodes names {0:?}, which is not an orderer of the organization (it has {1})")]
    UnknownNode(String, String),
    #[error(
        "the placement holds {placed} orderers but {chosen} were chosen ({names}): the placement's total must be the number of orderers deployed (--nodes chooses them)"
    )]
    NodeCountMismatch {
        placed: u32,
        chosen: usize,
        names: String,
    },
    #[error(
        "orderer {node}: its TLS certificate names none of its Service's DNS names ({candidates}), so the other orderers and clients would refuse its certificate; its DNS names are [{sans}]. Issue it with one of them (cryptogen: the spec's Hostname or SANS; Fabric CA: --csr.hosts)"
    )]
    NoSanMatch {
        node: String,
        candidates: String,
        sans: String,
    },
    #[error("writing {file} as YAML: {reason}")]
    Yaml { file: String, reason: String },
}

/// What the generated service looks like, beside the placement and the material.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The ordering service's name: `app.kubernetes.io/part-of` of every object.
    pub service_name: String,
    pub namespace: String,
    pub image: String,
    pub msp_id: String,
    /// The orderer organization's domain, stripped from folder names to give node names.
    pub org_domain: String,
    /// The orderers to deploy, by node or folder name, in placement order; all of the
    /// organization's when empty.
    pub nodes: Vec<String>,
    pub storage_size: String,
    pub storage_class: Option<String>,
    pub cpu_request: String,
    /// The memory request and limit.
    pub memory: String,
    /// The cluster's DNS domain (`cluster.local` unless the cluster was set up otherwise).
    pub cluster_domain: String,
    /// `FABRIC_LOGGING_SPEC` of the nodes.
    pub log_spec: String,
}

/// An orderer node as deployed.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its Service's and StatefulSet's name.
    pub name: String,
    pub zone: String,
    /// The host that its TLS certificate names and the channel's consenter entry (and clients)
    /// must use: the most widely resolvable of its Service's DNS names that the certificate
    /// covers.
    pub host: String,
    pub material: NodeMaterial,
}

/// One object and the file it goes to.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file name: a number that orders the kinds for `kubectl apply -f DIR` (namespace
    /// first, then the files the pods mount, the Services, the StatefulSets, the budget), the
    /// kind and the object's name.
    pub file: String,
    pub object: Value,
}

impl Manifest {
    /// The object as a YAML document.
    pub fn to_yaml(&self) -> Result<String, DeployError> {
        let body = serde_saphyr::to_string(&self.object).map_err(|e| DeployError::Yaml {
            file: self.file.clone(),
            reason: e.to_string(),
        })?;
        Ok(format!(
            "# Generated by `ordo deploy kubernetes` (ordo {}).\n{body}",
            env!("CARGO_PKG_VERSION")
        ))
    }
}

/// The generated ordering service.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The nodes in placement order.
    pub nodes: Vec<Node>,
    pub manifests: Vec<Manifest>,
}

/// The manifests for `orderers` (the organization's, as [`material::read_orderers`] returns
/// them) placed as `placement` says.
pub fn generate(
    spec: &Spec,
    placement: &Placement,
    orderers: Vec<NodeMaterial>,
) -> Result<Deployment, DeployError> {
    check_spec(spec)?;
    let nodes = place(spec, placement, orderers)?;

    let service_selector = json!({
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/part-of": spec.service_name,
    });
    let mut service_labels = service_selector.clone();
    if let Some(l) = service_labels.as_object_mut() {
        l.insert("app.kubernetes.io/managed-by".into(), "ordo".into());
    }
    let mut manifests = vec![Manifest {
        file: "00-namespace.yaml".into(),
        object: objects::namespace(&spec.namespace, &service_labels),
    }];
    let orderer_yaml = orderer_yaml::orderer_yaml(&spec.msp_id);
    let orderer_yaml_text =
        serde_saphyr::to_string(&orderer_yaml).map_err(|e| DeployError::Yaml {
            file: "orderer.yaml".into(),
            reason: e.to_string(),
        })?;
    let config_sha256: String = ordo_crypto::sha256(orderer_yaml_text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for node in &nodes {
        let mut node_selector = service_selector.clone();
        if let Some(s) = node_selector.as_object_mut() {
            s.insert(
                "app.kubernetes.io/instance".into(),
                node.name.clone().into(),
            );
        }
        let mut labels = service_labels.clone();
        if let Some(l) = labels.as_object_mut() {
            l.insert(
                "app.kubernetes.io/instance".into(),
                node.name.clone().into(),
            );
            l.insert("app.kubernetes.io/component".into(), "orderer".into());
        }
        let ns = spec.namespace.as_str();
        let n = &node.name;
        manifests.push(Manifest {
            file: format!("10-secret-{n}-msp.yaml"),
            object: secrets::msp_secret(node, ns, &labels),
        });
        manifests.push(Manifest {
            file: format!("10-secret-{n}-tls.yaml"),
            object: secrets::tls_secret(node, ns, &labels),
        });
        manifests.push(Manifest {
            file: format!("20-configmap-{n}.yaml"),
            object: secrets::config_map(node, ns, &labels, &orderer_yaml_text),
        });
        manifests.push(Manifest {
            file: format!("30-service-{n}.yaml"),
            object: objects::service(node, ns, &labels, &node_selector),
        });
        let sel = workload::Selectors {
            labels: &labels,
            service: &service_selector,
            node: &node_selector,
        };
        manifests.push(Manifest {
            file: format!("40-statefulset-{n}.yaml"),
            object: workload::stateful_set(spec, node, &sel, placement.skew(), &config_sha256),
        });
    }
    manifests.push(Manifest {
        file: "50-poddisruptionbudget.yaml".into(),
        object: objects::disruption_budget(
            &format!("{}-orderers", spec.service_name),
            &spec.namespace,
            &service_labels,
            &service_selector,
        ),
    });
    manifests.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(Deployment { nodes, manifests })
}

fn check_spec(spec: &Spec) -> Result<(), DeployError> {
    if !is_dns_1123_label(&spec.namespace) {
        return Err(DeployError::BadName {
            what: "namespace",
            value: spec.namespace.clone(),
            rule: "lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63",
        });
    }
    // It names the disruption budget (`<name>-orderers`) and is a label value.
    if !is_dns_1035_label(&spec.service_name) || spec.service_name.len() > 50 {
        return Err(DeployError::BadName {
            what: "service name",
            value: spec.service_name.clone(),
            rule: "lower-case letters, digits and '-', starting with a letter, at most 50",
        });
    }
    for (what, value) in [
        ("image", &spec.image),
        ("MSP ID", &spec.msp_id),
        ("cluster domain", &spec.cluster_domain),
        ("logging spec", &spec.log_spec),
    ] {
        if value.trim().is_empty() {
            return Err(DeployError::Empty { what });
        }
    }
    if spec.image.chars().any(char::is_whitespace) {
        return Err(DeployError::BadName {
            what: "image",
            value: spec.image.clone(),
            rule: "an image reference has no spaces",
        });
    }
    for (what, value) in [
        ("storage size", &spec.storage_size),
        ("CPU request", &spec.cpu_request),
        ("memory", &spec.memory),
    ] {
        if !is_quantity(value) {
            return Err(DeployError::BadQuantity {
                what,
                value: value.clone(),
            });
        }
    }
    if let Some(class) = &spec.storage_class
        && !names::is_dns_1123_subdomain(class)
    {
        return Err(DeployError::BadName {
            what: "storage class",
            value: class.clone(),
            rule: "lower-case letters, digits, '-' and '.', at most 253",
        });
    }
    Ok(())
}

/// A plain decimal quantity with an optional suffix (`500m`, `1.5`, `512Mi`, `20Gi`): the
/// forms people write for CPU, memory and storage. Exponent forms are left out on purpose.
fn is_quantity(s: &str) -> bool {
    const SUFFIXES: [&str; 15] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    let digits_end = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let mut parts = number.split('.');
    let whole = parts.next().unwrap_or("");
    let frac = parts.next();
    parts.next().is_none()
        && !whole.is_empty()
        && frac.is_none_or(|f| !f.is_empty())
        && (suffix.is_empty() || SUFFIXES.contains(&suffix))
}

/// Chooses the orderers, names them and gives each its zone and host.
fn place(
    spec: &Spec,
    placement: &Placement,
    orderers: Vec<NodeMaterial>,
) -> Result<Vec<Node>, DeployError> {
    // cryptogen's folders are `<Hostname>.<domain>`; others (`ordo demo`'s `os1`) are the name.
    let suffix = format!(".{}", spec.org_domain);
    let mut named: Vec<(String, NodeMaterial)> = Vec::new();
    for m in orderers {
        let name = m
            .folder
            .strip_suffix(&suffix)
            .unwrap_or(&m.folder)
            .to_string();
        if !is_dns_1035_label(&name) {
            return Err(DeployError::BadNodeName {
                folder: m.folder,
                name,
            });
        }
        if let Some((_, other)) = named.iter().find(|(n, _)| *n == name) {
            return Err(DeployError::DuplicateNode(
                format!("{} and {}", other.folder, m.folder),
                name,
            ));
        }
        named.push((name, m));
    }
    let chosen = if spec.nodes.is_empty() {
        named
    } else {
        let mut chosen = Vec::new();
        for (i, want) in spec.nodes.iter().enumerate() {
            if spec.nodes[..i].contains(want) {
                return Err(DeployError::NamedTwice(want.clone()));
            }
            let at = named
                .iter()
                .position(|(n, m)| n == want || m.folder == *want)
                .ok_or_else(|| {
                    let all: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
                    DeployError::UnknownNode(want.clone(), all.join(", "))
                })?;
            chosen.push(named.remove(at));
        }
        chosen
    };
    if chosen.len() != placement.total() as usize {
        return Err(DeployError::NodeCountMismatch {
            placed: placement.total(),
            chosen: chosen.len(),
            names: chosen
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    chosen
        .into_iter()
        .zip(placement.zone_of_each())
        .map(|((name, material), zone)| {
            let candidates = service_dns_names(&name, &spec.namespace, &spec.cluster_domain);
            let host = first_covered(&candidates, &material.tls_dns_names)
                .ok_or_else(|| DeployError::NoSanMatch {
                    node: name.clone(),
                    candidates: candidates.join(", "),
                    sans: material.tls_dns_names.join(", "),
                })?
                .to_string();
            Ok(Node {
                name,
                zone: zone.to_string(),
                host,
                material,
            })
        })
        .collect()
}
