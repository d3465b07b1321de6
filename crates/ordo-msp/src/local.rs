//! MSP folders in Fabric's layout (`msp/configbuilder.go`): `cacerts/`, `intermediatecerts/`,
//! `admincerts/`, `tlscacerts/`, `tlsintermediatecerts/`, `crls/`, `config.yaml`, and for a
//! signing identity `signcerts/` and `keystore/`.
//!
//! [`verifying_config`] builds the `MSPConfig` that goes into a channel configuration (what
//! configtxgen puts in an organization's `MSP` value); [`load_signing_identity`] reads the
//! identity a node or an admin signs with.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use ordo_crypto::SigningKey;
use ordo_proto::msp::{
    FabricCryptoConfig, FabricMspConfig, FabricNodeOUs, FabricOuIdentifier, MspConfig,
};
use prost::Message;
use serde::Deserialize;

use crate::{Msp, MspError, SigningIdentity};

fn folder_err(path: &Path, reason: impl Into<String>) -> MspError {
    MspError::Folder {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Every file of `dir` that holds PEM, whole, sorted by file name (`getPemMaterialFromDir`).
/// `Ok(None)` when the folder does not exist. Sub-folders and files without PEM are skipped, as
/// Fabric does (it only logs them).
fn pem_files(dir: &Path) -> Result<Option<Vec<Bytes>>, MspError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(folder_err(dir, e.to_string())),
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| {
            e.map(|e| e.path())
                .map_err(|e| folder_err(dir, e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        // `metadata` follows symlinks, as Go's os.Stat (Kubernetes mounts are symlinks).
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => {}
            _ => continue,
        }
        let raw = std::fs::read(&p).map_err(|e| folder_err(&p, e.to_string()))?;
        if ordo_crypto::x509::first_pem_der(&raw).is_ok() {
            out.push(Bytes::from(raw));
        }
    }
    Ok(Some(out))
}

#[derive(Debug, Default, Deserialize)]
struct OuConfig {
    #[serde(rename = "Certificate", default)]
    certificate: String,
    #[serde(rename = "OrganizationalUnitIdentifier", default)]
    organizational_unit_identifier: String,
}

#[derive(Debug, Default, Deserialize)]
struct NodeOusConfig {
    #[serde(rename = "Enable", default)]
    enable: bool,
    #[serde(rename = "ClientOUIdentifier")]
    client: Option<OuConfig>,
    #[serde(rename = "PeerOUIdentifier")]
    peer: Option<OuConfig>,
    #[serde(rename = "AdminOUIdentifier")]
    admin: Option<OuConfig>,
    #[serde(rename = "OrdererOUIdentifier")]
    orderer: Option<OuConfig>,
}

#[derive(Debug, Default, Deserialize)]
struct MspFolderConfig {
    #[serde(rename = "OrganizationalUnitIdentifiers", default)]
    organizational_unit_identifiers: Vec<OuConfig>,
    #[serde(rename = "NodeOUs")]
    node_ous: Option<NodeOusConfig>,
}

/// Fabric joins even absolute paths under the MSP folder (`filepath.Join`).
fn join_under(dir: &Path, rel: &str) -> PathBuf {
    dir.join(rel.trim_start_matches('/'))
}

/// The `FabricMSPConfig` of an MSP folder without signing identity (`GetVerifyingMspConfig`).
pub fn verifying_fabric_config(dir: &Path, msp_id: &str) -> Result<FabricMspConfig, MspError> {
    let cacerts_dir = dir.join("cacerts");
    let root_certs = match pem_files(&cacerts_dir)? {
        Some(v) if !v.is_empty() => v,
        // Fabric returns (nil, nil) for an empty cacerts folder and configtxgen then crashes;
        // refusing it is the useful behaviour.
        _ => {
            return Err(folder_err(
                &cacerts_dir,
                "could not load a valid ca certificate from directory",
            ));
        }
    };
    let admins = pem_files(&dir.join("admincerts"))?.unwrap_or_default();
    let intermediate_certs = pem_files(&dir.join("intermediatecerts"))?.unwrap_or_default();
    let tls_root_certs = pem_files(&dir.join("tlscacerts"))?.unwrap_or_default();
    let tls_intermediate_certs = if tls_root_certs.is_empty() {
        Vec::new()
    } else {
        pem_files(&dir.join("tlsintermediatecerts"))?.unwrap_or_default()
    };
    let revocation_list = pem_files(&dir.join("crls"))?.unwrap_or_default();

    let mut ouis = Vec::new();
    let mut node_ous = None;
    let config_file = dir.join("config.yaml");
    if config_file.is_file() {
        let raw = std::fs::read_to_string(&config_file)
            .map_err(|e| folder_err(&config_file, e.to_string()))?;
        let conf: MspFolderConfig = serde_saphyr::from_str(&raw)
            .map_err(|e| folder_err(&config_file, format!("could not parse: {e}")))?;
        for ou in &conf.organizational_unit_identifiers {
            let f = join_under(dir, &ou.certificate);
            let certificate = std::fs::read(&f).map_err(|e| {
                folder_err(
                    &f,
                    format!("failed loading OrganizationalUnit certificate: {e}"),
                )
            })?;
            ouis.push(FabricOuIdentifier {
                certificate: certificate.into(),
                organizational_unit_identifier: ou.organizational_unit_identifier.clone(),
            });
        }
        if let Some(n) = conf.node_ous.filter(|n| n.enable) {
            // An unreadable certificate only loses the certifier restriction, as in Fabric.
            let ou = |o: &Option<OuConfig>| {
                o.as_ref()
                    .filter(|o| !o.organizational_unit_identifier.is_empty())
                    .map(|o| FabricOuIdentifier {
                        certificate: if o.certificate.is_empty() {
                            Bytes::new()
                        } else {
                            std::fs::read(join_under(dir, &o.certificate))
                                .map(Bytes::from)
                                .unwrap_or_default()
                        },
                        organizational_unit_identifier: o.organizational_unit_identifier.clone(),
                    })
            };
            node_ous = Some(FabricNodeOUs {
                enable: true,
                client_ou_identifier: ou(&n.client),
                peer_ou_identifier: ou(&n.peer),
                admin_ou_identifier: ou(&n.admin),
                orderer_ou_identifier: ou(&n.orderer),
            });
        }
    }

    Ok(FabricMspConfig {
        name: msp_id.to_string(),
        root_certs,
        intermediate_certs,
        admins,
        revocation_list,
        signing_identity: None,
        organizational_unit_identifiers: ouis,
        crypto_config: Some(FabricCryptoConfig {
            signature_hash_family: "SHA2".to_string(),
            identity_identifier_hash_function: "SHA256".to_string(),
        }),
        tls_root_certs,
        tls_intermediate_certs,
        fabric_node_ous: node_ous,
    })
}

/// The `MSPConfig` (type FABRIC) of an MSP folder, as configtxgen puts it in a channel config.
pub fn verifying_config(dir: &Path, msp_id: &str) -> Result<MspConfig, MspError> {
    let fabric = verifying_fabric_config(dir, msp_id)?;
    Ok(MspConfig {
        r#type: 0,
        config: fabric.encode_to_vec().into(),
    })
}

/// A local MSP: the MSP of the folder and the identity that signs with its `signcerts` and
/// `keystore`.
#[derive(Debug)]
pub struct LocalMsp {
    pub msp: Msp,
    pub signer: SigningIdentity,
}

/// Reads an MSP folder with its signing identity: the first certificate in `signcerts/` and the
/// key in `keystore/` that matches it (Fabric's keystore finds keys by the certificate's key, not
/// by file name, so any file name works). The signing identity must be valid under the MSP.
pub fn load_signing_identity(dir: &Path, msp_id: &str) -> Result<LocalMsp, MspError> {
    let msp = Msp::new(&verifying_fabric_config(dir, msp_id)?)?;
    let signcerts = dir.join("signcerts");
    let cert_pem = pem_files(&signcerts)?
        .and_then(|v| v.into_iter().next())
        .ok_or_else(|| folder_err(&signcerts, "could not load a valid signer certificate"))?;
    let cert = crate::Cert::from_pem(&cert_pem)?;
    let keystore = dir.join("keystore");
    let key = find_key(&keystore, cert.public_key())?;
    let signer = SigningIdentity::new(msp_id, cert_pem, key)?;
    let id = msp.identity_from_pem(signer.cert_pem())?;
    msp.validate(&id)
        .map_err(|e| MspError::Setup(format!("signing identity is not valid: {e}")))?;
    Ok(LocalMsp { msp, signer })
}

/// The private key in `keystore` whose public key is `public`.
pub fn find_key(keystore: &Path, public: &ordo_crypto::PublicKey) -> Result<SigningKey, MspError> {
    let entries = std::fs::read_dir(keystore).map_err(|e| folder_err(keystore, e.to_string()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let Ok(raw) = std::fs::read(&p) else { continue };
        if let Ok(key) = SigningKey::from_pem(&raw)
            && key.public_key() == public
        {
            return Ok(key);
        }
    }
    Err(folder_err(
        keystore,
        "no private key matching the signing certificate",
    ))
}
