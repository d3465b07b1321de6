//! Where an orderer is and how to reach it: a `HOST:PORT` resolved to a socket address (the host
//! is also the name its TLS certificate must carry), and the client TLS settings read from PEM
//! files — roots, and for mutual TLS a client certificate and key.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ordo_client::{ClientTls, HttpClient, grpc_channel};
use ordo_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;

use crate::AdminError;

/// PEM files for a TLS client: the CA the server's certificate chains to and, for mutual TLS,
/// a client certificate and its key.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, AdminError> {
    std::fs::read(path).map_err(|e| AdminError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// An orderer endpoint: its address, the name its certificate is checked against, and the
/// client TLS settings (`None`: plain TCP).
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: String,
    pub tls: Option<ClientTls>,
    /// SHA-256 of the client certificate (DER), which Deliver requests carry when the orderer
    /// requires client certificates (Fabric's TLS binding); empty without one.
    pub tls_cert_hash: Bytes,
}

impl Endpoint {
    /// Resolves `host_port` and reads `files`. TLS is on when a CA file is given; a client
    /// certificate needs its key and TLS. `alpn` is what the protocol needs (`h2` for gRPC,
    /// `http/1.1` for the participation API).
    pub fn new(host_port: &str, files: &TlsFiles, alpn: &[&[u8]]) -> Result<Endpoint, AdminError> {
        let (host, _) = split_host_port(host_port)?;
        let addr = host_port
            .to_socket_addrs()
            .map_err(|e| AdminError::Resolve {
                addr: host_port.to_string(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| AdminError::Resolve {
                addr: host_port.to_string(),
                reason: "no address".into(),
            })?;
        let client = match (&files.client_cert, &files.client_key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            (None, None) => None,
            _ => {
                return Err(AdminError::TlsSettings(
                    "a client certificate and its key go together".into(),
                ));
            }
        };
        let tls = match &files.ca {
            None if client.is_some() => {
                return Err(AdminError::TlsSettings(
                    "a client certificate needs TLS: give the CA file too".into(),
                ));
            }
            None => None,
            Some(ca) => {
                let ca = read(ca)?;
                let client = client.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice()));
                Some(ClientTls::new(&[ca], client, &host, alpn)?)
            }
        };
        let tls_cert_hash = match &client {
            Some((cert, _)) => {
                let der = ordo_crypto::x509::first_pem_der(cert)
                    .map_err(|e| AdminError::TlsSettings(format!("the client certificate: {e}")))?;
                Bytes::copy_from_slice(&ordo_crypto::sha256(&der))
            }
            None => Bytes::new(),
        };
        Ok(Endpoint {
            addr,
            host,
            tls,
            tls_cert_hash,
        })
    }

    /// A participation/operations (HTTP) client of this endpoint.
    pub fn http(&self) -> HttpClient {
        HttpClient {
            addr: self.addr,
            tls: self.tls.clone(),
        }
    }

    /// An AtomicBroadcast (Broadcast, Deliver) client of this endpoint.
    pub async fn broadcast_client(
        &self,
    ) -> Result<AtomicBroadcastClient<tonic::transport::Channel>, AdminError> {
        Ok(AtomicBroadcastClient::new(
            grpc_channel(self.addr, self.tls.clone()).await?,
        ))
    }
}

/// Splits `HOST:PORT` (the port a number, the host not empty; `[v6]:port` accepted).
pub fn split_host_port(s: &str) -> Result<(String, u16), AdminError> {
    let bad = || AdminError::Address(s.to_string());
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port("127.0.0.1:7050").unwrap(),
            ("127.0.0.1".into(), 7050)
        );
        assert_eq!(split_host_port("[::1]:7").unwrap(), ("::1".into(), 7));
        for bad in ["", "h", "h:", ":1", "h:x", "h:0", "h:70000"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }
}
