//! The node's local configuration: Fabric's `orderer.yaml` (`orderer/common/localconfig`), read
//! as Fabric reads it — exact, case-insensitive keys; `ORDERER_<SECTION>_<KEY>` environment
//! variables overriding keys that the file has (viper only knows the file's keys); defaults for
//! what is left zero; certificate and MSP paths relative to the file's folder (the ledger, WAL and
//! snapshot folders are used as written, as Fabric does).
//!
//! Ordo runs without a system channel, so `General.BootstrapMethod` must be `none` and the channel
//! participation API must be on; combinations Fabric would panic on or silently misuse are refused
//! here with a message naming the keys.

use std::path::{Path, PathBuf};

use ordo_config::duration::parse_go_duration;
use ordo_config::yaml::{Obj, YamlError, parse};
use serde_json::Value;

/// Why the local configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("orderer configuration: {0}")]
pub struct LocalConfigError(pub String);

impl From<YamlError> for LocalConfigError {
    fn from(e: YamlError) -> Self {
        LocalConfigError(e.0)
    }
}

fn err(m: impl Into<String>) -> LocalConfigError {
    LocalConfigError(m.into())
}

/// TLS settings of a listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub enabled: bool,
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    pub root_cas: Vec<PathBuf>,
    pub client_auth_required: bool,
    pub client_root_cas: Vec<PathBuf>,
    pub handshake_time_shift_ns: i64,
}

/// `General.Cluster`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    pub listen_address: String,
    pub listen_port: u16,
    pub server_certificate: PathBuf,
    pub server_private_key: PathBuf,
    pub client_certificate: PathBuf,
    pub client_private_key: PathBuf,
    pub root_cas: Vec<PathBuf>,
    pub send_buffer_size: u32,
    pub dial_timeout_ns: i64,
    pub rpc_timeout_ns: i64,
    pub replication_buffer_size: u64,
    pub replication_pull_timeout_ns: i64,
    pub replication_retry_timeout_ns: i64,
    pub cert_expiration_warning_threshold_ns: i64,
    pub handshake_time_shift_ns: i64,
}

impl Cluster {
    /// Whether the cluster has its own listener (otherwise it shares the general one). Its
    /// address says so: a loaded configuration sets the address and the port together, except
    /// with [`ListenPorts::Kernel`], where the port is left to the kernel.
    pub fn separate_listener(&self) -> bool {
        !self.listen_address.is_empty()
    }
}

/// Where the general and cluster listeners get their ports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListenPorts {
    /// The file's (and the environment's): `General.ListenPort` (0 is Fabric's default, 7050)
    /// and `General.Cluster.ListenPort`.
    #[default]
    Configured,
    /// Ports the kernel chooses when the listeners bind, whatever the file says: the general
    /// listener's, and the separate cluster listener's when `General.Cluster.ListenAddress` is
    /// set (its `ListenPort` may then be 0). `General.ListenPort: 0` cannot ask for this, since
    /// Fabric reads it as 7050; it is for a node whose ports are read back once it runs (`ordo
    /// node start --kernel-ports`) — no port is chosen beforehand that something else could
    /// take in the meantime.
    Kernel,
}

/// `General`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct General {
    pub listen_address: String,
    pub listen_port: u16,
    pub tls: Tls,
    pub keepalive_server_min_interval_ns: i64,
    pub keepalive_server_interval_ns: i64,
    pub keepalive_server_timeout_ns: i64,
    pub max_recv_msg_size: u32,
    pub max_send_msg_size: u32,
    pub cluster: Cluster,
    pub bootstrap_method: String,
    pub local_msp_dir: PathBuf,
    pub local_msp_id: String,
    pub time_window_ns: i64,
    pub no_expiration_checks: bool,
}

/// An HTTP listener (`Operations`, `Admin`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpListener {
    pub listen_address: String,
    pub tls: Tls,
}

/// The whole local configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalConfig {
    pub general: General,
    pub ledger_location: PathBuf,
    pub wal_dir: PathBuf,
    pub snap_dir: PathBuf,
    /// `Consensus.AckAfterCommit` (Ordo's, off by default): Broadcast answers SUCCESS only once
    /// the envelope is in a block committed by a quorum, waiting at most this long
    /// (`Consensus.AckAfterCommitTimeout`, default 10s) before answering SERVICE_UNAVAILABLE.
    pub ack_after_commit_timeout_ns: Option<i64>,
    /// `Consensus.EvictionSuspicion` (Fabric's, default 10m): how long a consenter may go
    /// without a leader before it asks the other orderers whether it was removed.
    pub eviction_suspicion_ns: i64,
    /// `Consensus.FabricBlockCutting` (Ordo's, off by default): cut blocks exactly as Fabric
    /// does (MaxMessageCount, PreferredMaxBytes, BatchTimeout) instead of adaptively (see
    /// `ordo_raft::chain::ADAPTIVE_PIPELINE`).
    pub fabric_block_cutting: bool,
    /// `Consensus.FabricMembershipChanges` (Ordo's, off by default): a consenter added by a
    /// config update becomes a Raft voter at once, as in Fabric's etcdraft, instead of entering
    /// as a learner and being promoted once it has caught up (see `ordo_raft::chain`). For
    /// channels whose consenters may include Fabric orderers, which do not expect learners.
    pub fabric_membership_changes: bool,
    /// `Consensus.PreferredLeaders` (Ordo's, empty by default): consenters, as `host:port` the
    /// channel configs name them, that a leader hands leadership to once they are caught up —
    /// say the orderers of the region closest to the others (docs/regions.md). Set the same list
    /// on every orderer.
    pub preferred_leaders: Vec<String>,
    pub operations: HttpListener,
    pub metrics_provider: String,
    pub admin: HttpListener,
    pub participation_enabled: bool,
    pub participation_max_request_body_size: u32,
}

/// Replaces, in place, every key of the tree that has an `ORDERER_<PATH>` variable in `env`
/// (path segments upper-cased and joined by `_`), as viper's AutomaticEnv does for the file's keys.
fn apply_env(v: &mut Value, prefix: &str, env: &dyn Fn(&str) -> Option<String>) {
    if let Value::Object(map) = v {
        for (k, child) in map.iter_mut() {
            let name = format!("{prefix}_{}", k.to_ascii_uppercase());
            match env(&name) {
                Some(val) => *child = Value::String(val),
                None => apply_env(child, &name, env),
            }
        }
    }
}

fn duration(o: &mut Obj<'_>, key: &str, default_ns: i64) -> Result<i64, LocalConfigError> {
    let path = o.sub(key);
    let s = o.string(key)?;
    if s.is_empty() {
        return Ok(default_ns);
    }
    let ns = parse_go_duration(&s).map_err(|e| err(format!("{path}: {e}")))?;
    Ok(if ns == 0 { default_ns } else { ns })
}

fn port(o: &mut Obj<'_>, key: &str) -> Result<u16, LocalConfigError> {
    let path = o.sub(key);
    u16::try_from(o.uint(key)?).map_err(|_| err(format!("{path}: not a port number")))
}

fn or_default(s: String, d: &str) -> String {
    if s.is_empty() { d.to_string() } else { s }
}

struct Reader<'b> {
    base: &'b Path,
}

impl Reader<'_> {
    fn path(&self, s: &str) -> PathBuf {
        if s.is_empty() {
            PathBuf::new()
        } else {
            let p = Path::new(s);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                self.base.join(p)
            }
        }
    }

    fn paths(&self, o: &mut Obj<'_>, key: &str) -> Result<Vec<PathBuf>, LocalConfigError> {
        Ok(o.strings(key)?.iter().map(|s| self.path(s)).collect())
    }

    fn tls(
        &self,
        v: Option<&Value>,
        path: &str,
        client_auth_default: bool,
    ) -> Result<Tls, LocalConfigError> {
        let Some(v) = v else {
            return Ok(Tls {
                client_auth_required: client_auth_default,
                ..Tls::default()
            });
        };
        let mut o = Obj::new(v, path)?;
        let client_auth_present = o.get("ClientAuthRequired").is_some();
        let tls = Tls {
            enabled: o.boolean("Enabled")?,
            certificate: self.path(&o.string("Certificate")?),
            private_key: self.path(&o.string("PrivateKey")?),
            root_cas: self.paths(&mut o, "RootCAs")?,
            client_auth_required: if client_auth_present {
                o.boolean("ClientAuthRequired")?
            } else {
                client_auth_default
            },
            client_root_cas: self.paths(&mut o, "ClientRootCAs")?,
            handshake_time_shift_ns: duration(&mut o, "TLSHandshakeTimeShift", 0)?,
        };
        o.finish()?;
        Ok(tls)
    }

    fn cluster(&self, v: Option<&Value>, path: &str) -> Result<Cluster, LocalConfigError> {
        let empty = Value::Null;
        let mut o = Obj::new(v.unwrap_or(&empty), path)?;
        let c = Cluster {
            listen_address: o.string("ListenAddress")?,
            listen_port: port(&mut o, "ListenPort")?,
            server_certificate: self.path(&o.string("ServerCertificate")?),
            server_private_key: self.path(&o.string("ServerPrivateKey")?),
            client_certificate: self.path(&o.string("ClientCertificate")?),
            client_private_key: self.path(&o.string("ClientPrivateKey")?),
            root_cas: self.paths(&mut o, "RootCAs")?,
            send_buffer_size: match o.u32("SendBufferSize")? {
                0 => 100,
                n => n,
            },
            dial_timeout_ns: duration(&mut o, "DialTimeout", 5_000_000_000)?,
            rpc_timeout_ns: duration(&mut o, "RPCTimeout", 7_000_000_000)?,
            replication_buffer_size: match o.uint("ReplicationBufferSize")? {
                0 => 20 * 1024 * 1024,
                n => n,
            },
            replication_pull_timeout_ns: duration(&mut o, "ReplicationPullTimeout", 5_000_000_000)?,
            replication_retry_timeout_ns: duration(
                &mut o,
                "ReplicationRetryTimeout",
                5_000_000_000,
            )?,
            cert_expiration_warning_threshold_ns: duration(
                &mut o,
                "CertExpirationWarningThreshold",
                7 * 24 * 3_600_000_000_000,
            )?,
            handshake_time_shift_ns: duration(&mut o, "TLSHandshakeTimeShift", 0)?,
        };
        // Keys Fabric knows that Ordo does not use yet are accepted, so Fabric files load as they are.
        for ignored in [
            "ReplicationBackgroundRefreshInterval",
            "ReplicationMaxRetries",
            "ReplicationPolicy",
        ] {
            let _ = o.get(ignored);
        }
        o.finish()?;
        Ok(c)
    }

    fn http(
        &self,
        v: Option<&Value>,
        path: &str,
        addr_default: &str,
        client_auth_default: bool,
    ) -> Result<HttpListener, LocalConfigError> {
        let empty = Value::Null;
        let mut o = Obj::new(v.unwrap_or(&empty), path)?;
        let listen_address = or_default(o.string("ListenAddress")?, addr_default);
        let tls = self.tls(o.get("TLS"), &o.sub("TLS"), client_auth_default)?;
        o.finish()?;
        Ok(HttpListener {
            listen_address,
            tls,
        })
    }
}

impl LocalConfig {
    /// Reads `orderer.yaml` at `path`, with overrides from the process environment.
    pub fn load(path: &Path) -> Result<Self, LocalConfigError> {
        Self::load_with_env(path, &|k| std::env::var(k).ok())
    }

    /// Reads `orderer.yaml` at `path`, with overrides looked up in `env`.
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, LocalConfigError> {
        Self::load_with_ports(path, env, ListenPorts::Configured)
    }

    /// Reads `orderer.yaml` at `path`, with overrides looked up in `env`, its listeners' ports
    /// taken as `ports` says.
    pub fn load_with_ports(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        ports: ListenPorts,
    ) -> Result<Self, LocalConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("reading {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_yaml_with_ports(&text, base, env, ports)
    }

    /// Parses orderer.yaml text; relative certificate and MSP paths are taken from `base`.
    pub fn from_yaml(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, LocalConfigError> {
        Self::from_yaml_with_ports(text, base, env, ListenPorts::Configured)
    }

    /// As [`LocalConfig::from_yaml`], the listeners' ports taken as `ports` says.
    pub fn from_yaml_with_ports(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        ports: ListenPorts,
    ) -> Result<Self, LocalConfigError> {
        let mut doc = parse(text)?;
        apply_env(&mut doc, "ORDERER", env);
        let r = Reader { base };
        let mut top = Obj::new(&doc, "orderer.yaml")?;

        let gv = top.get("General");
        let empty = Value::Null;
        let mut g = Obj::new(gv.unwrap_or(&empty), "General")?;
        let tls = r.tls(g.get("TLS"), "General.TLS", false)?;
        let (ka_min, ka_int, ka_to) = match g.get("Keepalive") {
            None => (60_000_000_000, 7_200_000_000_000, 20_000_000_000),
            Some(k) => {
                let mut k = Obj::new(k, "General.Keepalive")?;
                let t = (
                    duration(&mut k, "ServerMinInterval", 60_000_000_000)?,
                    duration(&mut k, "ServerInterval", 7_200_000_000_000)?,
                    duration(&mut k, "ServerTimeout", 20_000_000_000)?,
                );
                k.finish()?;
                t
            }
        };
        let cluster = r.cluster(g.get("Cluster"), "General.Cluster")?;
        let (time_window_ns, no_expiration_checks) = match g.get("Authentication") {
            None => (15 * 60_000_000_000, false),
            Some(a) => {
                let mut a = Obj::new(a, "General.Authentication")?;
                let t = (
                    duration(&mut a, "TimeWindow", 15 * 60_000_000_000)?,
                    a.boolean("NoExpirationChecks")?,
                );
                a.finish()?;
                t
            }
        };
        let general = General {
            listen_address: or_default(g.string("ListenAddress")?, "127.0.0.1"),
            listen_port: match port(&mut g, "ListenPort")? {
                0 => 7050,
                p => p,
            },
            tls,
            keepalive_server_min_interval_ns: ka_min,
            keepalive_server_interval_ns: ka_int,
            keepalive_server_timeout_ns: ka_to,
            max_recv_msg_size: match g.u32("MaxRecvMsgSize")? {
                0 => 100 * 1024 * 1024,
                n => n,
            },
            max_send_msg_size: match g.u32("MaxSendMsgSize")? {
                0 => 100 * 1024 * 1024,
                n => n,
            },
            cluster,
            bootstrap_method: or_default(g.string("BootstrapMethod")?, "file"),
            local_msp_dir: r.path(&or_default(g.string("LocalMSPDir")?, "msp")),
            local_msp_id: or_default(g.string("LocalMSPID")?, "SampleOrg"),
            time_window_ns,
            no_expiration_checks,
        };
        // Accepted and unused: Fabric keys that configure what Ordo does differently or not at all.
        for ignored in [
            "BootstrapFile",
            "BCCSP",
            "Profile",
            "ConnectionTimeout",
            "GenesisMethod",
            "GenesisFile",
        ] {
            let _ = g.get(ignored);
        }
        g.finish()?;

        let (
            ledger_location,
            wal_dir,
            snap_dir,
            ack_after_commit_timeout_ns,
            eviction_suspicion_ns,
            fabric_block_cutting,
            fabric_membership_changes,
            preferred_leaders,
        ) = {
            let mut f = Obj::new(top.get("FileLedger").unwrap_or(&empty), "FileLedger")?;
            let loc = or_default(f.string("Location")?, "/var/hyperledger/production/orderer");
            let _ = f.get("Prefix");
            f.finish()?;
            let mut c = Obj::new(top.get("Consensus").unwrap_or(&empty), "Consensus")?;
            let wal = or_default(
                c.string("WALDir")?,
                "/var/hyperledger/production/orderer/etcdraft/wal",
            );
            let snap = or_default(
                c.string("SnapDir")?,
                "/var/hyperledger/production/orderer/etcdraft/snapshot",
            );
            let _ = c.get("TickIntervalOverride");
            let suspicion = duration(&mut c, "EvictionSuspicion", 600_000_000_000)?;
            let ack = c.boolean("AckAfterCommit")?;
            let ack_timeout = duration(&mut c, "AckAfterCommitTimeout", 10_000_000_000)?;
            let fabric_cutting = c.boolean("FabricBlockCutting")?;
            let fabric_membership = c.boolean("FabricMembershipChanges")?;
            let preferred = c.strings("PreferredLeaders")?;
            c.finish()?;
            (
                PathBuf::from(loc),
                PathBuf::from(wal),
                PathBuf::from(snap),
                ack.then_some(ack_timeout),
                suspicion,
                fabric_cutting,
                fabric_membership,
                preferred,
            )
        };
        let operations = r.http(top.get("Operations"), "Operations", "127.0.0.1:8443", false)?;
        let metrics_provider = match top.get("Metrics") {
            None => "disabled".to_string(),
            Some(m) => {
                let mut m = Obj::new(m, "Metrics")?;
                let p = or_default(m.string("Provider")?, "disabled");
                let _ = m.get("Statsd");
                m.finish()?;
                p
            }
        };
        let admin = r.http(top.get("Admin"), "Admin", "127.0.0.1:9443", true)?;
        let (participation_enabled, participation_max_request_body_size) =
            match top.get("ChannelParticipation") {
                None => (false, 1024 * 1024),
                Some(c) => {
                    let mut c = Obj::new(c, "ChannelParticipation")?;
                    let t = (
                        c.boolean("Enabled")?,
                        match c.byte_size("MaxRequestBodySize")? {
                            0 => 1024 * 1024,
                            n => n,
                        },
                    );
                    c.finish()?;
                    t
                }
            };
        for ignored in ["Kafka", "Debug"] {
            let _ = top.get(ignored);
        }
        top.finish()?;
        let mut conf = LocalConfig {
            general,
            ledger_location,
            wal_dir,
            ack_after_commit_timeout_ns,
            eviction_suspicion_ns,
            fabric_block_cutting,
            fabric_membership_changes,
            preferred_leaders,
            snap_dir,
            operations,
            metrics_provider,
            admin,
            participation_enabled,
            participation_max_request_body_size,
        };
        conf.validate(ports)?;
        if ports == ListenPorts::Kernel {
            // Bound as port 0: the kernel chooses.
            conf.general.listen_port = 0;
            conf.general.cluster.listen_port = 0;
        }
        Ok(conf)
    }

    /// Refuses what cannot work.
    fn validate(&self, ports: ListenPorts) -> Result<(), LocalConfigError> {
        let g = &self.general;
        if g.bootstrap_method != "none" {
            return Err(err(format!(
                "General.BootstrapMethod is {:?}: Ordo has no system channel; set it to \"none\" and join channels through the channel participation API",
                g.bootstrap_method
            )));
        }
        if !self.participation_enabled {
            return Err(err(
                "ChannelParticipation.Enabled must be true: it is how channels are joined without a system channel",
            ));
        }
        if self.admin.tls.enabled && !self.admin.tls.client_auth_required {
            return Err(err(
                "Admin.TLS.ClientAuthRequired must be true when Admin.TLS.Enabled is true (the admin API needs mutual TLS)",
            ));
        }
        let c = &g.cluster;
        // With ports from the kernel, a cluster listener's address is enough: the file's
        // ListenPort would not be used.
        let port_unset =
            c.listen_port == 0 && (ports == ListenPorts::Configured || c.listen_address.is_empty());
        let parts = [
            ("ListenAddress", c.listen_address.is_empty()),
            ("ListenPort", port_unset),
            (
                "ServerCertificate",
                c.server_certificate.as_os_str().is_empty(),
            ),
            (
                "ServerPrivateKey",
                c.server_private_key.as_os_str().is_empty(),
            ),
        ];
        let set: Vec<&str> = parts
            .iter()
            .filter(|(_, empty)| !empty)
            .map(|(k, _)| *k)
            .collect();
        if !set.is_empty() && set.len() != parts.len() {
            return Err(err(format!(
                "General.Cluster.{{ListenAddress, ListenPort, ServerCertificate, ServerPrivateKey}} must be all set or all empty; only {} set",
                set.join(", ")
            )));
        }
        if !c.separate_listener() && !g.tls.enabled {
            return Err(err(
                "General.TLS.Enabled must be true when the cluster shares the general listener (Raft requires TLS)",
            ));
        }
        if g.tls.enabled
            && (g.tls.certificate.as_os_str().is_empty()
                || g.tls.private_key.as_os_str().is_empty())
        {
            return Err(err(
                "General.TLS.Certificate and General.TLS.PrivateKey are required when TLS is enabled",
            ));
        }
        if g.local_msp_id.is_empty() {
            return Err(err("General.LocalMSPID is required"));
        }
        Ok(())
    }
}
