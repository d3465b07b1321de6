//! # ordo-client
//!
//! Clients of an orderer's own APIs, over TLS or not: a gRPC channel for AtomicBroadcast, and an
//! HTTP(S) client for the channel participation and operations APIs. The `ordo` CLI, the
//! benchmark, the channel administration tools and the process-level tests use them, without
//! depending on the node. It never serves anything, and knows nothing of channels or blocks.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A failed client call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// TLS settings of a client: trusted roots, an optional client certificate, and the name the
/// server certificate must carry (the fixture certificates name `localhost` and `127.0.0.1`).
#[derive(Clone)]
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    pub server_name: String,
}

impl ClientTls {
    /// Roots and an optional client certificate and key, all PEM. ALPN offers `alpn`.
    pub fn new(
        root_pems: &[Vec<u8>],
        client: Option<(&[u8], &[u8])>,
        server_name: &str,
        alpn: &[&[u8]],
    ) -> Result<ClientTls, ClientError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for pem in root_pems {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ClientError::Tls(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<_, _>>()
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| ClientError::Tls(e.to_string()))?
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(ClientTls {
            config: Arc::new(config),
            server_name: server_name.to_string(),
        })
    }
}

async fn connect(addr: SocketAddr, tls: Option<&ClientTls>) -> Result<Box<dyn Io>, ClientError> {
    let err = |reason: String| ClientError::Connect { addr, reason };
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| err(e.to_string()))?;
    // Envelopes are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Box::new(tcp)),
        Some(t) => {
            let name = ServerName::try_from(t.server_name.clone())
                .map_err(|e| ClientError::Tls(e.to_string()))?;
            let stream = TlsConnector::from(t.config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| err(format!("TLS handshake: {e}")))?;
            Ok(Box::new(stream))
        }
    }
}

/// A gRPC channel to an orderer's general listener.
pub async fn grpc_channel(
    addr: SocketAddr,
    tls: Option<ClientTls>,
) -> Result<tonic::transport::Channel, ClientError> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))
        .map_err(|e| ClientError::Http(e.to_string()))?;
    let connector = tower::service_fn(move |_uri: hyper::Uri| {
        let tls = tls.clone();
        async move { connect(addr, tls.as_ref()).await.map(TokioIo::new) }
    });
    endpoint
        .connect_with_connector(connector)
        .await
        .map_err(|e| ClientError::Connect {
            addr,
            reason: e.to_string(),
        })
}

/// An HTTP response: status, content type, body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Http(e.to_string()))
    }
}

/// A client of an orderer's HTTP APIs (participation on the admin listener, operations).
#[derive(Clone)]
pub struct HttpClient {
    pub addr: SocketAddr,
    pub tls: Option<ClientTls>,
}

/// The boundary of the multipart bodies this client sends.
const BOUNDARY: &str = "ordo-3f9c1d2e7a6b5c4d";

impl HttpClient {
    /// One request on a new connection (HTTP/1.1).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<HttpResponse, ClientError> {
        let io = connect(self.addr, self.tls.as_ref()).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.to_string());
        if let Some(ct) = content_type {
            req = req.header(hyper::header::CONTENT_TYPE, ct);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Result<HttpResponse, ClientError> {
        self.request("GET", path, None, Bytes::new()).await
    }

    /// Joins a channel, as `osnadmin channel join` does (multipart field `config-block`, file
    /// name `config.block`).
    pub async fn join(&self, config_block: &[u8]) -> Result<HttpResponse, ClientError> {
        let mut body = Vec::with_capacity(config_block.len() + 256);
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"config-block\"; filename=\"config.block\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(config_block);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        self.request(
            "POST",
            "/participation/v1/channels",
            Some(&format!("multipart/form-data; boundary={BOUNDARY}")),
            body.into(),
        )
        .await
    }

    pub async fn remove(&self, channel: &str) -> Result<HttpResponse, ClientError> {
        self.request(
            "DELETE",
            &format!("/participation/v1/channels/{channel}"),
            None,
            Bytes::new(),
        )
        .await
    }
}
