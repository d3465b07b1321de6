//! Fabric's own orderer on the demo's network material, for `ordo bench compare`: an
//! orderer.yaml per orderer in Fabric's format (its listeners on ports picked here, since
//! Fabric's orderer cannot report a port the kernel chose), `orderer` processes started with
//! `FABRIC_CFG_PATH` on their folders, and the same channel joined through Fabric's
//! participation API. Nothing of Fabric is linked: the binary is the operator's, given by path.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::bench_local::{
    ChannelSettings, Cluster, LocalNode, channel, join_and_elect, remove_dir,
};
use crate::demo_net::OrdererOrg;

/// What `orderer version` says of itself, e.g. "2.4.9".
pub fn version(bin: &Path) -> anyhow::Result<String> {
    let out = std::process::Command::new(bin)
        .arg("version")
        .output()
        .with_context(|| format!("running {} version", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("{} version printed no Version line: {text}", bin.display()))
}

/// Starts a fresh cluster of Fabric orderers (`bin`) for `org` in `dir/fabric` (removed first)
/// and brings the benchmark channel up on it.
pub async fn start_fabric(
    bin: &Path,
    dir: &Path,
    org: &OrdererOrg,
    settings: &ChannelSettings,
) -> anyhow::Result<Cluster> {
    let root = dir.join("fabric");
    remove_dir(&root)?;
    let mut yamls = Vec::new();
    let mut ports = Vec::new();
    for (i, node) in org.nodes.iter().enumerate() {
        let [general, admin, operations] = free_ports()?;
        let home = root.join(format!("orderer{}", i + 1));
        let yaml = home.join("orderer.yaml");
        std::fs::create_dir_all(&home)?;
        std::fs::write(
            &yaml,
            FABRIC_ORDERER_YAML
                .replace("NODE_DIR", &node.display().to_string())
                .replace("ORG_MSP_DIR", &org.msp_dir.display().to_string())
                .replace("DATA_DIR", &home.display().to_string())
                .replace("ADMIN_PORT", &admin.to_string())
                .replace("OPERATIONS_PORT", &operations.to_string()),
        )?;
        yamls.push(yaml);
        ports.push((general, admin, operations));
    }
    let general: Vec<u16> = ports.iter().map(|p| p.0).collect();
    // Writes each general port into its yaml, as for Ordo's nodes.
    let (net, genesis) = channel(dir, org, &yamls, &general, settings)?;
    let mut nodes = Vec::new();
    for (yaml, (general, admin, operations)) in yamls.iter().zip(&ports) {
        nodes.push(start_node(bin, yaml, *general, *admin, *operations).await?);
    }
    let leader = join_and_elect(&nodes, &net, &genesis).await?;
    Ok(Cluster { nodes, leader, net })
}

/// Three ports free on 127.0.0.1 now. Fabric's orderer binds fixed ports, so they are picked
/// here and released; another process could take one before the orderer binds it, in which
/// case the orderer exits and [`start_node`] says so.
fn free_ports() -> anyhow::Result<[u16; 3]> {
    let listeners = [(); 3].map(|_| std::net::TcpListener::bind("127.0.0.1:0"));
    let mut ports = [0u16; 3];
    for (p, l) in ports.iter_mut().zip(listeners) {
        *p = l.context("finding a free port")?.local_addr()?.port();
    }
    Ok(ports)
}

/// Starts `bin` with its configuration folder `yaml`'s and waits until its operations
/// endpoint answers /healthz.
async fn start_node(
    bin: &Path,
    yaml: &Path,
    general: u16,
    admin: u16,
    operations: u16,
) -> anyhow::Result<LocalNode> {
    let home: PathBuf = yaml
        .parent()
        .context("orderer.yaml's folder")?
        .to_path_buf();
    let log = std::fs::File::create(home.join("orderer.log"))?;
    let child = std::process::Command::new(bin)
        .env("FABRIC_CFG_PATH", &home)
        .env("FABRIC_LOGGING_SPEC", "error")
        .current_dir(&home)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let ip = std::net::Ipv4Addr::LOCALHOST;
    let mut node = LocalNode {
        child,
        general: SocketAddr::from((ip, general)),
        admin: SocketAddr::from((ip, admin)),
        operations: SocketAddr::from((ip, operations)),
    };
    let ops = ordo_client::HttpClient {
        addr: node.operations,
        tls: None,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = node.child.try_wait()? {
            bail!(
                "Fabric's orderer ({}) exited with {status}; its log: {}",
                yaml.display(),
                home.join("orderer.log").display()
            );
        }
        if matches!(ops.get("/healthz").await, Ok(r) if r.status == 200) {
            return Ok(node);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "Fabric's orderer ({}) did not answer /healthz within 30 s",
                yaml.display()
            );
        }
        // Polling another process: there is no event to wait on.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Fabric v2.4/v2.5 orderer.yaml with the keys Fabric's sample sets for a Raft orderer in
/// participation mode (no system channel), TLS on, its cluster traffic on the general
/// listener; NODE_DIR holds its enrolled `msp/` and `tls/`, ORG_MSP_DIR the organization's MSP
/// (whose TLS CA the participation API trusts), DATA_DIR its ledger and Raft folders. ListenPort 0
/// is replaced by the port the channel names once it is generated.
const FABRIC_ORDERER_YAML: &str = r#"General:
    ListenAddress: 127.0.0.1
    ListenPort: 0
    TLS:
        Enabled: true
        PrivateKey: NODE_DIR/tls/server.key
        Certificate: NODE_DIR/tls/server.crt
        RootCAs: [NODE_DIR/tls/ca.crt]
        ClientAuthRequired: false
    Keepalive: {ServerMinInterval: 60s, ServerInterval: 7200s, ServerTimeout: 20s}
    MaxRecvMsgSize: 104857600
    MaxSendMsgSize: 104857600
    Cluster: {SendBufferSize: 10}
    BootstrapMethod: none
    LocalMSPDir: NODE_DIR/msp
    LocalMSPID: OrdererMSP
    BCCSP: {Default: SW, SW: {Hash: SHA2, Security: 256}}
    Authentication: {TimeWindow: 15m}
FileLedger: {Location: DATA_DIR/ledger}
Consensus: {WALDir: DATA_DIR/etcdraft/wal, SnapDir: DATA_DIR/etcdraft/snapshot}
Operations: {ListenAddress: "127.0.0.1:OPERATIONS_PORT", TLS: {Enabled: false}}
Metrics: {Provider: prometheus}
Admin:
    ListenAddress: "127.0.0.1:ADMIN_PORT"
    TLS:
        Enabled: true
        Certificate: NODE_DIR/tls/server.crt
        PrivateKey: NODE_DIR/tls/server.key
        ClientAuthRequired: true
        ClientRootCAs: [ORG_MSP_DIR/tlscacerts/tlsca-cert.pem]
ChannelParticipation: {Enabled: true, MaxRequestBodySize: 1 MB}
"#;
