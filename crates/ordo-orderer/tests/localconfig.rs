//! orderer.yaml as Fabric reads it: the fixture file's values, environment overrides (only for
//! keys the file has, as viper), defaults, relative paths, and refused combinations.

use std::collections::HashMap;
use std::path::Path;

use ordo_orderer::localconfig::LocalConfig;

fn fixture_yaml() -> (String, std::path::PathBuf) {
    let path = ordo_testkit::fixture("config/orderer1.yaml");
    (std::fs::read_to_string(&path).unwrap(), path)
}

fn load(text: &str, env: &[(&str, &str)]) -> Result<LocalConfig, String> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    LocalConfig::from_yaml(text, Path::new("/etc/ordo"), &|k| env.get(k).cloned())
        .map_err(|e| e.to_string())
}

#[test]
fn the_fixture_file_loads_with_its_values() {
    // The fixture README: its orderer1.yaml has paths relative to the fixtures folder (Fabric
    // resolves them against the folder of the file it loads, which was that folder then).
    let (text, _) = fixture_yaml();
    let base = ordo_testkit::fixtures();
    let c = LocalConfig::from_yaml(&text, &base, &|_| None).unwrap();
    let g = &c.general;
    assert_eq!(
        (g.listen_address.as_str(), g.listen_port),
        ("127.0.0.1", 37051)
    );
    assert!(g.tls.enabled && !g.tls.client_auth_required);
    assert_eq!(g.tls.certificate, base.join("crypto-config/ordererOrganizations/example.com/orderers/orderer1.example.com/tls/server.crt"));
    assert!(
        g.tls.certificate.is_file(),
        "TLS paths are relative to the file's folder"
    );
    assert!(g.local_msp_dir.is_dir());
    assert_eq!(g.local_msp_id, "OrdererMSP");
    assert_eq!(g.cluster.listen_port, 37151);
    assert!(g.cluster.separate_listener());
    assert_eq!(g.cluster.send_buffer_size, 100);
    assert_eq!(g.cluster.rpc_timeout_ns, 7_000_000_000);
    assert_eq!(g.time_window_ns, 15 * 60 * 1_000_000_000);
    assert_eq!(g.keepalive_server_interval_ns, 7200 * 1_000_000_000);
    // Ledger folders are used as written (relative to the working directory), as Fabric does.
    assert_eq!(c.ledger_location, Path::new("production/orderer1/ledger"));
    assert_eq!(c.wal_dir, Path::new("production/orderer1/etcdraft/wal"));
    // Fabric's default (the key is hidden from orderer.yaml).
    assert_eq!(c.eviction_suspicion_ns, 600 * 1_000_000_000);
    assert_eq!(c.admin.listen_address, "127.0.0.1:37251");
    assert!(c.admin.tls.enabled && c.admin.tls.client_auth_required);
    assert_eq!(c.operations.listen_address, "127.0.0.1:37351");
    assert_eq!(c.metrics_provider, "prometheus");
    assert!(c.participation_enabled);
    assert_eq!(c.participation_max_request_body_size, 1024 * 1024);
}

#[test]
fn environment_overrides_keys_the_file_has() {
    let (text, _) = fixture_yaml();
    let c = load(
        &text,
        &[
            ("ORDERER_GENERAL_LISTENPORT", "40000"),
            ("ORDERER_GENERAL_TLS_CLIENTAUTHREQUIRED", "true"),
            ("ORDERER_CHANNELPARTICIPATION_MAXREQUESTBODYSIZE", "2 MB"),
            ("ORDERER_FILELEDGER_LOCATION", "/data/ledger"),
            // Not in the file: viper does not know the key, so it has no effect.
            ("ORDERER_GENERAL_MAXRECVMSGSIZE", "5"),
        ],
    )
    .unwrap();
    assert_eq!(c.general.listen_port, 40000);
    assert!(c.general.tls.client_auth_required);
    assert_eq!(c.participation_max_request_body_size, 2 * 1024 * 1024);
    assert_eq!(c.ledger_location, Path::new("/data/ledger"));
    assert_eq!(c.general.max_recv_msg_size, 100 * 1024 * 1024);
    assert!(
        load(&text, &[("ORDERER_GENERAL_LISTENPORT", "not-a-port")])
            .unwrap_err()
            .contains("General.ListenPort")
    );
}

#[test]
fn invalid_combinations_are_refused() {
    let (text, _) = fixture_yaml();
    let cases = [
        (
            text.replace("BootstrapMethod: none", "BootstrapMethod: file"),
            "BootstrapMethod",
        ),
        (
            text.replace(
                "ChannelParticipation: {Enabled: true",
                "ChannelParticipation: {Enabled: false",
            ),
            "ChannelParticipation.Enabled",
        ),
        (
            text.replace("ClientAuthRequired: true", "ClientAuthRequired: false"),
            "Admin.TLS.ClientAuthRequired",
        ),
        (
            text.replace("        ListenPort: 37151\n", ""),
            "must be all set or all empty",
        ),
        (
            text.replace(
                "    LocalMSPID: OrdererMSP\n",
                "    LocalMSPID: OrdererMSP\n    LocalMSPIDD: x\n",
            ),
            "invalid keys: LocalMSPIDD",
        ),
        (
            text.replace(
                "Authentication: {TimeWindow: 15m}",
                "Authentication: {TimeWindow: soon}",
            ),
            "General.Authentication.TimeWindow",
        ),
        ("General: [1, 2]".to_string(), "expected a mapping"),
        ("::: not yaml".to_string(), ""),
    ];
    for (yaml, expected) in cases {
        let e = load(&yaml, &[]).unwrap_err();
        assert!(e.contains(expected), "expected {expected:?} in {e:?}");
    }
    // Sharing the general listener needs TLS there.
    let shared = text
        .lines()
        .filter(|l| {
            !l.trim_start().starts_with("ListenPort: 37151")
                && !l.trim_start().starts_with("ListenAddress: 127.0.0.1")
                || l.starts_with("    ListenAddress")
        })
        .filter(|l| !l.contains("ServerCertificate") && !l.contains("ServerPrivateKey"))
        .collect::<Vec<_>>()
        .join("\n");
    load(&shared, &[]).unwrap();
    let e = load(
        &shared.replace(
            "TLS: {Enabled: true, PrivateKey",
            "TLS: {Enabled: false, PrivateKey",
        ),
        &[],
    )
    .unwrap_err();
    assert!(e.contains("General.TLS.Enabled must be true"), "{e}");
}

#[test]
fn load_reads_the_file_and_resolves_against_its_folder() {
    let (text, path) = fixture_yaml();
    let c = LocalConfig::load_with_env(&path, &|_| None).unwrap();
    assert_eq!(
        c.general.local_msp_dir,
        path.parent().unwrap().join(
            "crypto-config/ordererOrganizations/example.com/orderers/orderer1.example.com/msp"
        )
    );
    assert_eq!(
        load(&text, &[]).unwrap().general.local_msp_dir,
        Path::new(
            "/etc/ordo/crypto-config/ordererOrganizations/example.com/orderers/orderer1.example.com/msp"
        )
    );
    assert!(LocalConfig::load_with_env(Path::new("/nonexistent/orderer.yaml"), &|_| None).is_err());
}

#[test]
fn ports_from_the_kernel_replace_the_configured_ones() {
    use ordo_orderer::localconfig::ListenPorts;
    let (text, _) = fixture_yaml();
    let with = |text: &str, ports| {
        LocalConfig::from_yaml_with_ports(text, Path::new("/etc/ordo"), &|_| None, ports)
            .map_err(|e| e.to_string())
    };
    // Fabric's reading of General.ListenPort 0 stays: its default port, not the kernel's choice.
    let zero = text.replace("ListenPort: 37051", "ListenPort: 0");
    assert_eq!(
        with(&zero, ListenPorts::Configured)
            .unwrap()
            .general
            .listen_port,
        7050
    );
    // Asked for explicitly, both listeners bind port 0 (the kernel chooses), whatever the file
    // says; the cluster keeps its own listener.
    for text in [&text, &zero] {
        let g = with(text, ListenPorts::Kernel).unwrap().general;
        assert_eq!((g.listen_port, g.cluster.listen_port), (0, 0));
        assert!(g.cluster.separate_listener());
    }
    // A cluster listener's ListenPort may then be left out; it is still required otherwise.
    let no_cluster_port = text.replace("        ListenPort: 37151\n", "");
    let g = with(&no_cluster_port, ListenPorts::Kernel).unwrap().general;
    assert!(g.cluster.separate_listener());
    let e = with(&no_cluster_port, ListenPorts::Configured).unwrap_err();
    assert!(e.contains("must be all set or all empty"), "{e}");
    // The rest of the cluster settings are still required together.
    let e = with(
        &no_cluster_port.replace("        ListenAddress: 127.0.0.1\n", ""),
        ListenPorts::Kernel,
    )
    .unwrap_err();
    assert!(e.contains("must be all set or all empty"), "{e}");
    // Without a cluster section, the cluster shares the general listener as before.
    let shared: String = text
        .lines()
        .filter(|l| !l.starts_with("        ") && !l.starts_with("    Cluster:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let g = with(&shared, ListenPorts::Kernel).unwrap().general;
    assert_eq!(g.listen_port, 0);
    assert!(!g.cluster.separate_listener());
}

/// `Consensus.PreferredLeaders` (Ordo's): consenters as `host:port`; none by default.
#[test]
fn preferred_leaders_are_read_from_the_consensus_section() {
    let (text, _) = fixture_yaml();
    assert!(load(&text, &[]).unwrap().preferred_leaders.is_empty());
    let text = text.replace(
        "SnapDir: production/orderer1/etcdraft/snapshot}",
        "SnapDir: production/orderer1/etcdraft/snapshot, PreferredLeaders: [\"orderer3.example.com:7050\", \"orderer4.example.com:7050\"]}",
    );
    assert_eq!(
        load(&text, &[]).unwrap().preferred_leaders,
        ["orderer3.example.com:7050", "orderer4.example.com:7050"]
    );
}
