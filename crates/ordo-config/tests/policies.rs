//! Policy evaluation corner cases, with real identities from the fixtures: signers counted once,
//! bad signatures dropped silently, Fabric's greedy (not optimal) matching, ImplicitMeta
//! thresholds, zero sub-groups, missing sub-policies.

use std::sync::Arc;

use bytes::Bytes;
use ordo_config::policy::{Policy, PolicyManager, SignedData};
use ordo_msp::{Msp, MspManager, SigningIdentity, local};
use ordo_proto::Message;
use ordo_proto::common::msp_principal::Classification;
use ordo_proto::common::signature_policy::{NOutOf, Type};
use ordo_proto::common::{
    ConfigGroup, ConfigPolicy, ImplicitMetaPolicy, MspPrincipal, MspRole, Policy as PolicyProto,
    SignaturePolicy, SignaturePolicyEnvelope,
};

fn dir(rel: &str) -> std::path::PathBuf {
    ordo_testkit::fixture(&format!("crypto-config/{rel}"))
}

fn msps() -> MspManager {
    let o =
        local::verifying_fabric_config(&dir("ordererOrganizations/example.com/msp"), "OrdererMSP")
            .unwrap();
    let a =
        local::verifying_fabric_config(&dir("peerOrganizations/org1.example.com/msp"), "Org1MSP")
            .unwrap();
    MspManager::new([
        Arc::new(Msp::new(&o).unwrap()),
        Arc::new(Msp::new(&a).unwrap()),
    ])
}

fn who(user: &str) -> SigningIdentity {
    let (path, id) = match user {
        "admin1" => (
            "peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp",
            "Org1MSP",
        ),
        "user1" => (
            "peerOrganizations/org1.example.com/users/User1@org1.example.com/msp",
            "Org1MSP",
        ),
        "user2" => (
            "peerOrganizations/org1.example.com/users/User2@org1.example.com/msp",
            "Org1MSP",
        ),
        "peer1" => (
            "peerOrganizations/org1.example.com/peers/peer0.org1.example.com/msp",
            "Org1MSP",
        ),
        "oadmin" => (
            "ordererOrganizations/example.com/users/Admin@example.com/msp",
            "OrdererMSP",
        ),
        other => panic!("unknown user {other}"),
    };
    local::load_signing_identity(&dir(path), id).unwrap().signer
}

fn sig(user: &str, data: &[u8]) -> SignedData {
    let s = who(user);
    SignedData {
        data: Bytes::copy_from_slice(data),
        identity: s.serialized().clone(),
        signature: s.sign(data).unwrap().into(),
    }
}

fn bad_sig(user: &str, data: &[u8]) -> SignedData {
    let mut sd = sig(user, data);
    sd.signature = who(user).sign(b"something else").unwrap().into();
    sd
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

fn signed_by(i: i32) -> SignaturePolicy {
    SignaturePolicy {
        r#type: Some(Type::SignedBy(i)),
    }
}

fn n_out_of(n: i32, rules: Vec<SignaturePolicy>) -> SignaturePolicy {
    SignaturePolicy {
        r#type: Some(Type::NOutOf(NOutOf { n, rules })),
    }
}

fn policy(rule: SignaturePolicy, ids: Vec<MspPrincipal>) -> Policy {
    Policy::signature(&SignaturePolicyEnvelope {
        version: 0,
        rule: Some(rule),
        identities: ids,
    })
    .unwrap()
}

const MEMBER: i32 = 0;
const ADMIN: i32 = 1;

#[test]
fn the_same_signer_counts_once() {
    let m = msps();
    let two_members = policy(
        n_out_of(2, vec![signed_by(0), signed_by(0)]),
        vec![role("Org1MSP", MEMBER)],
    );
    let d = b"data";
    assert!(
        two_members
            .evaluate_signed_data(&[sig("user1", d), sig("user1", d)], &m)
            .is_err()
    );
    two_members
        .evaluate_signed_data(&[sig("user1", d), sig("user2", d)], &m)
        .unwrap();
}

#[test]
fn a_bad_signature_is_dropped_and_a_later_good_duplicate_still_counts() {
    let m = msps();
    let one = policy(
        n_out_of(1, vec![signed_by(0)]),
        vec![role("Org1MSP", MEMBER)],
    );
    let d = b"data";
    assert_eq!(
        one.evaluate_signed_data(&[bad_sig("user1", d)], &m)
            .unwrap_err()
            .0,
        "signature set did not satisfy policy"
    );
    // Fabric records a signer only once its signature verified, so the good copy counts.
    one.evaluate_signed_data(&[bad_sig("user1", d), sig("user1", d)], &m)
        .unwrap();
    // Garbage identities and signatures are skipped, not errors.
    let junk = SignedData {
        data: Bytes::from_static(d),
        identity: Bytes::from_static(b"\x01\x02"),
        signature: Bytes::new(),
    };
    one.evaluate_signed_data(&[junk, sig("user2", d)], &m)
        .unwrap();
}

#[test]
fn matching_is_greedy_like_fabric() {
    let m = msps();
    // AND(member, admin) with signatures [admin, user]: greedy gives the admin to "member" first,
    // and the user cannot satisfy "admin". An optimal matcher would pass; Fabric fails.
    let p = policy(
        n_out_of(2, vec![signed_by(0), signed_by(1)]),
        vec![role("Org1MSP", MEMBER), role("Org1MSP", ADMIN)],
    );
    let d = b"data";
    assert!(
        p.evaluate_signed_data(&[sig("admin1", d), sig("user1", d)], &m)
            .is_err()
    );
    p.evaluate_signed_data(&[sig("user1", d), sig("admin1", d)], &m)
        .unwrap();
}

#[test]
fn n_out_of_evaluates_every_rule_and_keeps_what_passing_rules_used() {
    let m = msps();
    // OR(member, member) inside AND(that, member): the inner OR evaluates both of its rules, so it
    // consumes two members when two are present, leaving none for the outer second rule.
    let inner = n_out_of(1, vec![signed_by(0), signed_by(0)]);
    let p = policy(
        n_out_of(2, vec![inner, signed_by(0)]),
        vec![role("Org1MSP", MEMBER)],
    );
    let d = b"data";
    assert!(
        p.evaluate_signed_data(&[sig("user1", d), sig("user2", d)], &m)
            .is_err()
    );
    p.evaluate_signed_data(&[sig("user1", d), sig("user2", d), sig("admin1", d)], &m)
        .unwrap();
    // N = 0 always passes; N greater than the rules never does.
    policy(
        n_out_of(0, vec![signed_by(0)]),
        vec![role("Org1MSP", ADMIN)],
    )
    .evaluate_signed_data(&[], &m)
    .unwrap();
    assert!(
        policy(
            n_out_of(2, vec![signed_by(0)]),
            vec![role("Org1MSP", MEMBER)]
        )
        .evaluate_signed_data(&[sig("user1", d), sig("user2", d)], &m)
        .is_err()
    );
}

#[test]
fn compile_errors() {
    let env = |rule: Option<SignaturePolicy>, version: i32| SignaturePolicyEnvelope {
        version,
        rule,
        identities: vec![role("A", 0)],
    };
    assert!(
        Policy::signature(&env(Some(signed_by(1)), 0))
            .unwrap_err()
            .0
            .contains("identity index out of range, requested 1, but identities length is 1")
    );
    assert!(Policy::signature(&env(Some(signed_by(-1)), 0)).is_err());
    assert_eq!(
        Policy::signature(&env(None, 0)).unwrap_err().0,
        "Empty policy element"
    );
    assert!(
        Policy::signature(&env(Some(signed_by(0)), 1))
            .unwrap_err()
            .0
            .contains("version was 1")
    );
}

fn sig_policy(rule: SignaturePolicy, ids: Vec<MspPrincipal>) -> ConfigPolicy {
    ConfigPolicy {
        version: 0,
        mod_policy: "Admins".into(),
        policy: Some(PolicyProto {
            r#type: 1,
            value: SignaturePolicyEnvelope {
                version: 0,
                rule: Some(rule),
                identities: ids,
            }
            .encode_to_vec()
            .into(),
        }),
    }
}

fn implicit(rule: i32, sub: &str) -> ConfigPolicy {
    ConfigPolicy {
        version: 0,
        mod_policy: "Admins".into(),
        policy: Some(PolicyProto {
            r#type: 3,
            value: ImplicitMetaPolicy {
                sub_policy: sub.into(),
                rule,
            }
            .encode_to_vec()
            .into(),
        }),
    }
}

/// A tree `Channel{ A{Org1}, B{Orderer} , Empty{} }` with ImplicitMeta policies at the top.
fn tree() -> ConfigGroup {
    let org = |msp: &str| {
        let mut g = ConfigGroup::default();
        g.policies.insert(
            "Writers".into(),
            sig_policy(signed_by(0), vec![role(msp, MEMBER)]),
        );
        g
    };
    let mut a = ConfigGroup::default();
    a.groups.insert("Org1".into(), org("Org1MSP"));
    a.policies.insert("Writers".into(), implicit(0, "Writers"));
    let mut b = ConfigGroup::default();
    b.groups.insert("Ord".into(), org("OrdererMSP"));
    b.policies.insert("Writers".into(), implicit(0, "Writers"));
    let mut empty = ConfigGroup::default();
    empty
        .policies
        .insert("Writers".into(), implicit(1, "Writers"));
    let mut root = ConfigGroup::default();
    root.groups.insert("A".into(), a);
    root.groups.insert("B".into(), b);
    root.policies.insert("Any".into(), implicit(0, "Writers"));
    root.policies.insert("All".into(), implicit(1, "Writers"));
    root.policies
        .insert("Majority".into(), implicit(2, "Writers"));
    root.policies
        .insert("Missing".into(), implicit(0, "NoSuchPolicy"));
    root.groups.insert("Empty".into(), empty);
    root
}

#[test]
fn implicit_meta_thresholds() {
    let m = msps();
    let pm = PolicyManager::new("Channel", &tree()).unwrap();
    let d = b"data";
    let app_only = [sig("user1", d)];
    let both = [sig("user1", d), sig("oadmin", d)];
    let get = |id: &str| pm.get_policy(id).unwrap();
    // Three child groups (A, B, Empty); Empty's Writers has no children and always passes.
    get("Any").evaluate_signed_data(&app_only, &m).unwrap();
    get("Majority").evaluate_signed_data(&app_only, &m).unwrap(); // A and Empty: 2 of 3
    assert_eq!(
        get("All")
            .evaluate_signed_data(&app_only, &m)
            .unwrap_err()
            .0,
        "implicit policy evaluation failed - 2 sub-policies were satisfied, but this policy requires 3 of the 'Writers' sub-policies to be satisfied"
    );
    get("All").evaluate_signed_data(&both, &m).unwrap();
    get("/Channel/Empty/Writers")
        .evaluate_signed_data(&[], &m)
        .unwrap();
    // A missing sub-policy is a reject policy that still counts in the denominator.
    assert!(get("Missing").evaluate_signed_data(&both, &m).is_err());
    assert!(pm.get_policy("").is_none());
    assert!(pm.get_policy("/Other/Any").is_none());
    assert!(pm.get_policy("/Channel/A/Org1/Writers").is_some());
    assert!(pm.get_policy("A/Org1/Writers").is_some());
    assert_eq!(
        pm.policy_or_reject("Nope")
            .evaluate_signed_data(&both, &m)
            .unwrap_err()
            .0,
        "no such policy: 'Nope'"
    );
}

#[test]
fn policy_manager_refuses_uncompilable_policies() {
    let mut root = tree();
    root.policies.insert(
        "Nil".into(),
        ConfigPolicy {
            version: 0,
            mod_policy: String::new(),
            policy: None,
        },
    );
    assert!(
        PolicyManager::new("Channel", &root)
            .unwrap_err()
            .to_string()
            .contains("policy Nil at path Channel was nil")
    );
    let mut root = tree();
    root.policies.insert(
        "Weird".into(),
        ConfigPolicy {
            version: 0,
            mod_policy: String::new(),
            policy: Some(PolicyProto {
                r#type: 2,
                value: Bytes::new(),
            }),
        },
    );
    assert!(
        PolicyManager::new("Channel", &root)
            .unwrap_err()
            .to_string()
            .contains("unknown policy type")
    );
    let mut root = tree();
    root.policies.insert(
        "Garbage".into(),
        ConfigPolicy {
            version: 0,
            mod_policy: String::new(),
            policy: Some(PolicyProto {
                r#type: 1,
                value: Bytes::from_static(b"\xff\xff"),
            }),
        },
    );
    assert!(
        PolicyManager::new("Channel", &root)
            .unwrap_err()
            .to_string()
            .contains("did not compile")
    );
}
