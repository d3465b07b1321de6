//! The seed's identities come from `ordo ca`, and an Ordo node runs on them: `osadmin` (type
//! admin) and `os1` (type orderer) are enrolled from the `ca` and `tlsca` CAs of one server, the
//! organization's MSP is assembled from the two CAs (NodeOUs on), a channel's genesis block uses
//! that MSP, and `os1` serves it with its enrolled identity and TLS certificate: joined through
//! the participation API with osadmin's TLS certificate, it orders osadmin's transactions into
//! blocks it signs as os1.

mod common;

use common::*;
use ordo_ca::client::{
    CaClient, EnrollOptions, RegistrationRequest, build_org_msp, write_msp_folder, write_tls_folder,
};
use ordo_ca::config::{BootstrapIdentity, ServerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_on_identities_enrolled_with_ordo_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = ServerConfig {
        port: 0,
        address: "127.0.0.1".into(),
        home: d.join("ca-home"),
        ..ServerConfig::default()
    };
    let server = ordo_ca::start(
        &cfg,
        Some(BootstrapIdentity::from_flag("admin:adminpw").unwrap()),
    )
    .await
    .unwrap();
    let url = format!("https://localhost:{}", server.addr.port());
    let roots = vec![server.tls_ca_pem.clone().unwrap()];
    let ca = CaClient::new(&url, &roots, "ca").unwrap();
    let tlsca = ca.with_ca_name("tlsca");

    // Register osadmin and os1 in both CAs (each has its own registry and bootstrap admin).
    for c in [&ca, &tlsca] {
        let admin = c
            .enroll("admin", "adminpw", &EnrollOptions::default())
            .await
            .unwrap();
        for (id, t, secret) in [
            ("osadmin", "admin", "osadminpw"),
            ("os1", "orderer", "os1pw"),
        ] {
            let req = RegistrationRequest {
                id: id.into(),
                id_type: t.into(),
                secret: secret.into(),
                ..RegistrationRequest::default()
            };
            c.register(&admin, &req).await.unwrap();
        }
    }
    let tls_opts = EnrollOptions {
        profile: "tls".into(),
        hosts: vec!["127.0.0.1".into(), "localhost".into()],
        attr_reqs: None,
    };
    let os1 = ca
        .enroll("os1", "os1pw", &EnrollOptions::default())
        .await
        .unwrap();
    let os1_tls = tlsca.enroll("os1", "os1pw", &tls_opts).await.unwrap();
    let osadmin = ca
        .enroll("osadmin", "osadminpw", &EnrollOptions::default())
        .await
        .unwrap();
    let osadmin_tls = tlsca
        .enroll("osadmin", "osadminpw", &tls_opts)
        .await
        .unwrap();
    let node_dir = d.join("os1");
    write_msp_folder(&node_dir.join("msp"), &os1, "localhost-ca").unwrap();
    write_tls_folder(&node_dir.join("tls"), &os1_tls, "localhost-tlsca").unwrap();
    write_msp_folder(&d.join("osadmin/msp"), &osadmin, "localhost-ca").unwrap();
    let (_, ca_chain) = ca.cainfo().await.unwrap();
    let (_, tlsca_chain) = tlsca.cainfo().await.unwrap();
    let org = d.join("org-msp");
    build_org_msp(&org, &ca_chain, &tlsca_chain, &[]).unwrap();
    server.stop().await;

    // os1's orderer.yaml: every identity and certificate is from ordo ca. It starts first, with
    // --kernel-ports: its general and cluster listeners on ports the kernel chooses (the
    // cluster's ListenPort left out), reported on its start line.
    let t = node_dir.join("tls").display().to_string();
    let tlsca_root = node_dir.join("tls/ca.crt").display().to_string();
    let yaml = format!(
        r#"General:
    ListenAddress: 127.0.0.1
    ListenPort: 0
    TLS:
        Enabled: true
        PrivateKey: {t}/server.key
        Certificate: {t}/server.crt
        RootCAs: [{tlsca_root}]
        ClientAuthRequired: false
    Cluster: {{ListenAddress: 127.0.0.1, ServerCertificate: {t}/server.crt, ServerPrivateKey: {t}/server.key, ClientCertificate: {t}/server.crt, ClientPrivateKey: {t}/server.key}}
    BootstrapMethod: none
    LocalMSPDir: {msp}
    LocalMSPID: OrdererMSP
    Authentication: {{TimeWindow: 15m}}
FileLedger: {{Location: {d}/ledger}}
Operations: {{ListenAddress: 127.0.0.1:0, TLS: {{Enabled: false}}}}
Metrics: {{Provider: prometheus}}
Admin:
    ListenAddress: 127.0.0.1:0
    TLS:
        Enabled: true
        Certificate: {t}/server.crt
        PrivateKey: {t}/server.key
        ClientAuthRequired: true
        ClientRootCAs: [{tlsca_root}]
ChannelParticipation: {{Enabled: true, MaxRequestBodySize: 1 MB}}
Consensus: {{WALDir: {d}/etcdraft/wal, SnapDir: {d}/etcdraft/snapshot}}
"#,
        msp = node_dir.join("msp").display(),
        d = d.display()
    );
    let config = d.join("os1.yaml");
    std::fs::write(&config, yaml).unwrap();
    let node = OrdoProcess::start(&config);

    // The channel: OrdererMSP from the CA-built folder, os1 its only consenter on the ports it
    // got.
    let general = node.addrs.general.port();
    let cluster = node
        .addrs
        .cluster
        .expect("the start line reports the separate cluster listener")
        .port();
    assert_ne!(general, cluster);
    let configtx = format!(
        r#"Organizations:
    - &Orderer
        Name: OrdererOrg
        ID: OrdererMSP
        MSPDir: {org}
        Policies:
            Readers: {{Type: Signature, Rule: "OR('OrdererMSP.member')"}}
            Writers: {{Type: Signature, Rule: "OR('OrdererMSP.member')"}}
            Admins: {{Type: Signature, Rule: "OR('OrdererMSP.admin')"}}
        OrdererEndpoints: [127.0.0.1:{general}]
Profiles:
    Seed:
        Policies:
            Readers: {{Type: ImplicitMeta, Rule: "ANY Readers"}}
            Writers: {{Type: ImplicitMeta, Rule: "ANY Writers"}}
            Admins: {{Type: ImplicitMeta, Rule: "MAJORITY Admins"}}
        Capabilities: {{V2_0: true}}
        Orderer:
            OrdererType: etcdraft
            BatchTimeout: 200ms
            BatchSize: {{MaxMessageCount: 10, AbsoluteMaxBytes: 4 MB, PreferredMaxBytes: 512 KB}}
            EtcdRaft:
                Consenters:
                  - {{Host: 127.0.0.1, Port: {cluster}, ClientTLSCert: {t}/server.crt, ServerTLSCert: {t}/server.crt}}
                Options: {{TickInterval: 100ms, ElectionTick: 10, HeartbeatTick: 1, MaxInflightBlocks: 5, SnapshotIntervalSize: 1 MB}}
            Organizations: [*Orderer]
            Policies:
                Readers: {{Type: ImplicitMeta, Rule: "ANY Readers"}}
                Writers: {{Type: ImplicitMeta, Rule: "ANY Writers"}}
                Admins: {{Type: ImplicitMeta, Rule: "MAJORITY Admins"}}
                BlockValidation: {{Type: ImplicitMeta, Rule: "ANY Writers"}}
            Capabilities: {{V2_0: true}}
        Application:
            Organizations: [*Orderer]
            Policies:
                Readers: {{Type: ImplicitMeta, Rule: "ANY Readers"}}
                Writers: {{Type: ImplicitMeta, Rule: "ANY Writers"}}
                Admins: {{Type: ImplicitMeta, Rule: "MAJORITY Admins"}}
            Capabilities: {{V2_0: true}}
"#,
        org = org.display()
    );
    let configtx_path = d.join("configtx.yaml");
    std::fs::write(&configtx_path, configtx).unwrap();
    let genesis = ordo_config::genesis::genesis_block(&configtx_path, "Seed", "seed").unwrap();

    // Join with osadmin's TLS certificate from tlsca.
    let tls_root = std::fs::read(node_dir.join("tls/ca.crt")).unwrap();
    let admin_client = HttpClient {
        addr: node.addrs.admin,
        tls: Some(
            ClientTls::new(
                std::slice::from_ref(&tls_root),
                Some((
                    osadmin_tls.cert_pem.as_bytes(),
                    osadmin_tls.key_pem.as_bytes(),
                )),
                "127.0.0.1",
                &[b"http/1.1"],
            )
            .unwrap(),
        ),
    };
    let r = admin_client.join(&genesis.encode_to_vec()).await.unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json().unwrap()["consensusRelation"], "consenter");

    // osadmin's transactions, ordered and signed by os1.
    let signer = ordo_msp::local::load_signing_identity(&d.join("osadmin/msp"), "OrdererMSP")
        .unwrap()
        .signer;
    let tls = ClientTls::new(&[tls_root], None, "127.0.0.1", &[b"h2"]).unwrap();
    let mut client =
        AtomicBroadcastClient::new(grpc_channel(node.addrs.general, Some(tls)).await.unwrap());
    let (status, info) = broadcast_when_led(&mut client, tx(&signer, "seed", 0)).await;
    assert_eq!(status, Status::Success as i32, "{info}");
    let blocks = deliver_envelopes(&mut client, &signer, "seed", 1).await;
    verify_chain(&blocks);
    assert_eq!(payload_texts(&blocks), vec!["transaction 0".to_string()]);
    // The block signature's creator is os1's enrolled certificate.
    let sigs = ordo_ledger::block::signature_set(&blocks[1]).unwrap();
    assert_eq!(sigs.len(), 1);
    let creator = sigs[0].identity.clone();
    let sid = ordo_proto::msp::SerializedIdentity::decode(&creator[..]).unwrap();
    assert_eq!(sid.mspid, "OrdererMSP");
    assert_eq!(sid.id_bytes, os1.cert_pem.as_bytes());
    node.kill9();
}
