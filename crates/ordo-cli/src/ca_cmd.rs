//! `ordo ca`: a Fabric-CA-compatible server and its client. Flag names follow
//! `fabric-ca-server` and `fabric-ca-client` (`-b`, `-u`, `--caname`, `--tls.certfiles`, `-M`,
//! `--enrollment.profile`, `--csr.hosts`, `--id.*`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ordo_ca::client::{
    CaClient, EnrollOptions, Enrollment, RegistrationRequest, RevocationRequest, build_org_msp,
    cert_label, write_msp_folder, write_tls_folder,
};
use ordo_ca::config::{BootstrapIdentity, ServerConfig};

#[derive(Subcommand)]
pub enum CaCommand {
    /// Starts the CA server (several CAs in one process: `ca` and `tlsca` by default).
    Start {
        /// Server configuration (Fabric CA server's names).
        #[arg(long, default_value = "ca.yaml")]
        config: PathBuf,
        /// Bootstrap identity `<name>:<password>`.
        #[arg(short = 'b', long = "boot")]
        boot: Option<String>,
        /// Overrides `port`.
        #[arg(long)]
        port: Option<u16>,
        /// Overrides `home`.
        #[arg(long)]
        home: Option<PathBuf>,
    },
    /// Enrolls an identity into an MSP folder (a TLS folder with `--enrollment.profile tls`).
    Enroll {
        #[command(flatten)]
        conn: Conn,
        /// Output folder.
        #[arg(short = 'M', long = "mspdir", default_value = "msp")]
        mspdir: PathBuf,
        #[arg(long = "enrollment.profile", default_value = "")]
        profile: String,
        /// SANs (comma-separated).
        #[arg(long = "csr.hosts", value_delimiter = ',')]
        hosts: Vec<String>,
    },
    /// Reenrolls the identity of an MSP folder (new key), rewriting it.
    Reenroll {
        #[command(flatten)]
        conn: Conn,
        #[arg(short = 'M', long = "mspdir", default_value = "msp")]
        mspdir: PathBuf,
        #[arg(long = "enrollment.profile", default_value = "")]
        profile: String,
        #[arg(long = "csr.hosts", value_delimiter = ',')]
        hosts: Vec<String>,
    },
    /// Registers an identity, as the registrar whose MSP folder is `-M`; prints its secret.
    Register {
        #[command(flatten)]
        conn: Conn,
        #[arg(short = 'M', long = "mspdir", default_value = "msp")]
        mspdir: PathBuf,
        #[arg(long = "id.name")]
        name: String,
        #[arg(long = "id.secret", default_value = "")]
        secret: String,
        #[arg(long = "id.type", default_value = "client")]
        id_type: String,
        #[arg(long = "id.affiliation", default_value = "")]
        affiliation: String,
        #[arg(
            long = "id.maxenrollments",
            default_value_t = 0,
            allow_hyphen_values = true
        )]
        max_enrollments: i64,
        /// `name=value[:ecert]`, comma-separated.
        #[arg(long = "id.attrs", value_delimiter = ',')]
        attrs: Vec<String>,
    },
    /// Revokes an identity (`-e`) or one certificate (`-s` and `-a`).
    Revoke {
        #[command(flatten)]
        conn: Conn,
        #[arg(short = 'M', long = "mspdir", default_value = "msp")]
        mspdir: PathBuf,
        #[arg(short = 'e', long = "revoke.name", default_value = "")]
        name: String,
        #[arg(short = 's', long = "revoke.serial", default_value = "")]
        serial: String,
        #[arg(short = 'a', long = "revoke.aki", default_value = "")]
        aki: String,
        #[arg(short = 'r', long = "revoke.reason", default_value = "")]
        reason: String,
        /// Also generate a CRL into `<mspdir>/crls/crl.pem`.
        #[arg(long)]
        gencrl: bool,
    },
    /// Generates a CRL into `<mspdir>/crls/crl.pem`.
    Gencrl {
        #[command(flatten)]
        conn: Conn,
        #[arg(short = 'M', long = "mspdir", default_value = "msp")]
        mspdir: PathBuf,
    },
    /// Assembles an organization's MSP definition folder from the CA and the TLS CA: cacerts,
    /// tlscacerts, config.yaml with NodeOUs enabled, admincerts optionally.
    Msp {
        #[command(flatten)]
        conn: Conn,
        /// The TLS CA's name on the same server.
        #[arg(long = "tlscaname", default_value = "tlsca")]
        tlscaname: String,
        /// Output folder.
        #[arg(short = 'o', long = "output", default_value = "org-msp")]
        output: PathBuf,
        /// Admin certificates to put in admincerts/ (not needed with NodeOUs).
        #[arg(long = "admincert")]
        admincerts: Vec<PathBuf>,
    },
}

/// Where the server is.
#[derive(Args, Clone)]
pub struct Conn {
    /// `https://[user:secret@]host:port`.
    #[arg(short = 'u', long = "url", default_value = "https://localhost:7054")]
    url: String,
    #[arg(long = "caname", default_value = "")]
    caname: String,
    /// PEM files the server's TLS certificate chains to.
    #[arg(long = "tls.certfiles", value_delimiter = ',')]
    tls_certfiles: Vec<PathBuf>,
}

/// `user:secret` of an enroll URL.
type Credentials = Option<(String, String)>;

impl Conn {
    /// The client, the URL's user:secret if any, and the URL without them.
    fn client(&self) -> anyhow::Result<(CaClient, Credentials, String)> {
        let (scheme, rest) = self
            .url
            .split_once("://")
            .with_context(|| format!("invalid URL {}", self.url))?;
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => {
                let (u, p) = c
                    .split_once(':')
                    .context("URL credentials must be user:secret")?;
                (Some((u.to_string(), p.to_string())), h)
            }
            None => (None, rest),
        };
        let url = format!("{scheme}://{hostport}");
        let mut roots = Vec::new();
        for f in &self.tls_certfiles {
            roots.push(
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            );
        }
        let client = CaClient::new(&url, &roots, &self.caname)?;
        Ok((client, creds, url))
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The identity of an MSP folder: `signcerts/` and the matching key in `keystore/`.
fn load_identity(dir: &Path) -> anyhow::Result<Enrollment> {
    let first_file = |sub: &str| -> anyhow::Result<Vec<PathBuf>> {
        let d = dir.join(sub);
        let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
            .with_context(|| format!("reading {}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        Ok(v)
    };
    let cert_path = first_file("signcerts")?
        .into_iter()
        .next()
        .context("no certificate in signcerts/")?;
    let cert_pem = std::fs::read_to_string(&cert_path)?;
    let cert_der = ordo_crypto::x509::first_pem_der(cert_pem.as_bytes())?;
    let public = ordo_crypto::x509::certificate_public_key(&cert_der)?;
    let mut key_pem = None;
    for k in first_file("keystore")? {
        let raw = std::fs::read_to_string(&k)?;
        if ordo_crypto::SigningKey::from_pem(raw.as_bytes())
            .is_ok_and(|key| key.public_key() == &public)
        {
            key_pem = Some(raw);
            break;
        }
    }
    let mut chain = String::new();
    for sub in [
        "cacerts",
        "intermediatecerts",
        "tlscacerts",
        "tlsintermediatecerts",
    ] {
        if dir.join(sub).is_dir() {
            for f in first_file(sub)? {
                chain.push_str(&std::fs::read_to_string(f)?);
            }
        }
    }
    Ok(Enrollment {
        cert_pem,
        key_pem: key_pem.context("no key in keystore/ matches the certificate")?,
        chain_pem: chain,
        ca_name: String::new(),
    })
}

fn write_enrollment(dir: &Path, e: &Enrollment, profile: &str, url: &str) -> anyhow::Result<()> {
    let label = cert_label(url, &e.ca_name);
    if profile == "tls" {
        write_tls_folder(dir, e, &label)?;
    } else {
        write_msp_folder(dir, e, &label)?;
    }
    Ok(())
}

pub fn run(cmd: CaCommand) -> anyhow::Result<()> {
    match cmd {
        CaCommand::Start {
            config,
            boot,
            port,
            home,
        } => start(config, boot, port, home),
        CaCommand::Enroll {
            conn,
            mspdir,
            profile,
            hosts,
        } => {
            let (client, creds, url) = conn.client()?;
            let (id, secret) = creds.context("enroll needs https://<id>:<secret>@host:port")?;
            let opts = EnrollOptions {
                profile: profile.clone(),
                hosts,
                attr_reqs: None,
            };
            let e = runtime()?.block_on(client.enroll(&id, &secret, &opts))?;
            write_enrollment(&mspdir, &e, &profile, &url)?;
            println!("enrolled {id} into {}", mspdir.display());
            Ok(())
        }
        CaCommand::Reenroll {
            conn,
            mspdir,
            profile,
            hosts,
        } => {
            let (client, _, url) = conn.client()?;
            let who = load_identity(&mspdir)?;
            let opts = EnrollOptions {
                profile: profile.clone(),
                hosts,
                attr_reqs: None,
            };
            let e = runtime()?.block_on(client.reenroll(&who, &opts))?;
            // The old key goes: a reenrolled folder holds exactly one identity.
            let _ = std::fs::remove_dir_all(mspdir.join("keystore"));
            write_enrollment(&mspdir, &e, &profile, &url)?;
            println!("reenrolled into {}", mspdir.display());
            Ok(())
        }
        CaCommand::Register {
            conn,
            mspdir,
            name,
            secret,
            id_type,
            affiliation,
            max_enrollments,
            attrs,
        } => {
            let (client, _, _) = conn.client()?;
            let who = load_identity(&mspdir)?;
            let mut parsed = Vec::new();
            for a in attrs {
                let (n, v) = a
                    .split_once('=')
                    .context("attributes are name=value[:ecert]")?;
                let (v, ecert) = match v.strip_suffix(":ecert") {
                    Some(v) => (v, true),
                    None => (v, false),
                };
                parsed.push(ordo_ca::registry::Attribute {
                    name: n.to_string(),
                    value: v.to_string(),
                    ecert,
                });
            }
            let req = RegistrationRequest {
                id: name,
                id_type,
                secret,
                max_enrollments,
                affiliation,
                attrs: parsed,
            };
            let secret = runtime()?.block_on(client.register(&who, &req))?;
            println!("Password: {secret}");
            Ok(())
        }
        CaCommand::Revoke {
            conn,
            mspdir,
            name,
            serial,
            aki,
            reason,
            gencrl,
        } => {
            if name.is_empty() && (serial.is_empty() || aki.is_empty()) {
                bail!("revoke needs --revoke.name, or --revoke.serial and --revoke.aki");
            }
            let (client, _, _) = conn.client()?;
            let who = load_identity(&mspdir)?;
            let req = RevocationRequest {
                id: name,
                serial,
                aki,
                reason,
                gencrl,
            };
            let r = runtime()?.block_on(client.revoke(&who, &req))?;
            println!("{}", r["RevokedCerts"]);
            if let Some(crl) = r["CRL"].as_str().filter(|c| !c.is_empty()) {
                use base64::Engine;
                let pem = base64::engine::general_purpose::STANDARD.decode(crl)?;
                write_crl(&mspdir, &String::from_utf8(pem)?)?;
            }
            Ok(())
        }
        CaCommand::Gencrl { conn, mspdir } => {
            let (client, _, _) = conn.client()?;
            let who = load_identity(&mspdir)?;
            let crl = runtime()?.block_on(client.gencrl(&who))?;
            write_crl(&mspdir, &crl)?;
            Ok(())
        }
        CaCommand::Msp {
            conn,
            tlscaname,
            output,
            admincerts,
        } => {
            let (client, _, _) = conn.client()?;
            let tls_client = client.with_ca_name(&tlscaname);
            let rt = runtime()?;
            let (_, chain) = rt.block_on(client.cainfo())?;
            let (_, tls_chain) = rt.block_on(tls_client.cainfo())?;
            let mut admins = Vec::new();
            for a in admincerts {
                admins.push(
                    std::fs::read_to_string(&a)
                        .with_context(|| format!("reading {}", a.display()))?,
                );
            }
            build_org_msp(&output, &chain, &tls_chain, &admins)?;
            println!("wrote the organization MSP to {}", output.display());
            Ok(())
        }
    }
}

fn write_crl(mspdir: &Path, pem: &str) -> anyhow::Result<()> {
    let dir = mspdir.join("crls");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("crl.pem"), pem)?;
    println!("wrote {}", dir.join("crl.pem").display());
    Ok(())
}

fn start(
    config: PathBuf,
    boot: Option<String>,
    port: Option<u16>,
    home: Option<PathBuf>,
) -> anyhow::Result<()> {
    let spec = std::env::var("FABRIC_LOGGING_SPEC").unwrap_or_else(|_| "info".to_string());
    let format = std::env::var("FABRIC_LOGGING_FORMAT").unwrap_or_default();
    ordo_orderer::logging::init(&spec, &format).context("logging")?;
    let mut cfg = if config.exists() {
        let text = std::fs::read_to_string(&config)
            .with_context(|| format!("reading {}", config.display()))?;
        let mut cfg = ServerConfig::from_yaml(&text)?;
        // Relative `home` is relative to the configuration file, as Fabric CA's is.
        if cfg.home.is_relative()
            && let Some(dir) = config.parent()
        {
            cfg.home = dir.join(&cfg.home);
        }
        cfg
    } else {
        ServerConfig::default()
    };
    if let Some(p) = port {
        cfg.port = p;
    }
    if let Some(h) = home {
        cfg.home = h;
    }
    let bootstrap = boot.map(|b| BootstrapIdentity::from_flag(&b)).transpose()?;
    if bootstrap.is_none() && cfg.registry.identities.is_empty() {
        bail!("no bootstrap identity: pass -b <name>:<password> or set registry.identities");
    }
    runtime()?.block_on(async move {
        let server = ordo_ca::start(&cfg, bootstrap).await?;
        let scheme = if cfg.tls.enabled { "https" } else { "http" };
        // One line that scripts and tests wait for.
        println!("ordo ca started: {scheme}://{}", server.addr);
        shutdown_signal().await;
        server.stop().await;
        Ok(())
    })
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
