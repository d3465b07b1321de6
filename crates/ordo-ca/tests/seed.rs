//! The first seed's CA work done with `ordo ca`: the bootstrap admin, `osadmin` (type admin) and
//! `os1` (type orderer) enrolled, os1's TLS certificate from `tlsca`, and the organization's MSP
//! built from the two CAs — checked with the workspace's MSP code (NodeOUs classification).

mod common;

use bytes::Bytes;
use common::{Harness, cert_der, config};
use ordo_ca::client::{
    EnrollOptions, RegistrationRequest, build_org_msp, write_msp_folder, write_tls_folder,
};
use ordo_msp::{Msp, NodeRole};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_identities_are_classified_by_node_ous() {
    let home = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(home.path())).await;
    let ca = h.client("ca");
    let tlsca = h.client("tlsca");

    let admin = h.admin().await;
    assert_eq!(
        h.register(&admin, "osadmin", "admin", "osadminpw", 0).await,
        "osadminpw"
    );
    assert_eq!(
        h.register(&admin, "os1", "orderer", "os1pw", 0).await,
        "os1pw"
    );
    // The TLS CA has its own registry: os1 is registered there too, as the operator does.
    let tls_admin = tlsca
        .enroll("admin", "adminpw", &EnrollOptions::default())
        .await
        .unwrap();
    tlsca
        .register(
            &tls_admin,
            &RegistrationRequest {
                id: "os1".into(),
                id_type: "orderer".into(),
                secret: "os1pw".into(),
                ..RegistrationRequest::default()
            },
        )
        .await
        .unwrap();

    let osadmin = ca
        .enroll("osadmin", "osadminpw", &EnrollOptions::default())
        .await
        .unwrap();
    let os1 = ca
        .enroll("os1", "os1pw", &EnrollOptions::default())
        .await
        .unwrap();
    let os1_tls = tlsca
        .enroll(
            "os1",
            "os1pw",
            &EnrollOptions {
                profile: "tls".into(),
                hosts: vec!["os1.example.com".into(), "127.0.0.1".into()],
                attr_reqs: None,
            },
        )
        .await
        .unwrap();

    // Certificates as Fabric CA writes them.
    let der = cert_der(&os1.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cn, vec!["os1"]);
    let ous: Vec<_> = cert
        .subject()
        .iter_organizational_unit()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(ous, vec!["orderer"]);
    let attrs_ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.2.3.4.5.6.7.8.1")
        .expect("attribute extension");
    assert!(!attrs_ext.critical);
    let attrs: serde_json::Value = serde_json::from_slice(attrs_ext.value).unwrap();
    assert_eq!(
        attrs,
        serde_json::json!({"attrs": {"hf.Affiliation": "", "hf.EnrollmentID": "os1", "hf.Type": "orderer"}})
    );
    let ca_cert_der = cert_der(&os1.chain_pem);
    let (_, ca_cert) = X509Certificate::from_der(&ca_cert_der).unwrap();
    assert!(cert.validity().not_after <= ca_cert.validity().not_after);
    assert_eq!(cert.issuer(), ca_cert.subject());

    let tls_der = cert_der(&os1_tls.cert_pem);
    let (_, tls_cert) = X509Certificate::from_der(&tls_der).unwrap();
    let mut sans = Vec::new();
    let mut eku = None;
    for e in tls_cert.extensions() {
        match e.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(s) => {
                for n in &s.general_names {
                    match n {
                        GeneralName::DNSName(d) => sans.push(d.to_string()),
                        GeneralName::IPAddress(ip) => sans.push(format!("{ip:?}")),
                        _ => {}
                    }
                }
            }
            ParsedExtension::ExtendedKeyUsage(k) => eku = Some((k.server_auth, k.client_auth)),
            _ => {}
        }
    }
    assert_eq!(
        sans,
        vec!["os1.example.com".to_string(), "[127, 0, 0, 1]".to_string()]
    );
    assert_eq!(eku, Some((true, true)));
    assert_ne!(
        os1_tls.chain_pem, os1.chain_pem,
        "TLS certificate comes from tlsca"
    );

    // The organization's MSP from the two CAs' cainfo.
    let (_, ca_chain) = ca.cainfo().await.unwrap();
    let (name, tlsca_chain) = tlsca.cainfo().await.unwrap();
    assert_eq!(name, "tlsca");
    let org = home.path().join("org-msp");
    build_org_msp(&org, &ca_chain, &tlsca_chain, &[]).unwrap();
    let msp =
        Msp::new(&ordo_msp::local::verifying_fabric_config(&org, "OrdererMSP").unwrap()).unwrap();
    assert!(msp.node_ous_enabled());
    assert_eq!(msp.tls_root_certs().len(), 1);
    for (pem, role) in [
        (&osadmin.cert_pem, NodeRole::Admin),
        (&os1.cert_pem, NodeRole::Orderer),
        (&admin.cert_pem, NodeRole::Client),
    ] {
        let id = msp.identity_from_pem(&Bytes::from(pem.clone())).unwrap();
        msp.validate(&id).unwrap();
        assert_eq!(msp.node_role(&id), Some(role), "{}", role.fabric_name());
    }
    // A certificate of the TLS CA is not an identity of this MSP.
    let tls_id = msp.identity_from_pem(&Bytes::from(os1_tls.cert_pem.clone()));
    assert!(tls_id.is_err() || msp.validate(&tls_id.unwrap()).is_err());

    // os1's local MSP and TLS folders load as a node's would.
    let node = home.path().join("os1");
    write_msp_folder(&node.join("msp"), &os1, "localhost-ca").unwrap();
    write_tls_folder(&node.join("tls"), &os1_tls, "localhost-tlsca").unwrap();
    let local = ordo_msp::local::load_signing_identity(&node.join("msp"), "OrdererMSP").unwrap();
    assert_eq!(local.signer.cert_pem().as_ref(), os1.cert_pem.as_bytes());
    for f in [
        "server.crt",
        "server.key",
        "ca.crt",
        "tlscacerts/localhost-tlsca.pem",
    ] {
        assert!(node.join("tls").join(f).is_file(), "{f}");
    }
    let tls_key =
        ordo_crypto::SigningKey::from_pem(&std::fs::read(node.join("tls/server.key")).unwrap())
            .unwrap();
    assert_eq!(
        tls_key.public_key(),
        &ordo_crypto::x509::certificate_public_key(&tls_der).unwrap()
    );
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_ous_from_the_affiliation_still_classify() {
    let home = tempfile::tempdir().unwrap();
    let h = Harness::start(&config(home.path())).await;
    let ca = h.client("ca");
    let admin = h.admin().await;
    ca.register(
        &admin,
        &RegistrationRequest {
            id: "peer0".into(),
            id_type: "peer".into(),
            secret: "peer0pw".into(),
            affiliation: "org1.department1".into(),
            ..RegistrationRequest::default()
        },
    )
    .await
    .unwrap();
    let peer = ca
        .enroll("peer0", "peer0pw", &EnrollOptions::default())
        .await
        .unwrap();
    let der = cert_der(&peer.cert_pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let mut ous: Vec<_> = cert
        .subject()
        .iter_organizational_unit()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    ous.sort();
    assert_eq!(ous, vec!["department1", "org1", "peer"]);
    // One multi-valued RDN, as Go's pkix.Name encodes a list of OUs.
    let ou_rdns = cert
        .subject()
        .iter_rdn()
        .filter(|r| {
            r.iter()
                .any(|a| a.attr_type() == &x509_parser::oid_registry::OID_X509_ORGANIZATIONAL_UNIT)
        })
        .count();
    assert_eq!(ou_rdns, 1);

    let (_, chain) = ca.cainfo().await.unwrap();
    let (_, tls_chain) = h.client("tlsca").cainfo().await.unwrap();
    let org = home.path().join("org-msp");
    build_org_msp(&org, &chain, &tls_chain, &[]).unwrap();
    let msp =
        Msp::new(&ordo_msp::local::verifying_fabric_config(&org, "Org1MSP").unwrap()).unwrap();
    let id = msp
        .identity_from_pem(&Bytes::from(peer.cert_pem.clone()))
        .unwrap();
    msp.validate(&id).unwrap();
    assert_eq!(msp.node_role(&id), Some(NodeRole::Peer));
    h.server.stop().await;
}
