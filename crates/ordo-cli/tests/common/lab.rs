//! The region lab: the seed's five orderers spread over three regions on one machine, each
//! region a Linux network namespace with addresses of its own, and wide-area delay between
//! regions. It needs root (namespaces, a bridge, veth pairs, files under /etc/netns).
//!
//! Layout (region `k` counted from 0, orderer `n` from 1):
//! - a bridge `ordo-lab-br` in this process's namespace, address 10.77.0.254/16;
//! - per region a namespace `ordo-lab-{k}` whose `eth0` (a veth pair into the bridge) carries
//!   10.77.{k+1}.{n} for each of its orderers; orderer `n` listens there on 7050 (Broadcast,
//!   Deliver and cluster traffic), 7053 (admin) and 9443 (operations);
//! - the channel names every orderer as `orderer{n}.lab:7050` (consenters and the orderer
//!   organization's endpoints, which a catching-up node pulls blocks from). Each region resolves
//!   those names through its own hosts file (`/etc/netns/ordo-lab-{k}/hosts`, which
//!   `ip netns exec` puts over /etc/hosts): an orderer of the same region by its address, one of
//!   another region by a loopback address of the region's own (127.0.1.{n}) where a relay
//!   (`common::wan`) running inside the region adds the one-way delay between the two regions
//!   and forwards to the orderer's address. Every connection between regions thus crosses a
//!   relay on the side that opened it, and both of its directions are delayed;
//! - the test's clients sit in one region (`Spec::client_region`): their connections go through
//!   relays in this process's namespace with that region's delays. Admin and metrics requests go
//!   straight over the bridge.
//!
//! Losing a region: its processes killed (`kill_region`), or its link taken down
//! (`cut_region`), which stops everything it sends or receives, relayed or not.
//!
//! Material: the fixture orderer organization's MSPs (orderer1..5), TLS certificates minted for
//! the lab names and addresses by the fixture's TLS CA, and the fixture channel-5 (five
//! consenters) rebuilt with the lab's names.

use std::net::Ipv4Addr;

use super::wan::{NsRelay, Route};
use super::*;

pub const CHANNEL: &str = "channel-5";
pub const PORT: u16 = 7050;
const BRIDGE: &str = "ordo-lab-br";

/// What the lab models.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Orderers per region, in order: orderer1 and orderer2 in region 0 for `[2, 1, 2]`.
    pub placement: Vec<usize>,
    /// Round-trip times between regions, in milliseconds (symmetric, 0 on the diagonal).
    pub rtt_ms: Vec<Vec<u64>>,
    /// Further delay drawn per chunk, 0..jitter, each way.
    pub jitter_ms: u64,
    /// Where the test's clients are.
    pub client_region: usize,
    /// Keys added to each orderer.yaml's `Consensus` section.
    pub consensus: String,
    /// The channel's `BatchTimeout`.
    pub batch_timeout: String,
    /// How many orderers (the first ones) are consenters in the genesis block; the others
    /// follow the channel until a config update adds them.
    pub consenters: usize,
}

impl Spec {
    /// The seed's layout: 2/1/2, round trips of 40 ms (regions 0–1), 80 ms (1–2) and 120 ms
    /// (0–2), 2 ms of jitter, the client in the middle region; acknowledgement after commit,
    /// so that every acknowledged envelope must be in the ledger.
    pub fn seed() -> Spec {
        Spec {
            placement: vec![2, 1, 2],
            rtt_ms: vec![vec![0, 40, 120], vec![40, 0, 80], vec![120, 80, 0]],
            jitter_ms: 2,
            client_region: 1,
            consensus: ", AckAfterCommit: true, AckAfterCommitTimeout: 5s".into(),
            batch_timeout: "250ms".into(),
            consenters: 5,
        }
    }

    pub fn nodes(&self) -> usize {
        self.placement.iter().sum()
    }

    /// The region of orderer index `i` (from 0).
    pub fn region_of(&self, i: usize) -> usize {
        let mut seen = 0;
        for (r, count) in self.placement.iter().enumerate() {
            seen += count;
            if i < seen {
                return r;
            }
        }
        panic!(
            "orderer index {i} beyond the placement {:?}",
            self.placement
        )
    }

    pub fn one_way(&self, a: usize, b: usize) -> Duration {
        Duration::from_micros(self.rtt_ms[a][b] * 500)
    }
}

/// One orderer of the lab.
pub struct LabNode {
    /// 1-based, as in `orderer{n}`.
    pub n: u32,
    pub region: usize,
    pub ip: Ipv4Addr,
    pub yaml: PathBuf,
    pub process: Option<OrdoProcess>,
    /// Where this process's clients reach the orderer (a relay with the client region's delay).
    pub client_addr: SocketAddr,
}

/// The namespaces, bridge and hosts files; removed when dropped.
struct Net {
    regions: usize,
}

impl Net {
    fn ns(k: usize) -> String {
        format!("ordo-lab-{k}")
    }

    fn create(regions: usize) -> Net {
        Net::remove(8);
        let net = Net { regions };
        ip(&["link", "add", BRIDGE, "type", "bridge"]);
        ip(&["addr", "add", "10.77.0.254/16", "dev", BRIDGE]);
        ip(&["link", "set", BRIDGE, "up"]);
        for k in 0..regions {
            let ns = Net::ns(k);
            let veth = format!("ordo-lab-v{k}");
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ip(&["link", "set", &veth, "master", BRIDGE, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        net
    }

    /// Removes what an earlier run may have left (`regions` namespaces at most).
    fn remove(regions: usize) {
        for k in 0..regions {
            let _ = Command::new("ip")
                .args(["netns", "del", &Net::ns(k)])
                .output();
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", Net::ns(k)));
        }
        let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        Net::remove(self.regions);
    }
}

/// Runs `ip args`, failing the test if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Lab {
    pub spec: Spec,
    pub nodes: Vec<LabNode>,
    pub genesis: Vec<u8>,
    // Dropped in this order: processes (in `nodes`) before the relays, relays before the
    // namespaces they run in.
    relays: Vec<NsRelay>,
    client_relay: Option<NsRelay>,
    net: Option<Net>,
    _dir: tempfile::TempDir,
}

/// Whether this process can build the lab, and if not why.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("the region lab needs root (network namespaces)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("the region lab needs iproute2's `ip`".into()),
    }
}

impl Lab {
    /// Builds the network, writes every orderer's material and starts them all, joined to the
    /// channel; returns once a leader has ordered a first envelope.
    pub async fn start(spec: Spec) -> Lab {
        if let Some(why) = unavailable() {
            panic!("{why}");
        }
        let dir = tempfile::tempdir().unwrap();
        let net = Net::create(spec.placement.len());
        let mut nodes = Vec::new();
        for i in 0..spec.nodes() {
            let n = i as u32 + 1;
            let region = spec.region_of(i);
            let ip = Ipv4Addr::new(10, 77, region as u8 + 1, n as u8);
            self::ip(&[
                "-n",
                &Net::ns(region),
                "addr",
                "add",
                &format!("{ip}/16"),
                "dev",
                "eth0",
            ]);
            let node_dir = dir.path().join(format!("orderer{n}"));
            std::fs::create_dir_all(node_dir.join("tls")).unwrap();
            let names = vec![
                format!("orderer{n}.lab"),
                format!("orderer{n}.example.com"),
                ip.to_string(),
                "127.0.0.1".into(),
            ];
            let (cert, key) = mint_orderer_tls_for(&names, -3600, 30 * 86400);
            install_tls(&node_dir.join("tls"), &cert, &key);
            let yaml = lab_yaml(&node_dir, n, ip, &spec.consensus);
            nodes.push(LabNode {
                n,
                region,
                ip,
                yaml,
                process: None,
                client_addr: "0.0.0.0:0".parse().unwrap(),
            });
        }
        // Each region's hosts file and relays.
        let mut relays = Vec::new();
        for k in 0..spec.placement.len() {
            let mut hosts = String::from("127.0.0.1 localhost\n");
            let mut routes = Vec::new();
            for node in &nodes {
                if node.region == k {
                    hosts.push_str(&format!("{} orderer{}.lab\n", node.ip, node.n));
                } else {
                    let local = Ipv4Addr::new(127, 0, 1, node.n as u8);
                    hosts.push_str(&format!("{local} orderer{}.lab\n", node.n));
                    routes.push(Route {
                        listen: SocketAddr::from((local, PORT)),
                        target: SocketAddr::from((node.ip, PORT)),
                        one_way: spec.one_way(k, node.region),
                        jitter: Duration::from_millis(spec.jitter_ms),
                    });
                }
            }
            let etc = PathBuf::from(format!("/etc/netns/{}", Net::ns(k)));
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::write(etc.join("hosts"), hosts).unwrap();
            relays.push(NsRelay::start(Some(&Net::ns(k)), routes, k as u64 + 1));
        }
        let client_routes = nodes
            .iter()
            .map(|node| Route {
                listen: "127.0.0.1:0".parse().unwrap(),
                target: SocketAddr::from((node.ip, PORT)),
                one_way: spec.one_way(spec.client_region, node.region),
                jitter: Duration::from_millis(spec.jitter_ms),
            })
            .collect();
        let client_relay = NsRelay::start(None, client_routes, 99);
        for (node, addr) in nodes.iter_mut().zip(&client_relay.bound) {
            node.client_addr = *addr;
        }
        let genesis = lab_genesis(&nodes, &spec.batch_timeout, spec.consenters);
        let mut lab = Lab {
            spec,
            nodes,
            genesis,
            relays,
            client_relay: Some(client_relay),
            net: Some(net),
            _dir: dir,
        };
        for i in 0..lab.nodes.len() {
            lab.start_node(i);
        }
        for node in &lab.nodes {
            let p = node.process.as_ref().unwrap();
            assert_eq!(p.admin().join(&lab.genesis).await.unwrap().status, 201);
        }
        lab
    }

    /// Starts orderer index `i` (from 0) in its region's namespace.
    pub fn start_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.process.is_none(), "orderer{} is running", node.n);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &Net::ns(node.region)])
            .arg(env!("CARGO_BIN_EXE_ordo"))
            .args(["node", "start", "--config"])
            .arg(&node.yaml);
        let p = OrdoProcess::try_spawn(cmd)
            .unwrap_or_else(|| panic!("orderer{} exited before it started", node.n));
        node.process = Some(p);
    }

    /// Kills orderer index `i` (`kill -9`).
    pub fn kill_node(&mut self, i: usize) {
        if let Some(p) = self.nodes[i].process.take() {
            p.kill9();
        }
    }

    /// Stops orderer index `i` as an operator's restart does (SIGTERM), waiting for it to exit.
    pub fn stop_node(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].process.take() {
            // SAFETY: kill on a child's pid that has not been waited for.
            unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                if p.child.try_wait().unwrap().is_some() {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "orderer{} did not stop on SIGTERM",
                    self.nodes[i].n
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn region_nodes(&self, k: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].region == k)
            .collect()
    }

    /// Every process of region `k` killed.
    pub fn kill_region(&mut self, k: usize) {
        for i in self.region_nodes(k) {
            self.kill_node(i);
        }
    }

    /// Starts every orderer of region `k` again.
    pub fn start_region(&mut self, k: usize) {
        for i in self.region_nodes(k) {
            self.start_node(i);
        }
    }

    /// Takes region `k`'s link down (`up: false`) or up again: nothing crosses it meanwhile.
    pub fn set_region_link(&self, k: usize, up: bool) {
        ip(&[
            "-n",
            &Net::ns(k),
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ]);
    }

    /// The running orderers, by index (`None` for one that is down).
    pub fn processes(&self) -> Vec<Option<&OrdoProcess>> {
        self.nodes.iter().map(|n| n.process.as_ref()).collect()
    }

    /// The index of a running orderer outside `excluded` regions that reports itself leader.
    pub async fn leader(&self, excluded: &[usize]) -> Option<usize> {
        for (i, node) in self.nodes.iter().enumerate() {
            if excluded.contains(&node.region) {
                continue;
            }
            if let Some(p) = &node.process
                && leads(p, CHANNEL).await
            {
                return Some(i);
            }
        }
        None
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.process.take();
        }
        self.client_relay.take();
        self.relays.clear();
        self.net.take();
    }
}

fn lab_yaml(dir: &Path, n: u32, ip: Ipv4Addr, consensus: &str) -> PathBuf {
    let msp = p(&format!(
        "crypto-config/ordererOrganizations/example.com/orderers/orderer{n}.example.com/msp"
    ));
    let t = dir.join("tls").display().to_string();
    let yaml = format!(
        r#"General:
    ListenAddress: {ip}
    ListenPort: {PORT}
    TLS:
        Enabled: true
        PrivateKey: {t}/server.key
        Certificate: {t}/server.crt
        RootCAs: [{ca}]
        ClientAuthRequired: false
        ClientRootCAs: [{ca}]
    BootstrapMethod: none
    LocalMSPDir: {msp}
    LocalMSPID: OrdererMSP
    Authentication: {{TimeWindow: 15m}}
FileLedger: {{Location: {d}/ledger}}
Operations: {{ListenAddress: "{ip}:9443", TLS: {{Enabled: false}}}}
Metrics: {{Provider: prometheus}}
Admin:
    ListenAddress: "{ip}:7053"
    TLS:
        Enabled: true
        Certificate: {t}/server.crt
        PrivateKey: {t}/server.key
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

/// The consenter entry of a lab orderer: `orderer{n}.lab:7050` with its TLS certificate.
pub fn lab_consenter(node: &LabNode) -> ordo_proto::etcdraft::Consenter {
    let cert =
        Bytes::from(std::fs::read(node.yaml.parent().unwrap().join("tls/server.crt")).unwrap());
    ordo_proto::etcdraft::Consenter {
        host: format!("orderer{}.lab", node.n),
        port: PORT as u32,
        client_tls_cert: cert.clone(),
        server_tls_cert: cert,
    }
}

/// The fixture's channel-5 with the first `consenters` orderers as consenters (see
/// [`lab_consenter`]), every orderer among the orderer organization's endpoints under its lab
/// name, and `batch_timeout`.
fn lab_genesis(nodes: &[LabNode], batch_timeout: &str, consenters: usize) -> Vec<u8> {
    let mut config = fixture_channel_config(CHANNEL);
    edit_consenters(&mut config, |cs| {
        *cs = nodes.iter().take(consenters).map(lab_consenter).collect();
    });
    let orderer = config
        .channel_group
        .as_mut()
        .unwrap()
        .groups
        .get_mut("Orderer")
        .unwrap();
    let endpoints = ordo_proto::common::OrdererAddresses {
        addresses: nodes
            .iter()
            .map(|node| format!("orderer{}.lab:{PORT}", node.n))
            .collect(),
    };
    orderer
        .groups
        .get_mut("OrdererOrg")
        .unwrap()
        .values
        .get_mut("Endpoints")
        .unwrap()
        .value = endpoints.encode_to_vec().into();
    orderer.values.get_mut("BatchTimeout").unwrap().value = ordo_proto::orderer::BatchTimeout {
        timeout: batch_timeout.into(),
    }
    .encode_to_vec()
    .into();
    ordo_config::genesis::genesis_block_for_config(config, CHANNEL)
        .unwrap()
        .encode_to_vec()
}
