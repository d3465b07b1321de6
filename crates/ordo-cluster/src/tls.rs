//! TLS for the node's listeners (Fabric's `internal/pkg/comm` server side): rustls with the ring
//! provider, TLS 1.2 minimum, client certificates none / verified-if-given / required, trusted
//! client roots that can be replaced at run time (Fabric recomputes them on every config block),
//! and `TLSHandshakeTimeShift` (client certificates checked at now − shift, the recovery path for
//! expired certificates). The server's own certificate can be replaced at run time too
//! ([`TlsServer::set_certificate`]): a renewed or rotated certificate takes effect on the next
//! handshake, without a restart (Fabric's orderer needs one).
//!
//! [`incoming`] is the accept loop shared by gRPC (tonic's `serve_with_incoming`) and the HTTP
//! APIs: handshakes run concurrently with a timeout, a failed handshake is logged and skipped,
//! and each connection carries [`ConnInfo`] (peer address, verified client chain).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::slots::{Limits, Slot, Slots};

use arc_swap::ArcSwap;
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ResolvesServerCert, ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted connections waiting to be served.
const ACCEPT_QUEUE: usize = 64;

/// A TLS setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

pub fn terr(m: impl std::fmt::Display) -> TlsError {
    TlsError(m.to_string())
}

/// Client certificates on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Verified when presented (Fabric's `VerifyClientCertIfGiven`).
    Optional,
    /// Required and verified.
    Required,
}

/// What a listener speaks, for ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    Grpc,
    Http,
}

/// Certificates in PEM files.
pub fn read_certs(paths: &[std::path::PathBuf]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut out = Vec::new();
    for p in paths {
        let pem = std::fs::read(p).map_err(|e| terr(format!("{}: {e}", p.display())))?;
        for c in CertificateDer::pem_slice_iter(&pem) {
            out.push(c.map_err(|e| terr(format!("{}: {e}", p.display())))?);
        }
    }
    Ok(out)
}

/// The certificates (DER) in PEM blobs; blobs that are not PEM certificates are skipped (a
/// channel's MSP was validated when its config was accepted).
pub fn pem_to_der(pems: &[bytes::Bytes]) -> Vec<Vec<u8>> {
    pems.iter()
        .flat_map(|p| CertificateDer::pem_slice_iter(p).filter_map(Result::ok))
        .map(|c| c.to_vec())
        .collect()
}

/// Verifies client certificates against roots that can be swapped, at a shifted time.
#[derive(Debug)]
struct SwappableVerifier {
    inner: ArcSwap<Arc<dyn ClientCertVerifier>>,
    mandatory: bool,
    shift: Duration,
}

/// The verifier of a listener that trusts no client root yet (a node that has joined no
/// channel): every client certificate is refused. rustls would otherwise hand back its
/// `NoClientAuth`, whose methods panic when called behind a verifier that offers client auth.
#[derive(Debug)]
struct NoRoots {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for NoRoots {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn build_verifier(
    roots: &[CertificateDer<'static>],
    mandatory: bool,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    if roots.is_empty() {
        return Ok(Arc::new(NoRoots {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }));
    }
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        // Go's cert pool trusts whatever it is given, intermediates included; so do we.
        store.add(r.clone()).map_err(terr)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider);
    let builder = if mandatory {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(terr)
}

impl ClientCertVerifier for SwappableVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Go servers send the acceptable CAs; clients (osnadmin, peers) do not need them.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let inner = self.inner.load();
        let at_now = inner.verify_client_cert(end_entity, intermediates, now);
        if at_now.is_ok() || self.shift.is_zero() {
            return at_now;
        }
        // Valid now, or as of `shift` ago: a certificate renewed while the shift is set (valid
        // from now on, so not yet valid in the shifted past) must get in too. Fabric checks only
        // the shifted time, which locks renewed nodes out until every node drops the shift.
        let shifted = UnixTime::since_unix_epoch(
            Duration::from_secs(now.as_secs()).saturating_sub(self.shift),
        );
        inner.verify_client_cert(end_entity, intermediates, shifted)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.load().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.load().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.load().supported_verify_schemes()
    }
}

/// A certificate chain and its private key, checked to match.
pub fn certified_key(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| terr(format!("certificate: {e}")))?;
    if chain.is_empty() {
        return Err(terr("certificate: no certificate in the file"));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| terr(format!("private key: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    let ck = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| terr(format!("certificate and key: {e}")))?;
    ck.keys_match()
        .map_err(|e| terr(format!("certificate and key: {e}")))?;
    Ok(ck)
}

/// The server certificate a listener presents, replaceable at run time.
#[derive(Debug)]
struct SwappableCert(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A listener's TLS configuration.
#[derive(Clone)]
pub struct TlsServer {
    acceptor: TlsAcceptor,
    cert: Arc<SwappableCert>,
    verifier: Option<Arc<SwappableVerifier>>,
    /// Roots from the local configuration, kept when channel roots are added.
    static_roots: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer").finish_non_exhaustive()
    }
}

impl TlsServer {
    /// A server from PEM material.
    pub fn new(
        cert_chain_pem: &[u8],
        key_pem: &[u8],
        client_roots: Vec<CertificateDer<'static>>,
        client_auth: ClientAuth,
        shift: Duration,
        alpn: Alpn,
    ) -> Result<TlsServer, TlsError> {
        let cert = Arc::new(SwappableCert(ArcSwap::from_pointee(
            certified_key(cert_chain_pem, key_pem).map_err(|e| terr(format!("server {e}")))?,
        )));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(terr)?;
        let (builder, verifier) = match client_auth {
            ClientAuth::None => (builder.with_no_client_auth(), None),
            ClientAuth::Optional | ClientAuth::Required => {
                let mandatory = client_auth == ClientAuth::Required;
                if client_roots.is_empty() && mandatory {
                    return Err(terr(
                        "client authentication is required but no client root CA is configured",
                    ));
                }
                // With no roots yet, no certificate is accepted until roots arrive.
                let inner = build_verifier(&client_roots, mandatory)?;
                let v = Arc::new(SwappableVerifier {
                    inner: ArcSwap::from_pointee(inner),
                    mandatory,
                    shift,
                });
                (
                    builder.with_client_cert_verifier(v.clone() as Arc<dyn ClientCertVerifier>),
                    Some(v),
                )
            }
        };
        let mut config = builder.with_cert_resolver(cert.clone());
        // No session resumption: a resumed session skips client certificate verification,
        // so a client whose CA was just removed from the trusted roots (or whose certificate
        // has expired since) would still get in. Orderer connections are long-lived; full
        // handshakes cost little.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        config.alpn_protocols = match alpn {
            Alpn::Grpc => vec![b"h2".to_vec()],
            Alpn::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        };
        Ok(TlsServer {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert,
            verifier,
            static_roots: client_roots,
        })
    }

    /// Presents this certificate (PEM chain) and key from the next handshake on; refused, with
    /// the old one kept, unless they parse and match.
    pub fn set_certificate(&self, cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        let ck = certified_key(cert_chain_pem, key_pem).map_err(|e| terr(format!("server {e}")))?;
        self.cert.0.store(Arc::new(ck));
        Ok(())
    }

    /// Replaces the trusted client roots with the configured ones plus `extra` (DER).
    pub fn set_client_roots(&self, extra: Vec<Vec<u8>>) -> Result<(), TlsError> {
        let Some(v) = &self.verifier else {
            return Ok(());
        };
        let mut roots = self.static_roots.clone();
        roots.extend(extra.into_iter().map(CertificateDer::from));
        if roots.is_empty() {
            return Ok(());
        }
        v.inner
            .store(Arc::new(build_verifier(&roots, v.mandatory)?));
        Ok(())
    }
}

/// What the server knows about a connection's peer.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: Option<SocketAddr>,
    /// The client's verified certificate chain (DER, leaf first), if it presented one.
    pub peer_certs: Option<Arc<Vec<Vec<u8>>>>,
}

/// Told `true` when a connection is handed to the server and `false` when it is dropped
/// (Fabric's `grpc_comm_conn_opened`/`_closed`).
pub type ConnHook = Arc<dyn Fn(bool) + Send + Sync>;

/// An accepted connection, plain or TLS.
pub struct Conn {
    io: ConnIo,
    info: ConnInfo,
    hook: Option<ConnHook>,
    /// The listener's slot this connection holds (see [`crate::slots`]).
    _slot: Slot,
}

impl Conn {
    fn new(io: ConnIo, info: ConnInfo, hook: Option<ConnHook>, slot: Slot) -> Conn {
        if let Some(h) = &hook {
            h(true);
        }
        Conn {
            io,
            info,
            hook,
            _slot: slot,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(h) = &self.hook {
            h(false);
        }
    }
}

enum ConnIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            ConnIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            ConnIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            ConnIo::Plain(s) => Pin::new(s).poll_flush(cx),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            ConnIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            ConnIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            ConnIo::Plain(s) => s.is_write_vectored(),
            ConnIo::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Accepts connections on `listener`, doing TLS handshakes concurrently when `tls` is set. The
/// stream ends only when the listener fails for good. `hook` hears of every connection served.
pub fn incoming(
    listener: TcpListener,
    tls: Option<TlsServer>,
    hook: Option<ConnHook>,
) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    let slots = Slots::new(Limits::for_this_process());
    tokio::spawn(async move {
        loop {
            // At the bound, nothing more is accepted until a connection closes.
            let permit = tokio::select! {
                p = slots.reserve() => match p {
                    Some(p) => p,
                    None => return,
                },
                _ = tx.closed() => return,
            };
            let (tcp, remote) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving what we have.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let Some(slot) = slots.admit(permit, remote.ip()) else {
                tracing::debug!(%remote, "connection closed: its address holds its share of the listener's connections");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let info = ConnInfo {
                remote: Some(remote),
                peer_certs: None,
            };
            match &tls {
                None => {
                    let tx = tx.clone();
                    let hook = hook.clone();
                    tokio::spawn(async move {
                        // The client speaks first (an HTTP request, HTTP/2's preface): a plain
                        // connection silent for as long as a TLS handshake may take is closed,
                        // as a TLS one would be, instead of holding its slot for good.
                        // `peek`, not `readable`: a fresh socket may report readiness before
                        // any data (a false positive tokio allows).
                        if tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut [0u8; 1]))
                            .await
                            .is_err()
                        {
                            tracing::debug!(%remote, "connection closed: nothing sent in time");
                            return;
                        }
                        let _ = tx
                            .send(Ok(Conn::new(ConnIo::Plain(tcp), info, hook, slot)))
                            .await;
                    });
                }
                Some(t) => {
                    let acceptor = t.acceptor.clone();
                    let tx = tx.clone();
                    let hook = hook.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => {
                                let certs = stream.get_ref().1.peer_certificates().map(|c| {
                                    Arc::new(c.iter().map(|d| d.as_ref().to_vec()).collect())
                                });
                                let info = ConnInfo {
                                    remote: Some(remote),
                                    peer_certs: certs,
                                };
                                let _ = tx
                                    .send(Ok(Conn::new(
                                        ConnIo::Tls(Box::new(stream)),
                                        info,
                                        hook,
                                        slot,
                                    )))
                                    .await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%remote, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                        }
                    });
                }
            }
        }
    });
    ReceiverStream::new(rx)
}
