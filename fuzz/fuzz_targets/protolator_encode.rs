//! `configtxlator proto_encode` on untrusted JSON: input that parses as JSON is encoded as each
//! of the config-related message types. Errors are fine; panics are not. What encodes is decoded
//! again, which must not panic either.

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
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for type_name in TYPES {
        if let Ok(bytes) = ordo_protolator::encode(type_name, &json) {
            let _ = ordo_protolator::decode(type_name, &bytes);
        }
    }
});
