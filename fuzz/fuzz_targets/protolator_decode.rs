//! `configtxlator proto_decode` on untrusted bytes: the first byte picks the message type, the
//! rest is decoded as that type. Whatever decodes must also print (`to_json_string`) and encode
//! back (`encode`) without panicking; errors are fine.

#![no_main]

use libfuzzer_sys::fuzz_target;

const TYPES: [&str; 5] = [
    "common.Block",
    "common.Envelope",
    "common.Config",
    "common.ConfigUpdate",
    "common.ConfigEnvelope",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let type_name = TYPES[usize::from(selector) % TYPES.len()];
    if let Ok(json) = ordo_protolator::decode(type_name, bytes) {
        let _ = ordo_protolator::to_json_string(&json);
        let _ = ordo_protolator::encode(type_name, &json);
    }
});
