//! # ordo-testkit
//!
//! Test support shared by the crates' conformance tests: the location of the Fabric-made fixtures
//! (`../shared/fixtures/fabric-2.4` beside the repository, or `$ORDO_FIXTURES`) and helpers to read
//! them. Used only as a dev-dependency; nothing here runs in production code.

use std::path::{Path, PathBuf};

/// The `fabric-2.4` fixtures directory. Panics with a clear message when it is missing, since every
/// conformance test depends on it.
pub fn fixtures() -> PathBuf {
    if let Some(dir) = std::env::var_os("ORDO_FIXTURES") {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = repo.join("../shared/fixtures/fabric-2.4");
    assert!(
        dir.is_dir(),
        "Fabric fixtures not found at {} (set ORDO_FIXTURES)",
        dir.display()
    );
    dir
}

/// A path inside the fixtures.
pub fn fixture(rel: &str) -> PathBuf {
    fixtures().join(rel)
}

/// The bytes of a fixture file.
pub fn read(rel: &str) -> Vec<u8> {
    let p = fixture(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// The text of a fixture file.
pub fn read_string(rel: &str) -> String {
    String::from_utf8(read(rel)).unwrap_or_else(|e| panic!("{rel} is not UTF-8: {e}"))
}

/// Files in a fixture directory whose names end with `suffix`, sorted by name.
pub fn files_with_suffix(rel_dir: &str, suffix: &str) -> Vec<PathBuf> {
    let dir = fixture(rel_dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

/// The ledger fixture blocks of one orderer (`from-orderer1`/`from-orderer2`), in block order.
pub fn ledger_blocks(orderer_dir: &str) -> Vec<(u64, Vec<u8>)> {
    let mut out: Vec<(u64, Vec<u8>)> = files_with_suffix(&format!("ledger/{orderer_dir}"), ".pb")
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            let n: u64 = name
                .trim_start_matches("block_")
                .parse()
                .unwrap_or_else(|_| panic!("unexpected ledger fixture name {name}"));
            (n, std::fs::read(&p).expect("read block"))
        })
        .collect();
    out.sort_by_key(|(n, _)| *n);
    out
}
