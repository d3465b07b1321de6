//! The network `ordo demo` runs on, generated from nothing. The orderer organization's material
//! comes from an in-process `ordo ca` server, as the seed tutorial makes it with Fabric CA: two
//! CAs (`ca` for identities, `tlsca` for TLS certificates) on a port of 127.0.0.1 the kernel
//! chooses, over HTTPS, the bootstrap admin enrolled with each, `osadmin` (type admin) and `os1`..`osN` (type
//! orderer) registered and enrolled into MSP folders, each node's TLS certificate (and the admin
//! client's) enrolled from `tlsca` with profile `tls`, and the organization's MSP definition
//! folder assembled from the two CAs with NodeOUs. The application org (the broadcasting
//! client's) is generated as cryptogen would, with rcgen. An orderer.yaml per orderer (its
//! cluster traffic shares the general port, which is the consenter's port in the channel
//! config) is written before the nodes start on ports the kernel chooses; once they run, a
//! configtx.yaml whose etcdraft profile has the first orderers as consenters on the ports they
//! got (the others are added later by config updates, with the consenter entries prepared here),
//! the channel's genesis block (built by Ordo's configtxgen path), and each orderer.yaml's
//! ListenPort set to its node's port, so that a restarted node binds the port the channel knows.
//! No port is chosen before it is bound: a port found free and released could be taken (by any
//! outgoing connection) before the node binds it.
//! Everything is in Fabric's layouts, so Fabric's tools could use the same folder.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ordo_ca::client::{
    CaClient, EnrollOptions, RegistrationRequest, build_org_msp, cert_label, write_msp_folder,
    write_tls_folder,
};
use ordo_ca::config::{BootstrapIdentity, ServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

/// What the demo needs to run the nodes and a client.
pub struct DemoNet {
    /// One orderer.yaml per orderer, orderer1 first.
    pub orderer_yamls: Vec<PathBuf>,
    pub genesis_block: Vec<u8>,
    pub channel: String,
    pub client_msp_dir: PathBuf,
    pub client_msp_id: String,
    pub admin_tls_cert: PathBuf,
    pub admin_tls_key: PathBuf,
    pub tls_ca_cert: PathBuf,
    /// The orderer organization's admin (signs config updates), and its MSP ID.
    pub admin_msp_dir: PathBuf,
    pub orderer_msp_id: String,
    /// Every orderer's consenter entry (host, port, TLS certificates), orderer1 first; the
    /// genesis block lists the first ones only.
    pub consenters: Vec<ordo_proto::etcdraft::Consenter>,
}

/// The bootstrap identity of the demo's CA server, the seed tutorial's.
const CA_BOOTSTRAP: &str = "admin:adminpw";

/// The orderer organization's CA server while the demo runs: `ca` and `tlsca` in one process.
pub struct DemoCa {
    server: ordo_ca::RunningServer,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    ca: CaClient,
    tlsca: CaClient,
}

impl DemoCa {
    /// Starts the server with its data (CA keys and certificates, registry) in `home`.
    pub async fn start(home: &Path) -> Result<DemoCa> {
        let cfg = ServerConfig {
            port: 0,
            address: "127.0.0.1".into(),
            home: home.to_path_buf(),
            ..ServerConfig::default()
        };
        let server = ordo_ca::start(&cfg, Some(BootstrapIdentity::from_flag(CA_BOOTSTRAP)?))
            .await
            .context("starting the CA server")?;
        let url = format!("https://{}", server.addr);
        // The server's generated TLS certificate is issued by its default CA (`ca`) for
        // localhost and 127.0.0.1; that CA is what the clients trust.
        let roots: Vec<String> = server.tls_ca_pem.iter().cloned().collect();
        let ca = CaClient::new(&url, &roots, "ca")?;
        let tlsca = ca.with_ca_name("tlsca");
        Ok(DemoCa {
            server,
            url,
            ca,
            tlsca,
        })
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// What the orderer organization got from its CA, in `crypto/ordererOrganizations/example.com`.
pub struct OrdererOrg {
    /// The organization's MSP definition folder (configtx.yaml's MSPDir).
    pub msp_dir: PathBuf,
    /// Each orderer's folder (`msp/`, `tls/`), os1's first.
    pub nodes: Vec<PathBuf>,
    /// Each orderer's TLS certificate (PEM), os1's first: its consenter entry's.
    pub node_tls_certs: Vec<String>,
    /// osadmin's folder (`msp/`, `tls/`).
    pub admin: PathBuf,
}

/// Registers and enrolls the orderer organization with `ca`, in `dir`: `osadmin` (type admin)
/// and `os1`..`os<orderers>` (type orderer), their MSPs from `ca` and their TLS certificates from
/// `tlsca`, and the organization's MSP built from both. `report` gets a line per step.
pub async fn enroll_orderer_org(
    ca: &DemoCa,
    dir: &Path,
    orderers: u32,
    report: impl Fn(&str),
) -> Result<OrdererOrg> {
    let (boot_id, boot_secret) = CA_BOOTSTRAP
        .split_once(':')
        .context("the bootstrap identity is <name>:<password>")?;
    let ids: Vec<(String, &str)> = std::iter::once(("osadmin".to_string(), "admin"))
        .chain((1..=orderers).map(|n| (format!("os{n}"), "orderer")))
        .collect();
    let secret = |id: &str| format!("{id}pw");
    let node_ids = if orderers == 1 {
        "os1".to_string()
    } else {
        format!("os1..os{orderers}")
    };
    // Each CA has its own registry and bootstrap admin, so the identities are registered with
    // both, as the seed tutorial does with its TLS CA and organization CA.
    for client in [&ca.ca, &ca.tlsca] {
        let name = client.ca_name();
        let admin = client
            .enroll(boot_id, boot_secret, &EnrollOptions::default())
            .await
            .with_context(|| format!("enrolling the bootstrap admin with {name}"))?;
        for (id, id_type) in &ids {
            let req = RegistrationRequest {
                id: id.clone(),
                id_type: id_type.to_string(),
                secret: secret(id),
                ..RegistrationRequest::default()
            };
            client
                .register(&admin, &req)
                .await
                .with_context(|| format!("registering {id} with {name}"))?;
        }
    }
    report(&format!(
        "enrolled the CA's bootstrap admin ({boot_id}) with ca and tlsca; registered osadmin (admin), {node_ids} (orderer)"
    ));

    let oo = dir.join("crypto/ordererOrganizations/example.com");
    let (label, tls_label) = (
        cert_label(&ca.url, ca.ca.ca_name()),
        cert_label(&ca.url, ca.tlsca.ca_name()),
    );
    let tls_opts = EnrollOptions {
        profile: "tls".into(),
        hosts: vec!["127.0.0.1".into(), "localhost".into()],
        attr_reqs: None,
    };
    let mut nodes = Vec::new();
    let mut node_tls_certs = Vec::new();
    let mut admin = PathBuf::new();
    for (id, _) in &ids {
        let folder = if id == "osadmin" {
            oo.join("users").join(id)
        } else {
            oo.join("orderers").join(id)
        };
        let msp = ca
            .ca
            .enroll(id, &secret(id), &EnrollOptions::default())
            .await
            .with_context(|| format!("enrolling {id} with ca"))?;
        write_msp_folder(&folder.join("msp"), &msp, &label)?;
        let tls = ca
            .tlsca
            .enroll(id, &secret(id), &tls_opts)
            .await
            .with_context(|| format!("enrolling {id}'s TLS certificate with tlsca"))?;
        write_tls_folder(&folder.join("tls"), &tls, &tls_label)?;
        if id == "osadmin" {
            admin = folder;
        } else {
            node_tls_certs.push(tls.cert_pem);
            nodes.push(folder);
        }
    }
    report(&format!(
        "enrolled osadmin and {node_ids}: MSPs from ca, TLS certificates from tlsca (profile tls, hosts 127.0.0.1, localhost)"
    ));

    let (_, ca_chain) = ca.ca.cainfo().await.context("cainfo of ca")?;
    let (_, tlsca_chain) = ca.tlsca.cainfo().await.context("cainfo of tlsca")?;
    let msp_dir = oo.join("msp");
    // No admincerts: with NodeOUs, osadmin is OrdererMSP's admin by the OU=admin its `admin`
    // type gave it.
    build_org_msp(&msp_dir, &ca_chain, &tlsca_chain, &[])?;
    report(&format!(
        "organization MSP built from the CA (NodeOUs): {}",
        msp_dir.display()
    ));
    Ok(OrdererOrg {
        msp_dir,
        nodes,
        node_tls_certs,
        admin,
    })
}

type Ca = CertifiedIssuer<'static, KeyPair>;

/// The folder a generated network lives in: `dir` (created if needed; it must be empty, since
/// a new network with its own CA, identities and ledgers is generated in it), or a temporary one
/// that is deleted when the returned guard drops.
pub fn work_dir(dir: Option<&Path>) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(d) => {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            let used = fs::read_dir(d)
                .with_context(|| format!("reading {}", d.display()))?
                .next()
                .is_some();
            if used {
                bail!(
                    "{} is not empty: a new network (CA, identities, ledgers) is generated in the folder given with --dir; give a new or empty one",
                    d.display()
                );
            }
            Ok((d.to_path_buf(), None))
        }
        None => {
            let tmp = tempfile::tempdir().context("creating a temporary folder")?;
            Ok((tmp.path().to_path_buf(), Some(tmp)))
        }
    }
}

fn write(path: &Path, data: impl AsRef<[u8]>) -> Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}

fn name(org: &str, cn: &str, ou: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::StateOrProvinceName, "California");
    dn.push(DnType::LocalityName, "San Francisco");
    if !org.is_empty() {
        dn.push(DnType::OrganizationName, org);
    }
    if let Some(ou) = ou {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

fn validity(p: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // Back-dated a little, as cryptogen does, so that clocks a few minutes apart agree.
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = now + time::Duration::days(3650);
}

/// A self-signed CA, as cryptogen's (`ca.<domain>` / `tlsca.<domain>`).
fn ca(domain: &str, prefix: &str) -> Result<Ca> {
    let mut p = CertificateParams::default();
    p.distinguished_name = name(domain, &format!("{prefix}.{domain}"), None);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    p.key_identifier_method = KeyIdMethod::Sha256;
    validity(&mut p);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    Ok(CertifiedIssuer::self_signed(p, key)?)
}

/// A leaf certificate and its PKCS#8 key, PEM.
fn leaf(issuer: &Ca, cn: &str, ou: Option<&str>, tls: bool) -> Result<(String, String)> {
    let sans = if tls {
        vec![
            cn.to_string(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ]
    } else {
        Vec::new()
    };
    let mut p = CertificateParams::new(sans)?;
    p.distinguished_name = name("", cn, ou);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if tls {
        p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
    }
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    validity(&mut p);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = p.signed_by(&key, issuer)?;
    Ok((low_s_pem(&cert.pem())?, key.serialize_pem()))
}

/// The certificate in `pem` with its ECDSA signature in low-S form, as Fabric's signers
/// write it. rcgen signs with ring, which leaves S as it comes (high half the time), and
/// Fabric's MSP rejects a high-S CA certificate: it "sanitizes" every certificate to low-S
/// before checking it, and Go's chain building then sees the sanitized root as the same
/// certificate as the original (same subject and key) and finds no issuer for it ("x509:
/// certificate signed by unknown authority" when a channel's MSP is set up). The signature
/// stays valid: (r, n−s) verifies wherever (r, s) does.
fn low_s_pem(pem_text: &str) -> Result<String> {
    use x509_cert::der::{Decode, Encode};
    let block = pem::parse(pem_text.as_bytes()).context("a generated certificate's PEM")?;
    let mut cert = x509_cert::Certificate::from_der(block.contents())
        .context("a generated certificate's DER")?;
    let sig = cert
        .signature
        .as_bytes()
        .context("a generated certificate's signature bits")?;
    let low = ordo_crypto::to_low_s(ordo_crypto::Curve::P256, sig)?;
    cert.signature = x509_cert::der::asn1::BitString::from_bytes(&low)
        .context("a generated certificate's signature")?;
    let der = cert.to_der().context("encoding a generated certificate")?;
    Ok(pem::encode(&pem::Pem::new("CERTIFICATE", der)).replace("\r\n", "\n"))
}

const NODE_OUS: &str = "NodeOUs:
  Enable: true
  ClientOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: client
  PeerOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: peer
  AdminOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: admin
  OrdererOUIdentifier:
    Certificate: cacerts/ca-cert.pem
    OrganizationalUnitIdentifier: orderer
";

/// An MSP folder: CA, TLS CA, NodeOUs and, for an identity, its signing certificate and key.
fn msp(dir: &Path, ca: &Ca, tlsca: &Ca, signer: Option<&(String, String)>) -> Result<()> {
    write(&dir.join("cacerts/ca-cert.pem"), low_s_pem(&ca.pem())?)?;
    write(
        &dir.join("tlscacerts/tlsca-cert.pem"),
        low_s_pem(&tlsca.pem())?,
    )?;
    write(&dir.join("config.yaml"), NODE_OUS)?;
    if let Some((cert, key)) = signer {
        write(&dir.join("signcerts/cert.pem"), cert)?;
        write(&dir.join("keystore/priv_sk"), key)?;
    }
    Ok(())
}

/// The ListenPort an orderer.yaml has until [`generate`] writes its node's port in.
const UNSET_PORT: &str = "\n    ListenPort: 0\n";

/// Writes `orderer<n>.yaml` in `dir` for each orderer of `org`, its data under `dir/data`,
/// `consensus` added to its `Consensus` section (`, Key: value` pairs). Their `General.ListenPort`
/// is 0 (Fabric's 7050) until [`generate`] sets it: start the nodes with ports from the kernel
/// ([`ordo_orderer::localconfig::ListenPorts::Kernel`], `ordo node start --kernel-ports`).
pub fn write_orderer_yamls(dir: &Path, org: &OrdererOrg, consensus: &str) -> Result<Vec<PathBuf>> {
    // orderer.yaml takes relative paths from its own folder, `dir`: written so, the folder can
    // be moved or handed to Fabric's tools.
    let rel = |p: &Path| p.strip_prefix(dir).unwrap_or(p).display().to_string();
    let mut orderer_yamls = Vec::new();
    for (i, node) in org.nodes.iter().enumerate() {
        let n = i + 1;
        let path = dir.join(format!("orderer{n}.yaml"));
        // Fabric reads the ledger and WAL folders as written (relative to the working
        // directory), so they are made absolute here.
        let data = dir.join(format!("data/orderer{n}"));
        write(
            &path,
            ORDERER_YAML
                .replace("data/", &format!("{}/", data.display()))
                .replace("NODE_DIR", &rel(node))
                .replace("ORG_MSP_DIR", &rel(&org.msp_dir))
                .replace("CONSENSUS", consensus),
        )?;
        orderer_yamls.push(path);
    }
    Ok(orderer_yamls)
}

/// Writes `port` as the general ListenPort of an orderer.yaml from [`write_orderer_yamls`].
fn set_listen_port(yaml: &Path, port: u16) -> Result<()> {
    let text = fs::read_to_string(yaml).with_context(|| format!("reading {}", yaml.display()))?;
    if !text.contains(UNSET_PORT) {
        bail!("{} has no ListenPort to set", yaml.display());
    }
    write(
        yaml,
        text.replacen(UNSET_PORT, &format!("\n    ListenPort: {port}\n"), 1),
    )
}

/// Generates the rest of the demo network in `dir` for `channel`, around the orderer
/// organization `org` (one orderer per node it enrolled), of which the first `initial` orderers
/// are the consenters of the genesis block, once its nodes run: `orderer_yamls` (from
/// [`write_orderer_yamls`]) and the general `ports` they got, orderer1's first. Each yaml gets
/// its node's port.
pub fn generate(
    dir: &Path,
    channel: &str,
    org: &OrdererOrg,
    initial: u32,
    orderer_yamls: &[PathBuf],
    ports: &[u16],
) -> Result<DemoNet> {
    if orderer_yamls.len() != org.nodes.len() || ports.len() != org.nodes.len() {
        bail!(
            "{} orderers enrolled, {} orderer.yaml files, {} ports",
            org.nodes.len(),
            orderer_yamls.len(),
            ports.len()
        );
    }
    // configtx.yaml takes relative paths from its own folder, `dir`.
    let rel = |p: &Path| p.strip_prefix(dir).unwrap_or(p).display().to_string();
    let consenters = ports
        .iter()
        .zip(&org.node_tls_certs)
        .map(|(port, tls_cert)| ordo_proto::etcdraft::Consenter {
            host: "127.0.0.1".into(),
            port: u32::from(*port),
            client_tls_cert: tls_cert.clone().into_bytes().into(),
            server_tls_cert: tls_cert.clone().into_bytes().into(),
        })
        .collect();

    let po = dir.join("crypto/peerOrganizations/org1.example.com");
    let (p_ca, p_tlsca) = (
        ca("org1.example.com", "ca")?,
        ca("org1.example.com", "tlsca")?,
    );
    msp(&po.join("msp"), &p_ca, &p_tlsca, None)?;
    let user = po.join("users/User1@org1.example.com/msp");
    msp(
        &user,
        &p_ca,
        &p_tlsca,
        Some(&leaf(
            &p_ca,
            "User1@org1.example.com",
            Some("client"),
            false,
        )?),
    )?;

    let endpoints: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let initial_consenters: String = ports
        .iter()
        .zip(&org.nodes)
        .take(initial.max(1) as usize)
        .map(|(port, node)| {
            format!(
                "\n                  - {{Host: 127.0.0.1, Port: {port}, ClientTLSCert: {t}, ServerTLSCert: {t}}}",
                t = rel(&node.join("tls/server.crt"))
            )
        })
        .collect();
    let configtx = dir.join("configtx.yaml");
    write(
        &configtx,
        CONFIGTX
            .replace("ORDERER_MSP_DIR", &rel(&org.msp_dir))
            .replace("ORDERER_ENDPOINTS", &endpoints.join(", "))
            .replace("CONSENTERS", &initial_consenters),
    )?;
    let block = ordo_config::genesis::genesis_block(&configtx, "Demo", channel)
        .context("building the genesis block")?;

    for (yaml, port) in orderer_yamls.iter().zip(ports) {
        set_listen_port(yaml, *port)?;
    }
    let first = org.nodes.first().context("no orderer enrolled")?;
    Ok(DemoNet {
        orderer_yamls: orderer_yamls.to_vec(),
        genesis_block: prost::Message::encode_to_vec(&block),
        channel: channel.to_string(),
        client_msp_dir: user,
        client_msp_id: "Org1MSP".to_string(),
        // The `tls` profile's certificate is for client authentication too; the TLS folder
        // names it server.crt whatever the identity.
        admin_tls_cert: org.admin.join("tls/server.crt"),
        admin_tls_key: org.admin.join("tls/server.key"),
        tls_ca_cert: first.join("tls/ca.crt"),
        admin_msp_dir: org.admin.join("msp"),
        orderer_msp_id: "OrdererMSP".to_string(),
        consenters,
    })
}

/// One orderer org, one application org; Fabric's sample policies. ORDERER_MSP_DIR,
/// ORDERER_ENDPOINTS and CONSENTERS are filled in by [`generate`].
const CONFIGTX: &str = r#"Organizations:
    - &OrdererOrg
        Name: OrdererOrg
        ID: OrdererMSP
        MSPDir: ORDERER_MSP_DIR
        Policies:
            Readers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
            Writers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
            Admins: {Type: Signature, Rule: "OR('OrdererMSP.admin')"}
        OrdererEndpoints: [ORDERER_ENDPOINTS]
    - &Org1
        Name: Org1MSP
        ID: Org1MSP
        MSPDir: crypto/peerOrganizations/org1.example.com/msp
        Policies:
            Readers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')"}
            Writers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.client')"}
            Admins: {Type: Signature, Rule: "OR('Org1MSP.admin')"}
            Endorsement: {Type: Signature, Rule: "OR('Org1MSP.peer')"}
Capabilities:
    Channel: &ChannelCapabilities {V2_0: true}
    Orderer: &OrdererCapabilities {V2_0: true}
    Application: &ApplicationCapabilities {V2_0: true}
Profiles:
    Demo:
        Policies:
            Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
            Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
            Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
        Capabilities: *ChannelCapabilities
        Orderer:
            OrdererType: etcdraft
            BatchTimeout: 1s
            BatchSize: {MaxMessageCount: 10, AbsoluteMaxBytes: 10 MB, PreferredMaxBytes: 2 MB}
            EtcdRaft:
                Consenters:CONSENTERS
                Options: {TickInterval: 100ms, ElectionTick: 10, HeartbeatTick: 1, MaxInflightBlocks: 5, SnapshotIntervalSize: 16 MB}
            Organizations: [*OrdererOrg]
            Policies:
                Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
                Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
                Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
                BlockValidation: {Type: ImplicitMeta, Rule: "ANY Writers"}
            Capabilities: *OrdererCapabilities
        Application:
            Organizations: [*Org1]
            Policies:
                Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
                Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
                Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
                LifecycleEndorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
                Endorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
            Capabilities: *ApplicationCapabilities
"#;

/// An orderer's, its enrolled MSP and TLS folders in NODE_DIR; the general port (also the
/// cluster's) is the consenter's, set by [`generate`] once the node has it, the other listeners
/// on ports the kernel chooses (the node prints the ones it got); data next to the file;
/// CONSENSUS adds keys to the Consensus section. The participation API accepts clients whose
/// TLS certificates the organization's TLS CA issued.
const ORDERER_YAML: &str = r#"General:
    ListenAddress: 127.0.0.1
    ListenPort: 0
    TLS:
        Enabled: true
        PrivateKey: NODE_DIR/tls/server.key
        Certificate: NODE_DIR/tls/server.crt
        RootCAs: [NODE_DIR/tls/ca.crt]
        ClientAuthRequired: false
    BootstrapMethod: none
    LocalMSPDir: NODE_DIR/msp
    LocalMSPID: OrdererMSP
FileLedger: {Location: data/ledger}
Consensus: {WALDir: data/etcdraft/wal, SnapDir: data/etcdraft/snapshotCONSENSUS}
Operations: {ListenAddress: 127.0.0.1:0, TLS: {Enabled: false}}
Metrics: {Provider: prometheus}
Admin:
    ListenAddress: 127.0.0.1:0
    TLS:
        Enabled: true
        Certificate: NODE_DIR/tls/server.crt
        PrivateKey: NODE_DIR/tls/server.key
        ClientAuthRequired: true
        ClientRootCAs: [ORG_MSP_DIR/tlscacerts/tlsca-cert.pem]
ChannelParticipation: {Enabled: true, MaxRequestBodySize: 1 MB}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dir_is_created_or_must_be_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("net");
        let (d, guard) = work_dir(Some(&new)).unwrap();
        assert_eq!(d, new);
        assert!(guard.is_none() && new.is_dir());
        // Empty: fine again. Used (a previous run's CA registry): refused with the reason.
        work_dir(Some(&new)).unwrap();
        fs::create_dir_all(new.join("ca")).unwrap();
        let err = work_dir(Some(&new)).unwrap_err().to_string();
        assert!(err.contains("is not empty"), "{err}");
        // No dir: a temporary folder that goes with its guard.
        let (d, guard) = work_dir(None).unwrap();
        assert!(d.is_dir());
        drop(guard);
        assert!(!d.exists());
    }

    /// Fabric's MSP rejects a high-S CA certificate (see `low_s_pem`): every generated
    /// certificate comes out low-S and still verifies under its issuer's key. 32 CAs and
    /// leaves: with S random, about half were high-S before normalising.
    #[test]
    fn generated_certificates_are_low_s_and_still_verify() {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let low_s = |pem_text: &str| {
            let der = pem::parse(pem_text.as_bytes()).unwrap().into_contents();
            let (_, cert) = X509Certificate::from_der(&der).unwrap();
            let sig = cert.signature_value.data.to_vec();
            let (_, seq) = x509_parser::der_parser::parse_der(&sig).unwrap();
            let s = seq.as_sequence().unwrap()[1].as_slice().unwrap().to_vec();
            (der, ordo_crypto::is_low_s(ordo_crypto::Curve::P256, &s))
        };
        for _ in 0..16 {
            let root = ca("org1.example.com", "ca").unwrap();
            let (root_der, root_low) = low_s(&low_s_pem(&root.pem()).unwrap());
            assert!(root_low);
            let (_, root_cert) = X509Certificate::from_der(&root_der).unwrap();
            root_cert.verify_signature(None).unwrap();
            let (leaf_pem, _) =
                leaf(&root, "User1@org1.example.com", Some("client"), false).unwrap();
            let (leaf_der, leaf_low) = low_s(&leaf_pem);
            assert!(leaf_low);
            let (_, leaf_cert) = X509Certificate::from_der(&leaf_der).unwrap();
            leaf_cert
                .verify_signature(Some(root_cert.public_key()))
                .unwrap();
        }
    }
}
