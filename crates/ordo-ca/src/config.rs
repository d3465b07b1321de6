//! The server configuration: a YAML file using Fabric CA server's names where they fit
//! (`port`, `address`, `tls`, `db.datasource`, `registry.maxenrollments`,
//! `registry.identities`, `affiliations`, `signing`, `csr`, `crl.expiry`, `cfg.identities`),
//! plus `home` and `cas` (the CAs hosted in one process, `ca` and `tlsca` by default, as
//! fabric-operator runs them).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{CaError, ErrorCode};

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub port: u16,
    pub address: String,
    /// Where generated keys and certificates are written; relative paths in this file are
    /// relative to it.
    pub home: PathBuf,
    pub tls: TlsConfig,
    pub db: DbConfig,
    pub registry: RegistryConfig,
    /// Affiliation tree: `{org1: [department1, department2], org2: [department1]}`; nested maps
    /// are allowed.
    pub affiliations: serde_json::Value,
    pub signing: SigningConfig,
    pub csr: CsrConfig,
    pub crl: CrlConfig,
    pub cfg: CfgConfig,
    /// The CAs served by this process. The first one is the default.
    pub cas: Vec<CaEntry>,
    /// Fabric CA's `FABRIC_CA_SERVER_COMPATIBILITY_MODE_V1_3`: also accept tokens signed over
    /// `b64(body).b64(cert)` only (what fabric-sdk-py sends).
    pub compatibility_mode_v1_3: bool,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to complete the TLS handshake (Go duration syntax).
    pub tls_handshake_timeout: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 7054,
            address: "0.0.0.0".into(),
            home: PathBuf::from("."),
            tls: TlsConfig::default(),
            db: DbConfig::default(),
            registry: RegistryConfig::default(),
            affiliations: serde_json::json!({
                "org1": ["department1", "department2"],
                "org2": ["department1"],
            }),
            signing: SigningConfig::default(),
            csr: CsrConfig::default(),
            crl: CrlConfig::default(),
            cfg: CfgConfig::default(),
            cas: vec![CaEntry::named("ca"), CaEntry::named("tlsca")],
            compatibility_mode_v1_3: false,
            max_body_bytes: 1 << 20,
            max_connections: 1024,
            tls_handshake_timeout: "10s".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    pub enabled: bool,
    /// Server certificate and key; generated (issued by the default CA with the `tls` profile
    /// for `csr.hosts`) when empty, as Fabric CA does.
    pub certfile: String,
    pub keyfile: String,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: true,
            certfile: String::new(),
            keyfile: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DbConfig {
    /// SQLite database file (the only `type` supported).
    pub datasource: String,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            datasource: "fabric-ca-server.db".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RegistryConfig {
    pub maxenrollments: i64,
    pub identities: Vec<BootstrapIdentity>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            maxenrollments: -1,
            identities: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct BootstrapIdentity {
    pub name: String,
    pub pass: String,
    #[serde(default = "default_type")]
    pub r#type: String,
    #[serde(default)]
    pub affiliation: String,
    #[serde(default = "minus_one")]
    pub maxenrollments: i64,
    /// When absent, the bootstrap admin's attributes of Fabric CA's default configuration.
    #[serde(default)]
    pub attrs: Option<BTreeMap<String, serde_json::Value>>,
}

fn default_type() -> String {
    "client".into()
}

fn minus_one() -> i64 {
    -1
}

impl BootstrapIdentity {
    /// `-b admin:adminpw`.
    pub fn from_flag(flag: &str) -> Result<Self, CaError> {
        let (name, pass) = flag.split_once(':').ok_or_else(|| {
            CaError::bad_request(
                ErrorCode::Unknown,
                "bootstrap identity must be <name>:<password>",
            )
        })?;
        if name.is_empty() || pass.is_empty() {
            return Err(CaError::bad_request(
                ErrorCode::Unknown,
                "bootstrap identity name and password must not be empty",
            ));
        }
        Ok(BootstrapIdentity {
            name: name.into(),
            pass: pass.into(),
            r#type: default_type(),
            affiliation: String::new(),
            maxenrollments: -1,
            attrs: None,
        })
    }

    /// Attributes as (name, value) pairs, with Fabric CA's default registrar attributes when
    /// none are configured (`cmd/fabric-ca-server/config.go`).
    pub fn attributes(&self) -> Vec<(String, String)> {
        match &self.attrs {
            Some(m) => m
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect(),
            None => [
                ("hf.Registrar.Roles", "*"),
                ("hf.Registrar.DelegateRoles", "*"),
                ("hf.Revoker", "true"),
                ("hf.IntermediateCA", "true"),
                ("hf.GenCRL", "true"),
                ("hf.Registrar.Attributes", "*"),
                ("hf.AffiliationMgr", "true"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SigningConfig {
    pub default: ProfileConfig,
    pub profiles: BTreeMap<String, ProfileConfig>,
}

impl Default for SigningConfig {
    fn default() -> Self {
        let mut profiles = BTreeMap::new();
        profiles.insert(
            "tls".to_string(),
            ProfileConfig {
                usage: vec![
                    "signing".into(),
                    "key encipherment".into(),
                    "server auth".into(),
                    "client auth".into(),
                    "key agreement".into(),
                ],
                expiry: "8760h".into(),
                caconstraint: CaConstraint::default(),
            },
        );
        profiles.insert(
            "ca".to_string(),
            ProfileConfig {
                usage: vec!["cert sign".into(), "crl sign".into()],
                expiry: "43800h".into(),
                caconstraint: CaConstraint {
                    isca: true,
                    maxpathlen: 0,
                },
            },
        );
        SigningConfig {
            default: ProfileConfig::default(),
            profiles,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ProfileConfig {
    pub usage: Vec<String>,
    pub expiry: String,
    pub caconstraint: CaConstraint,
}

impl Default for ProfileConfig {
    fn default() -> Self {
        ProfileConfig {
            usage: vec!["digital signature".into()],
            expiry: "8760h".into(),
            caconstraint: CaConstraint::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CaConstraint {
    pub isca: bool,
    pub maxpathlen: u8,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CsrConfig {
    /// The root's common name; the CA's name when empty.
    pub cn: String,
    pub names: Vec<CsrName>,
    /// Host names and IPs of the server's generated TLS certificate.
    pub hosts: Vec<String>,
    pub ca: CsrCaConfig,
}

impl Default for CsrConfig {
    fn default() -> Self {
        CsrConfig {
            cn: String::new(),
            names: vec![CsrName {
                c: "US".into(),
                st: "North Carolina".into(),
                l: String::new(),
                o: "Hyperledger".into(),
                ou: "Fabric".into(),
            }],
            hosts: vec!["localhost".into(), "127.0.0.1".into()],
            ca: CsrCaConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CsrName {
    #[serde(rename = "C")]
    pub c: String,
    #[serde(rename = "ST")]
    pub st: String,
    #[serde(rename = "L")]
    pub l: String,
    #[serde(rename = "O")]
    pub o: String,
    #[serde(rename = "OU")]
    pub ou: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CsrCaConfig {
    pub expiry: String,
    pub pathlength: u8,
}

impl Default for CsrCaConfig {
    fn default() -> Self {
        CsrCaConfig {
            expiry: "131400h".into(),
            pathlength: 1,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CrlConfig {
    pub expiry: String,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            expiry: "24h".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CfgConfig {
    pub identities: IdentitiesCfg,
    pub affiliations: AllowRemove,
}

/// `cfg.identities`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IdentitiesCfg {
    pub allowremove: bool,
    /// Wrong secrets after which an identity is locked out of enroll (Fabric CA's
    /// `passwordattempts`). 0, the default here, disables the count: Fabric CA defaults to 10,
    /// but counting writes to the registry on every wrong secret.
    pub passwordattempts: i64,
}

impl Default for CfgConfig {
    fn default() -> Self {
        CfgConfig {
            identities: IdentitiesCfg {
                allowremove: true,
                passwordattempts: 0,
            },
            affiliations: AllowRemove { allowremove: true },
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AllowRemove {
    pub allowremove: bool,
}

/// One CA of the server (`ca.name`, `ca.certfile`, `ca.keyfile` of Fabric CA's per-CA config).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CaEntry {
    pub name: String,
    /// PEM root certificate and PKCS#8 key to load; generated under `<home>/<name>/` when empty.
    pub certfile: String,
    pub keyfile: String,
    /// The root's common name; `csr.cn` or the CA's name when empty.
    pub cn: String,
}

impl CaEntry {
    pub fn named(name: &str) -> Self {
        CaEntry {
            name: name.into(),
            ..CaEntry::default()
        }
    }
}

impl ServerConfig {
    pub fn from_yaml(text: &str) -> Result<Self, CaError> {
        let cfg: ServerConfig = serde_saphyr::from_str(text)
            .map_err(|e| CaError::Internal(format!("could not parse configuration: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), CaError> {
        if self.cas.is_empty() {
            return Err(CaError::Internal("no CA configured".into()));
        }
        for (i, c) in self.cas.iter().enumerate() {
            if c.name.is_empty() {
                return Err(CaError::Internal(format!("CA #{i} has no name")));
            }
            if self.cas[..i].iter().any(|o| o.name == c.name) {
                return Err(CaError::Internal(format!(
                    "CA name {:?} is repeated",
                    c.name
                )));
            }
        }
        parse_duration(&self.signing.default.expiry)?;
        for p in self.signing.profiles.values() {
            parse_duration(&p.expiry)?;
        }
        parse_duration(&self.csr.ca.expiry)?;
        parse_duration(&self.crl.expiry)?;
        parse_duration(&self.tls_handshake_timeout)?;
        if self.max_connections == 0 {
            return Err(CaError::Internal("max_connections must be positive".into()));
        }
        Ok(())
    }

    /// A path from this file, relative to `home`.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            self.home.join(p)
        }
    }

    /// All affiliation paths of the `affiliations` tree, parents first (`org1`,
    /// `org1.department1`, ...).
    pub fn affiliation_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk_affiliations(&self.affiliations, "", &mut out);
        out
    }
}

fn walk_affiliations(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                let p = join(k);
                out.push(p.clone());
                walk_affiliations(child, &p, out);
            }
        }
        serde_json::Value::Array(a) => {
            for item in a {
                match item {
                    serde_json::Value::String(s) => out.push(join(s)),
                    other => walk_affiliations(other, prefix, out),
                }
            }
        }
        serde_json::Value::String(s) => out.push(join(s)),
        _ => {}
    }
}

/// Go's duration syntax as Fabric CA's configuration uses it (`8760h`, `30m`, `1h30m`, `45s`).
pub fn parse_duration(s: &str) -> Result<Duration, CaError> {
    let bad = || CaError::Internal(format!("invalid duration {s:?}"));
    let mut total = 0u64;
    let mut num = String::new();
    if s.is_empty() {
        return Err(bad());
    }
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match ch {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("8760h").unwrap().as_secs(), 8760 * 3600);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert!(parse_duration("10d").is_err());
        assert!(parse_duration("h").is_err());
    }

    #[test]
    fn default_affiliations_flatten() {
        let c = ServerConfig::default();
        assert_eq!(
            c.affiliation_paths(),
            vec![
                "org1",
                "org1.department1",
                "org1.department2",
                "org2",
                "org2.department1"
            ]
        );
    }

    #[test]
    fn yaml_with_fabric_names() {
        let c = ServerConfig::from_yaml(
            "port: 7055\nregistry:\n  maxenrollments: 3\n  identities:\n    - name: admin\n      pass: adminpw\ncas:\n  - name: ca\n",
        )
        .unwrap();
        assert_eq!(c.port, 7055);
        assert_eq!(c.registry.maxenrollments, 3);
        assert_eq!(c.registry.identities[0].r#type, "client");
        assert_eq!(c.cas.len(), 1);
    }
}
