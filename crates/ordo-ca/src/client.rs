//! The client side: Fabric CA requests (enroll, reenroll, register, revoke, gencrl, and any
//! token-authenticated call) over HTTPS, and the MSP folder layouts Fabric nodes read.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use der::Decode;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use ordo_crypto::SigningKey;
use serde::Serialize;
use serde_json::{Value, json};
use thiserror::Error;
use tokio::net::TcpStream;

use crate::ca::generate_key;
use crate::x509::{Subject, build_csr};

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("invalid URL {0:?} (want http(s)://host:port)")]
    Url(String),
    #[error("connecting to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    /// The server answered with Fabric CA's error envelope.
    #[error("server answered {status}: code {code}: {message}")]
    Server {
        status: u16,
        code: i64,
        message: String,
    },
    #[error("invalid response: {0}")]
    Response(String),
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A key and certificate issued by a CA, with the CA's chain.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub cert_pem: String,
    /// PKCS#8 PEM.
    pub key_pem: String,
    /// The CA's chain (`CAChain` of the response), PEM.
    pub chain_pem: String,
    pub ca_name: String,
}

impl Enrollment {
    pub fn key(&self) -> Result<SigningKey, ClientError> {
        SigningKey::from_pem(self.key_pem.as_bytes())
            .map_err(|e| ClientError::Crypto(e.to_string()))
    }
}

/// Options of enroll and reenroll.
#[derive(Debug, Clone, Default)]
pub struct EnrollOptions {
    /// Signing profile (`tls` for a TLS certificate).
    pub profile: String,
    /// SANs, put in the CSR and sent as `hosts`.
    pub hosts: Vec<String>,
    /// `attr_reqs`; `None` gets the `ecert` defaults.
    pub attr_reqs: Option<Vec<(String, bool)>>,
}

/// `RegistrationRequest`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegistrationRequest {
    pub id: String,
    #[serde(rename = "type")]
    pub id_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret: String,
    pub max_enrollments: i64,
    pub affiliation: String,
    pub attrs: Vec<crate::registry::Attribute>,
}

/// `RevocationRequest`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RevocationRequest {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub serial: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub aki: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub gencrl: bool,
}

/// A Fabric CA client bound to one server and one CA name.
#[derive(Clone)]
pub struct CaClient {
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    ca_name: String,
}

impl std::fmt::Debug for CaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CaClient({}:{} {:?})",
            self.host, self.port, self.ca_name
        )
    }
}

/// The raw answer of a request.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    pub fn json(&self) -> Result<Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Response(e.to_string()))
    }
}

impl CaClient {
    /// `url` is `https://host:port` (or `http://`); `tls_roots` the PEM certificates the
    /// server's TLS certificate must chain to; `ca_name` the CA within the server (empty: the
    /// default CA).
    pub fn new(url: &str, tls_roots: &[String], ca_name: &str) -> Result<Self, ClientError> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(ClientError::Url(url.into()));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
            .ok_or_else(|| ClientError::Url(url.into()))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = if tls {
            let mut roots = rustls::RootCertStore::empty();
            for pem in tls_roots {
                for (tag, der) in ordo_crypto::x509::pem_blocks(pem.as_bytes())
                    .map_err(|e| ClientError::Tls(e.to_string()))?
                {
                    if tag == "CERTIFICATE" {
                        roots
                            .add(rustls_pki_types::CertificateDer::from(der))
                            .map_err(|e| ClientError::Tls(e.to_string()))?;
                    }
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientError::Tls(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(Arc::new(config))
        } else {
            None
        };
        Ok(CaClient {
            host,
            port,
            tls,
            ca_name: ca_name.to_string(),
        })
    }

    /// The same server, another CA.
    pub fn with_ca_name(&self, ca_name: &str) -> Self {
        CaClient {
            ca_name: ca_name.to_string(),
            ..self.clone()
        }
    }

    pub fn ca_name(&self) -> &str {
        &self.ca_name
    }

    /// One request on a new connection; `uri` is the path and query sent.
    pub async fn raw(
        &self,
        method: &str,
        uri: &str,
        body: Vec<u8>,
        authorization: Option<String>,
    ) -> Result<RawResponse, ClientError> {
        let addr = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| ClientError::Connect {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header(axum::http::header::HOST, addr.clone())
            .header(axum::http::header::CONTENT_TYPE, "application/json");
        if let Some(a) = authorization {
            req = req.header(axum::http::header::AUTHORIZATION, a);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = match &self.tls {
            Some(config) => {
                let name = rustls_pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                send(TokioIo::new(stream), req).await?
            }
            None => send(TokioIo::new(tcp), req).await?,
        };
        Ok(resp)
    }

    /// A request whose envelope is decoded: the `result` on success, [`ClientError::Server`]
    /// otherwise.
    async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Vec<u8>,
        authorization: Option<String>,
    ) -> Result<(Value, RawResponse), ClientError> {
        let resp = self.raw(method, uri, body, authorization).await?;
        let env = resp.json()?;
        if env.get("success").and_then(Value::as_bool) != Some(true) {
            let (code, message) = env
                .get("errors")
                .and_then(|e| e.get(0))
                .map(|e| {
                    (
                        e.get("code").and_then(Value::as_i64).unwrap_or(0),
                        e.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    )
                })
                .unwrap_or((0, String::new()));
            return Err(ClientError::Server {
                status: resp.status,
                code,
                message,
            });
        }
        Ok((env.get("result").cloned().unwrap_or(Value::Null), resp))
    }

    fn with_caname(&self, mut body: Value) -> Vec<u8> {
        if !self.ca_name.is_empty()
            && let Some(o) = body.as_object_mut()
        {
            o.insert("caname".into(), json!(self.ca_name));
        }
        body.to_string().into_bytes()
    }

    /// A token-authenticated request as `who`; `path` is relative to `/api/v1/` and may carry
    /// a query. Returns the envelope's `result`.
    pub async fn call_as(
        &self,
        who: &Enrollment,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let body = body.map(|b| self.with_caname(b)).unwrap_or_default();
        let uri = format!("/api/v1/{path}");
        let token = crate::auth::create_token(&who.cert_pem, &who.key()?, method, &uri, &body)
            .map_err(|e| ClientError::Crypto(e.to_string()))?;
        Ok(self.call(method, &uri, body, Some(token)).await?.0)
    }

    /// `cainfo`: the CA's name and PEM chain.
    pub async fn cainfo(&self) -> Result<(String, String), ClientError> {
        let uri = if self.ca_name.is_empty() {
            "/api/v1/cainfo".to_string()
        } else {
            format!("/api/v1/cainfo?ca={}", self.ca_name)
        };
        let (r, _) = self.call("GET", &uri, Vec::new(), None).await?;
        let name = r
            .get("CAName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let chain = decode_b64_field(&r, "CAChain")?;
        Ok((name, chain))
    }

    fn enroll_body(
        &self,
        id: &str,
        key: &SigningKey,
        opts: &EnrollOptions,
    ) -> Result<Value, ClientError> {
        let csr = build_csr(
            key,
            &Subject {
                cn: id.to_string(),
                ..Subject::default()
            },
            &opts.hosts,
        )
        .map_err(|e| ClientError::Crypto(e.to_string()))?;
        let mut body = json!({
            "certificate_request": csr,
            "profile": opts.profile,
        });
        if !opts.hosts.is_empty() {
            body["hosts"] = json!(opts.hosts);
        }
        if let Some(reqs) = &opts.attr_reqs {
            body["attr_reqs"] = Value::Array(
                reqs.iter()
                    .map(|(n, o)| json!({"name": n, "optional": o}))
                    .collect(),
            );
        }
        Ok(body)
    }

    fn enrollment_from(&self, r: &Value, key_pem: String) -> Result<Enrollment, ClientError> {
        let cert_pem = decode_b64_field(r, "Cert")?;
        let info = r
            .get("ServerInfo")
            .ok_or_else(|| ClientError::Response("no ServerInfo".into()))?;
        Ok(Enrollment {
            cert_pem,
            key_pem,
            chain_pem: decode_b64_field(info, "CAChain")?,
            ca_name: info
                .get("CAName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }

    /// Enrolls `id` with its secret: a fresh P-256 key and a certificate.
    pub async fn enroll(
        &self,
        id: &str,
        secret: &str,
        opts: &EnrollOptions,
    ) -> Result<Enrollment, ClientError> {
        let (key, key_pem) = generate_key().map_err(|e| ClientError::Crypto(e.to_string()))?;
        let body = self.with_caname(self.enroll_body(id, &key, opts)?);
        let (r, _) = self
            .call(
                "POST",
                "/api/v1/enroll",
                body,
                Some(crate::auth::basic_header(id, secret)),
            )
            .await?;
        self.enrollment_from(&r, key_pem)
    }

    /// Reenrolls `who` with a fresh key.
    pub async fn reenroll(
        &self,
        who: &Enrollment,
        opts: &EnrollOptions,
    ) -> Result<Enrollment, ClientError> {
        let id = cert_common_name(&who.cert_pem)?;
        let (key, key_pem) = generate_key().map_err(|e| ClientError::Crypto(e.to_string()))?;
        let body = self.enroll_body(&id, &key, opts)?;
        let r = self.call_as(who, "POST", "reenroll", Some(body)).await?;
        self.enrollment_from(&r, key_pem)
    }

    /// Registers an identity; returns its secret.
    pub async fn register(
        &self,
        registrar: &Enrollment,
        req: &RegistrationRequest,
    ) -> Result<String, ClientError> {
        let body = serde_json::to_value(req).map_err(|e| ClientError::Response(e.to_string()))?;
        let r = self
            .call_as(registrar, "POST", "register", Some(body))
            .await?;
        r.get("secret")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ClientError::Response("no secret in register response".into()))
    }

    /// Revokes; returns the result (`RevokedCerts`, `CRL`).
    pub async fn revoke(
        &self,
        who: &Enrollment,
        req: &RevocationRequest,
    ) -> Result<Value, ClientError> {
        let body = serde_json::to_value(req).map_err(|e| ClientError::Response(e.to_string()))?;
        self.call_as(who, "POST", "revoke", Some(body)).await
    }

    /// Generates a CRL; returns it as PEM.
    pub async fn gencrl(&self, who: &Enrollment) -> Result<String, ClientError> {
        let r = self.call_as(who, "POST", "gencrl", Some(json!({}))).await?;
        decode_b64_field(&r, "CRL")
    }
}

async fn send<T>(
    io: TokioIo<T>,
    req: axum::http::Request<Full<Bytes>>,
) -> Result<RawResponse, ClientError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
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
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn decode_b64_field(v: &Value, name: &str) -> Result<String, ClientError> {
    let s = v
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::Response(format!("no {name} in response")))?;
    let raw = B64
        .decode(s)
        .map_err(|e| ClientError::Response(format!("{name}: {e}")))?;
    String::from_utf8(raw).map_err(|e| ClientError::Response(format!("{name}: {e}")))
}

/// The CN of a PEM certificate (the enrollment ID of a Fabric CA certificate).
pub fn cert_common_name(pem: &str) -> Result<String, ClientError> {
    let der = ordo_crypto::x509::first_pem_der(pem.as_bytes())
        .map_err(|e| ClientError::Crypto(e.to_string()))?;
    let cert =
        x509_cert::Certificate::from_der(&der).map_err(|e| ClientError::Crypto(e.to_string()))?;
    Subject::from_name(&cert.tbs_certificate.subject)
        .map(|s| s.cn)
        .map_err(|e| ClientError::Crypto(e.to_string()))
}

/// Splits a PEM chain into roots (self-signed) and intermediates.
fn split_chain(chain_pem: &str) -> Result<(Vec<String>, Vec<String>), ClientError> {
    let mut roots = Vec::new();
    let mut inters = Vec::new();
    for (tag, der) in ordo_crypto::x509::pem_blocks(chain_pem.as_bytes())
        .map_err(|e| ClientError::Crypto(e.to_string()))?
    {
        if tag != "CERTIFICATE" {
            continue;
        }
        let cert = x509_cert::Certificate::from_der(&der)
            .map_err(|e| ClientError::Crypto(e.to_string()))?;
        let pem = ordo_crypto::x509::to_pem("CERTIFICATE", &der);
        if cert.tbs_certificate.issuer == cert.tbs_certificate.subject {
            roots.push(pem);
        } else {
            inters.push(pem);
        }
    }
    if roots.is_empty() {
        return Err(ClientError::Response(
            "CA chain has no root certificate".into(),
        ));
    }
    Ok((roots, inters))
}

fn write(path: &Path, contents: &str) -> Result<(), ClientError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| io_err(d, e))?;
    }
    std::fs::write(path, contents).map_err(|e| io_err(path, e))
}

fn write_key(path: &Path, contents: &str) -> Result<(), ClientError> {
    write(path, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err(path, e))?;
    }
    Ok(())
}

/// The key file name Fabric's BCCSP keystore uses: hex SHA-256 of the public point, `_sk`.
fn key_file_name(e: &Enrollment) -> Result<String, ClientError> {
    let key = e.key()?;
    Ok(format!(
        "{}_sk",
        hex::encode(ordo_crypto::sha256(key.public_key().point()))
    ))
}

/// Writes an enrollment as `fabric-ca-client enroll -M <dir>` does: `signcerts/cert.pem`,
/// `keystore/<ski>_sk`, `cacerts/<label>.pem` and `intermediatecerts/<label>.pem` (label like
/// `localhost-7054-ca`). It also writes a NodeOUs `config.yaml`, as fabric-operator does for
/// the MSPs it enrolls: a node's local MSP without admincerts needs it to load.
pub fn write_msp_folder(dir: &Path, e: &Enrollment, label: &str) -> Result<(), ClientError> {
    let (roots, inters) = split_chain(&e.chain_pem)?;
    write(&dir.join("signcerts").join("cert.pem"), &e.cert_pem)?;
    write_key(&dir.join("keystore").join(key_file_name(e)?), &e.key_pem)?;
    write(
        &dir.join("cacerts").join(format!("{label}.pem")),
        &roots.concat(),
    )?;
    let issuer = if inters.is_empty() {
        format!("cacerts/{label}.pem")
    } else {
        write(
            &dir.join("intermediatecerts").join(format!("{label}.pem")),
            &inters.concat(),
        )?;
        format!("intermediatecerts/{label}.pem")
    };
    write(&dir.join("config.yaml"), &node_ous_config(&issuer))?;
    Ok(())
}

/// Writes a TLS enrollment (`--enrollment.profile tls`): the MSP-style layout with
/// `tlscacerts/`/`tlsintermediatecerts/`, plus `server.crt`, `server.key` and `ca.crt` as
/// cryptogen and fabric-operator lay out a node's TLS folder.
pub fn write_tls_folder(dir: &Path, e: &Enrollment, label: &str) -> Result<(), ClientError> {
    let (roots, inters) = split_chain(&e.chain_pem)?;
    write(&dir.join("signcerts").join("cert.pem"), &e.cert_pem)?;
    write_key(&dir.join("keystore").join(key_file_name(e)?), &e.key_pem)?;
    write(
        &dir.join("tlscacerts").join(format!("{label}.pem")),
        &roots.concat(),
    )?;
    if !inters.is_empty() {
        write(
            &dir.join("tlsintermediatecerts")
                .join(format!("{label}.pem")),
            &inters.concat(),
        )?;
    }
    write(
        &dir.join("server.crt"),
        &format!("{}{}", e.cert_pem, inters.concat()),
    )?;
    write_key(&dir.join("server.key"), &e.key_pem)?;
    write(&dir.join("ca.crt"), &roots.concat())?;
    Ok(())
}

/// The NodeOUs `config.yaml` of an MSP whose identities are issued by `cacert` (a path under
/// the MSP folder): Fabric CA writes `OU=<type>`, so the four identifiers are the type names.
pub fn node_ous_config(cacert: &str) -> String {
    let mut s = String::from("NodeOUs:\n  Enable: true\n");
    for (key, ou) in [
        ("ClientOUIdentifier", "client"),
        ("PeerOUIdentifier", "peer"),
        ("AdminOUIdentifier", "admin"),
        ("OrdererOUIdentifier", "orderer"),
    ] {
        s.push_str(&format!(
            "  {key}:\n    Certificate: {cacert}\n    OrganizationalUnitIdentifier: {ou}\n"
        ));
    }
    s
}

/// Assembles an organization's MSP definition folder from the chains of its two CAs (what
/// `ordo ca msp` writes): `cacerts/ca-cert.pem`, `intermediatecerts/`,
/// `tlscacerts/tlsca-cert.pem`, `tlsintermediatecerts/`, `config.yaml` with NodeOUs enabled,
/// and `admincerts/` only when admin certificates are given (with NodeOUs, admins are
/// recognised by `OU=admin` instead).
pub fn build_org_msp(
    dir: &Path,
    ca_chain_pem: &str,
    tlsca_chain_pem: &str,
    admin_certs: &[String],
) -> Result<(), ClientError> {
    let (roots, inters) = split_chain(ca_chain_pem)?;
    let (tls_roots, tls_inters) = split_chain(tlsca_chain_pem)?;
    write(&dir.join("cacerts").join("ca-cert.pem"), &roots.concat())?;
    if !inters.is_empty() {
        write(
            &dir.join("intermediatecerts").join("ca-cert.pem"),
            &inters.concat(),
        )?;
    }
    write(
        &dir.join("tlscacerts").join("tlsca-cert.pem"),
        &tls_roots.concat(),
    )?;
    if !tls_inters.is_empty() {
        write(
            &dir.join("tlsintermediatecerts").join("tlsca-cert.pem"),
            &tls_inters.concat(),
        )?;
    }
    for (i, a) in admin_certs.iter().enumerate() {
        write(&dir.join("admincerts").join(format!("admin{i}.pem")), a)?;
    }
    let issuer = if inters.is_empty() {
        "cacerts/ca-cert.pem"
    } else {
        "intermediatecerts/ca-cert.pem"
    };
    write(&dir.join("config.yaml"), &node_ous_config(issuer))?;
    Ok(())
}

/// `<host>-<port>-<caname>` as Fabric CA's client names the CA certificate files.
pub fn cert_label(url: &str, ca_name: &str) -> String {
    let rest = url
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let base = rest.replace([':', '.', '/'], "-");
    if ca_name.is_empty() {
        base
    } else {
        format!("{base}-{ca_name}")
    }
}

/// A PEM CSR for `key` with CN `cn` and SANs `hosts`.
pub fn csr_pem(key: &SigningKey, cn: &str, hosts: &[String]) -> Result<String, ClientError> {
    build_csr(
        key,
        &Subject {
            cn: cn.to_string(),
            ..Subject::default()
        },
        hosts,
    )
    .map_err(|e| ClientError::Crypto(e.to_string()))
}
