//! The MSP against Fabric-made crypto material (cryptogen, NodeOUs on): classification of every
//! fixture identity, the channel's MSP value, local signing identities, and the fixture envelopes
//! whose creators Fabric accepted or refused.

use std::path::PathBuf;

use ordo_msp::{Msp, MspError, MspManager, NodeRole, local};
use ordo_proto::Message;
use ordo_proto::common::msp_principal::Classification;
use ordo_proto::common::{MspPrincipal, MspRole};
use ordo_proto::msp::SerializedIdentity;

fn crypto(rel: &str) -> PathBuf {
    ordo_testkit::fixture(&format!("crypto-config/{rel}"))
}

fn orderer_org() -> Msp {
    Msp::new(
        &local::verifying_fabric_config(
            &crypto("ordererOrganizations/example.com/msp"),
            "OrdererMSP",
        )
        .unwrap(),
    )
    .unwrap()
}

fn org1() -> Msp {
    Msp::new(
        &local::verifying_fabric_config(
            &crypto("peerOrganizations/org1.example.com/msp"),
            "Org1MSP",
        )
        .unwrap(),
    )
    .unwrap()
}

fn signcert(msp_dir: &str) -> bytes::Bytes {
    let dir = crypto(msp_dir).join("signcerts");
    let f = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::read(f).unwrap().into()
}

fn role(msp: &str, role: i32) -> MspPrincipal {
    MspPrincipal {
        principal_classification: Classification::Role as i32,
        principal: MspRole {
            msp_identifier: msp.to_string(),
            role,
        }
        .encode_to_vec()
        .into(),
    }
}

const MEMBER: i32 = 0;
const ADMIN: i32 = 1;
const CLIENT: i32 = 2;
const PEER: i32 = 3;
const ORDERER: i32 = 4;

#[test]
fn classifies_every_fixture_identity_as_cryptogen_meant() {
    let cases = [
        (
            "ordererOrganizations/example.com/orderers/orderer1.example.com/msp",
            "OrdererMSP",
            NodeRole::Orderer,
        ),
        (
            "ordererOrganizations/example.com/orderers/orderer5.example.com/msp",
            "OrdererMSP",
            NodeRole::Orderer,
        ),
        (
            "ordererOrganizations/example.com/users/Admin@example.com/msp",
            "OrdererMSP",
            NodeRole::Admin,
        ),
        (
            "peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp",
            "Org1MSP",
            NodeRole::Admin,
        ),
        (
            "peerOrganizations/org1.example.com/users/User1@org1.example.com/msp",
            "Org1MSP",
            NodeRole::Client,
        ),
        (
            "peerOrganizations/org1.example.com/peers/peer0.org1.example.com/msp",
            "Org1MSP",
            NodeRole::Peer,
        ),
    ];
    let (oo, o1) = (orderer_org(), org1());
    for (dir, msp_id, expected) in cases {
        let msp = if msp_id == "OrdererMSP" { &oo } else { &o1 };
        let id = msp.identity_from_pem(&signcert(dir)).unwrap();
        msp.validate(&id).unwrap();
        assert_eq!(msp.node_role(&id), Some(expected), "{dir}");
        msp.satisfies_principal(&id, &role(msp_id, MEMBER)).unwrap();
        let by_role = [
            (ADMIN, NodeRole::Admin),
            (CLIENT, NodeRole::Client),
            (PEER, NodeRole::Peer),
            (ORDERER, NodeRole::Orderer),
        ];
        for (r, nr) in by_role {
            let res = msp.satisfies_principal(&id, &role(msp_id, r));
            assert_eq!(res.is_ok(), nr == expected, "{dir} role {r}: {res:?}");
        }
        // A principal of another MSP is never satisfied.
        assert!(
            msp.satisfies_principal(&id, &role("Org2MSP", MEMBER))
                .is_err()
        );
    }
}

#[test]
fn another_orgs_certificate_does_not_deserialize_under_org1() {
    let o1 = org1();
    let org2_user = signcert("peerOrganizations/org2.example.com/users/User1@org2.example.com/msp");
    let err = o1.identity_from_pem(&org2_user).unwrap_err();
    assert!(
        err.to_string()
            .contains("certificate signed by unknown authority"),
        "{err}"
    );
}

#[test]
fn manager_routes_by_msp_id_and_refuses_unknown_msps() {
    let mgr = MspManager::new([
        std::sync::Arc::new(orderer_org()),
        std::sync::Arc::new(org1()),
    ]);
    let sid = |msp: &str, pem: bytes::Bytes| {
        SerializedIdentity {
            mspid: msp.into(),
            id_bytes: pem,
        }
        .encode_to_vec()
    };
    let user1 = signcert("peerOrganizations/org1.example.com/users/User1@org1.example.com/msp");
    let id = mgr
        .deserialize_identity(&sid("Org1MSP", user1.clone()))
        .unwrap();
    assert_eq!(id.msp_id(), "Org1MSP");
    assert_eq!(id.id().len(), 64);
    assert!(matches!(
        mgr.deserialize_identity(&sid("Org2MSP", user1.clone())),
        Err(MspError::UnknownMsp(_))
    ));
    // Org1's user claiming to be an orderer-org member fails the chain check.
    assert!(mgr.deserialize_identity(&sid("OrdererMSP", user1)).is_err());
    assert!(matches!(
        mgr.deserialize_identity(b"\xff\xff\xff"),
        Err(MspError::BadSerializedIdentity(_))
    ));
    assert!(matches!(
        mgr.deserialize_identity(&sid("Org1MSP", "not pem".into())),
        Err(MspError::BadPem)
    ));
}

#[test]
fn verifying_config_equals_the_msp_value_configtxgen_wrote() {
    use ordo_proto::common::{Block, ConfigEnvelope, Envelope, Payload};
    let block =
        Block::decode(ordo_testkit::read("channel-genesis/channel-3.block").as_slice()).unwrap();
    let env = Envelope::decode(block.data.unwrap().data[0].clone()).unwrap();
    let payload = Payload::decode(env.payload).unwrap();
    let cfg = ConfigEnvelope::decode(payload.data)
        .unwrap()
        .config
        .unwrap();
    let root = cfg.channel_group.unwrap();
    let cases = [
        (
            "Orderer",
            "OrdererOrg",
            "ordererOrganizations/example.com/msp",
            "OrdererMSP",
        ),
        (
            "Application",
            "Org1MSP",
            "peerOrganizations/org1.example.com/msp",
            "Org1MSP",
        ),
    ];
    for (section, org, dir, id) in cases {
        let value = &root.groups[section].groups[org].values["MSP"].value;
        let ours = local::verifying_config(&crypto(dir), id)
            .unwrap()
            .encode_to_vec();
        assert_eq!(&ours[..], &value[..], "{section}/{org}");
    }
}

#[test]
fn local_signing_identity_signs_verifiably_and_low_s() {
    let dir = crypto("ordererOrganizations/example.com/orderers/orderer1.example.com/msp");
    let local = local::load_signing_identity(&dir, "OrdererMSP").unwrap();
    let id = local
        .msp
        .deserialize_identity(local.signer.serialized())
        .unwrap();
    for i in 0..20u8 {
        let sig = local.signer.sign(&[i; 100]).unwrap();
        id.verify(&[i; 100], &sig).unwrap();
    }
    assert!(id.verify(b"x", b"").is_err());
}

#[test]
fn missing_cacerts_is_an_error() {
    let dir = crypto("ordererOrganizations/example.com/orderers/orderer1.example.com/tls");
    assert!(local::verifying_config(&dir, "X").is_err());
}
