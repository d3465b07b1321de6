//! The etcdraft parts of a channel configuration: Raft options, consenters and the checks Fabric
//! applies to them (`orderer/consensus/etcdraft/util.go` `VerifyConfigMetadata`,
//! `validateConsenterTLSCerts`, `MetadataHasDuplication`, `membership.go`
//! `ComputeMembershipChanges`).

use std::sync::Arc;

use ordo_msp::Cert;
use ordo_msp::chain::{ChainError, KeyUsage, Pool, verify_chains, verify_chains_any_leaf_time};
use ordo_proto::etcdraft::{ConfigMetadata, Consenter};

use crate::ConfigError;
use crate::duration::parse_go_duration;

/// The TLS CAs of a channel's orderer organizations: what consenter certificates must chain to.
#[derive(Debug, Default, Clone)]
pub struct TlsPools {
    pub roots: Vec<Arc<Cert>>,
    pub intermediates: Vec<Arc<Cert>>,
}

impl TlsPools {
    /// Builds the pools from PEM entries as configured in the orderer orgs' MSPs (the first PEM
    /// block of each entry).
    pub fn from_pem<'a>(
        roots: impl IntoIterator<Item = &'a [u8]>,
        intermediates: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, ConfigError> {
        let parse = |which: &str, pem: &[u8]| {
            Cert::from_pem(pem)
                .map(Arc::new)
                .map_err(|e| ConfigError::Invalid(format!("parsing tls {which} certs: {e}")))
        };
        Ok(TlsPools {
            roots: roots
                .into_iter()
                .map(|p| parse("root", p))
                .collect::<Result<_, _>>()?,
            intermediates: intermediates
                .into_iter()
                .map(|p| parse("intermediate", p))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Go's big-endian integer as decimal (Fabric prints serial numbers with `%d`).
fn decimal(be: &[u8]) -> String {
    let mut digits = vec![0u8]; // little-endian base-10
    for &byte in be {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

/// A consenter TLS certificate that cannot be used (Fabric's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsenterCertError {
    #[error("parsing tls {which} cert of {host}:{port}: {source}")]
    Parse {
        which: &'static str,
        host: String,
        port: u32,
        #[source]
        source: ordo_msp::MspError,
    },
    #[error("verifying tls {which} cert with serial number {serial}: {source}")]
    Verify {
        which: &'static str,
        serial: String,
        #[source]
        source: ChainError,
    },
}

/// Why etcdraft's config metadata is not acceptable (Fabric's `VerifyConfigMetadata` words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("nil Raft config metadata options")]
    NoOptions,
    #[error(
        "none of HeartbeatTick ({heartbeat}), ElectionTick ({election}) and MaxInflightBlocks ({inflight}) can be zero"
    )]
    ZeroOption {
        heartbeat: u32,
        election: u32,
        inflight: u32,
    },
    #[error("ElectionTick ({election}) must be greater than HeartbeatTick ({heartbeat})")]
    ElectionTickTooSmall { election: u32, heartbeat: u32 },
    #[error("failed to parse TickInterval ({value}) to time duration: {reason}")]
    BadTickInterval { value: String, reason: String },
    #[error("TickInterval cannot be zero")]
    ZeroTickInterval,
    #[error("empty consenter set")]
    NoConsenters,
    #[error("consenter {host}:{port} has invalid certificate: {source}")]
    InvalidCertificate {
        host: String,
        port: u32,
        #[source]
        source: Box<ConsenterCertError>,
    },
    #[error(transparent)]
    Duplicate(#[from] DuplicateConsenter),
}

/// A certificate used by two consenters (Fabric's `MetadataHasDuplication` words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("duplicate consenter: server cert: {server}, client cert: {client}")]
pub struct DuplicateConsenter {
    pub server: String,
    pub client: String,
}

/// Fabric's `validateConsenterTLSCerts`: both the client and the server certificate (PEM) must
/// chain, at `now`, to the orderer orgs' TLS CAs for client or server authentication. With
/// `ignore_expiration`, only the leaf's own validity period is forgiven.
pub fn validate_consenter_certs(
    c: &Consenter,
    pools: &TlsPools,
    now: i64,
    ignore_expiration: bool,
) -> Result<(), ConsenterCertError> {
    let pool = Pool {
        roots: &pools.roots,
        intermediates: &pools.intermediates,
    };
    for (which, pem) in [
        ("client", &c.client_tls_cert),
        ("server", &c.server_tls_cert),
    ] {
        let cert = Cert::from_pem(pem).map_err(|source| ConsenterCertError::Parse {
            which,
            host: c.host.clone(),
            port: c.port,
            source,
        })?;
        let unverified = |source| ConsenterCertError::Verify {
            which,
            serial: decimal(cert.serial()),
            source,
        };
        match verify_chains(&cert, &pool, now, KeyUsage::ClientOrServerAuth) {
            Ok(_) => {}
            Err(ChainError::LeafExpired) if ignore_expiration => {
                // Everything but the leaf's own validity period still has to hold.
                verify_chains_any_leaf_time(&cert, &pool, now, KeyUsage::ClientOrServerAuth)
                    .map_err(unverified)?;
            }
            Err(e) => return Err(unverified(e)),
        }
    }
    Ok(())
}

/// Fabric's `MetadataHasDuplication`: no certificate may appear in two consenters (one consenter
/// may use the same certificate as client and server).
pub fn check_duplicates(md: &ConfigMetadata) -> Result<(), DuplicateConsenter> {
    let mut seen: Vec<&[u8]> = Vec::new();
    for c in &md.consenters {
        let (server, client) = (&c.server_tls_cert[..], &c.client_tls_cert[..]);
        if seen.contains(&server) || seen.contains(&client) {
            return Err(DuplicateConsenter {
                server: String::from_utf8_lossy(server).into_owned(),
                client: String::from_utf8_lossy(client).into_owned(),
            });
        }
        seen.push(server);
        seen.push(client);
    }
    Ok(())
}

/// Fabric's `VerifyConfigMetadata` (consenter expiry ignored).
pub fn verify_config_metadata(
    md: &ConfigMetadata,
    pools: &TlsPools,
    now: i64,
) -> Result<(), MetadataError> {
    let Some(o) = &md.options else {
        return Err(MetadataError::NoOptions);
    };
    if o.heartbeat_tick == 0 || o.election_tick == 0 || o.max_inflight_blocks == 0 {
        return Err(MetadataError::ZeroOption {
            heartbeat: o.heartbeat_tick,
            election: o.election_tick,
            inflight: o.max_inflight_blocks,
        });
    }
    if o.election_tick <= o.heartbeat_tick {
        return Err(MetadataError::ElectionTickTooSmall {
            election: o.election_tick,
            heartbeat: o.heartbeat_tick,
        });
    }
    match parse_go_duration(&o.tick_interval) {
        Err(e) => {
            return Err(MetadataError::BadTickInterval {
                value: o.tick_interval.clone(),
                reason: e.to_string(),
            });
        }
        Ok(0) => return Err(MetadataError::ZeroTickInterval),
        Ok(_) => {}
    }
    if md.consenters.is_empty() {
        return Err(MetadataError::NoConsenters);
    }
    for c in &md.consenters {
        validate_consenter_certs(c, pools, now, true).map_err(|source| {
            MetadataError::InvalidCertificate {
                host: c.host.clone(),
                port: c.port,
                source: Box::new(source),
            }
        })?;
    }
    Ok(check_duplicates(md)?)
}

/// What an update does to the consenter set. Consenters are told apart by the exact bytes of
/// their client TLS certificate, as Fabric does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsenterChange {
    None,
    Add(Consenter),
    Remove(Consenter),
    /// One consenter replaced by another (a certificate rotation): the new one keeps the Raft id.
    Rotate {
        old: Consenter,
        new: Consenter,
    },
}

/// An update changing more than one consenter (Fabric's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "update of more than one consenter at a time is not supported, requested changes: add {added} node(s), remove {removed} node(s)"
)]
pub struct TooManyChanges {
    pub added: usize,
    pub removed: usize,
}

/// Fabric's `ComputeMembershipChanges` on two consenter lists: at most one addition and one
/// removal per update.
pub fn consenter_change(
    old: &[Consenter],
    new: &[Consenter],
) -> Result<ConsenterChange, TooManyChanges> {
    let added: Vec<&Consenter> = new
        .iter()
        .filter(|n| !old.iter().any(|o| o.client_tls_cert == n.client_tls_cert))
        .collect();
    let removed: Vec<&Consenter> = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.client_tls_cert == o.client_tls_cert))
        .collect();
    match (added.as_slice(), removed.as_slice()) {
        ([], []) => Ok(ConsenterChange::None),
        ([a], []) => Ok(ConsenterChange::Add((*a).clone())),
        ([], [r]) => Ok(ConsenterChange::Remove((*r).clone())),
        ([a], [r]) => Ok(ConsenterChange::Rotate {
            old: (*r).clone(),
            new: (*a).clone(),
        }),
        (a, r) => Err(TooManyChanges {
            added: a.len(),
            removed: r.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_serials() {
        assert_eq!(decimal(&[]), "0");
        assert_eq!(decimal(&[0x01, 0x00]), "256");
        assert_eq!(
            decimal(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            "18446744073709551615"
        );
    }

    fn consenter(n: u8) -> Consenter {
        Consenter {
            host: "h".into(),
            port: u32::from(n),
            client_tls_cert: vec![n].into(),
            server_tls_cert: vec![n].into(),
        }
    }

    #[test]
    fn one_change_at_a_time() {
        let old = [consenter(1), consenter(2), consenter(3)];
        assert_eq!(consenter_change(&old, &old), Ok(ConsenterChange::None));
        let add = [consenter(1), consenter(2), consenter(3), consenter(4)];
        assert_eq!(
            consenter_change(&old, &add),
            Ok(ConsenterChange::Add(consenter(4)))
        );
        assert_eq!(
            consenter_change(&old, &old[..2]),
            Ok(ConsenterChange::Remove(consenter(3)))
        );
        let rot = [consenter(1), consenter(2), consenter(9)];
        assert_eq!(
            consenter_change(&old, &rot),
            Ok(ConsenterChange::Rotate {
                old: consenter(3),
                new: consenter(9)
            })
        );
        assert_eq!(
            consenter_change(&old, &old[..1]).unwrap_err().to_string(),
            "update of more than one consenter at a time is not supported, requested changes: add 0 node(s), remove 2 node(s)"
        );
    }

    #[test]
    fn duplicate_certificates_across_consenters_are_refused() {
        let mut md = ConfigMetadata {
            consenters: vec![consenter(1), consenter(2)],
            options: None,
        };
        check_duplicates(&md).unwrap();
        md.consenters[1].server_tls_cert = vec![1].into();
        assert!(
            check_duplicates(&md)
                .unwrap_err()
                .to_string()
                .starts_with("duplicate consenter")
        );
    }
}
