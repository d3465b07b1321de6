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

/// The offset of every record, from the index the store keeps.
fn offsets(dir: &TempDir) -> Vec<u64> {
    std::fs::read(dir.0.join("index.dat"))
        .unwrap()
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// What a machine crash can leave of unsynced writes: a record in the middle replaced by zeros
/// while the ones after it reached the disk.
fn zero_record(dir: &TempDir, n: usize) {
    let data = dir.0.join("blocks.dat");
    let mut bytes = std::fs::read(&data).unwrap();
    let o = offsets(dir);
    let (start, end) = (o[n] as usize, o[n + 1] as usize);
    bytes[start..end].fill(0);
    std::fs::write(&data, &bytes).unwrap();
}

#[test]
fn a_hole_in_unsynced_records_is_cut_off_with_everything_after_it() {
    let dir = TempDir::new("unsynced-hole");
    let c = chain();
    {
        let mut s = filled(&dir, 5);
        for (_, b) in &c[5..10] {
            s.append_unsynced(b).unwrap();
        }
        assert_eq!(s.height(), 10);
        assert!(s.unsynced_bytes() > 0);
        // Readers see unsynced blocks at once.
        assert_eq!(&s.block_bytes(9).unwrap()[..], &c[9].0[..]);
    }
    // Block 7 never reached the disk; 8 and 9 did. Everything from 7 on goes: the blocks are made
    // again from the Raft WAL, and a store that kept 8 and 9 would have a gap.
    zero_record(&dir, 7);
    let mut s = BlockStore::open(&dir.0).unwrap();
    assert_eq!(s.height(), 7);
    assert_eq!(s.unsynced_bytes(), 0);
    assert_eq!(&s.block_bytes(6).unwrap()[..], &c[6].0[..]);
    for (_, b) in &c[7..] {
        s.append_unsynced(b).unwrap();
    }
    drop(s);
    let s = BlockStore::open(&dir.0).unwrap();
    assert_eq!(s.height(), c.len() as u64);
    for (i, (bytes, _)) in c.iter().enumerate() {
        assert_eq!(
            &s.block_bytes(i as u64).unwrap()[..],
            &bytes[..],
            "block {i}"
        );
    }
}

#[test]
fn zeros_after_the_last_record_are_a_torn_append_not_corruption() {
    let dir = TempDir::new("unsynced-zeros");
    let c = chain();
    {
        let mut s = filled(&dir, 3);
        s.append_unsynced(&c[3].1).unwrap();
    }
    // The file grew but its data did not reach the disk: a zero length with the checksum of
    // nothing (also zero) must not pass for a record.
    append_raw(dir.0.join("blocks.dat"), &[0; 4096]);
    let s = BlockStore::open(&dir.0).unwrap();
    assert_eq!(s.height(), 4);
    assert_eq!(&s.block_bytes(3).unwrap()[..], &c[3].0[..]);
}

#[test]
fn synced_records_are_trusted_and_a_lost_or_garbled_sync_mark_is_safe() {
    let dir = TempDir::new("sync-mark");
    let c = chain();
    {
        let mut s = filled(&dir, 4);
        for (_, b) in &c[4..8] {
            s.append_unsynced(b).unwrap();
        }
        s.sync().unwrap();
        assert_eq!(s.unsynced_bytes(), 0);
    }
    assert_eq!(BlockStore::open(&dir.0).unwrap().height(), 8);
    // A garbled mark trusts nothing: every record is checked, and a hole is still found.
    std::fs::write(dir.0.join("blocks.sync"), b"not a mark at all").unwrap();
    zero_record(&dir, 5);
    assert_eq!(BlockStore::open(&dir.0).unwrap().height(), 5);
    // A store from before sync marks (every append fsynced) is trusted as it was.
    std::fs::remove_file(dir.0.join("blocks.sync")).unwrap();
    assert_eq!(BlockStore::open(&dir.0).unwrap().height(), 5);
    assert!(dir.0.join("blocks.sync").exists());
}
