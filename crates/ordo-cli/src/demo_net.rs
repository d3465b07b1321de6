//! The network `ordo demo` runs on, generated from nothing: what Fabric's cryptogen makes for an
//! orderer org and an application org (CAs, TLS CAs, NodeOUs, node/admin/user MSP folders, TLS
//! certificates for `localhost` and `127.0.0.1`), a configtx.yaml whose etcdraft profile has the
//! first orderers as consenters on free ports of 127.0.0.1 (the others are added later by config
//! updates, with the consenter entries prepared here), the channel's genesis block (built by
//! Ordo's configtxgen path), and an orderer.yaml per orderer (its cluster traffic shares the
//! general port, which is the consenter's port in the channel config).
//! Everything is in Fabric's layouts, so Fabric's tools could use the same folder.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
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

type Ca = CertifiedIssuer<'static, KeyPair>;

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
    Ok((cert.pem(), key.serialize_pem()))
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
    write(&dir.join("cacerts/ca-cert.pem"), ca.pem())?;
    write(&dir.join("tlscacerts/tlsca-cert.pem"), tlsca.pem())?;
    write(&dir.join("config.yaml"), NODE_OUS)?;
    if let Some((cert, key)) = signer {
        write(&dir.join("signcerts/cert.pem"), cert)?;
        write(&dir.join("keystore/priv_sk"), key)?;
    }
    Ok(())
}

/// A port nothing listens on now (the consenters' ports must be in the genesis block before
/// the nodes start, so they cannot ask the kernel when they bind).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Generates the demo network in `dir` for `channel`, with `orderers` orderers of which the
/// first `initial` are the consenters of the genesis block.
pub fn generate(dir: &Path, channel: &str, orderers: u32, initial: u32) -> Result<DemoNet> {
    let oo = dir.join("crypto/ordererOrganizations/example.com");
    let (o_ca, o_tlsca) = (ca("example.com", "ca")?, ca("example.com", "tlsca")?);
    msp(&oo.join("msp"), &o_ca, &o_tlsca, None)?;
    let mut ports = Vec::new();
    let mut consenters = Vec::new();
    for n in 1..=orderers {
        let host = format!("orderer{n}.example.com");
        let node = oo.join(format!("orderers/{host}"));
        msp(
            &node.join("msp"),
            &o_ca,
            &o_tlsca,
            Some(&leaf(&o_ca, &host, Some("orderer"), false)?),
        )?;
        let (tls_cert, tls_key) = leaf(&o_tlsca, &host, None, true)?;
        write(&node.join("tls/server.crt"), &tls_cert)?;
        write(&node.join("tls/server.key"), &tls_key)?;
        write(&node.join("tls/ca.crt"), o_tlsca.pem())?;
        let port = free_port()?;
        ports.push(port);
        consenters.push(ordo_proto::etcdraft::Consenter {
            host: "127.0.0.1".into(),
            port: u32::from(port),
            client_tls_cert: tls_cert.clone().into_bytes().into(),
            server_tls_cert: tls_cert.into_bytes().into(),
        });
    }
    let admin = oo.join("users/Admin@example.com");
    msp(
        &admin.join("msp"),
        &o_ca,
        &o_tlsca,
        Some(&leaf(&o_ca, "Admin@example.com", Some("admin"), false)?),
    )?;
    let (a_cert, a_key) = leaf(&o_tlsca, "Admin@example.com", None, true)?;
    write(&admin.join("tls/client.crt"), a_cert)?;
    write(&admin.join("tls/client.key"), a_key)?;

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
        .take(initial.max(1) as usize)
        .enumerate()
        .map(|(i, port)| {
            let tls = format!(
                "crypto/ordererOrganizations/example.com/orderers/orderer{}.example.com/tls/server.crt",
                i + 1
            );
            format!(
                "\n                  - {{Host: 127.0.0.1, Port: {port}, ClientTLSCert: {tls}, ServerTLSCert: {tls}}}"
            )
        })
        .collect();
    let configtx = dir.join("configtx.yaml");
    write(
        &configtx,
        CONFIGTX
            .replace("ORDERER_ENDPOINTS", &endpoints.join(", "))
            .replace("CONSENTERS", &initial_consenters),
    )?;
    let block = ordo_config::genesis::genesis_block(&configtx, "Demo", channel)
        .context("building the genesis block")?;

    let mut orderer_yamls = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let n = i + 1;
        let path = dir.join(format!("orderer{n}.yaml"));
        // Fabric reads the ledger and WAL folders as written (relative to the working
        // directory), so they are made absolute here.
        let data = dir.join(format!("data/orderer{n}"));
        write(
            &path,
            ORDERER_YAML
                .replace("data/", &format!("{}/", data.display()))
                .replace("orderer1.example.com", &format!("orderer{n}.example.com"))
                .replace("LISTEN_PORT", &port.to_string()),
        )?;
        orderer_yamls.push(path);
    }
    Ok(DemoNet {
        orderer_yamls,
        genesis_block: prost::Message::encode_to_vec(&block),
        channel: channel.to_string(),
        client_msp_dir: user,
        client_msp_id: "Org1MSP".to_string(),
        admin_tls_cert: admin.join("tls/client.crt"),
        admin_tls_key: admin.join("tls/client.key"),
        tls_ca_cert: oo.join("orderers/orderer1.example.com/tls/ca.crt"),
        admin_msp_dir: admin.join("msp"),
        orderer_msp_id: "OrdererMSP".to_string(),
        consenters,
    })
}

/// One orderer org, one application org; Fabric's sample
/// policies. ORDERER_ENDPOINTS and CONSENTERS are filled in by [`generate`].
const CONFIGTX: &str = r#"Organizations:
    - &OrdererOrg
        Name: OrdererOrg
        ID: OrdererMSP
        MSPDir: crypto/ordererOrganizations/example.com/msp
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

/// orderer1's; the general port (also the cluster's) is the consenter's, the other listeners on
/// free ports (the node prints the ones it got); data next to the file.
const ORDERER_YAML: &str = r#"General:
    ListenAddress: 127.0.0.1
    ListenPort: LISTEN_PORT
    TLS:
        Enabled: true
        PrivateKey: crypto/ordererOrganizations/example.com/orderers/orderer1.example.com/tls/server.key
        Certificate: crypto/ordererOrganizations/example.com/orderers/orderer1.example.com/tls/server.crt
        RootCAs: [crypto/ordererOrganizations/example.com/orderers/orderer1.example.com/tls/ca.crt]
        ClientAuthRequired: false
    BootstrapMethod: none
    LocalMSPDir: crypto/ordererOrganizations/example.com/orderers/orderer1.example.com/msp
    LocalMSPID: OrdererMSP
FileLedger: {Location: data/ledger}
Consensus: {WALDir: data/etcdraft/wal, SnapDir: data/etcdraft/snapshot}
Operations: {ListenAddress: 127.0.0.1:0, TLS: {Enabled: false}}
Metrics: {Provider: prometheus}
Admin:
    ListenAddress: 127.0.0.1:0
    TLS:
        Enabled: true
        Certificate: crypto/ordererOrganizations/example.com/orderers/orderer1.example.com/tls/server.crt
        PrivateKey: crypto/ordererOrganizations/example.com/orderers/orderer1.example.com/tls/server.key
        ClientAuthRequired: true
        ClientRootCAs: [crypto/ordererOrganizations/example.com/msp/tlscacerts/tlsca-cert.pem]
ChannelParticipation: {Enabled: true, MaxRequestBodySize: 1 MB}
"#;
