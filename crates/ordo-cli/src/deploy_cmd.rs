//! `ordo deploy kubernetes`: reads the orderer organization's crypto material, has
//! `deploy_k8s` make the manifests of an ordering service spread over zones, and writes one
//! file per object.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::deploy_k8s::material::{only_orderer_org, read_orderers};
use crate::deploy_k8s::placement::Placement;
use crate::deploy_k8s::{ADMIN_PORT, Deployment, GENERAL_PORT, Spec, generate};

#[derive(Subcommand)]
pub enum DeployCommand {
    /// Kubernetes manifests of an ordering service spread over zones: per orderer a one-pod
    /// StatefulSet pinned to its zone, a Service, its MSP and TLS Secrets and its orderer.yaml;
    /// a PodDisruptionBudget over all of them (docs/kubernetes.md).
    Kubernetes(KubernetesArgs),
}

#[derive(Args)]
pub struct KubernetesArgs {
    /// Orderers per zone, in the order of --zones (2/1/2: two in the first zone, one in the
    /// second, two in the third; orderers are taken in order).
    #[arg(long, default_value = "2/1/2")]
    placement: String,
    /// The zones, as the nodes' topology.kubernetes.io/zone label names them.
    #[arg(long, value_delimiter = ',', default_value = "zone-a,zone-b,zone-c")]
    zones: Vec<String>,
    /// Fabric's crypto-config folder: ordererOrganizations/<domain>/orderers/<node>/{msp,tls}.
    #[arg(long)]
    crypto_config: PathBuf,
    /// The orderer organization's domain under ordererOrganizations/ (needed when there are
    /// several).
    #[arg(long)]
    org_domain: Option<String>,
    /// The orderer organization's MSP ID.
    #[arg(long, default_value = "OrdererMSP")]
    msp_id: String,
    /// The orderers to deploy, by name (orderer1) or folder (orderer1.example.com), in
    /// placement order; default: all of the organization's, in natural order.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    /// The namespace.
    #[arg(long, default_value = "ordo")]
    namespace: String,
    /// The ordering service's name (label app.kubernetes.io/part-of; the disruption budget is
    /// <name>-orderers).
    #[arg(long, default_value = "ordo")]
    name: String,
    /// The orderer image (deploy/Dockerfile).
    #[arg(long, default_value = concat!("ordo:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// Each orderer's volume for its ledger and WAL.
    #[arg(long, default_value = "20Gi")]
    storage_size: String,
    /// The volumes' storage class (the cluster's default when not given); a zonal class with
    /// volumeBindingMode WaitForFirstConsumer puts each volume in its pod's zone.
    #[arg(long)]
    storage_class: Option<String>,
    /// Each orderer's CPU request.
    #[arg(long, default_value = "500m")]
    cpu: String,
    /// Each orderer's memory request and limit.
    #[arg(long, default_value = "1Gi")]
    memory: String,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The orderers' FABRIC_LOGGING_SPEC.
    #[arg(long, default_value = "info")]
    log_spec: String,
    /// The folder to write the manifests to (created; must be empty if it exists).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: DeployCommand) -> Result<()> {
    match cmd {
        DeployCommand::Kubernetes(a) => kubernetes(a),
    }
}

fn kubernetes(a: KubernetesArgs) -> Result<()> {
    let placement = Placement::parse(&a.placement, &a.zones)?;
    let org_domain = match a.org_domain {
        Some(d) => d,
        None => only_orderer_org(&a.crypto_config)?,
    };
    let orderers = read_orderers(&a.crypto_config, &org_domain)?;
    let spec = Spec {
        service_name: a.name,
        namespace: a.namespace,
        image: a.image,
        msp_id: a.msp_id,
        org_domain,
        nodes: a.nodes,
        storage_size: a.storage_size,
        storage_class: a.storage_class,
        cpu_request: a.cpu,
        memory: a.memory,
        cluster_domain: a.cluster_domain,
        log_spec: a.log_spec,
    };
    let deployment = generate(&spec, &placement, orderers)?;
    write_out(&a.out, &deployment)?;
    print_summary(&a.out, &spec, &placement, &deployment);
    Ok(())
}

/// Writes every manifest; Secrets (private keys) readable by the owner only.
fn write_out(out: &Path, d: &Deployment) -> Result<()> {
    // Files left by an earlier run for another placement would be applied with these.
    if out.exists()
        && fs::read_dir(out)
            .with_context(|| format!("reading {}", out.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} exists and is not empty: give a new or empty folder",
            out.display()
        );
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for m in &d.manifests {
        let path = out.join(&m.file);
        let secret = m.object["kind"] == "Secret";
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if secret { 0o600 } else { 0o644 });
        }
        let mut f = opts
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(m.to_yaml()?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn print_summary(out: &Path, spec: &Spec, placement: &Placement, d: &Deployment) {
    println!(
        "wrote {} manifests to {} (namespace {}): kubectl apply -f {}",
        d.manifests.len(),
        out.display(),
        spec.namespace,
        out.display()
    );
    println!("orderer\tzone\tconsenter (host:port)\tadmin endpoint");
    for n in &d.nodes {
        println!(
            "{}\t{}\t{}:{GENERAL_PORT}\t{}:{ADMIN_PORT}",
            n.name, n.zone, n.host, n.host
        );
    }
    let lost_with = placement.zones_holding_quorum();
    let spread = if lost_with.is_empty() {
        "survives the loss of any one zone".to_string()
    } else {
        format!("loses its quorum with zone {}", lost_with.join(" or "))
    };
    println!(
        "a channel on all {} orderers needs {} of them: it {spread}",
        placement.total(),
        placement.quorum()
    );
}
