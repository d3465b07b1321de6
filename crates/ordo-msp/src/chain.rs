//! Certificate chains built as Go's `x509.Certificate.Verify` builds them, because Fabric decides
//! with it both which identities an MSP accepts and which consenter certificates a channel
//! accepts: parents matched by subject, signatures checked with the parent's key (any S), every
//! certificate valid at the given time, intermediates must be CAs, path lengths enforced, loops
//! avoided, and the extended key usages of every certificate in the chain compatible with the
//! usage asked for. All chains are returned; callers decide how many they accept.

use std::sync::Arc;

use crate::Cert;

/// Which certificates a chain may be built from.
pub struct Pool<'a> {
    pub roots: &'a [Arc<Cert>],
    pub intermediates: &'a [Arc<Cert>],
}

/// The extended key usage a chain must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsage {
    /// Go's default when no usage is asked for (what the MSP gets).
    ServerAuth,
    /// Either usage (what etcdraft asks of consenter certificates).
    ClientOrServerAuth,
}

impl KeyUsage {
    /// Go's `checkChainForKeyUsage`: the usages asked for, narrowed by every certificate that
    /// has an EKU extension (and no anyExtendedKeyUsage); the chain passes if one is left.
    fn allowed_by_chain(self, leaf: &Cert, chain: &[Arc<Cert>]) -> bool {
        let (mut server, mut client) = match self {
            KeyUsage::ServerAuth => (true, false),
            KeyUsage::ClientOrServerAuth => (true, true),
        };
        for c in std::iter::once(leaf).chain(chain.iter().map(|c| &**c)) {
            if c.ext_key_usage.is_none() || c.allows_any_usage() {
                continue;
            }
            server &= c.allows_server_auth();
            client &= c.allows_client_auth();
        }
        server || client
    }
}

/// Why no chain was found. The leaf's own validity period is reported apart because etcdraft
/// forgives exactly that (an expired consenter certificate must not block config updates).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("x509: certificate has expired or is not yet valid")]
    LeafExpired,
    #[error("{0}")]
    Other(String),
}

/// Go's `alreadyInChain`, without the SAN comparison: a candidate with the subject and key of a
/// certificate already in the chain would make a loop.
fn already_in_chain(candidate: &Cert, leaf: &Cert, chain: &[Arc<Cert>]) -> bool {
    std::iter::once(leaf)
        .chain(chain.iter().map(|c| &**c))
        .any(|c| c.subject_raw == candidate.subject_raw && c.public_key == candidate.public_key)
}

/// Every chain from `leaf` to a root of `pool`, as Go's `x509.Certificate.Verify` finds them with
/// `CurrentTime = t` and the given extended key usages. Each chain
/// lists the certificates above the leaf, issuer first; an empty chain means the leaf is itself a
/// root of the pool.
pub fn verify_chains(
    leaf: &Cert,
    pool: &Pool<'_>,
    t: i64,
    usage: KeyUsage,
) -> Result<Vec<Vec<Arc<Cert>>>, ChainError> {
    if !leaf.valid_at(t) {
        return Err(ChainError::LeafExpired);
    }
    verify_chains_any_leaf_time(leaf, pool, t, usage)
}

/// [`verify_chains`] without the leaf's validity period: the CAs are still checked at `t`. This
/// is how etcdraft forgives an expired consenter certificate and nothing else.
pub fn verify_chains_any_leaf_time(
    leaf: &Cert,
    pool: &Pool<'_>,
    t: i64,
    usage: KeyUsage,
) -> Result<Vec<Vec<Arc<Cert>>>, ChainError> {
    let mut chains = if pool.roots.iter().any(|r| r.der() == leaf.der()) {
        vec![Vec::new()]
    } else {
        let mut out = Vec::new();
        let mut last_err = None;
        build_chains(
            leaf,
            leaf,
            &mut Vec::new(),
            pool,
            t,
            &mut out,
            &mut last_err,
            &mut 0,
        );
        if out.is_empty() {
            return Err(ChainError::Other(last_err.unwrap_or_else(|| {
                "x509: certificate signed by unknown authority".to_string()
            })));
        }
        out
    };
    chains.retain(|chain| usage.allowed_by_chain(leaf, chain));
    if chains.is_empty() {
        return Err(ChainError::Other(
            "x509: certificate specifies an incompatible key usage".to_string(),
        ));
    }
    Ok(chains)
}

/// Go's bound on signature checks while building chains.
const MAX_SIGNATURE_CHECKS: usize = 100;

#[allow(clippy::too_many_arguments)]
fn build_chains(
    leaf: &Cert,
    cert: &Cert,
    current: &mut Vec<Arc<Cert>>,
    pool: &Pool<'_>,
    t: i64,
    out: &mut Vec<Vec<Arc<Cert>>>,
    last_err: &mut Option<String>,
    sig_checks: &mut usize,
) {
    let candidates = pool
        .roots
        .iter()
        .map(|c| (true, c))
        .chain(pool.intermediates.iter().map(|c| (false, c)))
        .filter(|(_, c)| c.subject_raw == cert.issuer_raw);
    for (is_root, candidate) in candidates {
        if already_in_chain(candidate, leaf, current) {
            continue;
        }
        *sig_checks += 1;
        if *sig_checks > MAX_SIGNATURE_CHECKS {
            *last_err = Some(
                "x509: signature check attempts limit reached while verifying certificate chain"
                    .to_string(),
            );
            return;
        }
        if !candidate.may_issue() || !cert.is_signed_by(candidate) {
            last_err
                .get_or_insert_with(|| "x509: certificate signed by unknown authority".to_string());
            continue;
        }
        if !candidate.valid_at(t) {
            *last_err = Some("x509: certificate has expired or is not yet valid".to_string());
            continue;
        }
        if !is_root && !candidate.is_ca() {
            *last_err =
                Some("x509: certificate is not authorized to sign other certificates".to_string());
            continue;
        }
        if let Some(max) = candidate.max_path_len {
            // `current` holds the intermediates already between the leaf and this candidate.
            if current.len() > max as usize {
                *last_err = Some("x509: too many intermediates for path length constraint".into());
                continue;
            }
        }
        current.push(candidate.clone());
        if is_root {
            out.push(current.clone());
        } else if current.len() < 16 {
            build_chains(leaf, candidate, current, pool, t, out, last_err, sig_checks);
        }
        current.pop();
    }
}
