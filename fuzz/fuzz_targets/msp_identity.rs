//! Untrusted bytes as an identity: a marshalled `msp.SerializedIdentity` given to channel-3's MSP
//! manager (then validated, classified and used to verify a signature when it deserializes), and
//! the same bytes as a DER and as a PEM certificate. Errors are fine, panics are not.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ordo_msp::Cert;

fuzz_target!(|data: &[u8]| {
    let msps = ordo_fuzz::channel_config().msp_manager();
    if let Ok(id) = msps.deserialize_identity(data) {
        if let Ok(msp) = msps.msp_of(&id) {
            let _ = msp.validate(&id);
            let _ = msp.node_role(&id);
        }
        let _ = id.organizational_units();
        let _ = id.expires_at();
        // Any signature will do: the point is that the key and the parsing hold up.
        let _ = id.verify(data, data);
    }
    if let Ok(cert) = Cert::from_der(data) {
        inspect(&cert);
    }
    if let Ok(cert) = Cert::from_pem(data) {
        inspect(&cert);
    }
});

fn inspect(cert: &Cert) {
    let _ = cert.to_pem();
    let _ = cert.is_ca();
    let _ = cert.common_name();
    let _ = cert.organizational_units();
    let _ = cert.subject_key_id();
    let _ = (cert.not_before(), cert.not_after(), cert.serial());
}
