//! The node's certificates over time. Fabric's orderer must be restarted to use a renewed TLS
//! certificate and only logs that one is about to expire; an Ordo node:
//!
//! - **reloads** the certificate and key files of its listeners and of its cluster client every
//!   [`CHECK_INTERVAL`]. A changed pair that parses and matches takes effect on the next
//!   handshake; a pair caught half-written (a new certificate with the old key) is refused until
//!   both files are written. A new server certificate is also how the node finds itself among
//!   consenters from then on, so a consenter whose certificate is rotated (a config update that
//!   swaps it in one go, keeping its Raft ID) carries on under its ID without a restart. A
//!   renewal with the same key needs no config update at all: consenters are pinned and
//!   identified by public key.
//! - **watches expiry**: `ordo_cert_expiry_seconds` for every certificate it uses (its TLS
//!   certificates and its enrollment certificate) or pins (the consenters of its channels), and
//!   a warning in the log from a week before a certificate expires (Fabric's
//!   `CertExpirationWarningThreshold`), repeated at most every five minutes per certificate.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::registrar::Registrar;

/// How often the files are read again and the expiry figures refreshed.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// From how long before expiry a certificate is warned about.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);
/// The least time between two warnings about the same certificate.
const WARNING_INTERVAL: Duration = Duration::from_secs(300);

/// Puts a certificate chain and key (PEM) to use; fails, leaving the old ones, if they do not
/// parse or match.
pub type Apply = Box<dyn Fn(&[u8], &[u8]) -> Result<(), ApplyError> + Send + Sync>;

/// Why a certificate could not be put to use (the TLS layer's or the cluster transport's error).
pub type ApplyError = Box<dyn std::error::Error + Send + Sync>;

/// A certificate and key the node loaded from files and reloads when they change.
pub struct Reloadable {
    /// The `cert` label of `ordo_cert_expiry_seconds` (general_tls, cluster_server, ...).
    pub what: &'static str,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub apply: Apply,
}

struct Watched {
    r: Reloadable,
    /// The pair in use.
    loaded: (Vec<u8>, Vec<u8>),
    /// The last pair refused, not to retry (and warn about) it every second.
    refused: Option<(Vec<u8>, Vec<u8>)>,
}

type Labels = [String; 3];

/// See the module doc.
pub struct CertWatch {
    watched: Vec<Watched>,
    enrollment: Option<Vec<u8>>,
    registrar: Arc<Registrar>,
    metrics: Metrics,
    warned: HashMap<Labels, Instant>,
    shown: HashSet<Labels>,
}

impl CertWatch {
    /// Watches `reloadables` (as loaded at start: their files' current contents) and the
    /// enrollment certificate (PEM).
    pub fn new(
        reloadables: Vec<Reloadable>,
        enrollment: Option<Vec<u8>>,
        registrar: Arc<Registrar>,
        metrics: Metrics,
    ) -> CertWatch {
        let watched = reloadables
            .into_iter()
            .map(|r| {
                let loaded = (
                    std::fs::read(&r.cert).unwrap_or_default(),
                    std::fs::read(&r.key).unwrap_or_default(),
                );
                Watched {
                    r,
                    loaded,
                    refused: None,
                }
            })
            .collect();
        CertWatch {
            watched,
            enrollment,
            registrar,
            metrics,
            warned: HashMap::new(),
            shown: HashSet::new(),
        }
    }

    /// Checks every [`CHECK_INTERVAL`] until `stop` is set.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(CHECK_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => self.check(),
                _ = stop.changed() => return,
            }
        }
    }

    /// One round: reload what changed, then refresh the expiry figures.
    pub fn check(&mut self) {
        self.reload();
        self.expiry(crate::channel::unix_now());
    }

    fn reload(&mut self) {
        for w in &mut self.watched {
            // A file being replaced may be missing for a moment: try again next round.
            let (Ok(cert), Ok(key)) = (std::fs::read(&w.r.cert), std::fs::read(&w.r.key)) else {
                continue;
            };
            let pair = (cert, key);
            if pair == w.loaded || w.refused.as_ref() == Some(&pair) {
                continue;
            }
            match (w.r.apply)(&pair.0, &pair.1) {
                Ok(()) => {
                    tracing::info!(cert = w.r.what, path = %w.r.cert.display(), "TLS certificate reloaded: new handshakes use it");
                    w.loaded = pair;
                    w.refused = None;
                }
                Err(e) => {
                    tracing::warn!(cert = w.r.what, path = %w.r.cert.display(), error = %e, "changed TLS certificate files not loaded (the one in use stays)");
                    w.refused = Some(pair);
                }
            }
        }
    }

    /// Every certificate used or pinned, with its labels.
    fn certificates(&self) -> Vec<(Labels, Vec<u8>)> {
        let mut out = Vec::new();
        let label = |what: &str| [what.to_string(), String::new(), String::new()];
        for w in &self.watched {
            out.push((label(w.r.what), w.loaded.0.clone()));
        }
        if let Some(e) = &self.enrollment {
            out.push((label("enrollment"), e.clone()));
        }
        for ch in self.registrar.channels() {
            let cfg = ch.config();
            let consenters = cfg.raft().map(|r| r.consenters()).unwrap_or_default();
            for c in consenters {
                let labels = [
                    "consenter".to_string(),
                    ch.name.clone(),
                    format!("{}:{}", c.host, c.port),
                ];
                out.push((labels, c.server_tls_cert.to_vec()));
            }
        }
        out
    }

    fn expiry(&mut self, now: i64) {
        let mut shown = HashSet::new();
        for (labels, pem) in self.certificates() {
            let Ok(cert) = ordo_msp::Cert::from_pem(&pem) else {
                continue;
            };
            let left = cert.not_after() - now;
            let l = [labels[0].as_str(), labels[1].as_str(), labels[2].as_str()];
            self.metrics.cert_expiry(&l, left);
            if left < EXPIRY_WARNING.as_secs() as i64 {
                let due = self
                    .warned
                    .get(&labels)
                    .is_none_or(|t| t.elapsed() >= WARNING_INTERVAL);
                if due {
                    let subject = cert.common_name().to_string();
                    if left <= 0 {
                        tracing::warn!(cert = l[0], channel = l[1], endpoint = l[2], %subject, expired_seconds_ago = -left, "certificate has expired");
                    } else {
                        tracing::warn!(cert = l[0], channel = l[1], endpoint = l[2], %subject, expires_in_seconds = left, "certificate expires in less than a week");
                    }
                    self.warned.insert(labels.clone(), Instant::now());
                }
            }
            shown.insert(labels);
        }
        for gone in self.shown.difference(&shown) {
            self.metrics.forget_cert_expiry(&[
                gone[0].as_str(),
                gone[1].as_str(),
                gone[2].as_str(),
            ]);
            self.warned.remove(gone);
        }
        self.shown = shown;
    }
}
