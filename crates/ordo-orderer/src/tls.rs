//! The node's listener TLS, from `orderer.yaml`: the TLS machinery itself lives in
//! [`ordo_cluster::tls`] (shared with the cluster transport); this module only reads a
//! listener's `TLS` section into it.

use std::time::Duration;

pub use ordo_cluster::tls::*;

use crate::localconfig::Tls;

/// A server from a listener's `TLS` section. Without `ClientAuthRequired`, a client certificate
/// is still verified when given (Fabric's HTTP servers; the gRPC server ignores one it did not
/// ask for).
pub fn from_local(tls: &Tls, alpn: Alpn) -> Result<TlsServer, TlsError> {
    let read =
        |p: &std::path::Path| std::fs::read(p).map_err(|e| terr(format!("{}: {e}", p.display())));
    let cert = read(&tls.certificate)?;
    let key = read(&tls.private_key)?;
    let roots = read_certs(&tls.client_root_cas)?;
    let auth = if tls.client_auth_required {
        ClientAuth::Required
    } else if alpn == Alpn::Http && !roots.is_empty() {
        ClientAuth::Optional
    } else {
        ClientAuth::None
    };
    let shift = Duration::from_nanos(tls.handshake_time_shift_ns.max(0) as u64);
    TlsServer::new(&cert, &key, roots, auth, shift, alpn)
}
