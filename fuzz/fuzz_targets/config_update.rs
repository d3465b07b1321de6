//! Untrusted config changes against channel-3: the bytes as a CONFIG_UPDATE `common.Envelope`
//! proposed to the genesis config (Fabric's `ProposeConfigUpdate`: read set, write set, mod
//! policies, signatures), and as a whole `common.Config` parsed and validated as Fabric's
//! `NewBundle` does. What is accepted is carried on through the checks an orderer makes before
//! writing a config block. Errors are fine, panics are not.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ordo_config::{ChannelConfig, configtx, etcdraft};
use ordo_proto::Message;
use ordo_proto::common::{Config, Envelope};

fuzz_target!(|data: &[u8]| {
    let current = ordo_fuzz::channel_config();
    if let Ok(env) = Envelope::decode(data) {
        if let Ok(ce) = configtx::propose_config_update(current, ordo_fuzz::CHANNEL_ID, &env) {
            let _ = configtx::validate_config_envelope(current, ordo_fuzz::CHANNEL_ID, &ce);
            if let Some(config) = &ce.config {
                check_config(current, config);
            }
        }
    }
    if let Ok(config) = Config::decode(data) {
        check_config(current, &config);
    }
});

fn check_config(current: &ChannelConfig, config: &Config) {
    let Ok(new) = ChannelConfig::new(config) else {
        return;
    };
    let _ = new.check_orderer_support();
    let _ = current.validate_new(&new);
    let pools = new.orderer_tls_pools();
    let Some(orderer) = &new.orderer else {
        return;
    };
    let Ok(Some(md)) = orderer.etcdraft() else {
        return;
    };
    let _ = etcdraft::check_duplicates(md.metadata());
    if let Ok(pools) = &pools {
        let _ = etcdraft::verify_config_metadata(md.metadata(), pools, ordo_fuzz::now());
    }
    if let Some(Ok(Some(old))) = current.orderer.as_ref().map(|o| o.etcdraft()) {
        let _ = etcdraft::consenter_change(old.consenters(), md.consenters());
    }
}
