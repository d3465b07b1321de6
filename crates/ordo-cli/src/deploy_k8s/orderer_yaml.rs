//! The `orderer.yaml` each pod runs with (Fabric's format, as `ordo node start` reads it):
//! listeners on all interfaces at the ports the Service exposes, certificates and MSP from the
//! mounted Secrets, ledger and WAL on the volume claim, no system channel.

use serde_json::{Value, json};

use super::{ADMIN_PORT, DATA_DIR, GENERAL_PORT, MSP_DIR, OPERATIONS_PORT, TLS_DIR};

/// orderer.yaml for a node of MSP `msp_id`.
pub fn orderer_yaml(msp_id: &str) -> Value {
    let cert = format!("{TLS_DIR}/tls.crt");
    let key = format!("{TLS_DIR}/tls.key");
    let ca = format!("{TLS_DIR}/ca.crt");
    // The ledger lives one folder below the volume's root, so that a file system's own
    // entries there (ext4's lost+found) never sit among the orderer's folders.
    let ledger = format!("{DATA_DIR}/orderer");
    json!({
        "General": {
            "ListenAddress": "0.0.0.0",
            "ListenPort": GENERAL_PORT,
            // Clients need not present certificates; Raft's connections do (below), and the
            // cluster shares this listener, so the other orderers dial the Service's general port.
            "TLS": {
                "Enabled": true,
                "Certificate": cert,
                "PrivateKey": key,
                "RootCAs": [ca],
                "ClientAuthRequired": false,
            },
            "Keepalive": {
                "ServerMinInterval": "60s",
                "ServerInterval": "7200s",
                "ServerTimeout": "20s",
            },
            "Cluster": {
                "ClientCertificate": cert,
                "ClientPrivateKey": key,
                "SendBufferSize": 100,
            },
            "BootstrapMethod": "none",
            "LocalMSPDir": MSP_DIR,
            "LocalMSPID": msp_id,
            "BCCSP": {"Default": "SW", "SW": {"Hash": "SHA2", "Security": 256}},
            "Authentication": {"TimeWindow": "15m"},
        },
        "FileLedger": {"Location": ledger},
        "Consensus": {
            "WALDir": format!("{ledger}/etcdraft/wal"),
            "SnapDir": format!("{ledger}/etcdraft/snapshot"),
        },
        // Plain HTTP, so that the kubelet's probes and Prometheus reach /healthz and /metrics
        // without client certificates; nothing secret is served there.
        "Operations": {
            "ListenAddress": format!("0.0.0.0:{OPERATIONS_PORT}"),
            "TLS": {"Enabled": false},
        },
        "Metrics": {"Provider": "prometheus"},
        // Channel participation: mutual TLS with the organization's TLS CA, as osnadmin expects.
        "Admin": {
            "ListenAddress": format!("0.0.0.0:{ADMIN_PORT}"),
            "TLS": {
                "Enabled": true,
                "Certificate": cert,
                "PrivateKey": key,
                "ClientAuthRequired": true,
                "ClientRootCAs": [ca],
            },
        },
        "ChannelParticipation": {"Enabled": true, "MaxRequestBodySize": "1 MB"},
    })
}
