//! Deliver request checks with real seek envelopes signed by a fixture identity: the ±TimeWindow
//! timestamp check and TLS binding under mutual TLS, then the SeekInfo they carry.

use bytes::Bytes;
use ordo_orderer::deliver::{SeekPlan, Step, decode_seek_info, parse_seek_envelope, specified};
use ordo_proto::Message;
use ordo_proto::common::{
    ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader, Status,
};
use ordo_proto::orderer::SeekInfo;

const WINDOW: i64 = 15 * 60 * 1_000_000_000;
const NOW_S: i64 = 1_900_000_000;

fn seek_envelope(ts: Option<i64>, tls_hash: &[u8]) -> Envelope {
    let dir = ordo_testkit::fixture(
        "crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp",
    );
    let signer = ordo_msp::local::load_signing_identity(&dir, "Org1MSP")
        .unwrap()
        .signer;
    let ch = ChannelHeader {
        r#type: HeaderType::DeliverSeekInfo as i32,
        channel_id: "channel-3".into(),
        timestamp: ts.map(|s| prost_types::Timestamp {
            seconds: s,
            nanos: 0,
        }),
        tls_cert_hash: Bytes::copy_from_slice(tls_hash),
        ..Default::default()
    };
    let sh = SignatureHeader {
        creator: signer.serialized().clone(),
        nonce: Bytes::from_static(&[1; 24]),
    };
    let seek = SeekInfo {
        start: Some(specified(0)),
        stop: Some(specified(3)),
        behavior: 0,
        error_response: 0,
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: ch.encode_to_vec().into(),
            signature_header: sh.encode_to_vec().into(),
        }),
        data: seek.encode_to_vec().into(),
    };
    let payload = Bytes::from(payload.encode_to_vec());
    let signature = signer.sign(&payload).unwrap().into();
    Envelope { payload, signature }
}

fn now_ns() -> i128 {
    i128::from(NOW_S) * 1_000_000_000
}

#[test]
fn timestamps_must_be_within_the_time_window() {
    let ok = parse_seek_envelope(
        &seek_envelope(Some(NOW_S - 14 * 60), b""),
        now_ns(),
        WINDOW,
        None,
    )
    .unwrap();
    assert_eq!(ok.channel_header.channel_id, "channel-3");
    let seek = decode_seek_info(&ok.data).unwrap();
    let mut plan = SeekPlan::new(&seek, 2).unwrap();
    assert_eq!(plan.step(2), Step::Send(0));
    plan.sent(0);
    for (ts, what) in [
        (Some(NOW_S - 16 * 60), "too old"),
        (Some(NOW_S + 16 * 60), "in the future"),
        (None, "missing"),
    ] {
        let e = parse_seek_envelope(&seek_envelope(ts, b""), now_ns(), WINDOW, None).unwrap_err();
        assert_eq!(e.status, Status::BadRequest, "{what}");
    }
}

#[test]
fn mutual_tls_binds_the_request_to_the_client_certificate() {
    let cert = ordo_testkit::read(
        "crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/tls/client.crt",
    );
    let der = ordo_crypto::x509::first_pem_der(&cert).unwrap();
    let hash = ordo_crypto::sha256(&der);
    parse_seek_envelope(
        &seek_envelope(Some(NOW_S), &hash),
        now_ns(),
        WINDOW,
        Some(&hash),
    )
    .unwrap();
    let missing = parse_seek_envelope(
        &seek_envelope(Some(NOW_S), b""),
        now_ns(),
        WINDOW,
        Some(&hash),
    )
    .unwrap_err();
    assert_eq!(missing.reason, "client didn't include its TLS cert hash");
    let other = parse_seek_envelope(
        &seek_envelope(Some(NOW_S), &[9; 32]),
        now_ns(),
        WINDOW,
        Some(&hash),
    )
    .unwrap_err();
    assert_eq!(other.status, Status::BadRequest);
    // Without mutual TLS the hash is not checked.
    parse_seek_envelope(
        &seek_envelope(Some(NOW_S), &[9; 32]),
        now_ns(),
        WINDOW,
        None,
    )
    .unwrap();
}

#[test]
fn garbage_is_a_bad_request() {
    for env in [
        Envelope::default(),
        Envelope {
            payload: Bytes::from_static(b"\x0a\x03\xff\xff\xff"),
            signature: Bytes::new(),
        },
    ] {
        assert_eq!(
            parse_seek_envelope(&env, now_ns(), WINDOW, None)
                .unwrap_err()
                .status,
            Status::BadRequest
        );
    }
}
