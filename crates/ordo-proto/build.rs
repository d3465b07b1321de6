//! Compiles every `.proto` under the workspace's `proto/` with protox (pure Rust, so no `protoc` is
//! needed on the machine), keeps the descriptor set for run-time reflection (configtxlator-style
//! JSON), and generates prost types plus tonic clients and servers.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let root = root.canonicalize()?;
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &mut files)?;
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    let fds = protox::compile(&files, [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("fabric_descriptor_set.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    tonic_prost_build::configure()
        // Sorted maps make our encodings deterministic (config groups, values, policies), so two
        // nodes marshalling the same config produce the same bytes.
        .btree_map(".")
        // `Bytes` lets envelopes travel from Broadcast into blocks, Raft entries and the ledger
        // by reference-counted slices instead of copies.
        .bytes(".")
        // Written by hand: prost would leave empty map values out, which Fabric cannot read
        // (src/config_group.rs).
        .extern_path(".common.ConfigGroup", "crate::config_group::ConfigGroup")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
