//! `ordo deploy kubernetes` end to end without a cluster: the files of a generated pod — its
//! ConfigMap and Secrets laid out at their mount paths as the kubelet lays out the volumes
//! (including the MSP Secret's key-to-path items) — start a node whose `/healthz` answers OK and
//! whose admin endpoint takes the organization's admin over mutual TLS.

mod common;

use common::*;
use serde_json::Value;

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The generated object of `kind` named `name`.
fn object(out: &Path, kind: &str, name: &str) -> Value {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| yaml(&e.unwrap().path()))
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {}", out.display()))
}

/// Writes the `data` of a ConfigMap or Secret under `dir`, each key at the path its volume's
/// `items` give it (at its own name without items), as the kubelet does.
fn lay_out(dir: &Path, data: &Value, items: Option<&Value>, base64: bool) {
    let decode = |v: &Value| -> Vec<u8> {
        let s = v.as_str().unwrap();
        if base64 {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).unwrap()
        } else {
            s.as_bytes().to_vec()
        }
    };
    let placed: Vec<(String, String)> = match items {
        Some(items) => items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let key = i["key"].as_str().unwrap().to_string();
                (key, i["path"].as_str().unwrap().to_string())
            })
            .collect(),
        None => data
            .as_object()
            .unwrap()
            .keys()
            .map(|k| (k.clone(), k.clone()))
            .collect(),
    };
    for (key, path) in placed {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, decode(&data[&key])).unwrap();
    }
}

/// `v` with every absolute path of the pod moved under `root`.
fn rebase(v: &mut Value, root: &Path) {
    match v {
        Value::String(s) if s.starts_with('/') => {
            *s = root.join(&s[1..]).to_string_lossy().into_owned();
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rebase(x, root)),
        Value::Object(o) => o.values_mut().for_each(|x| rebase(x, root)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_pods_files_laid_out_as_the_kubelet_does_start_a_healthy_node() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("manifests");
    let status = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args([
            "deploy",
            "kubernetes",
            "--placement",
            "2/1/2",
            "--crypto-config",
        ])
        .arg(fixture("crypto-config"))
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // The pod's file system: each volume of orderer1's pod at its mount path under `root`.
    let root = tmp.path().join("pod");
    let sts = object(&out, "StatefulSet", "orderer1");
    let spec = &sts["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let volumes = spec["volumes"].as_array().unwrap();
    for mount in container["volumeMounts"].as_array().unwrap() {
        let dir = root.join(&mount["mountPath"].as_str().unwrap()[1..]);
        std::fs::create_dir_all(&dir).unwrap();
        let Some(volume) = volumes.iter().find(|v| v["name"] == mount["name"]) else {
            // The volume claim: an empty folder, as a new volume is.
            assert_eq!(mount["name"], "data");
            continue;
        };
        if let Some(cm) = volume.get("configMap") {
            let cm_obj = object(&out, "ConfigMap", cm["name"].as_str().unwrap());
            lay_out(&dir, &cm_obj["data"], cm.get("items"), false);
        } else if let Some(secret) = volume.get("secret") {
            let s_obj = object(&out, "Secret", secret["secretName"].as_str().unwrap());
            lay_out(&dir, &s_obj["data"], secret.get("items"), true);
        }
    }

    // The container's command, with the pod's paths under `root` and the listeners on
    // loopback at ports the kernel chooses (the pod's own ports may be taken on this machine).
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[..3], ["node", "start", "--config"]);
    let config_path = root.join(&args[3][1..]);
    let mut conf = yaml(&config_path);
    rebase(&mut conf, &root);
    conf["General"]["ListenAddress"] = "127.0.0.1".into();
    conf["Admin"]["ListenAddress"] = "127.0.0.1:0".into();
    conf["Operations"]["ListenAddress"] = "127.0.0.1:0".into();
    let local_config = tmp.path().join("orderer.yaml");
    std::fs::write(&local_config, serde_saphyr::to_string(&conf).unwrap()).unwrap();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ordo"));
    cmd.args(["node", "start", "--kernel-ports", "--config"])
        .arg(&local_config);
    let node = OrdoProcess::try_spawn(cmd).expect("the node did not start from the pod's files");

    // The probes' and Prometheus' view: plain HTTP on the operations listener.
    let ops = HttpClient {
        addr: node.addrs.operations,
        tls: None,
    };
    for path in [
        container["readinessProbe"]["httpGet"]["path"]
            .as_str()
            .unwrap(),
        container["livenessProbe"]["httpGet"]["path"]
            .as_str()
            .unwrap(),
        container["startupProbe"]["httpGet"]["path"]
            .as_str()
            .unwrap(),
        sts["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
            .as_str()
            .unwrap(),
    ] {
        let r = ops.get(path).await.unwrap();
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // The admin endpoint takes the organization's admin (client certificate from its TLS CA).
    let r = node
        .admin()
        .get("/participation/v1/channels")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The Secret's items put orderer1's own signing certificate at its MSP path.
    let signcert = root.join("etc/ordo/msp/signcerts/orderer1.example.com-cert.pem");
    assert_eq!(
        std::fs::read(signcert).unwrap(),
        std::fs::read(fixture(&format!(
            "{ORDERER1}/msp/signcerts/orderer1.example.com-cert.pem"
        )))
        .unwrap()
    );
}
