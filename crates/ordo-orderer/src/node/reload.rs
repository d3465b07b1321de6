//! Which certificates the node reloads when their files change, and what each reload does: a
//! listener's server certificate (the one by which the node finds itself among consenters moves
//! its self key along), and the cluster transport's client certificate. `crate::certs` watches
//! them and their expiry.

use std::path::Path;

use super::tls::{NodeTls, or_general};
use crate::certs::Reloadable;
use crate::channel::SelfKey;
use crate::localconfig::LocalConfig;
use crate::tls::TlsServer;

pub(super) fn reloadables(cfg: &LocalConfig, tls: &NodeTls, self_key: &SelfKey) -> Vec<Reloadable> {
    let g = &cfg.general;
    let server = |what: &'static str, t: &TlsServer, cert: &Path, key: &Path, is_self: bool| {
        let (t, self_key) = (t.clone(), self_key.clone());
        Reloadable {
            what,
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            apply: Box::new(move |c, k| {
                t.set_certificate(c, k)?;
                if is_self && let Some(point) = ordo_config::channel::cert_key(c) {
                    self_key.set(point);
                }
                Ok(())
            }),
        }
    };
    let mut out = Vec::new();
    if let Some(t) = &tls.general {
        // The general certificate identifies the node unless the cluster has its own.
        let is_self = g.cluster.server_certificate.as_os_str().is_empty();
        out.push(server(
            "general_tls",
            t,
            &g.tls.certificate,
            &g.tls.private_key,
            is_self,
        ));
    }
    if let Some(t) = &tls.cluster {
        out.push(server(
            "cluster_server",
            t,
            &g.cluster.server_certificate,
            &g.cluster.server_private_key,
            true,
        ));
    }
    if let Some(t) = &tls.admin {
        out.push(server(
            "admin_tls",
            t,
            &cfg.admin.tls.certificate,
            &cfg.admin.tls.private_key,
            false,
        ));
    }
    if let Some(c) = &tls.comm {
        let c = c.clone();
        out.push(Reloadable {
            what: "cluster_client",
            cert: or_general(&g.cluster.client_certificate, &g.tls.certificate),
            key: or_general(&g.cluster.client_private_key, &g.tls.private_key),
            apply: Box::new(move |cert, key| Ok(c.set_client_certificate(cert, key)?)),
        });
    }
    out
}
