//! The generator on the Fabric fixtures' crypto-config (cryptogen's output: orderer1..5 of
//! example.com, TLS certificates naming `ordererN.example.com` and `ordererN`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::material::{NodeMaterial, read_orderers};
use super::placement::Placement;
use super::*;

fn crypto_config() -> PathBuf {
    ordo_testkit::fixture("crypto-config")
}

fn orderers() -> Vec<NodeMaterial> {
    read_orderers(&crypto_config(), "example.com").unwrap()
}

fn spec() -> Spec {
    Spec {
        service_name: "ordo".into(),
        namespace: "ordo".into(),
        image: "ordo:test".into(),
        msp_id: "OrdererMSP".into(),
        org_domain: "example.com".into(),
        nodes: Vec::new(),
        storage_size: "20Gi".into(),
        storage_class: None,
        cpu_request: "500m".into(),
        memory: "1Gi".into(),
        cluster_domain: "cluster.local".into(),
        log_spec: "info".into(),
    }
}

fn placement(p: &str) -> Placement {
    Placement::parse(p, &["zone-a", "zone-b", "zone-c"].map(String::from)).unwrap()
}

fn generate_for(p: &str) -> Deployment {
    generate(&spec(), &placement(p), orderers()).unwrap()
}

fn of_kind<'a>(d: &'a Deployment, kind: &str) -> Vec<&'a Value> {
    d.manifests
        .iter()
        .map(|m| &m.object)
        .filter(|o| o["kind"] == kind)
        .collect()
}

fn named<'a>(d: &'a Deployment, kind: &str, name: &str) -> &'a Value {
    of_kind(d, kind)
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn pod(sts: &Value) -> &Value {
    &sts["spec"]["template"]
}

fn container(sts: &Value) -> &Value {
    &pod(sts)["spec"]["containers"][0]
}

/// Whether every label of `selector` is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

fn required_zones(sts: &Value) -> Vec<String> {
    let terms = &pod(sts)["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"];
    let terms = terms.as_array().unwrap();
    assert_eq!(terms.len(), 1);
    let exprs = terms[0]["matchExpressions"].as_array().unwrap();
    assert_eq!(exprs.len(), 1);
    assert_eq!(exprs[0]["key"], ZONE_LABEL);
    assert_eq!(exprs[0]["operator"], "In");
    exprs[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn two_one_two_gives_five_one_pod_stateful_sets_each_required_in_its_zone() {
    let d = generate_for("2/1/2");
    let sets = of_kind(&d, "StatefulSet");
    assert_eq!(sets.len(), 5);
    let zones: BTreeMap<String, Vec<String>> = sets
        .iter()
        .map(|s| {
            assert_eq!(s["spec"]["replicas"], 1);
            (
                s["metadata"]["name"].as_str().unwrap().to_string(),
                required_zones(s),
            )
        })
        .collect();
    let expected: BTreeMap<String, Vec<String>> = [
        ("orderer1", "zone-a"),
        ("orderer2", "zone-a"),
        ("orderer3", "zone-b"),
        ("orderer4", "zone-c"),
        ("orderer5", "zone-c"),
    ]
    .into_iter()
    .map(|(n, z)| (n.to_string(), vec![z.to_string()]))
    .collect();
    assert_eq!(zones, expected);
    let node_zones: Vec<(&str, &str)> = d
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.zone.as_str()))
        .collect();
    assert_eq!(
        node_zones,
        [
            ("orderer1", "zone-a"),
            ("orderer2", "zone-a"),
            ("orderer3", "zone-b"),
            ("orderer4", "zone-c"),
            ("orderer5", "zone-c"),
        ]
    );
    // Per node: two Secrets, a ConfigMap, a Service, a StatefulSet; and the Namespace and the
    // budget.
    assert_eq!(d.manifests.len(), 5 * 5 + 2);
    assert_eq!(of_kind(&d, "Namespace").len(), 1);
}

#[test]
fn pods_spread_over_zones_and_machines_by_the_ordering_services_labels() {
    let d = generate_for("2/1/2");
    for sts in of_kind(&d, "StatefulSet") {
        let labels = &pod(sts)["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/name"], APP_NAME);
        assert_eq!(labels["app.kubernetes.io/part-of"], "ordo");
        assert!(selects(&sts["spec"]["selector"]["matchLabels"], labels));
        let spread = pod(sts)["spec"]["topologySpreadConstraints"]
            .as_array()
            .unwrap();
        let zone = spread
            .iter()
            .find(|c| c["topologyKey"] == ZONE_LABEL)
            .unwrap();
        assert_eq!(zone["maxSkew"], 1);
        assert_eq!(zone["whenUnsatisfiable"], "DoNotSchedule");
        assert!(
            spread
                .iter()
                .any(|c| c["topologyKey"] == "kubernetes.io/hostname")
        );
        // Each constraint counts all five orderers' pods, not only this node's.
        for c in spread {
            let sel = &c["labelSelector"]["matchLabels"];
            for other in of_kind(&d, "StatefulSet") {
                assert!(selects(sel, &pod(other)["metadata"]["labels"]));
            }
        }
    }
}

#[test]
fn one_disruption_budget_covers_every_orderer_pod_with_max_unavailable_one() {
    let d = generate_for("2/1/2");
    let pdbs = of_kind(&d, "PodDisruptionBudget");
    assert_eq!(pdbs.len(), 1);
    let pdb = pdbs[0];
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert!(pdb["spec"].get("minAvailable").is_none());
    let sel = &pdb["spec"]["selector"]["matchLabels"];
    let sets = of_kind(&d, "StatefulSet");
    assert_eq!(sets.len(), 5);
    for sts in sets {
        assert!(selects(sel, &pod(sts)["metadata"]["labels"]));
    }
}

#[test]
fn every_pod_is_probed_on_healthz_of_its_operations_listener_and_scraped() {
    let d = generate_for("2/1/2");
    let yaml_text = named(&d, "ConfigMap", "orderer1-config")["data"]["orderer.yaml"]
        .as_str()
        .unwrap()
        .to_string();
    let conf: Value = serde_saphyr::from_str(&yaml_text).unwrap();
    assert_eq!(
        conf["Operations"]["ListenAddress"],
        format!("0.0.0.0:{OPERATIONS_PORT}")
    );
    assert_eq!(conf["Operations"]["TLS"]["Enabled"], false);
    assert_eq!(conf["Metrics"]["Provider"], "prometheus");
    for sts in of_kind(&d, "StatefulSet") {
        let c = container(sts);
        let ops = c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "operations")
            .unwrap();
        assert_eq!(ops["containerPort"], OPERATIONS_PORT);
        for probe in ["readinessProbe", "livenessProbe"] {
            let get = &c[probe]["httpGet"];
            assert_eq!(get["path"], "/healthz", "{probe}");
            assert_eq!(get["port"], "operations", "{probe}");
            assert_eq!(get["scheme"], "HTTP", "{probe}");
        }
        // Liveness gives an election or a short partition far more time than readiness.
        let window = |p: &str| {
            c[p]["periodSeconds"].as_u64().unwrap() * c[p]["failureThreshold"].as_u64().unwrap()
        };
        assert!(window("livenessProbe") >= 300);
        assert!(window("readinessProbe") <= 30);
        assert_eq!(c["startupProbe"]["httpGet"]["port"], "operations");
        let ann = &pod(sts)["metadata"]["annotations"];
        assert_eq!(ann["prometheus.io/scrape"], "true");
        assert_eq!(ann["prometheus.io/port"], OPERATIONS_PORT.to_string());
        assert_eq!(ann["prometheus.io/path"], "/metrics");
    }
}

#[test]
fn secrets_hold_each_nodes_own_msp_and_tls_files_at_their_paths() {
    let d = generate_for("2/1/2");
    let root = crypto_config().join("ordererOrganizations/example.com/orderers");
    for node in &d.nodes {
        let folder = root.join(format!("{}.example.com", node.name));
        let msp = named(&d, "Secret", &format!("{}-msp", node.name));
        assert_eq!(msp["type"], "Opaque");
        let data = msp["data"].as_object().unwrap();
        let sts = named(&d, "StatefulSet", &node.name);
        let volumes = pod(sts)["spec"]["volumes"].as_array().unwrap();
        let msp_volume = volumes.iter().find(|v| v["name"] == "msp").unwrap();
        assert_eq!(msp_volume["secret"]["secretName"], msp["metadata"]["name"]);
        let items = msp_volume["secret"]["items"].as_array().unwrap();
        // Every key is laid out, at the path the file had under msp/, with its bytes.
        assert_eq!(items.len(), data.len());
        let mut paths = Vec::new();
        for item in items {
            let key = item["key"].as_str().unwrap();
            let path = item["path"].as_str().unwrap();
            let bytes = STANDARD.decode(data[key].as_str().unwrap()).unwrap();
            assert_eq!(bytes, std::fs::read(folder.join("msp").join(path)).unwrap());
            paths.push(path);
        }
        paths.sort();
        assert_eq!(
            paths,
            [
                "cacerts/ca.example.com-cert.pem",
                "config.yaml",
                "keystore/priv_sk",
                format!("signcerts/{}.example.com-cert.pem", node.name).as_str(),
                "tlscacerts/tlsca.example.com-cert.pem",
            ]
        );
        let tls = named(&d, "Secret", &format!("{}-tls", node.name));
        assert_eq!(tls["type"], "kubernetes.io/tls");
        for (key, file) in [
            ("tls.crt", "server.crt"),
            ("tls.key", "server.key"),
            ("ca.crt", "ca.crt"),
        ] {
            let bytes = STANDARD.decode(tls["data"][key].as_str().unwrap()).unwrap();
            assert_eq!(
                bytes,
                std::fs::read(folder.join("tls").join(file)).unwrap(),
                "{key}"
            );
        }
    }
}

#[test]
fn the_orderer_accepts_its_orderer_yaml_and_finds_its_files_in_the_mounts() {
    let d = generate_for("2/1/2");
    let sts = named(&d, "StatefulSet", "orderer3");
    let c = container(sts);
    let mounts: BTreeMap<&str, &str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["mountPath"].as_str().unwrap(),
            )
        })
        .collect();
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[..3], ["node", "start", "--config"]);
    assert_eq!(args[3], format!("{}/orderer.yaml", mounts["config"]));
    let text = named(&d, "ConfigMap", "orderer3-config")["data"]["orderer.yaml"]
        .as_str()
        .unwrap();
    let conf =
        ordo_orderer::localconfig::LocalConfig::from_yaml(text, std::path::Path::new("/"), &|_| {
            None
        })
        .unwrap();
    let g = &conf.general;
    assert_eq!(g.listen_address, "0.0.0.0");
    assert_eq!(g.listen_port, GENERAL_PORT);
    assert_eq!(g.bootstrap_method, "none");
    assert_eq!(g.local_msp_id, "OrdererMSP");
    assert!(conf.participation_enabled);
    assert!(!g.cluster.separate_listener());
    assert_eq!(g.local_msp_dir, PathBuf::from(mounts["msp"]));
    let tls_dir = PathBuf::from(mounts["tls"]);
    assert_eq!(g.tls.certificate, tls_dir.join("tls.crt"));
    assert_eq!(g.tls.private_key, tls_dir.join("tls.key"));
    assert_eq!(g.cluster.client_certificate, tls_dir.join("tls.crt"));
    assert_eq!(conf.admin.listen_address, format!("0.0.0.0:{ADMIN_PORT}"));
    assert!(conf.admin.tls.client_auth_required);
    assert_eq!(conf.admin.tls.client_root_cas, [tls_dir.join("ca.crt")]);
    assert_eq!(
        conf.operations.listen_address,
        format!("0.0.0.0:{OPERATIONS_PORT}")
    );
    // The ledger and WAL are on the volume claim.
    let data = PathBuf::from(mounts["data"]);
    assert!(conf.ledger_location.starts_with(&data));
    assert!(conf.wal_dir.starts_with(&data));
    assert!(conf.snap_dir.starts_with(&data));
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "data"
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "20Gi"
    );
    // Non-root, read-only root file system.
    assert_eq!(pod(sts)["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod(sts)["spec"]["securityContext"]["runAsUser"], RUN_AS);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
}

#[test]
fn each_service_is_named_as_its_certificate_and_keeps_not_ready_pods() {
    let d = generate_for("2/1/2");
    let services = of_kind(&d, "Service");
    assert_eq!(services.len(), 5);
    for node in &d.nodes {
        // The fixture's certificates name `ordererN` and `ordererN.example.com`: of the
        // Service's DNS names only the bare one is covered.
        assert_eq!(node.host, node.name);
        assert!(node.material.tls_dns_names.contains(&node.host));
        let svc = named(&d, "Service", &node.name);
        assert_eq!(svc["spec"]["publishNotReadyAddresses"], true);
        let ports: BTreeMap<&str, u64> = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["port"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            ports,
            BTreeMap::from([("admin", 7053), ("general", 7050), ("operations", 9443)])
        );
        // It selects its own node's pod and no other.
        let sel = &svc["spec"]["selector"];
        for sts in of_kind(&d, "StatefulSet") {
            let mine = sts["metadata"]["name"] == node.name.as_str();
            assert_eq!(selects(sel, &pod(sts)["metadata"]["labels"]), mine);
        }
        assert_eq!(
            named(&d, "StatefulSet", &node.name)["spec"]["serviceName"],
            node.name.as_str()
        );
    }
}

#[test]
fn a_certificate_naming_the_fully_qualified_service_name_gets_that_host() {
    let mut material = orderers();
    material[0].tls_dns_names = vec!["*.ordo.svc.cluster.local".into()];
    let d = generate(&spec(), &placement("2/1/2"), material).unwrap();
    assert_eq!(d.nodes[0].host, "orderer1.ordo.svc.cluster.local");
    assert_eq!(d.nodes[1].host, "orderer2");
}

#[test]
fn a_certificate_naming_none_of_the_service_names_is_refused() {
    let mut material = orderers();
    material[2].tls_dns_names = vec!["localhost".into(), "orderer3.example.com".into()];
    let err = generate(&spec(), &placement("2/1/2"), material).unwrap_err();
    match &err {
        DeployError::NoSanMatch { node, sans, .. } => {
            assert_eq!(node, "orderer3");
            assert_eq!(sans, "localhost, orderer3.example.com");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("orderer3.ordo.svc.cluster.local"));
}

#[test]
fn three_one_one_puts_three_orderers_in_the_first_zone() {
    let d = generate_for("3/1/1");
    let zones: Vec<Vec<String>> = d
        .nodes
        .iter()
        .map(|n| required_zones(named(&d, "StatefulSet", &n.name)))
        .collect();
    assert_eq!(
        zones,
        [["zone-a"], ["zone-a"], ["zone-a"], ["zone-b"], ["zone-c"]]
    );
    // The zone spread allows the placement's own skew, or it could never be scheduled.
    let sts = named(&d, "StatefulSet", "orderer1");
    let zone = pod(sts)["spec"]["topologySpreadConstraints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["topologyKey"] == ZONE_LABEL)
        .unwrap()
        .clone();
    assert_eq!(zone["maxSkew"], 2);
    assert_eq!(of_kind(&d, "PodDisruptionBudget").len(), 1);
}

#[test]
fn chosen_nodes_go_to_the_zones_in_the_order_given() {
    let mut s = spec();
    s.nodes = vec![
        "orderer5".into(),
        "orderer1.example.com".into(),
        "orderer3".into(),
    ];
    let d = generate(&s, &placement("1/1/1"), orderers()).unwrap();
    let got: Vec<(&str, &str)> = d
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.zone.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("orderer5", "zone-a"),
            ("orderer1", "zone-b"),
            ("orderer3", "zone-c")
        ]
    );
    assert_eq!(of_kind(&d, "StatefulSet").len(), 3);

    s.nodes = vec!["orderer9".into()];
    assert!(matches!(
        generate(&s, &placement("1/1/1"), orderers()),
        Err(DeployError::UnknownNode(n, _)) if n == "orderer9"
    ));
    s.nodes = vec!["orderer1".into(), "orderer1".into(), "orderer2".into()];
    assert!(matches!(
        generate(&s, &placement("1/1/1"), orderers()),
        Err(DeployError::NamedTwice(n)) if n == "orderer1"
    ));
}

#[test]
fn a_placement_for_another_number_of_orderers_is_refused() {
    let err = generate(&spec(), &placement("3/2/2"), orderers()).unwrap_err();
    assert!(
        matches!(
            err,
            DeployError::NodeCountMismatch {
                placed: 7,
                chosen: 5,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn bad_settings_are_refused_with_what_is_wrong() {
    type Change = fn(&mut Spec);
    let cases: Vec<(Change, &str)> = vec![
        (|s| s.namespace = "Ordo".into(), "namespace"),
        (|s| s.service_name = "my ordo".into(), "service name"),
        (|s| s.storage_size = "20 GB".into(), "storage size"),
        (|s| s.memory = "1GiB".into(), "memory"),
        (|s| s.cpu_request = ".5".into(), "CPU request"),
        (|s| s.image = String::new(), "image"),
        (
            |s| s.storage_class = Some("Fast SSD".into()),
            "storage class",
        ),
    ];
    for (change, what) in cases {
        let mut s = spec();
        change(&mut s);
        let err = generate(&s, &placement("2/1/2"), orderers()).unwrap_err();
        assert!(err.to_string().starts_with(what), "{what}: {err}");
    }
    assert!(is_quantity("1.5"));
    assert!(is_quantity("500m"));
    assert!(is_quantity("512Mi"));
}

#[test]
fn every_manifest_reads_back_from_its_yaml_as_the_same_object() {
    for p in ["2/1/2", "3/1/1"] {
        let d = generate_for(p);
        for m in &d.manifests {
            let text = m.to_yaml().unwrap();
            let back: Value = serde_saphyr::from_str(&text).unwrap();
            assert_eq!(back, m.object, "{}", m.file);
            let meta = &m.object["metadata"];
            assert_eq!(meta["labels"]["app.kubernetes.io/part-of"], "ordo");
            if m.object["kind"] != "Namespace" {
                assert_eq!(meta["namespace"], "ordo", "{}", m.file);
            }
        }
        let mut files: Vec<&str> = d.manifests.iter().map(|m| m.file.as_str()).collect();
        assert_eq!(files[0], "00-namespace.yaml");
        files.dedup();
        assert_eq!(files.len(), d.manifests.len());
    }
}

#[test]
fn a_changed_orderer_yaml_changes_the_pod_template() {
    let a = generate_for("2/1/2");
    let mut s = spec();
    s.msp_id = "OtherMSP".into();
    let b = generate(&s, &placement("2/1/2"), orderers()).unwrap();
    let digest = |d: &Deployment| {
        pod(named(d, "StatefulSet", "orderer1"))["metadata"]["annotations"]["ordo/config-sha256"]
            .clone()
    };
    assert_ne!(digest(&a), digest(&b));
}
