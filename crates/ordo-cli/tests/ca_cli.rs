//! The `ordo ca` subcommands as an operator runs them: the server as a process, the client
//! commands writing MSP folders that the workspace's MSP code loads and classifies.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use ordo_msp::{Msp, NodeRole};

struct CaProcess(Child);

impl Drop for CaProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ordo(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run ordo");
    assert!(
        out.status.success(),
        "ordo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ca_subcommands_enroll_register_build_the_msp_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("ca.yaml"),
        "port: 0\naddress: 127.0.0.1\nhome: home\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .current_dir(d)
        .args(["ca", "start", "--config", "ca.yaml", "-b", "admin:adminpw"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = CaProcess(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("ordo ca started: ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("ordo ca started");
    let port = url.rsplit(':').next().unwrap().to_string();
    let at = |creds: &str| format!("https://{creds}localhost:{port}");
    let tls = "--tls.certfiles=home/ca/ca-cert.pem";

    ordo(
        d,
        &[
            "ca",
            "enroll",
            "-u",
            &at("admin:adminpw@"),
            "--caname",
            "ca",
            tls,
            "-M",
            "admin/msp",
        ],
    );
    let out = ordo(
        d,
        &[
            "ca",
            "register",
            "-u",
            &at(""),
            "--caname",
            "ca",
            tls,
            "-M",
            "admin/msp",
            "--id.name",
            "osadmin",
            "--id.secret",
            "osadminpw",
            "--id.type",
            "admin",
        ],
    );
    assert_eq!(out.trim(), "Password: osadminpw");
    let out = ordo(
        d,
        &[
            "ca",
            "register",
            "-u",
            &at(""),
            "--caname",
            "ca",
            tls,
            "-M",
            "admin/msp",
            "--id.name",
            "os1",
            "--id.type",
            "orderer",
            "--id.maxenrollments",
            "2",
            "--id.attrs",
            "region=eu:ecert",
        ],
    );
    let os1pw = out.trim().strip_prefix("Password: ").unwrap().to_string();
    ordo(
        d,
        &[
            "ca",
            "enroll",
            "-u",
            &at("osadmin:osadminpw@"),
            "--caname",
            "ca",
            tls,
            "-M",
            "osadmin/msp",
        ],
    );
    ordo(
        d,
        &[
            "ca",
            "enroll",
            "-u",
            &at(&format!("os1:{os1pw}@")),
            "--caname",
            "ca",
            tls,
            "-M",
            "os1/msp",
        ],
    );
    // TLS: os1 in tlsca's registry, enrolled with the tls profile and SANs.
    ordo(
        d,
        &[
            "ca",
            "enroll",
            "-u",
            &at("admin:adminpw@"),
            "--caname",
            "tlsca",
            tls,
            "-M",
            "tlsadmin/msp",
        ],
    );
    ordo(
        d,
        &[
            "ca",
            "register",
            "-u",
            &at(""),
            "--caname",
            "tlsca",
            tls,
            "-M",
            "tlsadmin/msp",
            "--id.name",
            "os1",
            "--id.secret",
            "os1pw",
            "--id.type",
            "orderer",
        ],
    );
    ordo(
        d,
        &[
            "ca",
            "enroll",
            "-u",
            &at("os1:os1pw@"),
            "--caname",
            "tlsca",
            tls,
            "-M",
            "os1/tls",
            "--enrollment.profile",
            "tls",
            "--csr.hosts",
            "os1.example.com,127.0.0.1",
        ],
    );
    for f in ["server.crt", "server.key", "ca.crt"] {
        assert!(d.join("os1/tls").join(f).is_file(), "{f}");
    }
    ordo(
        d,
        &[
            "ca",
            "msp",
            "-u",
            &at(""),
            tls,
            "--caname",
            "ca",
            "--tlscaname",
            "tlsca",
            "-o",
            "org-msp",
        ],
    );

    // The organization MSP classifies the enrolled identities.
    let msp = Msp::new(
        &ordo_msp::local::verifying_fabric_config(&d.join("org-msp"), "OrdererMSP").unwrap(),
    )
    .unwrap();
    for (who, role) in [
        ("osadmin", NodeRole::Admin),
        ("os1", NodeRole::Orderer),
        ("admin", NodeRole::Client),
    ] {
        let pem = std::fs::read(d.join(who).join("msp/signcerts/cert.pem")).unwrap();
        let id = msp.identity_from_pem(&Bytes::from(pem)).unwrap();
        msp.validate(&id).unwrap();
        assert_eq!(msp.node_role(&id), Some(role), "{who}");
    }
    // os1's TLS certificate comes from the TLS CA the MSP lists.
    let tls_root = std::fs::read(d.join("os1/tls/ca.crt")).unwrap();
    assert_eq!(msp.tls_root_certs()[0], Bytes::from(tls_root));

    // Reenroll replaces os1's key and certificate; its local MSP still loads.
    let before = std::fs::read(d.join("os1/msp/signcerts/cert.pem")).unwrap();
    ordo(
        d,
        &[
            "ca",
            "reenroll",
            "-u",
            &at(""),
            "--caname",
            "ca",
            tls,
            "-M",
            "os1/msp",
        ],
    );
    assert_ne!(
        std::fs::read(d.join("os1/msp/signcerts/cert.pem")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::read_dir(d.join("os1/msp/keystore"))
            .unwrap()
            .count(),
        1
    );
    ordo_msp::local::load_signing_identity(&d.join("os1/msp"), "OrdererMSP").unwrap();

    // Revoke os1 with a CRL into the admin's MSP; os1 can no longer authenticate.
    ordo(
        d,
        &[
            "ca",
            "revoke",
            "-u",
            &at(""),
            "--caname",
            "ca",
            tls,
            "-M",
            "admin/msp",
            "-e",
            "os1",
            "--gencrl",
        ],
    );
    let crl = std::fs::read_to_string(d.join("admin/msp/crls/crl.pem")).unwrap();
    assert!(crl.starts_with("-----BEGIN X509 CRL-----"));
    let out = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .current_dir(d)
        .args([
            "ca",
            "reenroll",
            "-u",
            &at(""),
            "--caname",
            "ca",
            tls,
            "-M",
            "os1/msp",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("code 20"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ordo(
        d,
        &[
            "ca",
            "gencrl",
            "-u",
            &at(""),
            "--caname",
            "ca",
            tls,
            "-M",
            "admin/msp",
        ],
    );
}
