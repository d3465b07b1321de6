//! Every Fabric-made block and envelope decodes with our .proto files, and re-encodes to the very
//! same bytes: proof that no field is missing or numbered wrongly (prost would drop an unknown field
//! and the bytes would differ).

use ordo_proto::Message;
use ordo_proto::common::{Block, Envelope, Payload};

#[test]
fn ledger_blocks_round_trip_byte_for_byte() {
    for dir in ["from-orderer1", "from-orderer2"] {
        let blocks = ordo_testkit::ledger_blocks(dir);
        assert_eq!(blocks.len(), 14, "{dir}");
        for (n, bytes) in blocks {
            let block = Block::decode(bytes.as_slice()).expect("block decodes");
            let header = block.header.as_ref().expect("header");
            assert_eq!(header.number, n);
            assert_eq!(block.encode_to_vec(), bytes, "{dir} block {n}");
            for env in &block.data.as_ref().expect("data").data {
                let e = Envelope::decode(env.clone()).expect("envelope");
                assert_eq!(e.encode_to_vec(), env.as_ref());
                let p = Payload::decode(e.payload.clone()).expect("payload");
                assert_eq!(p.encode_to_vec(), e.payload.as_ref());
            }
        }
    }
}

#[test]
fn envelopes_round_trip_byte_for_byte() {
    let files = ordo_testkit::files_with_suffix("envelopes", ".pb");
    assert_eq!(files.len(), 6);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let e = Envelope::decode(bytes.as_slice()).expect("envelope");
        assert_eq!(e.encode_to_vec(), bytes, "{}", f.display());
    }
}

#[test]
fn genesis_blocks_decode() {
    for n in [1, 3, 5] {
        let bytes = ordo_testkit::read(&format!("channel-genesis/channel-{n}.block"));
        let block = Block::decode(bytes.as_slice()).expect("block");
        assert_eq!(block.header.unwrap().number, 0);
        assert_eq!(block.metadata.unwrap().metadata.len(), 5);
    }
}
