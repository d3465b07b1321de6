//! Shared helpers: an in-process `ordo ca` on 127.0.0.1, port 0, with TLS, and its clients.

#![allow(dead_code)]

use std::path::Path;

use ordo_ca::client::{CaClient, EnrollOptions, Enrollment, RegistrationRequest};
use ordo_ca::config::{BootstrapIdentity, ServerConfig};
use ordo_ca::server::{RunningServer, start};
use serde_json::Value;

pub fn config(home: &Path) -> ServerConfig {
    ServerConfig {
        port: 0,
        address: "127.0.0.1".into(),
        home: home.to_path_buf(),
        ..ServerConfig::default()
    }
}

pub struct Harness {
    pub server: RunningServer,
    pub url: String,
    pub tls_roots: Vec<String>,
}

impl Harness {
    pub async fn start(cfg: &ServerConfig) -> Harness {
        let server = start(
            cfg,
            Some(BootstrapIdentity::from_flag("admin:adminpw").expect("flag")),
        )
        .await
        .expect("server starts");
        let url = format!("https://localhost:{}", server.addr.port());
        let tls_roots = vec![server.tls_ca_pem.clone().expect("TLS on")];
        Harness {
            server,
            url,
            tls_roots,
        }
    }

    pub fn client(&self, ca: &str) -> CaClient {
        CaClient::new(&self.url, &self.tls_roots, ca).expect("client")
    }

    pub async fn admin(&self) -> Enrollment {
        self.client("ca")
            .enroll("admin", "adminpw", &EnrollOptions::default())
            .await
            .expect("bootstrap admin enrolls")
    }

    pub async fn register(
        &self,
        registrar: &Enrollment,
        id: &str,
        id_type: &str,
        secret: &str,
        max: i64,
    ) -> String {
        self.client("ca")
            .register(
                registrar,
                &RegistrationRequest {
                    id: id.into(),
                    id_type: id_type.into(),
                    secret: secret.into(),
                    max_enrollments: max,
                    ..RegistrationRequest::default()
                },
            )
            .await
            .expect("register")
    }
}

/// The envelope's first error code and the HTTP status.
pub fn error_of(status: u16, env: &Value) -> (u16, i64) {
    assert_eq!(env["success"], Value::Bool(false), "{env}");
    (
        status,
        env["errors"][0]["code"].as_i64().expect("error code"),
    )
}

pub fn cert_der(pem: &str) -> Vec<u8> {
    ordo_crypto::x509::first_pem_der(pem.as_bytes()).expect("PEM")
}
