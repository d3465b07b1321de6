//! The block store: Fabric's chain goes in and comes out byte for byte across reopenings;
//! out-of-order or forked blocks are refused; a crash in the middle of an append (torn record,
//! corrupt last record, lost or stale index) is repaired on open without losing a whole block.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use ordo_ledger::block::BlockError;
use ordo_ledger::{BlockStore, StoreError};
use ordo_proto::Message;
use ordo_proto::common::Block;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("ordo-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn chain() -> Vec<(Vec<u8>, Block)> {
    ordo_testkit::ledger_blocks("from-orderer1")
        .into_iter()
        .map(|(_, b)| {
            let block = Block::decode(b.as_slice()).unwrap();
            (b, block)
        })
        .collect()
}

fn filled(dir: &TempDir, n: usize) -> BlockStore {
    let mut s = BlockStore::open(&dir.0).unwrap();
    for (_, b) in chain().iter().take(n) {
        s.append(b).unwrap();
    }
    s
}

#[test]
fn fabric_chain_round_trips_across_reopen() {
    let dir = TempDir::new("roundtrip");
    let c = chain();
    {
        // Served from the hot blocks kept in memory, the same bytes as from the file below.
        let s = filled(&dir, c.len());
        assert_eq!(s.height(), 14);
        for (i, (bytes, _)) in c.iter().enumerate() {
            assert_eq!(
                &s.block_bytes(i as u64).unwrap()[..],
                &bytes[..],
                "block {i}"
            );
        }
        assert!(matches!(
            s.block_bytes(14),
            Err(StoreError::NotFound(14, 14))
        ));
    }
    let s = BlockStore::open(&dir.0).unwrap();
    assert_eq!(s.height(), 14);
    for (i, (bytes, _)) in c.iter().enumerate() {
        assert_eq!(
            &s.block_bytes(i as u64).unwrap()[..],
            &bytes[..],
            "block {i}"
        );
    }
    assert_eq!(s.last_header(), c[13].1.header.as_ref());
    assert!(matches!(s.block(14), Err(StoreError::NotFound(14, 14))));
}

#[test]
fn out_of_order_and_forked_blocks_are_refused() {
    let dir = TempDir::new("order");
    let c = chain();
    let mut s = BlockStore::open(&dir.0).unwrap();
    assert!(matches!(
        s.append(&c[1].1),
        Err(StoreError::Refused(BlockError::Sequence {
            expected: 0,
            got: 1
        }))
    ));
    s.append(&c[0].1).unwrap();
    s.append(&c[1].1).unwrap();
    assert!(matches!(
        s.append(&c[1].1),
        Err(StoreError::Refused(BlockError::Sequence { .. }))
    ));
    assert!(matches!(
        s.append(&c[3].1),
        Err(StoreError::Refused(BlockError::Sequence { .. }))
    ));
    let mut fork = c[2].1.clone();
    fork.header.as_mut().unwrap().previous_hash = vec![7u8; 32].into();
    assert!(matches!(
        s.append(&fork),
        Err(StoreError::Refused(BlockError::PrevHash { .. }))
    ));
    assert!(matches!(
        s.append(&Block::default()),
        Err(StoreError::Refused(BlockError::NoHeader))
    ));
    assert_eq!(s.height(), 2);
    s.append(&c[2].1).unwrap();
}

fn append_raw(path: PathBuf, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[test]
fn a_torn_append_is_cut_off_and_the_store_goes_on() {
    let dir = TempDir::new("torn");
    let c = chain();
    drop(filled(&dir, 5));
    let data = dir.0.join("blocks.dat");
    let before = std::fs::metadata(&data).unwrap().len();
    // Half of the next record made it to disk.
    let payload = c[5].0.clone();
    let mut record = (payload.len() as u32).to_le_bytes().to_vec();
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload[..payload.len() / 2]);
    append_raw(data.clone(), &record);
    let mut s = BlockStore::open(&dir.0).unwrap();
    assert_eq!(s.height(), 5);
    assert_eq!(std::fs::metadata(&data).unwrap().len(), before);
    s.append(&c[5].1).unwrap();
    drop(s);
    assert_eq!(BlockStore::open(&dir.0).unwrap().height(), 6);
}

#[test]
fn a_corrupt_last_record_is_dropped_not_served() {
    let dir = TempDir::new("crc");
    drop(filled(&dir, 4));
    let data = dir.0.join("blocks.dat");
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let s = BlockStore::open(&dir.0).unwrap();
    assert_eq!(s.height(), 3);
    s.block(2).unwrap();
}

#[test]
fn the_index_is_rebuilt_from_the_data_file() {
    let dir = TempDir::new("index");
    let c = chain();
    drop(filled(&dir, 6));
    let index = dir.0.join("index.dat");
    // Lost entirely.
    std::fs::remove_file(&index).unwrap();
    let s = BlockStore::open(&dir.0).unwrap();
    assert_eq!(s.height(), 6);
    assert_eq!(&s.block_bytes(5).unwrap()[..], &c[5].0[..]);
    drop(s);
    // Shortened, torn mid-entry, and with an entry pointing past the data.
    let full = std::fs::read(&index).unwrap();
    std::fs::write(&index, &full[..8 * 2 + 3]).unwrap();
    assert_eq!(BlockStore::open(&dir.0).unwrap().height(), 6);
    append_raw(index.clone(), &u64::MAX.to_le_bytes());
    let s = BlockStore::open(&dir.0).unwrap();
    assert_eq!(s.height(), 6);
    assert_eq!(std::fs::read(&index).unwrap(), full);
}

#[test]
fn appends_notify_subscribers() {
    let dir = TempDir::new("watch");
    let c = chain();
    let mut s = BlockStore::open(&dir.0).unwrap();
    let mut rx = s.subscribe();
    assert_eq!(*rx.borrow_and_update(), 0);
    s.append(&c[0].1).unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), 1);
    assert!(!rx.has_changed().unwrap());
}
