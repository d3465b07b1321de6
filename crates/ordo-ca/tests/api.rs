//! Fabric CA's REST API edge cases against an in-process server: CA selection, reenroll,
//! revocation and CRLs, bad input of every kind, enrollment limits, restarts.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Harness, cert_der, config, error_of};
use ordo_ca::auth::{basic_header, create_token};
use ordo_ca::client::{ClientError, EnrollOptions, RegistrationRequest, RevocationRequest};
use serde_json::{Value, json};
use x509_parser::prelude::*;

fn server_error(e: ClientError) -> (u16, i64) {
    match e {
        ClientError::Server { status, code, .. } => (status, code),
        other => panic!("expected a server error, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cainfo_on_both_prefixes_and_ca_selection() {
    let home = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(home.path())).await;
    let c = h.client("");
    let r = c.raw("GET", "/cainfo", vec![], None).await.unwrap();
    assert_eq!(r.status, 200);
    let env = r.json().unwrap();
    assert_eq!(env["success"], true);
    assert_eq!(env["result"]["CAName"], "ca", "default CA is the first");
    assert_eq!(env["errors"], json!([]));
    assert_eq!(env["messages"], json!([]));
    let r = c
        .raw("GET", "/api/v1/cainfo?ca=tlsca", vec![], None)
        .await
        .unwrap();
    assert_eq!(r.json().unwrap()["result"]["CAName"], "tlsca");
    // Body `CAName` (Go client spelling) selects too.
    let r = c
        .raw(
            "POST",
            "/api/v1/cainfo",
            br#"{"CAName":"tlsca"}"#.to_vec(),
            None,
        )
        .await
        .unwrap();
    let tls_chain = r.json().unwrap()["result"]["CAChain"]
        .as_str()
        .unwrap()
        .to_string();
    let pem = String::from_utf8(B64.decode(tls_chain).unwrap()).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let r = c
        .raw("GET", "/api/v1/cainfo?ca=nope", vec![], None)
        .await
        .unwrap();
    assert_eq!(error_of(r.status, &r.json().unwrap()), (404, 19));
    let r = c
        .raw("DELETE", "/api/v1/enroll", vec![], None)
        .await
        .unwrap();
    assert_eq!(error_of(r.status, &r.json().unwrap()), (405, 1));
    let r = c.raw("GET", "/api/v1/nothing", vec![], None).await.unwrap();
    assert_eq!(r.status, 404);
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reenroll_revoke_and_crl() {
    let home = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(home.path())).await;
    let ca = h.client("ca");
    let admin = h.admin().await;
    h.register(&admin, "os1", "orderer", "os1pw", 0).await;
    let first = ca
        .enroll("os1", "os1pw", &EnrollOptions::default())
        .await
        .unwrap();
    let second = ca
        .reenroll(&first, &EnrollOptions::default())
        .await
        .unwrap();
    assert_ne!(first.cert_pem, second.cert_pem);
    assert_ne!(first.key_pem, second.key_pem);
    let c2_der = cert_der(&second.cert_pem);
    let (_, c2) = X509Certificate::from_der(&c2_der).unwrap();
    assert_eq!(
        c2.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "os1"
    );

    // Revoke the first certificate by serial and AKI.
    let c1_der = cert_der(&first.cert_pem);
    let (_, c1) = X509Certificate::from_der(&c1_der).unwrap();
    let serial = hex::encode(c1.raw_serial());
    let aki = c1
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| hex::encode(k.0))
            }
            _ => None,
        })
        .unwrap();
    let r = ca
        .revoke(
            &admin,
            &RevocationRequest {
                serial: serial.to_uppercase(),
                aki: aki.clone(),
                reason: "keyCompromise".into(),
                ..RevocationRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r["RevokedCerts"].as_array().unwrap().len(), 1);
    // The revoked certificate no longer authenticates; the reenrolled one does.
    let e = ca
        .reenroll(&first, &EnrollOptions::default())
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (401, 20));
    ca.call_as(&second, "GET", "affiliations?ca=ca", None)
        .await
        .unwrap();
    // Revoking it again: already revoked.
    let e = ca
        .revoke(
            &admin,
            &RevocationRequest {
                serial: serial.clone(),
                aki: aki.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (404, 66));

    let crl_pem = ca.gencrl(&admin).await.unwrap();
    let crl_der = ordo_crypto::x509::first_pem_der(crl_pem.as_bytes()).unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&crl_der).unwrap();
    let revoked: Vec<String> = crl
        .iter_revoked_certificates()
        .map(|r| hex::encode(r.raw_serial()))
        .collect();
    assert_eq!(revoked, vec![serial.clone()]);
    let ca_cert_der = cert_der(&first.chain_pem);
    let (_, ca_cert) = X509Certificate::from_der(&ca_cert_der).unwrap();
    crl.verify_signature(ca_cert.public_key()).unwrap();

    // Revoking the identity revokes its remaining certificate and stops it enrolling.
    let r = ca
        .revoke(
            &admin,
            &RevocationRequest {
                id: "os1".into(),
                gencrl: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r["RevokedCerts"].as_array().unwrap().len(), 1);
    let crl_pem = String::from_utf8(B64.decode(r["CRL"].as_str().unwrap()).unwrap()).unwrap();
    let crl_der = ordo_crypto::x509::first_pem_der(crl_pem.as_bytes()).unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&crl_der).unwrap();
    assert_eq!(crl.iter_revoked_certificates().count(), 2);
    let e = ca
        .enroll("os1", "os1pw", &EnrollOptions::default())
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (401, 20));
    // Without hf.Revoker, revoking someone else is an authorization failure.
    h.register(&admin, "user1", "client", "user1pw", 0).await;
    let user1 = ca
        .enroll("user1", "user1pw", &EnrollOptions::default())
        .await
        .unwrap();
    let e = ca
        .revoke(
            &user1,
            &RevocationRequest {
                id: "admin".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (403, 71));
    // ... and so is generating a CRL.
    assert_eq!(
        server_error(ca.gencrl(&user1).await.unwrap_err()),
        (403, 71)
    );
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_high_s_tokens_are_rejected() {
    let home = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(home.path())).await;
    let ca = h.client("ca");
    let admin = h.admin().await;
    let key = admin.key().unwrap();
    let uri = "/api/v1/register";
    let body_a = br#"{"id":"alice","type":"client","caname":"ca"}"#.to_vec();
    let body_b = br#"{"id":"mallory","type":"client","caname":"ca","attrs":[{"name":"hf.Revoker","value":"true"}]}"#.to_vec();

    // Replayed with another body.
    let token = create_token(&admin.cert_pem, &key, "POST", uri, &body_a).unwrap();
    let r = ca
        .raw("POST", uri, body_b.clone(), Some(token.clone()))
        .await
        .unwrap();
    assert_eq!(error_of(r.status, &r.json().unwrap()), (401, 20));
    // Replayed to another URI and with another method.
    let r = ca
        .raw("POST", "/register", body_a.clone(), Some(token.clone()))
        .await
        .unwrap();
    assert_eq!(error_of(r.status, &r.json().unwrap()), (401, 20));
    // High-S: the same signature with s replaced by n - s is mathematically valid.
    let (cert_b64, sig_b64) = token.split_once('.').unwrap();
    let sig = B64.decode(sig_b64).unwrap();
    let high = high_s(&sig);
    assert_ne!(high, sig);
    let r = ca
        .raw(
            "POST",
            uri,
            body_a.clone(),
            Some(format!("{cert_b64}.{}", B64.encode(&high))),
        )
        .await
        .unwrap();
    assert_eq!(error_of(r.status, &r.json().unwrap()), (401, 20));
    // A certificate from another CA with a valid signature.
    let other_home = tempfile::tempdir().unwrap();
    let other = Harness::start(&common::config(other_home.path())).await;
    let stranger = other.admin().await;
    let forged = create_token(
        &stranger.cert_pem,
        &stranger.key().unwrap(),
        "POST",
        uri,
        &body_a,
    )
    .unwrap();
    let r = ca
        .raw("POST", uri, body_a.clone(), Some(forged))
        .await
        .unwrap();
    assert_eq!(error_of(r.status, &r.json().unwrap()), (401, 20));
    // Garbage, missing header, and the v1.3 format (compatibility mode is off).
    for bad in ["abc", "a.b.c", "!!!.???"] {
        let r = ca
            .raw("POST", uri, body_a.clone(), Some(bad.into()))
            .await
            .unwrap();
        assert_eq!(error_of(r.status, &r.json().unwrap()), (401, 20), "{bad}");
    }
    let r = ca.raw("POST", uri, body_a.clone(), None).await.unwrap();
    assert_eq!(error_of(r.status, &r.json().unwrap()), (401, 2));
    let legacy = legacy_token(&admin.cert_pem, &key, &body_a);
    let r = ca
        .raw("POST", uri, body_a.clone(), Some(legacy))
        .await
        .unwrap();
    assert_eq!(error_of(r.status, &r.json().unwrap()), (401, 20));
    // Nothing was registered by any of these.
    let e = ca
        .call_as(&admin, "GET", "identities/alice?ca=ca", None)
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (404, 49));
    let e = ca
        .call_as(&admin, "GET", "identities/mallory?ca=ca", None)
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (404, 49));
    // The genuine token works, and its response carries Location.
    let token = create_token(&admin.cert_pem, &key, "POST", uri, &body_a).unwrap();
    let r = ca
        .raw("POST", uri, body_a.clone(), Some(token))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.json());
    assert_eq!(r.headers["location"], "/api/v1/identities/alice");
    other.server.stop().await;
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compatibility_mode_accepts_v1_3_tokens() {
    let home = tempfile::tempdir().unwrap();
    let mut cfg = config(home.path());
    cfg.compatibility_mode_v1_3 = true;
    let h = Harness::start(&cfg).await;
    let ca = h.client("ca");
    let admin = h.admin().await;
    let body = br#"{"id":"py","type":"client","caname":"ca"}"#.to_vec();
    let legacy = legacy_token(&admin.cert_pem, &admin.key().unwrap(), &body);
    let r = ca
        .raw("POST", "/api/v1/register", body, Some(legacy))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{:?}", r.json());
    h.server.stop().await;
}

/// Rewrites a DER ECDSA P-256 signature's s as n - s.
fn high_s(der: &[u8]) -> Vec<u8> {
    let n =
        hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551").unwrap();
    // SEQUENCE { INTEGER r, INTEGER s }, short lengths for P-256.
    let rlen = der[3] as usize;
    let r = &der[4..4 + rlen];
    let s = &der[4 + rlen + 2..];
    let mut sp = [0u8; 32];
    let s = if s.len() > 32 { &s[s.len() - 32..] } else { s };
    sp[32 - s.len()..].copy_from_slice(s);
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = n[i] as i16 - sp[i] as i16 - borrow;
        borrow = if d < 0 {
            d += 256;
            1
        } else {
            0
        };
        out[i] = d as u8;
    }
    let int = |v: &[u8]| {
        let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        let mut e = vec![0x02];
        if v[0] & 0x80 != 0 {
            e.push(v.len() as u8 + 1);
            e.push(0);
        } else {
            e.push(v.len() as u8);
        }
        e.extend(v);
        e
    };
    let mut body = int(r);
    body.extend(int(&out));
    let mut sig = vec![0x30, body.len() as u8];
    sig.extend(body);
    sig
}

fn legacy_token(cert_pem: &str, key: &ordo_crypto::SigningKey, body: &[u8]) -> String {
    let b64_cert = B64.encode(cert_pem);
    let msg = format!("{}.{b64_cert}", B64.encode(body));
    format!(
        "{b64_cert}.{}",
        B64.encode(key.sign(msg.as_bytes()).unwrap())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_enrollments_write_nothing() {
    let home = tempfile::tempdir().unwrap();
    let mut cfg = config(home.path());
    cfg.max_body_bytes = 64 * 1024;
    let h = Harness::start(&cfg).await;
    let ca = h.client("ca");
    let admin = h.admin().await;
    h.register(&admin, "once", "client", "oncepw", 1).await;

    // Wrong secret, unknown identity.
    let e = ca
        .enroll("once", "wrong", &EnrollOptions::default())
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (401, 20));
    let e = ca
        .enroll("nobody", "x", &EnrollOptions::default())
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (401, 20));

    let auth = Some(basic_header("once", "oncepw"));
    let post = |body: Vec<u8>| {
        let ca = ca.clone();
        let auth = auth.clone();
        async move {
            let r = ca.raw("POST", "/api/v1/enroll", body, auth).await.unwrap();
            error_of(r.status, &r.json().unwrap())
        }
    };
    // Malformed CSRs: not PEM, PEM of garbage, wrong block type, bad signature.
    assert_eq!(
        post(br#"{"certificate_request":"nope"}"#.to_vec()).await,
        (400, 31)
    );
    let garbage = ordo_crypto::x509::to_pem("CERTIFICATE REQUEST", b"\x30\x03\x02\x01\x00");
    assert_eq!(
        post(
            json!({"certificate_request": garbage})
                .to_string()
                .into_bytes()
        )
        .await,
        (400, 31)
    );
    let wrong_type = ordo_crypto::x509::to_pem("CERTIFICATE", b"\x30\x00");
    assert_eq!(
        post(
            json!({"certificate_request": wrong_type})
                .to_string()
                .into_bytes()
        )
        .await,
        (400, 31)
    );
    let good_csr = csr_for("once");
    let mut tampered = ordo_crypto::x509::first_pem_der(good_csr.as_bytes()).unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let tampered = ordo_crypto::x509::to_pem("CERTIFICATE REQUEST", &tampered);
    assert_eq!(
        post(
            json!({"certificate_request": tampered})
                .to_string()
                .into_bytes()
        )
        .await,
        (400, 31)
    );
    // CN other than the enrollment ID; unknown profile; no body; not JSON; oversized.
    assert_eq!(
        post(
            json!({"certificate_request": csr_for("admin")})
                .to_string()
                .into_bytes()
        )
        .await,
        (403, 77)
    );
    assert_eq!(
        post(
            json!({"certificate_request": good_csr, "profile": "nope"})
                .to_string()
                .into_bytes()
        )
        .await,
        (400, 5)
    );
    assert_eq!(post(vec![]).await, (400, 4));
    assert_eq!(post(b"{not json".to_vec()).await, (400, 5));
    assert_eq!(post(vec![b' '; 100 * 1024]).await.0, 413);
    // Requesting a CA certificate needs hf.IntermediateCA.
    assert_eq!(
        post(
            json!({"certificate_request": good_csr, "profile": "ca"})
                .to_string()
                .into_bytes()
        )
        .await,
        (403, 71)
    );

    // None of the failures used the single enrollment.
    let ok = ca
        .enroll("once", "oncepw", &EnrollOptions::default())
        .await
        .unwrap();
    assert!(ok.cert_pem.contains("BEGIN CERTIFICATE"));
    let e = ca
        .enroll("once", "oncepw", &EnrollOptions::default())
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (401, 20), "exhausted");
    // Only that one certificate is in the registry.
    let r = ca
        .call_as(&admin, "GET", "certificates?id=once&ca=ca", None)
        .await
        .unwrap();
    assert_eq!(r["certs"].as_array().unwrap().len(), 1);
    h.server.stop().await;
}

fn csr_for(cn: &str) -> String {
    let (key, _) = ordo_ca::ca::generate_key().unwrap();
    ordo_ca::client::csr_pem(&key, cn, &[]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enrollments_respect_the_limit() {
    let home = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(home.path())).await;
    let admin = h.admin().await;
    h.register(&admin, "thrice", "client", "thricepw", 3).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = h.client("ca");
        tasks.push(tokio::spawn(async move {
            c.enroll("thrice", "thricepw", &EnrollOptions::default())
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(server_error(e), (401, 20)),
        }
    }
    assert_eq!(ok, 3);
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrar_rules() {
    let home = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(home.path())).await;
    let ca = h.client("ca");
    let admin = h.admin().await;
    h.register(&admin, "os1", "orderer", "os1pw", 0).await;
    let os1 = ca
        .enroll("os1", "os1pw", &EnrollOptions::default())
        .await
        .unwrap();
    let reg = |id: &str, t: &str, aff: &str, attrs: Value| RegistrationRequest {
        id: id.into(),
        id_type: t.into(),
        affiliation: aff.into(),
        attrs: serde_json::from_value(attrs).unwrap(),
        ..RegistrationRequest::default()
    };
    // Duplicate.
    let e = ca
        .register(&admin, &reg("os1", "orderer", "", json!([])))
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (409, 74));
    // Not a registrar.
    let e = ca
        .register(&os1, &reg("x", "client", "", json!([])))
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (403, 71));
    // Fixed and unknown reserved attributes, unknown affiliation.
    for attrs in [
        json!([{"name": "hf.Type", "value": "peer"}]),
        json!([{"name": "hf.Bogus", "value": "1"}]),
    ] {
        let e = ca
            .register(&admin, &reg("y", "client", "", attrs))
            .await
            .unwrap_err();
        assert_eq!(server_error(e), (403, 71));
    }
    let e = ca
        .register(&admin, &reg("y", "client", "org9", json!([])))
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (403, 71));
    // A sub-registrar limited to peers in org1 cannot register an orderer nor leave org1.
    ca.register(
        &admin,
        &RegistrationRequest {
            secret: "subpw".into(),
            ..reg(
                "sub",
                "client",
                "org1",
                json!([{"name": "hf.Registrar.Roles", "value": "peer"}, {"name": "hf.Registrar.Attributes", "value": "*"}]),
            )
        },
    )
    .await
    .unwrap();
    let sub = ca
        .enroll("sub", "subpw", &EnrollOptions::default())
        .await
        .unwrap();
    assert_eq!(
        server_error(
            ca.register(&sub, &reg("o", "orderer", "", json!([])))
                .await
                .unwrap_err()
        ),
        (403, 71)
    );
    assert_eq!(
        server_error(
            ca.register(&sub, &reg("p", "peer", "org2", json!([])))
                .await
                .unwrap_err()
        ),
        (403, 71)
    );
    assert_eq!(
        server_error(
            ca.register(
                &sub,
                &reg(
                    "p",
                    "peer",
                    "",
                    json!([{"name": "hf.Revoker", "value": "true"}])
                )
            )
            .await
            .unwrap_err()
        ),
        (403, 71)
    );
    // Empty affiliation = the registrar's.
    let secret = ca
        .register(
            &sub,
            &reg(
                "p",
                "peer",
                "",
                json!([{"name": "role", "value": "x", "ecert": true}]),
            ),
        )
        .await
        .unwrap();
    let p = ca
        .call_as(&admin, "GET", "identities/p?ca=ca", None)
        .await
        .unwrap();
    assert_eq!(p["affiliation"], "org1");
    assert_eq!(p["type"], "peer");
    // Max enrollments above the CA's limit of -1 is fine; below -1 is not.
    let e = ca
        .register(
            &admin,
            &RegistrationRequest {
                max_enrollments: -2,
                ..reg("z", "client", "", json!([]))
            },
        )
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (400, 82));
    // attr_reqs: requested attribute present; a missing non-optional one fails.
    let cp = ca
        .enroll(
            "p",
            &secret,
            &EnrollOptions {
                attr_reqs: Some(vec![("role".into(), false)]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let der = cert_der(&cp.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.2.3.4.5.6.7.8.1")
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(ext.value).unwrap(),
        json!({"attrs": {"role": "x"}})
    );
    let e = ca
        .enroll(
            "p",
            &secret,
            &EnrollOptions {
                attr_reqs: Some(vec![("missing".into(), false)]),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (400, 81));

    // Identities, affiliations, certificates as the admin sees them.
    let ids = ca
        .call_as(&admin, "GET", "identities?ca=ca", None)
        .await
        .unwrap();
    let names: Vec<&str> = ids["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["admin", "os1", "p", "sub"]);
    let subs = ca
        .call_as(&sub, "GET", "identities?ca=ca", None)
        .await
        .unwrap();
    let names: Vec<&str> = subs["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["p"]);
    let affs = ca
        .call_as(&admin, "GET", "affiliations?ca=ca", None)
        .await
        .unwrap();
    assert_eq!(affs["name"], "");
    assert_eq!(affs["affiliations"][0]["name"], "org1");
    assert_eq!(
        affs["affiliations"][0]["affiliations"][1]["name"],
        "org1.department2"
    );
    ca.call_as(
        &admin,
        "POST",
        "affiliations?force=true",
        Some(json!({"name": "org3.ops"})),
    )
    .await
    .unwrap();
    let e = ca
        .call_as(
            &admin,
            "POST",
            "affiliations",
            Some(json!({"name": "org3"})),
        )
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (409, 60));
    let e = ca
        .call_as(&admin, "DELETE", "affiliations/org3?ca=ca", None)
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (400, 61));
    ca.call_as(&admin, "DELETE", "affiliations/org3?force=true&ca=ca", None)
        .await
        .unwrap();
    let certs = ca
        .call_as(&admin, "GET", "certificates?ca=ca", None)
        .await
        .unwrap();
    assert_eq!(certs["certs"].as_array().unwrap().len(), 4);
    // Modify and remove.
    let m = ca
        .call_as(
            &admin,
            "PUT",
            "identities/p",
            Some(json!({"type": "client", "attrs": [{"name": "role", "value": ""}]})),
        )
        .await
        .unwrap();
    assert_eq!(m["type"], "client");
    assert!(
        m["attrs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["name"] != "role")
    );
    ca.call_as(&admin, "DELETE", "identities/p?ca=ca", None)
        .await
        .unwrap();
    let e = ca
        .call_as(&admin, "GET", "identities/p?ca=ca", None)
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (404, 49));
    let e = ca
        .call_as(&admin, "DELETE", "identities/admin?ca=ca", None)
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (403, 56));
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_keys_registry_and_tokens() {
    let home = tempfile::tempdir().unwrap();
    let cfg = config(home.path());
    let h = Harness::start(&cfg).await;
    let ca = h.client("ca");
    let admin = h.admin().await;
    h.register(&admin, "os1", "orderer", "os1pw", 2).await;
    ca.enroll("os1", "os1pw", &EnrollOptions::default())
        .await
        .unwrap();
    let (_, chain_before) = ca.cainfo().await.unwrap();
    let tls_before = h.tls_roots.clone();
    h.server.stop().await;

    let h = Harness::start(&cfg).await;
    assert_eq!(h.tls_roots, tls_before);
    let ca = h.client("ca");
    let (_, chain_after) = ca.cainfo().await.unwrap();
    assert_eq!(
        chain_before, chain_after,
        "CA key and root are loaded, not regenerated"
    );
    // The admin's old certificate still authenticates; os1 has one enrollment left.
    let os1 = ca
        .call_as(&admin, "GET", "identities/os1?ca=ca", None)
        .await
        .unwrap();
    assert_eq!(os1["max_enrollments"], 2);
    ca.enroll("os1", "os1pw", &EnrollOptions::default())
        .await
        .unwrap();
    let e = ca
        .enroll("os1", "os1pw", &EnrollOptions::default())
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (401, 20));
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_input_gets_a_fabric_error_and_writes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(home.path())).await;
    let ca = h.client("ca");
    let admin = h.admin().await;
    let key = admin.key().unwrap();
    let bodies: Vec<Vec<u8>> = [
        "[]",
        "\"x\"",
        "7",
        "null",
        "{\"id\": 5}",
        "{\"id\": \"\"}",
        "{\"id\": \"j\", \"type\": 3}",
        "{\"id\": \"j\", \"attrs\": \"x\"}",
        "{\"id\": \"j\", \"attrs\": [{\"name\": 1}]}",
        "{\"id\": \"j\", \"max_enrollments\": \"many\"}",
        "{\"id\": \"j\", \"max_enrollments\": 1.5}",
        "{\"id\": \"j\", \"affiliation\": \"no.such\"}",
        "{\"certificate_request\": 7}",
        "{\"certificate_request\": \"\", \"hosts\": \"x\"}",
        "{\"hosts\": [1]}",
        "{\"attr_reqs\": \"x\"}",
        "{\"serial\": \"zz\", \"aki\": \"zz\"}",
        "{\"id\": \"nobody\", \"secret\": 5}",
        "{\"revokedafter\": \"2024-13-01T00:00:00Z\"}",
        "{\"revokedafter\": \"2030-01-01T00:00:00Z\", \"revokedbefore\": \"2020-01-01T00:00:00Z\"}",
        "{\"name\": \"\"}",
        "{\"name\": \"a..b\"}",
        "{\"caname\": \"nope\"}",
        "{\"caname\": 5}",
        "\u{0}\u{1}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let endpoints = [
        ("POST", "/api/v1/enroll"),
        ("POST", "/api/v1/reenroll"),
        ("POST", "/api/v1/register"),
        ("POST", "/api/v1/revoke"),
        ("POST", "/api/v1/gencrl"),
        ("POST", "/api/v1/identities"),
        ("PUT", "/api/v1/identities/nobody"),
        ("PUT", "/api/v1/identities/admin"),
        ("POST", "/api/v1/affiliations"),
        ("PUT", "/api/v1/affiliations/org1"),
        (
            "GET",
            "/api/v1/certificates?revoked_start=%ZZ&notrevoked=maybe",
        ),
        ("GET", "/api/v1/identities/%E9%ZZ"),
    ];
    for (method, uri) in endpoints {
        for body in &bodies {
            let auth = if uri.ends_with("/enroll") {
                basic_header("admin", "adminpw")
            } else {
                create_token(&admin.cert_pem, &key, method, uri, body).unwrap()
            };
            let r = ca.raw(method, uri, body.clone(), Some(auth)).await.unwrap();
            let env = r.json().unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
            let what = format!("{method} {uri} {}", String::from_utf8_lossy(body));
            // The generated PUT of admin with an empty body is a no-op modification; gencrl
            // with an empty object is a valid request.
            if env["success"] == true {
                assert!(r.status < 300, "{what}");
                continue;
            }
            assert!(
                (400..500).contains(&r.status) || r.status == 501,
                "{what}: {} {env}",
                r.status
            );
            assert!(env["errors"][0]["code"].is_i64(), "{what}");
        }
    }
    // Only the bootstrap admin and its one certificate exist.
    let ids = ca
        .call_as(&admin, "GET", "identities?ca=ca", None)
        .await
        .unwrap();
    assert_eq!(ids["identities"].as_array().unwrap().len(), 1);
    let certs = ca
        .call_as(&admin, "GET", "certificates?ca=ca", None)
        .await
        .unwrap();
    assert_eq!(certs["certs"].as_array().unwrap().len(), 1);
    let affs = ca
        .call_as(&admin, "GET", "affiliations?ca=ca", None)
        .await
        .unwrap();
    assert_eq!(affs["affiliations"].as_array().unwrap().len(), 2);
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_an_affiliation_moves_its_identities() {
    let home = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(home.path())).await;
    let ca = h.client("ca");
    let admin = h.admin().await;
    let secret = ca
        .register(
            &admin,
            &RegistrationRequest {
                id: "peer1".into(),
                id_type: "peer".into(),
                affiliation: "org1.department1".into(),
                ..RegistrationRequest::default()
            },
        )
        .await
        .unwrap();
    // Identities are affected: force is required.
    let body = json!({"name": "orgA"});
    let e = ca
        .call_as(&admin, "PUT", "affiliations/org1", Some(body.clone()))
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (400, 64));
    let e = ca
        .call_as(
            &admin,
            "PUT",
            "affiliations/org1",
            Some(json!({"name": "org2"})),
        )
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (409, 64));
    let r = ca
        .call_as(&admin, "PUT", "affiliations/org1?force=true", Some(body))
        .await
        .unwrap();
    assert_eq!(r["name"], "orgA");
    assert_eq!(r["affiliations"][0]["name"], "orgA.department1");
    assert_eq!(r["identities"][0]["id"], "peer1");
    let p = ca
        .call_as(&admin, "GET", "identities/peer1?ca=ca", None)
        .await
        .unwrap();
    assert_eq!(p["affiliation"], "orgA.department1");
    let aff_attr = p["attrs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "hf.Affiliation")
        .unwrap()
        .clone();
    assert_eq!(aff_attr["value"], "orgA.department1");
    let e = ca
        .call_as(&admin, "GET", "affiliations/org1?ca=ca", None)
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (404, 16));
    // Its next certificate carries the new path.
    let enr = ca
        .enroll("peer1", &secret, &EnrollOptions::default())
        .await
        .unwrap();
    let der = cert_der(&enr.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let mut ous: Vec<String> = cert
        .subject()
        .iter_organizational_unit()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    ous.sort();
    assert_eq!(ous, vec!["department1", "orgA", "peer"]);
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_enrollment_limit_and_expiry_clamp() {
    let home = tempfile::tempdir().unwrap();
    let mut cfg = config(home.path());
    // The CA allows two enrollments per identity, and its root outlives no certificate.
    cfg.registry.maxenrollments = 2;
    cfg.csr.ca.expiry = "100h".into();
    let h = Harness::start(&cfg).await;
    let ca = h.client("ca");
    // The bootstrap admin is registered with -1: the CA's 2 applies.
    let admin = h.admin().await;
    ca.enroll("admin", "adminpw", &EnrollOptions::default())
        .await
        .unwrap();
    let e = ca
        .enroll("admin", "adminpw", &EnrollOptions::default())
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (401, 20));
    // Registration: unlimited and above the CA's limit are refused, 0 means the CA's limit.
    let reg = |max: i64| RegistrationRequest {
        id: format!("u{}", max + 10),
        id_type: "client".into(),
        max_enrollments: max,
        ..RegistrationRequest::default()
    };
    assert_eq!(
        server_error(ca.register(&admin, &reg(-1)).await.unwrap_err()),
        (400, 82)
    );
    assert_eq!(
        server_error(ca.register(&admin, &reg(3)).await.unwrap_err()),
        (400, 82)
    );
    ca.register(&admin, &reg(0)).await.unwrap();
    let u = ca
        .call_as(&admin, "GET", "identities/u10", None)
        .await
        .unwrap();
    assert_eq!(u["max_enrollments"], 2);

    // Certificates never outlive the CA: the default profile's 8760h is cut to the root's 100h.
    let der = cert_der(&admin.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let root_der = cert_der(&admin.chain_pem);
    let (_, root) = X509Certificate::from_der(&root_der).unwrap();
    assert_eq!(cert.validity().not_after, root.validity().not_after);
    assert!(cert.validity().not_before >= root.validity().not_before);
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_with_enrollment_disabled_refuses_enroll() {
    let home = tempfile::tempdir().unwrap();
    let mut cfg = config(home.path());
    cfg.registry.maxenrollments = 0;
    let h = Harness::start(&cfg).await;
    let e = h
        .client("ca")
        .enroll("admin", "adminpw", &EnrollOptions::default())
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (401, 20));
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_key_and_root_load_from_configured_files() {
    let first = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(first.path())).await;
    let (_, chain) = h.client("ca").cainfo().await.unwrap();
    h.server.stop().await;

    // Another home, another database: the same CA from its files.
    let second = tempfile::tempdir().unwrap();
    let mut cfg = config(second.path());
    let ca_dir = first.path().join("ca");
    cfg.cas = vec![ordo_ca::config::CaEntry {
        name: "ca".into(),
        certfile: ca_dir.join("ca-cert.pem").display().to_string(),
        keyfile: ca_dir.join("ca-key.pem").display().to_string(),
        cn: String::new(),
    }];
    let h = Harness::start(&cfg).await;
    let ca = h.client("ca");
    assert_eq!(ca.cainfo().await.unwrap().1, chain);
    // Only the configured CA is served.
    let e = h.client("tlsca").cainfo().await.unwrap_err();
    assert_eq!(server_error(e), (404, 19));
    // Certificates chain to the loaded root; a CN beyond 64 characters is refused (code 80).
    let admin = h.admin().await;
    let der = cert_der(&admin.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let root_der = cert_der(&chain);
    let (_, root) = X509Certificate::from_der(&root_der).unwrap();
    cert.verify_signature(Some(root.public_key())).unwrap();
    let long = "x".repeat(65);
    h.register(&admin, &long, "client", "longpw", 0).await;
    let e = ca
        .enroll(&long, "longpw", &EnrollOptions::default())
        .await
        .unwrap_err();
    assert_eq!(server_error(e), (400, 80));
    h.server.stop().await;

    // A key that is not the certificate's is refused at start.
    let mut bad = cfg.clone();
    bad.cas[0].keyfile = first.path().join("tlsca/ca-key.pem").display().to_string();
    let err = ordo_ca::start(&bad, None).await.unwrap_err();
    assert!(err.to_string().contains("does not hold the key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sans_come_from_the_csr_unless_hosts_is_present() {
    let home = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(home.path())).await;
    let ca = h.client("ca");
    let admin = h.admin().await;
    h.register(&admin, "node", "peer", "nodepw", 0).await;
    let (key, _) = ordo_ca::ca::generate_key().unwrap();
    let csr = ordo_ca::client::csr_pem(&key, "node", &["csr.example.com".into()]).unwrap();
    let sans_of = |pem: &str| -> Vec<String> {
        let der = cert_der(pem);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        cert.subject_alternative_name()
            .unwrap()
            .map(|s| {
                s.value
                    .general_names
                    .iter()
                    .map(|n| format!("{n}"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut issued = Vec::new();
    for body in [
        json!({"certificate_request": csr}),
        json!({"certificate_request": csr, "hosts": []}),
        json!({"certificate_request": csr, "hosts": ["req.example.com", "10.0.0.1"]}),
    ] {
        let r = ca
            .raw(
                "POST",
                "/api/v1/enroll",
                body.to_string().into_bytes(),
                Some(basic_header("node", "nodepw")),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 201);
        let b64 = r.json().unwrap()["result"]["Cert"]
            .as_str()
            .unwrap()
            .to_string();
        issued.push(sans_of(
            &String::from_utf8(B64.decode(b64).unwrap()).unwrap(),
        ));
    }
    assert_eq!(issued[0], vec!["DNSName(csr.example.com)"]);
    assert!(issued[1].is_empty(), "{:?}", issued[1]);
    assert_eq!(
        issued[2],
        vec!["DNSName(req.example.com)", "IPAddress(0a:00:00:01)"]
    );
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_when_tls_is_off() {
    let home = tempfile::tempdir().unwrap();
    let mut cfg = config(home.path());
    cfg.tls.enabled = false;
    let server = ordo_ca::start(
        &cfg,
        Some(ordo_ca::config::BootstrapIdentity::from_flag("admin:adminpw").unwrap()),
    )
    .await
    .unwrap();
    assert!(server.tls_ca_pem.is_none());
    let c = ordo_ca::CaClient::new(
        &format!("http://127.0.0.1:{}", server.addr.port()),
        &[],
        "tlsca",
    )
    .unwrap();
    assert_eq!(c.cainfo().await.unwrap().0, "tlsca");
    c.enroll("admin", "adminpw", &EnrollOptions::default())
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_attempts_lock_an_identity_when_configured() {
    let home = tempfile::tempdir().unwrap();
    let mut cfg = config(home.path());
    cfg.cfg.identities.passwordattempts = 2;
    let h = Harness::start(&cfg).await;
    let ca = h.client("ca");
    let admin = h.admin().await;
    h.register(&admin, "locked", "client", "pw", 0).await;
    h.register(&admin, "careful", "client", "pw", 0).await;
    let enroll = |id: &'static str, secret: &'static str| {
        let ca = ca.clone();
        async move { ca.enroll(id, secret, &EnrollOptions::default()).await }
    };
    for _ in 0..2 {
        assert_eq!(
            server_error(enroll("locked", "bad").await.unwrap_err()),
            (401, 20)
        );
    }
    // The limit is reached: even the right secret is refused, with Fabric CA's code 73.
    assert_eq!(
        server_error(enroll("locked", "pw").await.unwrap_err()),
        (401, 73)
    );
    // A registrar setting a new secret unlocks it.
    ca.call_as(
        &admin,
        "PUT",
        "identities/locked",
        Some(json!({"secret": "pw2"})),
    )
    .await
    .unwrap();
    enroll("locked", "pw2").await.unwrap();
    // A good secret in between resets the count.
    for _ in 0..3 {
        assert_eq!(
            server_error(enroll("careful", "bad").await.unwrap_err()).1,
            20
        );
        enroll("careful", "pw").await.unwrap();
    }
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_decode_as_go_does() {
    let home = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(home.path())).await;
    let ca = h.client("ca");
    let admin = h.admin().await;
    let key = admin.key().unwrap();
    let send = |method: &'static str, uri: &'static str, body: &'static str| {
        let auth = create_token(&admin.cert_pem, &key, method, uri, body.as_bytes()).unwrap();
        let ca = &ca;
        async move {
            let r = ca
                .raw(method, uri, body.as_bytes().to_vec(), Some(auth))
                .await
                .unwrap();
            let env = r.json().unwrap();
            (r.status, env)
        }
    };
    // Keys match case-insensitively and null is an absent field, as with Go's encoding/json.
    let (status, env) = send(
        "POST",
        "/api/v1/register",
        r#"{"ID": "mixed", "Type": "peer", "Secret": "mixedpw", "Max_Enrollments": null, "CAName": "ca"}"#,
    )
    .await;
    assert_eq!(
        (status, env["result"]["secret"].as_str()),
        (201, Some("mixedpw"))
    );
    let info = ca
        .call_as(&admin, "GET", "identities/mixed?ca=ca", None)
        .await
        .unwrap();
    assert_eq!(info["type"], "peer");
    ca.enroll("mixed", "mixedpw", &EnrollOptions::default())
        .await
        .unwrap();

    // A field of the wrong type: 400, code 5, the field named.
    for (method, uri, body, field) in [
        ("POST", "/api/v1/register", r#"{"id": 5}"#, "id"),
        (
            "POST",
            "/api/v1/register",
            r#"{"id": "j", "max_enrollments": 1.5}"#,
            "max_enrollments",
        ),
        (
            "POST",
            "/api/v1/register",
            r#"{"id": "j", "attrs": [{"name": 1}]}"#,
            "attrs",
        ),
        (
            "POST",
            "/api/v1/revoke",
            r#"{"id": "mixed", "gencrl": "yes"}"#,
            "gencrl",
        ),
        (
            "POST",
            "/api/v1/gencrl",
            r#"{"revokedafter": 5}"#,
            "revokedafter",
        ),
        (
            "POST",
            "/api/v1/affiliations",
            r#"{"name": "org3", "force": 1}"#,
            "force",
        ),
        (
            "PUT",
            "/api/v1/identities/mixed",
            r#"{"secret": false}"#,
            "secret",
        ),
        ("POST", "/api/v1/reenroll", r#"{"hosts": "x"}"#, "hosts"),
        ("POST", "/api/v1/cainfo", r#"{"caname": 5}"#, "caname"),
    ] {
        let (status, env) = send(method, uri, body).await;
        assert_eq!(error_of(status, &env), (400, 5), "{uri} {body}");
        let message = env["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("Invalid request body: field '{field}': ")),
            "{uri} {body}: {message}"
        );
    }
    // A modification is decoded only once the identity is known: an unknown one is 404
    // whatever the body holds.
    let (status, env) = send("PUT", "/api/v1/identities/nobody", r#"{"type": 3}"#).await;
    assert_eq!(error_of(status, &env), (404, 49));
    // Nothing was revoked, added or changed by the refused requests.
    let info = ca
        .call_as(&admin, "GET", "identities/mixed?ca=ca", None)
        .await
        .unwrap();
    assert_eq!(info["type"], "peer");
    let certs = ca
        .call_as(&admin, "GET", "certificates?ca=ca&notrevoked=true", None)
        .await
        .unwrap();
    assert_eq!(certs["certs"].as_array().unwrap().len(), 2);
    h.server.stop().await;
}
