//! MSP corner cases on certificate hierarchies made here with rcgen: intermediates and the
//! leaf-of-the-tree rule, CRLs, admincerts versus the admin OU, NodeOU certifiers, identities with
//! zero or two role OUs, CA certificates as identities, key usages, high-S certificates, and every
//! principal classification.

use bytes::Bytes;
use ordo_msp::{Msp, MspError, NodeRole};
use ordo_proto::Message;
use ordo_proto::common::msp_principal::Classification;
use ordo_proto::common::{
    CombinedPrincipal, MspIdentityAnonymity, MspPrincipal, MspRole, OrganizationUnit,
};
use ordo_proto::msp::{FabricMspConfig, FabricNodeOUs, FabricOuIdentifier, SerializedIdentity};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SerialNumber,
};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn pem(&self) -> Bytes {
        Bytes::from(self.issuer.pem())
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

fn root(cn: &str) -> Ca {
    Ca {
        issuer: CertifiedIssuer::self_signed(ca_params(cn), key()).unwrap(),
    }
}

fn intermediate(cn: &str, parent: &Ca) -> Ca {
    Ca {
        issuer: CertifiedIssuer::signed_by(ca_params(cn), key(), &parent.issuer).unwrap(),
    }
}

/// A leaf with the given OUs (several OU attributes in one subject, as Fabric CA writes them).
fn leaf_with(
    cn: &str,
    ous: &[&str],
    serial: u64,
    parent: &Ca,
    edit: impl FnOnce(&mut CertificateParams),
) -> Bytes {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    for (i, ou) in ous.iter().enumerate() {
        // rcgen keeps one value per attribute type; the raw OID type lets a second OU through.
        let t = if i == 0 {
            DnType::OrganizationalUnitName
        } else {
            DnType::CustomDnType(vec![2, 5, 4, 11])
        };
        p.distinguished_name.push(t, *ou);
    }
    p.serial_number = Some(SerialNumber::from(serial));
    p.use_authority_key_identifier_extension = true;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    edit(&mut p);
    Bytes::from(p.signed_by(&key(), &parent.issuer).unwrap().pem())
}

fn leaf(cn: &str, ous: &[&str], serial: u64, parent: &Ca) -> Bytes {
    leaf_with(cn, ous, serial, parent, |_| {})
}

fn node_ous(cert: Option<Bytes>) -> FabricNodeOUs {
    let ou = |name: &str| {
        Some(FabricOuIdentifier {
            certificate: cert.clone().unwrap_or_default(),
            organizational_unit_identifier: name.to_string(),
        })
    };
    FabricNodeOUs {
        enable: true,
        client_ou_identifier: ou("client"),
        peer_ou_identifier: ou("peer"),
        admin_ou_identifier: ou("admin"),
        orderer_ou_identifier: ou("orderer"),
    }
}

fn config(name: &str, roots: &[&Ca], inters: &[&Ca]) -> FabricMspConfig {
    FabricMspConfig {
        name: name.to_string(),
        root_certs: roots.iter().map(|c| c.pem()).collect(),
        intermediate_certs: inters.iter().map(|c| c.pem()).collect(),
        fabric_node_ous: Some(node_ous(None)),
        ..Default::default()
    }
}

fn role(msp: &str, r: i32) -> MspPrincipal {
    MspPrincipal {
        principal_classification: Classification::Role as i32,
        principal: MspRole {
            msp_identifier: msp.into(),
            role: r,
        }
        .encode_to_vec()
        .into(),
    }
}

#[test]
fn identities_must_come_from_a_leaf_ca_of_the_tree() {
    let r = root("root");
    let i = intermediate("inter", &r);
    let msp = Msp::new(&config("M", &[&r], &[&i])).unwrap();
    let good = msp
        .identity_from_pem(&leaf("u1", &["client"], 1, &i))
        .unwrap();
    msp.validate(&good).unwrap();
    assert_eq!(msp.node_role(&good), Some(NodeRole::Client));
    // The root issued an intermediate, so it is an internal node: its direct leaves are refused.
    let direct = msp
        .identity_from_pem(&leaf("u2", &["client"], 2, &r))
        .unwrap();
    let err = msp.validate(&direct).unwrap_err();
    assert!(
        err.to_string().contains("leaf of the certification tree"),
        "{err}"
    );
}

#[test]
fn a_ca_certificate_is_not_an_identity() {
    let r = root("root");
    let i = intermediate("inter", &r);
    let msp = Msp::new(&config("M", &[&r], &[&i])).unwrap();
    let id = msp.identity_from_pem(&i.pem()).unwrap();
    assert_eq!(msp.validate(&id), Err(MspError::CaAsIdentity));
}

#[test]
fn crl_revokes_only_what_its_issuer_signed() {
    let r = root("root");
    let other = root("other");
    let revoked = leaf("bad", &["client"], 7, &r);
    let fine = leaf("good", &["client"], 8, &r);
    let crl_of = |ca: &Ca, serial: u64| {
        let now = time::OffsetDateTime::now_utc();
        CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(serial),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca.issuer)
        .unwrap()
        .pem()
        .unwrap()
    };
    let mut conf = config("M", &[&r], &[]);
    conf.revocation_list = vec![Bytes::from(crl_of(&r, 7)), Bytes::from(crl_of(&other, 8))];
    let msp = Msp::new(&conf).unwrap();
    let bad = msp.identity_from_pem(&revoked).unwrap();
    assert!(matches!(msp.validate(&bad), Err(MspError::Revoked(m)) if m.contains("revoked")));
    // Serial 8 is listed only by a CRL of another CA (different AKI): not revoked here.
    msp.validate(&msp.identity_from_pem(&fine).unwrap())
        .unwrap();
    assert!(msp.satisfies_principal(&bad, &role("M", 0)).is_err());
}

#[test]
fn admins_by_admincerts_without_node_ous() {
    let r = root("root");
    let admin = leaf("admin", &[], 1, &r);
    let user = leaf("user", &[], 2, &r);
    let mut conf = config("M", &[&r], &[]);
    conf.fabric_node_ous = None;
    // Without NodeOUs an MSP must list its admins.
    let err = Msp::new(&conf).unwrap_err();
    assert!(
        err.to_string().contains("administrators must be declared"),
        "{err}"
    );
    conf.admins = vec![admin.clone()];
    let msp = Msp::new(&conf).unwrap();
    let a = msp.identity_from_pem(&admin).unwrap();
    let u = msp.identity_from_pem(&user).unwrap();
    msp.satisfies_principal(&a, &role("M", 1)).unwrap();
    let e = msp.satisfies_principal(&u, &role("M", 1)).unwrap_err();
    assert!(e.to_string().contains("This identity is not an admin"));
    msp.satisfies_principal(&u, &role("M", 0)).unwrap();
    // CLIENT cannot be told apart, and ORDERER is not a role before NodeOUs.
    let e = msp.satisfies_principal(&u, &role("M", 2)).unwrap_err();
    assert!(e.to_string().contains("NodeOUs not activated"), "{e}");
    let e = msp.satisfies_principal(&u, &role("M", 4)).unwrap_err();
    assert!(e.to_string().contains("invalid MSP role type 4"), "{e}");
}

#[test]
fn admin_by_ou_or_by_admincerts_with_node_ous() {
    let r = root("root");
    let listed_client = leaf("listed", &["client"], 1, &r);
    let ou_admin = leaf("ouadmin", &["admin"], 2, &r);
    let peer = leaf("peer", &["peer"], 3, &r);
    let mut conf = config("M", &[&r], &[]);
    conf.admins = vec![listed_client.clone()];
    let msp = Msp::new(&conf).unwrap();
    for pem in [&listed_client, &ou_admin] {
        let id = msp.identity_from_pem(pem).unwrap();
        msp.satisfies_principal(&id, &role("M", 1)).unwrap();
    }
    let p = msp.identity_from_pem(&peer).unwrap();
    assert!(msp.satisfies_principal(&p, &role("M", 1)).is_err());
    // A listed admin must itself be a client or an admin under NodeOUs.
    conf.admins = vec![peer.clone()];
    let err = Msp::new(&conf).unwrap_err();
    assert!(err.to_string().contains("admin 0 is invalid"), "{err}");
}

#[test]
fn role_ous_must_be_exactly_one_and_from_the_certifier() {
    let r = root("root");
    let i1 = intermediate("i1", &r);
    let i2 = intermediate("i2", &r);
    let mut conf = config("M", &[&r], &[&i1, &i2]);
    // NodeOUs certified by i1 only.
    conf.fabric_node_ous = Some(node_ous(Some(i1.pem())));
    let msp = Msp::new(&conf).unwrap();
    msp.validate(
        &msp.identity_from_pem(&leaf("a", &["client"], 1, &i1))
            .unwrap(),
    )
    .unwrap();
    let from_i2 = msp
        .identity_from_pem(&leaf("b", &["client"], 2, &i2))
        .unwrap();
    let e = msp.validate(&from_i2).unwrap_err();
    assert!(
        e.to_string()
            .contains("certifiersIdentifier does not match"),
        "{e}"
    );
    let none = msp
        .identity_from_pem(&leaf("c", &["sales"], 3, &i1))
        .unwrap();
    let e = msp.validate(&none).unwrap_err();
    assert!(
        e.to_string().contains("does not have an OU that resolves"),
        "{e}"
    );
    let two = msp
        .identity_from_pem(&leaf("d", &["client", "admin"], 4, &i1))
        .unwrap();
    let e = msp.validate(&two).unwrap_err();
    assert!(e.to_string().contains("not a combination of them"), "{e}");
    // A certifier that is not one of the MSP's CAs is a setup error.
    let stranger = root("stranger");
    conf.fabric_node_ous = Some(node_ous(Some(stranger.pem())));
    assert!(
        Msp::new(&conf)
            .unwrap_err()
            .to_string()
            .contains("not in root or intermediate certs")
    );
}

#[test]
fn organizational_unit_restrictions_apply() {
    let r = root("root");
    let mut conf = config("M", &[&r], &[]);
    conf.organizational_unit_identifiers = vec![FabricOuIdentifier {
        certificate: r.pem(),
        organizational_unit_identifier: "sales".into(),
    }];
    conf.fabric_node_ous = None;
    conf.admins = vec![leaf("admin", &["sales"], 9, &r)];
    let msp = Msp::new(&conf).unwrap();
    msp.validate(
        &msp.identity_from_pem(&leaf("a", &["sales"], 1, &r))
            .unwrap(),
    )
    .unwrap();
    let e = msp
        .validate(&msp.identity_from_pem(&leaf("b", &["hr"], 2, &r)).unwrap())
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("none of the identity's organizational units"),
        "{e}"
    );
    let e = msp
        .validate(&msp.identity_from_pem(&leaf("c", &[], 3, &r)).unwrap())
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("does not contain an Organizational Unit"),
        "{e}"
    );
}

#[test]
fn extended_key_usage_must_allow_server_auth_like_go_verify() {
    let r = root("root");
    let msp = Msp::new(&config("M", &[&r], &[])).unwrap();
    let client_only = leaf_with("x", &["client"], 1, &r, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    });
    let e = msp.identity_from_pem(&client_only).unwrap_err();
    assert!(e.to_string().contains("incompatible key usage"), "{e}");
    let both = leaf_with("y", &["client"], 2, &r, |p| {
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
    });
    msp.validate(&msp.identity_from_pem(&both).unwrap())
        .unwrap();
}

/// Flips a certificate's ECDSA signature to its high-S twin (or back): the same certificate,
/// encoded differently.
fn flip_s(pem: &[u8]) -> Bytes {
    let der = ordo_crypto::x509::first_pem_der(pem).unwrap();
    let (tbs, sig) = ordo_crypto::x509::split_signed(&der).unwrap();
    // Parse r, s (short-form lengths suffice for P-256) and rebuild with s' = n - s.
    let r_len = sig[3] as usize;
    let r = &sig[4..4 + r_len];
    let s = &sig[4 + r_len + 2..];
    let n =
        hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551").unwrap();
    let mut s_pad = [0u8; 32];
    let s_trim: Vec<u8> = s.iter().copied().skip_while(|b| *b == 0).collect();
    s_pad[32 - s_trim.len()..].copy_from_slice(&s_trim);
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for k in (0..32).rev() {
        let mut d = n[k] as i16 - s_pad[k] as i16 - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[k] = d as u8;
    }
    let int = |v: &[u8]| {
        let v: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        let mut c = if v[0] & 0x80 != 0 { vec![0] } else { vec![] };
        c.extend(v);
        let mut e = vec![0x02, c.len() as u8];
        e.extend(c);
        e
    };
    let mut seq_body = int(r);
    seq_body.extend(int(&out));
    let mut new_sig = vec![0x30, seq_body.len() as u8];
    new_sig.extend(seq_body);
    // Outer: SEQUENCE { tbs, alg, BIT STRING }.
    let alg = &der[..]; // find alg: it follows tbs inside the outer sequence
    let outer_hdr = if der[1] & 0x80 != 0 {
        2 + (der[1] & 0x7f) as usize
    } else {
        2
    };
    let alg_start = outer_hdr + tbs.len();
    let alg_len = 2 + alg[alg_start + 1] as usize;
    let alg_bytes = &der[alg_start..alg_start + alg_len];
    let mut bits = vec![0x03, (new_sig.len() + 1) as u8, 0];
    bits.extend(new_sig);
    let mut body = tbs.to_vec();
    body.extend_from_slice(alg_bytes);
    body.extend(bits);
    let mut cert = vec![0x30, 0x82, (body.len() >> 8) as u8, body.len() as u8];
    cert.extend(body);
    Bytes::from(ordo_crypto::x509::to_pem("CERTIFICATE", &cert))
}

/// The certificate with a high-S signature, whatever it had.
fn high_s(pem: &[u8]) -> Bytes {
    let der = ordo_crypto::x509::first_pem_der(pem).unwrap();
    let low = ordo_crypto::x509::sanitize_certificate(&der, ordo_crypto::Curve::P256).unwrap();
    flip_s(ordo_crypto::x509::to_pem("CERTIFICATE", &low).as_bytes())
}

#[test]
fn two_encodings_of_one_certificate_are_one_identity() {
    let r = root("root");
    let msp = Msp::new(&config("M", &[&r], &[])).unwrap();
    let pem = leaf("u", &["client"], 1, &r);
    let twin = flip_s(&pem);
    assert_ne!(pem, twin);
    let a = msp.identity_from_pem(&pem).unwrap();
    let b = msp.identity_from_pem(&twin).unwrap();
    assert_eq!(a.id(), b.id());
    assert_eq!(a.cert(), b.cert());
    msp.validate(&b).unwrap();
}

#[test]
fn a_root_with_a_high_s_self_signature_is_accepted_like_fabric_2_5() {
    let r = root("root");
    let twin = high_s(&r.pem());
    let der = ordo_crypto::x509::first_pem_der(&twin).unwrap();
    assert_ne!(
        ordo_crypto::x509::sanitize_certificate(&der, ordo_crypto::Curve::P256).unwrap(),
        der
    );
    let conf = FabricMspConfig {
        root_certs: vec![twin],
        ..config("M", &[&r], &[])
    };
    let msp = Msp::new(&conf).unwrap();
    msp.validate(&msp.identity_from_pem(&leaf("u", &["peer"], 1, &r)).unwrap())
        .unwrap();
}

#[test]
fn identity_ou_anonymity_and_combined_principals() {
    let r = root("root");
    let msp = Msp::new(&config("M", &[&r], &[])).unwrap();
    let pem = leaf("u", &["client"], 1, &r);
    let other = leaf("v", &["client"], 2, &r);
    let id = msp.identity_from_pem(&pem).unwrap();
    let p = |c: Classification, b: Vec<u8>| MspPrincipal {
        principal_classification: c as i32,
        principal: b.into(),
    };
    let identity = |pem: &Bytes| {
        p(
            Classification::Identity,
            SerializedIdentity {
                mspid: "M".into(),
                id_bytes: pem.clone(),
            }
            .encode_to_vec(),
        )
    };
    msp.satisfies_principal(&id, &identity(&pem)).unwrap();
    assert!(
        msp.satisfies_principal(&id, &identity(&other))
            .unwrap_err()
            .to_string()
            .contains("do not match")
    );

    // The certifiers identifier hashes the root as the MSP holds it: sanitized to low-S.
    let root_der = ordo_crypto::x509::first_pem_der(&r.pem()).unwrap();
    let sanitized =
        ordo_crypto::x509::sanitize_certificate(&root_der, ordo_crypto::Curve::P256).unwrap();
    let cid = ordo_crypto::sha256(&sanitized).to_vec();
    let ou = |name: &str, cid: &[u8]| {
        p(
            Classification::OrganizationUnit,
            OrganizationUnit {
                msp_identifier: "M".into(),
                organizational_unit_identifier: name.into(),
                certifiers_identifier: cid.to_vec().into(),
            }
            .encode_to_vec(),
        )
    };
    msp.satisfies_principal(&id, &ou("client", &cid)).unwrap();
    assert!(
        msp.satisfies_principal(&id, &ou("client", b"wrong"))
            .is_err()
    );
    assert!(msp.satisfies_principal(&id, &ou("peer", &cid)).is_err());

    let anon = |t: i32| {
        p(
            Classification::Anonymity,
            MspIdentityAnonymity { anonymity_type: t }.encode_to_vec(),
        )
    };
    msp.satisfies_principal(&id, &anon(0)).unwrap();
    assert!(msp.satisfies_principal(&id, &anon(1)).is_err());

    let combined = |ps: Vec<MspPrincipal>| {
        p(
            Classification::Combined,
            CombinedPrincipal { principals: ps }.encode_to_vec(),
        )
    };
    msp.satisfies_principal(&id, &combined(vec![role("M", 0), role("M", 2)]))
        .unwrap();
    assert!(
        msp.satisfies_principal(&id, &combined(vec![role("M", 0), role("M", 3)]))
            .is_err()
    );
    assert!(msp.satisfies_principal(&id, &combined(vec![])).is_err());
    // Garbage principals are errors, not panics.
    assert!(
        msp.satisfies_principal(&id, &p(Classification::Role, vec![0xff, 0xff]))
            .is_err()
    );
    assert!(
        msp.satisfies_principal(
            &id,
            &MspPrincipal {
                principal_classification: 9,
                principal: Bytes::new()
            }
        )
        .is_err()
    );
}

#[test]
fn setup_refuses_bad_configurations() {
    let r = root("root");
    let no_roots = FabricMspConfig {
        root_certs: vec![],
        ..config("M", &[&r], &[])
    };
    assert!(
        Msp::new(&no_roots)
            .unwrap_err()
            .to_string()
            .contains("expected at least one CA certificate")
    );
    let garbage = FabricMspConfig {
        root_certs: vec![Bytes::from_static(b"junk")],
        ..config("M", &[&r], &[])
    };
    assert!(Msp::new(&garbage).is_err());
    // A leaf certificate listed as a root is not a CA.
    let leaf_as_root = FabricMspConfig {
        root_certs: vec![r.pem(), leaf("x", &[], 1, &r)],
        ..config("M", &[&r], &[])
    };
    assert!(Msp::new(&leaf_as_root).is_err());
    // Idemix MSPs are refused with a clear error.
    let idemix = ordo_proto::msp::MspConfig {
        r#type: 1,
        config: Bytes::new(),
    };
    assert_eq!(
        Msp::from_msp_config(&idemix).unwrap_err(),
        MspError::UnsupportedMspType(1)
    );
}

#[test]
fn expiry_is_not_the_msps_business_but_is_checked_on_request() {
    let r = root("root");
    let msp = Msp::new(&config("M", &[&r], &[])).unwrap();
    let old = leaf_with("old", &["client"], 1, &r, |p| {
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    });
    let id = msp.identity_from_pem(&old).unwrap();
    // Fabric validates chains at NotBefore + 1s: an expired identity is still a valid member...
    msp.validate(&id).unwrap();
    // ...and Broadcast/Deliver refuse it by checking expiry themselves.
    let now = 1_900_000_000;
    assert!(matches!(
        id.check_not_expired(now),
        Err(MspError::Expired { .. })
    ));
    let fresh = msp
        .identity_from_pem(&leaf("new", &["client"], 2, &r))
        .unwrap();
    fresh.check_not_expired(now).unwrap();
}

#[test]
fn a_non_ecdsa_key_is_refused_with_a_typed_error() {
    let r = root("root");
    let msp = Msp::new(&config("M", &[&r], &[])).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, "ed");
    p.distinguished_name
        .push(DnType::OrganizationalUnitName, "client");
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let pem = Bytes::from(p.signed_by(&ed, &r.issuer).unwrap().pem());
    let err = msp.identity_from_pem(&pem).unwrap_err();
    assert!(
        matches!(err, MspError::BadCertificate(ref m) if m.contains("public key")),
        "{err}"
    );
    // Garbage DER inside a valid PEM frame.
    let junk = Bytes::from(ordo_crypto::x509::to_pem(
        "CERTIFICATE",
        b"\x30\x03\x02\x01\x01",
    ));
    assert!(matches!(
        msp.identity_from_pem(&junk),
        Err(MspError::BadCertificate(_))
    ));
}
