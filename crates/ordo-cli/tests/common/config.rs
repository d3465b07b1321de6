//! orderer.yaml files for the fixture's orderers: a lone node on ports the kernel chooses, the
//! fixture channels' cluster members on their fixed ports (or behind the relay), nodes with TLS
//! files of their own, and certificates minted for them.

use super::*;

pub fn p(rel: &str) -> String {
    fixture(rel).display().to_string()
}

/// An orderer.yaml for orderer1 (its MSP and TLS material, the cluster sharing the general
/// listener), data under `dir`, for [`OrdoProcess::start`]: its general `ListenPort` is 0 and
/// the node is started with `--kernel-ports` (every listener on a port the kernel chooses, read
/// back from its start line; a restart gets new ones, which the single-node channels of these
/// tests do not mind). `mutual_tls` requires client certificates on the general listener
/// (trusting the orderer TLS CA from the file, and the channels' TLS CAs as they are joined).
pub fn write_config(dir: &Path, mutual_tls: bool) -> PathBuf {
    write_config_consensus(dir, mutual_tls, "")
}

/// As [`write_config`], with `consensus` added to the `Consensus` section.
pub fn write_config_consensus(dir: &Path, mutual_tls: bool, consensus: &str) -> PathBuf {
    node_yaml(dir, 1, mutual_tls, 0, None, consensus, NodeTls::default())
}

/// The orderer.yaml of orderer`n` as a member of the fixture channels' clusters: general port
/// 3705n and cluster port 3715n, as their configs name them (consenters and the orderer
/// organization's endpoints, which a catching-up node pulls blocks from); `consensus` adds
/// keys to the `Consensus` section.
pub fn write_cluster_node_config(dir: &Path, n: u32, consensus: &str) -> PathBuf {
    let n16 = n as u16;
    node_yaml(
        dir,
        n,
        false,
        37050 + n16,
        Some(37150 + n16),
        consensus,
        NodeTls::default(),
    )
}

/// The port orderer`n`'s cluster listener has behind a [`relay::Relay`], which listens on the
/// port the fixture channels' consenter entries name (3715n). Below the kernel's ephemeral range,
/// so no outgoing connection can hold it.
pub fn relayed_cluster_port(n: u32) -> u16 {
    27150 + n as u16
}

/// As [`write_cluster_node_config`], with the cluster listener on [`relayed_cluster_port`].
pub fn write_cluster_node_config_behind_relay(dir: &Path, n: u32, consensus: &str) -> PathBuf {
    node_yaml(
        dir,
        n,
        false,
        37050 + n as u16,
        Some(relayed_cluster_port(n)),
        consensus,
        NodeTls::default(),
    )
}

/// Where a node's TLS files come from, other than the fixture's.
#[derive(Default, Clone, Copy)]
struct NodeTls<'a> {
    /// A folder with `server.crt`, `server.key` and `ca.crt` for the general listener.
    general: Option<&'a Path>,
    /// A folder with `server.crt` and `server.key` for the cluster listener and client.
    cluster: Option<&'a Path>,
    /// `TLSHandshakeTimeShift` of both.
    shift: Option<&'a str>,
}

/// Copies orderer`n`'s fixture TLS files into `to` unless it exists.
fn copy_fixture_tls(n: u32, to: &Path) {
    if to.exists() {
        return;
    }
    std::fs::create_dir_all(to).unwrap();
    for f in ["server.crt", "server.key", "ca.crt"] {
        let from = fixture(&format!(
            "crypto-config/ordererOrganizations/example.com/orderers/orderer{n}.example.com/tls/{f}"
        ));
        std::fs::copy(from, to.join(f)).unwrap();
    }
}

/// As [`write_cluster_node_config`], but the cluster listener and client use the certificate
/// and key in `dir/cluster` (the test writes them; the general listener keeps the fixture's),
/// and both listeners have the `TLSHandshakeTimeShift` `shift`.
pub fn write_cluster_node_config_cluster_tls(
    dir: &Path,
    n: u32,
    consensus: &str,
    shift: Option<&str>,
) -> PathBuf {
    let n16 = n as u16;
    let cluster = dir.join("cluster");
    let tls = NodeTls {
        general: None,
        cluster: Some(&cluster),
        shift,
    };
    node_yaml(
        dir,
        n,
        false,
        37050 + n16,
        Some(37150 + n16),
        consensus,
        tls,
    )
}

/// As [`write_cluster_node_config`], but the node's TLS certificate and key (general and
/// cluster listeners, cluster client) are files of its own under `dir/tls`, copied from the
/// fixture unless there already: a test replaces them to renew or rotate the certificate.
pub fn write_cluster_node_config_own_tls(dir: &Path, n: u32, consensus: &str) -> PathBuf {
    let tls = dir.join("tls");
    copy_fixture_tls(n, &tls);
    let n16 = n as u16;
    let own = NodeTls {
        general: Some(&tls),
        cluster: Some(&tls),
        shift: None,
    };
    node_yaml(
        dir,
        n,
        false,
        37050 + n16,
        Some(37150 + n16),
        consensus,
        own,
    )
}

/// As [`write_cluster_node_config_own_tls`], on general port `port` and cluster port
/// `cluster_port` (for tests on channels of their own, away from the fixture channels' ports);
/// `mutual_tls` requires client certificates on the general listener.
pub fn write_node_config_own_tls_at(
    dir: &Path,
    n: u32,
    mutual_tls: bool,
    port: u16,
    cluster_port: u16,
    consensus: &str,
) -> PathBuf {
    let tls = dir.join("tls");
    copy_fixture_tls(n, &tls);
    let own = NodeTls {
        general: Some(&tls),
        cluster: Some(&tls),
        shift: None,
    };
    node_yaml(dir, n, mutual_tls, port, Some(cluster_port), consensus, own)
}

/// A TLS certificate for orderer`n` (its names and 127.0.0.1) issued by the orderer
/// organization's TLS CA with a new key, valid from `from` to `to` seconds from now: PEM
/// certificate and key.
pub fn mint_orderer_tls(n: u32, from: i64, to: i64) -> (String, String) {
    let names = [
        format!("orderer{n}.example.com"),
        format!("orderer{n}"),
        "localhost".into(),
        "127.0.0.1".into(),
    ];
    mint_orderer_tls_for(&names, from, to)
}

/// As [`mint_orderer_tls`], for the subject alternative names `names` (DNS names or IP
/// addresses; the first is also the common name).
pub fn mint_orderer_tls_for(names: &[String], from: i64, to: i64) -> (String, String) {
    let tlsca = "crypto-config/ordererOrganizations/example.com/tlsca";
    let ca_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(fixture(&format!("{tlsca}/priv_sk"))).unwrap(),
    )
    .unwrap();
    let ca_pem =
        std::fs::read_to_string(fixture(&format!("{tlsca}/tlsca.example.com-cert.pem"))).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(names.to_vec()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0].clone());
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::seconds(from);
    params.not_after = now + time::Duration::seconds(to);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn node_yaml(
    dir: &Path,
    n: u32,
    mutual_tls: bool,
    port: u16,
    cluster_port: Option<u16>,
    consensus: &str,
    tls: NodeTls<'_>,
) -> PathBuf {
    let o = p(&format!(
        "crypto-config/ordererOrganizations/example.com/orderers/orderer{n}.example.com"
    ));
    // The node's TLS files (the admin listener keeps the fixture's).
    let folder = |d: Option<&Path>| d.map_or(format!("{o}/tls"), |d| d.display().to_string());
    let (t, c) = (folder(tls.general), folder(tls.cluster));
    let shift = tls
        .shift
        .map_or(String::new(), |s| format!(", TLSHandshakeTimeShift: {s}"));
    let tls_shift = tls.shift.map_or(String::new(), |s| {
        format!("\n        TLSHandshakeTimeShift: {s}")
    });
    let cluster = match cluster_port {
        Some(port) => format!(
            "\n    Cluster: {{ListenAddress: 127.0.0.1, ListenPort: {port}, ServerCertificate: {c}/server.crt, ServerPrivateKey: {c}/server.key, ClientCertificate: {c}/server.crt, ClientPrivateKey: {c}/server.key{shift}}}"
        ),
        None => String::new(),
    };
    let yaml = format!(
        r#"General:
    ListenAddress: 127.0.0.1
    ListenPort: {port}
    TLS:
        Enabled: true
        PrivateKey: {t}/server.key
        Certificate: {t}/server.crt
        RootCAs: [{t}/ca.crt]
        ClientAuthRequired: {mutual_tls}
        ClientRootCAs: [{ca}]{tls_shift}
    BootstrapMethod: none{cluster}
    LocalMSPDir: {o}/msp
    LocalMSPID: OrdererMSP
    Authentication: {{TimeWindow: 15m}}
FileLedger: {{Location: {d}/ledger}}
Operations: {{ListenAddress: 127.0.0.1:0, TLS: {{Enabled: false}}}}
Metrics: {{Provider: prometheus}}
Admin:
    ListenAddress: 127.0.0.1:0
    TLS:
        Enabled: true
        Certificate: {o}/tls/server.crt
        PrivateKey: {o}/tls/server.key
        ClientAuthRequired: true
        ClientRootCAs: [{ca}]
ChannelParticipation: {{Enabled: true, MaxRequestBodySize: 1 MB}}
Consensus: {{WALDir: {d}/etcdraft/wal, SnapDir: {d}/etcdraft/snapshot{consensus}}}
"#,
        ca = p(TLSCA),
        d = dir.display()
    );
    let path = dir.join(format!("orderer{n}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}
