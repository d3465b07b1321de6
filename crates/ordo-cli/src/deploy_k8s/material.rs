//! An orderer organization's node material read from Fabric's cryptogen layout
//! (`ordererOrganizations/<domain>/orderers/<node>/{msp,tls}`), which cryptogen, `ordo demo
//! --dir` and Fabric CA enrollments arranged the same way produce. The only file reading of the
//! generator: everything after works on what this returns.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Why the crypto material could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} has no orderer organization (expected ordererOrganizations/<domain>/orderers/<node>/{{msp,tls}}, as cryptogen writes)"
    )]
    NoOrdererOrg(PathBuf),
    #[error("{dir} has several orderer organizations ({domains}): choose one with --org-domain")]
    SeveralOrdererOrgs { dir: PathBuf, domains: String },
    #[error("{0} has no orderer folders")]
    NoOrderers(PathBuf),
    #[error("orderer {node}: {what} is missing ({path})")]
    Missing {
        node: String,
        what: &'static str,
        path: PathBuf,
    },
    #[error("orderer {node}: {path} is not UTF-8, so it cannot be a file name in a Secret")]
    NonUtf8Path { node: String, path: PathBuf },
    #[error("orderer {node}: its TLS certificate {path} cannot be read: {reason}")]
    BadTlsCert {
        node: String,
        path: PathBuf,
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MaterialError + '_ {
    move |source| MaterialError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An orderer's TLS files, as cryptogen names them in `tls/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `server.crt`: the node's certificate (and any intermediates after it).
    pub cert: Vec<u8>,
    /// `server.key`.
    pub key: Vec<u8>,
    /// `ca.crt`: the TLS root CA(s) of the organization.
    pub ca: Vec<u8>,
}

/// One orderer's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMaterial {
    /// The folder's name (`orderer1.example.com`; `os1` in `ordo demo`'s layout).
    pub folder: String,
    /// Every file under `msp/`, by its path relative to `msp/` with '/' separators.
    pub msp: BTreeMap<String, Vec<u8>>,
    pub tls: TlsFiles,
    /// The DNS names of the TLS certificate's subject alternative names.
    pub tls_dns_names: Vec<String>,
}

/// The domain of the only orderer organization under `crypto_config`.
pub fn only_orderer_org(crypto_config: &Path) -> Result<String, MaterialError> {
    let orgs = crypto_config.join("ordererOrganizations");
    if !orgs.is_dir() {
        return Err(MaterialError::NoOrdererOrg(crypto_config.to_path_buf()));
    }
    let mut domains = subfolders(&orgs)?;
    match domains.len() {
        0 => Err(MaterialError::NoOrdererOrg(crypto_config.to_path_buf())),
        1 => Ok(domains.remove(0)),
        _ => Err(MaterialError::SeveralOrdererOrgs {
            dir: orgs,
            domains: domains.join(", "),
        }),
    }
}

/// Every orderer of organization `domain` under `crypto_config`, in natural order of their
/// folder names (orderer2 before orderer10).
pub fn read_orderers(
    crypto_config: &Path,
    domain: &str,
) -> Result<Vec<NodeMaterial>, MaterialError> {
    let dir = crypto_config
        .join("ordererOrganizations")
        .join(domain)
        .join("orderers");
    if !dir.is_dir() {
        return Err(MaterialError::NoOrderers(dir));
    }
    let mut folders = subfolders(&dir)?;
    if folders.is_empty() {
        return Err(MaterialError::NoOrderers(dir));
    }
    folders.sort_by_key(|f| natural_key(f));
    folders
        .into_iter()
        .map(|f| read_node(&dir.join(&f), f))
        .collect()
}

fn read_node(dir: &Path, folder: String) -> Result<NodeMaterial, MaterialError> {
    let msp_dir = dir.join("msp");
    let mut msp = BTreeMap::new();
    if msp_dir.is_dir() {
        read_tree(&msp_dir, &msp_dir, &folder, &mut msp)?;
    }
    // The MSP loader needs at least these; saying so here beats a pod that crash-loops.
    for (sub, what) in [
        (
            "signcerts/",
            "the MSP's signing certificate (msp/signcerts/)",
        ),
        ("keystore/", "the MSP's private key (msp/keystore/)"),
        ("cacerts/", "the MSP's CA certificate (msp/cacerts/)"),
    ] {
        if !msp.keys().any(|k| k.starts_with(sub)) {
            return Err(MaterialError::Missing {
                node: folder,
                what,
                path: msp_dir.join(sub),
            });
        }
    }
    let tls_dir = dir.join("tls");
    let read = |name: &str, what: &'static str| {
        let path = tls_dir.join(name);
        fs::read(&path).map_err(|_| MaterialError::Missing {
            node: folder.clone(),
            what,
            path,
        })
    };
    let tls = TlsFiles {
        cert: read("server.crt", "the TLS certificate")?,
        key: read("server.key", "the TLS private key")?,
        ca: read("ca.crt", "the TLS CA certificate")?,
    };
    let tls_dns_names = dns_names(&tls.cert).map_err(|reason| MaterialError::BadTlsCert {
        node: folder.clone(),
        path: tls_dir.join("server.crt"),
        reason,
    })?;
    Ok(NodeMaterial {
        folder,
        msp,
        tls,
        tls_dns_names,
    })
}

/// Reads every file under `dir` into `out`, keyed by its path relative to `root`. Symbolic
/// links are followed, as the orderer itself would when it reads the folder.
fn read_tree(
    root: &Path,
    dir: &Path,
    node: &str,
    out: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), MaterialError> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let meta = fs::metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            read_tree(root, &path, node, out)?;
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)
                .ok()
                .and_then(|r| {
                    r.components()
                        .map(|c| c.as_os_str().to_str())
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| MaterialError::NonUtf8Path {
                    node: node.to_string(),
                    path: path.clone(),
                })?
                .join("/");
            out.insert(rel, fs::read(&path).map_err(io(&path))?);
        }
    }
    Ok(())
}

fn subfolders(dir: &Path) -> Result<Vec<String>, MaterialError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        if path.is_dir()
            && let Some(name) = entry.file_name().to_str()
        {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Sorts `orderer2` before `orderer10`: runs of digits compare as numbers.
fn natural_key(s: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let text_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (text, tail) = rest.split_at(text_len);
        let digits_len = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (digits, tail) = tail.split_at(digits_len);
        key.push((text.to_string(), digits.parse().unwrap_or(u64::MAX)));
        rest = tail;
    }
    key
}

/// The DNS subject alternative names of the first certificate in PEM `pem`.
fn dns_names(pem: &[u8]) -> Result<Vec<String>, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not PEM: {e}"))?;
    let cert = block
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subject alternative names: {e}"))?;
    Ok(san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["orderer10", "orderer2", "orderer1", "os1"];
        v.sort_by_key(|f| natural_key(f));
        assert_eq!(v, ["orderer1", "orderer2", "orderer10", "os1"]);
    }
}
