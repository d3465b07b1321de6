//! The per-channel block store: an append-only file of checksummed block records and a
//! fixed-width index of their offsets (Fabric indexes nothing but block numbers either).
//!
//! ```text
//! blocks.dat   [len u32 LE][crc32 u32 LE][block protobuf] [len][crc][block] ...
//! index.dat    [offset of block 0 u64 LE][offset of block 1] ...
//! blocks.sync  [length of blocks.dat known to be on stable storage u64 LE][crc32 of it u32 LE]
//! ```
//!
//! The data file is the truth; the index is only a cache of offsets and is rebuilt from the data
//! file when it is short, long or torn. [`BlockStore::append`] fsyncs before it returns.
//! [`BlockStore::append_unsynced`] does not: it is for blocks whose durability lies elsewhere — a
//! block made from a committed Raft entry can be made again from the entry, which the Raft WAL
//! keeps (fsynced) until the next snapshot, so fsyncing both would write every block to stable
//! storage twice. The caller [`BlockStore::sync`]s before the other copy goes. A process crash
//! loses nothing either way (the page cache survives it); a machine crash may lose unsynced
//! records, or leave holes in them, which is why the sync mark exists: opening trusts the records
//! below it and checks every record above it.
//!
//! Opening checks just the tail (the last indexed record below the sync mark, then every complete
//! record after it), so a channel with many blocks opens in the time it takes to read its index.
//! A record that is incomplete or fails its checksum is the trace of a crash in the middle of an
//! append: it is cut off with everything after it. Appends check that blocks come in order and
//! chain by hash, so the store can never hold a fork.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ordo_proto::common::{Block, BlockHeader};
use prost::Message;
use tokio::sync::watch;

use crate::block::{BlockError, header_hash};

const DATA_FILE: &str = "blocks.dat";
const INDEX_FILE: &str = "index.dat";
const SYNC_FILE: &str = "blocks.sync";
/// Unsynced bytes after which an unsynced append syncs anyway, so that what `open` must check
/// after a machine crash stays small whatever the Raft snapshot interval.
const MAX_UNSYNCED: u64 = 64 << 20;
const RECORD_HEADER: u64 = 8;
/// Refuses records larger than this when reading, so a corrupt length cannot make us allocate
/// gigabytes (Fabric's largest allowed block is far below).
const MAX_RECORD: u32 = 1 << 30;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("ledger I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ledger is corrupt: {0}")]
    Corrupt(String),
    #[error("block refused: {0}")]
    Refused(#[from] BlockError),
    #[error("block [{0}] is not in the ledger (height {1})")]
    NotFound(u64, u64),
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One channel's blocks on disk.
pub struct BlockStore {
    data_path: PathBuf,
    index_path: PathBuf,
    sync_path: PathBuf,
    sync_mark: File,
    data: File,
    index: File,
    /// Offset of every block's record, by block number.
    offsets: Vec<u64>,
    data_len: u64,
    /// How much of the data file is known to be on stable storage.
    synced_len: u64,
    last_header: Option<BlockHeader>,
    height: watch::Sender<u64>,
    hot: HotBlocks,
}

/// The newest blocks' bytes, as appended: Deliver streams at the tip of the chain (every peer
/// and follower waiting for the next block) are served from memory instead of reading the file
/// back and copying it once per stream. Bounded by count and by bytes, so big blocks do not
/// swell the node's memory.
#[derive(Debug, Default)]
struct HotBlocks {
    /// Consecutive blocks ending with the last one appended.
    blocks: std::collections::VecDeque<Bytes>,
    bytes: usize,
}

impl HotBlocks {
    const MAX_BLOCKS: usize = 32;
    const MAX_BYTES: usize = 2 << 20;

    fn push(&mut self, block: Bytes) {
        self.bytes += block.len();
        self.blocks.push_back(block);
        // The newest block always stays, however large.
        while self.blocks.len() > 1
            && (self.blocks.len() > Self::MAX_BLOCKS || self.bytes > Self::MAX_BYTES)
        {
            if let Some(old) = self.blocks.pop_front() {
                self.bytes -= old.len();
            }
        }
    }

    /// Block `n` if it is hot; `height` is the store's.
    fn get(&self, n: u64, height: u64) -> Option<Bytes> {
        let back = height.checked_sub(n)?.checked_sub(1)?;
        let i = (self.blocks.len() as u64).checked_sub(back + 1)?;
        self.blocks.get(i as usize).cloned()
    }
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStore")
            .field("path", &self.data_path)
            .field("height", &self.offsets.len())
            .finish()
    }
}

/// Reads the record at `offset`: `Ok(Some((payload, end)))` for a complete record with a good
/// checksum, `Ok(None)` for a torn or corrupt one.
fn read_record(
    file: &File,
    path: &Path,
    offset: u64,
    data_len: u64,
) -> Result<Option<(Vec<u8>, u64)>, StoreError> {
    // Offsets come from disk: a garbage one must not overflow.
    if offset
        .checked_add(RECORD_HEADER)
        .is_none_or(|e| e > data_len)
    {
        return Ok(None);
    }
    let mut head = [0u8; RECORD_HEADER as usize];
    file.read_exact_at(&mut head, offset)
        .map_err(io_err(path))?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let end = offset + RECORD_HEADER + u64::from(len);
    // A zero length is what a hole of zeros left by a machine crash looks like (and its checksum,
    // crc32 of nothing, is zero too); a block record is never empty.
    if len == 0 || len > MAX_RECORD || end > data_len {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact_at(&mut payload, offset + RECORD_HEADER)
        .map_err(io_err(path))?;
    if crc32fast::hash(&payload) != crc {
        return Ok(None);
    }
    Ok(Some((payload, end)))
}

fn decode_header(payload: &[u8], offset: u64) -> Result<BlockHeader, StoreError> {
    Block::decode(payload)
        .map_err(|e| StoreError::Corrupt(format!("record at offset {offset} is not a block: {e}")))?
        .header
        .ok_or_else(|| StoreError::Corrupt(format!("record at offset {offset} has no header")))
}

/// The sync mark: `None` when the file is empty (new, or a store written before unsynced
/// appends existed, whose every record was fsynced), `Some(0)` when it is unreadable (nothing
/// trusted).
fn read_sync_mark(file: &File, path: &Path) -> Result<Option<u64>, StoreError> {
    let mut raw = Vec::new();
    (&*file).read_to_end(&mut raw).map_err(io_err(path))?;
    if raw.is_empty() {
        return Ok(None);
    }
    let mark = (raw.len() == 12)
        .then(|| {
            let mut len = [0u8; 8];
            len.copy_from_slice(&raw[..8]);
            let crc = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]);
            (crc32fast::hash(&len) == crc).then(|| u64::from_le_bytes(len))
        })
        .flatten();
    if mark.is_none() {
        tracing::warn!(path = %path.display(), "the ledger's sync mark is unreadable: checking every record");
    }
    Ok(Some(mark.unwrap_or(0)))
}

/// Records that `len` bytes of the data file are on stable storage. The mark itself is not
/// fsynced: a stale mark only makes `open` check more records. (It is overwritten in place, one
/// 12-byte write inside one sector.)
fn write_sync_mark(file: &File, path: &Path, len: u64) -> Result<(), StoreError> {
    let mut raw = [0u8; 12];
    raw[..8].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&raw[..8]);
    raw[8..].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&raw, 0).map_err(io_err(path))
}

impl BlockStore {
    /// Opens (or creates) the store in `dir`, repairing the effects of a crash mid-append.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let data_path = dir.join(DATA_FILE);
        let index_path = dir.join(INDEX_FILE);
        let sync_path = dir.join(SYNC_FILE);
        let open = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(p)
                .map_err(io_err(p))
        };
        let data = open(&data_path)?;
        let index = open(&index_path)?;
        let sync_mark = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&sync_path)
            .map_err(io_err(&sync_path))?;
        let data_len = data.metadata().map_err(io_err(&data_path))?.len();
        let raw_index = std::fs::read(&index_path).map_err(io_err(&index_path))?;
        // Records wholly below the mark were fsynced; the others are checked one by one below.
        let mark = read_sync_mark(&sync_mark, &sync_path)?;
        let trusted = match mark {
            None => data_len,
            Some(mark) if mark > data_len => {
                tracing::warn!(path = %data_path.display(), mark, data_len, "the ledger is shorter than its sync mark: checking every record");
                0
            }
            Some(mark) => mark,
        };

        // Keep the index entries that point, in increasing order, inside the data file.
        let mut offsets: Vec<u64> = Vec::with_capacity(raw_index.len() / 8);
        for chunk in raw_index.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            let off = u64::from_le_bytes(b);
            let in_order =
                offsets.last().is_none_or(|&last| off > last) && (!offsets.is_empty() || off == 0);
            if !in_order || off.checked_add(RECORD_HEADER).is_none_or(|e| e > trusted) {
                break;
            }
            offsets.push(off);
        }
        // The last trusted indexed record must be whole; earlier ones were synced before it was
        // written.
        let mut end = 0;
        let mut last_header = None;
        while let Some(&off) = offsets.last() {
            match read_record(&data, &data_path, off, data_len)? {
                Some((payload, e)) => {
                    end = e;
                    last_header = Some(decode_header(&payload, off)?);
                    break;
                }
                None => {
                    offsets.pop();
                }
            }
        }
        // Complete records after the last indexed one were appended but not indexed.
        while let Some((payload, e)) = read_record(&data, &data_path, end, data_len)? {
            let header = decode_header(&payload, end)?;
            if header.number != offsets.len() as u64 {
                return Err(StoreError::Corrupt(format!(
                    "record at offset {end} holds block {} where block {} was expected",
                    header.number,
                    offsets.len()
                )));
            }
            offsets.push(end);
            last_header = Some(header);
            end = e;
        }
        // Whatever follows is a torn append: cut it off, and rewrite the index if it disagrees.
        if end < data_len {
            tracing::warn!(path = %data_path.display(), from = end, to = data_len, "cutting off a torn record at the end of the ledger");
            data.set_len(end).map_err(io_err(&data_path))?;
        }
        // What was found is made durable now, so the next open trusts it.
        if end != trusted {
            data.sync_all().map_err(io_err(&data_path))?;
        }
        if mark != Some(end) {
            write_sync_mark(&sync_mark, &sync_path, end)?;
        }
        let index_bytes: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        if index_bytes != raw_index {
            index.set_len(0).map_err(io_err(&index_path))?;
            (&index)
                .write_all(&index_bytes)
                .map_err(io_err(&index_path))?;
            index.sync_all().map_err(io_err(&index_path))?;
        }
        let (height, _) = watch::channel(offsets.len() as u64);
        Ok(BlockStore {
            data_path,
            index_path,
            sync_path,
            sync_mark,
            data,
            index,
            offsets,
            data_len: end,
            synced_len: end,
            last_header,
            height,
            hot: HotBlocks::default(),
        })
    }

    /// How many blocks the store holds (the next block's number).
    pub fn height(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// The header of the last block, if any.
    pub fn last_header(&self) -> Option<&BlockHeader> {
        self.last_header.as_ref()
    }

    /// A receiver of the height, updated after every append (what Deliver waits on).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.height.subscribe()
    }

    /// Appends the next block: its number must be the height and its previous hash the hash of
    /// the last block's header. Returns once the block is on stable storage.
    pub fn append(&mut self, block: &Block) -> Result<(), StoreError> {
        self.write_block(block, true)
    }

    /// Appends the next block like [`BlockStore::append`] but without waiting for stable storage:
    /// for blocks that can be made again after a machine crash (from the Raft WAL). Readers see
    /// the block at once. The caller must [`BlockStore::sync`] before it drops the other copy.
    pub fn append_unsynced(&mut self, block: &Block) -> Result<(), StoreError> {
        self.write_block(block, false)
    }

    /// Checks and writes the next block; with `sync` (or past [`MAX_UNSYNCED`]) it is on stable
    /// storage before readers see it.
    fn write_block(&mut self, block: &Block, sync: bool) -> Result<(), StoreError> {
        let header = block.header.as_ref().ok_or(BlockError::NoHeader)?;
        match &self.last_header {
            None if header.number != 0 => {
                return Err(BlockError::Sequence {
                    expected: 0,
                    got: header.number,
                }
                .into());
            }
            None => {}
            Some(prev) => crate::block::verify_link(prev, block)?,
        }
        // The record is built in one buffer (header space, then the block encoded after it) so
        // the block's bytes are copied once, and that buffer is what the hot cache keeps.
        let encoded = block.encoded_len();
        let len = u32::try_from(encoded)
            .ok()
            .filter(|l| *l <= MAX_RECORD)
            .ok_or_else(|| StoreError::Corrupt(format!("block of {encoded} bytes is too large")))?;
        let mut record = Vec::with_capacity(encoded + RECORD_HEADER as usize);
        record.extend_from_slice(&[0; RECORD_HEADER as usize]);
        block
            .encode(&mut record)
            .map_err(|e| StoreError::Corrupt(format!("block does not encode: {e}")))?;
        let crc = crc32fast::hash(&record[RECORD_HEADER as usize..]);
        record[..4].copy_from_slice(&len.to_le_bytes());
        record[4..8].copy_from_slice(&crc.to_le_bytes());
        (&self.data)
            .write_all(&record)
            .map_err(io_err(&self.data_path))?;
        let sync = sync || self.data_len + record.len() as u64 - self.synced_len > MAX_UNSYNCED;
        if sync {
            self.data.sync_data().map_err(io_err(&self.data_path))?;
        }
        // The index is a cache: it is not synced, open() repairs it from the data file.
        (&self.index)
            .write_all(&self.data_len.to_le_bytes())
            .map_err(io_err(&self.index_path))?;
        self.offsets.push(self.data_len);
        self.data_len += record.len() as u64;
        self.last_header = Some(header.clone());
        self.hot
            .push(Bytes::from(record).slice(RECORD_HEADER as usize..));
        if sync {
            self.synced_len = self.data_len;
            write_sync_mark(&self.sync_mark, &self.sync_path, self.synced_len)?;
        }
        self.height.send_replace(self.offsets.len() as u64);
        Ok(())
    }

    /// Puts every appended block on stable storage (nothing to do if they are).
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if self.synced_len == self.data_len {
            return Ok(());
        }
        self.data.sync_data().map_err(io_err(&self.data_path))?;
        self.synced_len = self.data_len;
        write_sync_mark(&self.sync_mark, &self.sync_path, self.synced_len)
    }

    /// Bytes appended and not yet synced.
    pub fn unsynced_bytes(&self) -> u64 {
        self.data_len - self.synced_len
    }

    /// The stored bytes of block `n` (the marshalled `common.Block`).
    pub fn block_bytes(&self, n: u64) -> Result<Bytes, StoreError> {
        if let Some(b) = self.hot.get(n, self.height()) {
            return Ok(b);
        }
        let off = *self
            .offsets
            .get(n as usize)
            .ok_or(StoreError::NotFound(n, self.height()))?;
        match read_record(&self.data, &self.data_path, off, self.data_len)? {
            Some((payload, _)) => Ok(payload.into()),
            None => Err(StoreError::Corrupt(format!(
                "record of block {n} at offset {off} is unreadable"
            ))),
        }
    }

    /// Block `n`, decoded.
    pub fn block(&self, n: u64) -> Result<Block, StoreError> {
        Block::decode(self.block_bytes(n)?)
            .map_err(|e| StoreError::Corrupt(format!("block {n} does not decode: {e}")))
    }

    /// The hash of the last block's header (what the next block must name).
    pub fn last_hash(&self) -> Option<[u8; 32]> {
        self.last_header.as_ref().map(header_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u8, len: usize) -> Bytes {
        Bytes::from(vec![n; len])
    }

    #[test]
    fn hot_blocks_keep_the_newest_within_their_bounds() {
        let mut hot = HotBlocks::default();
        assert_eq!(hot.get(0, 0), None);
        for n in 0..40u8 {
            hot.push(block(n, 10));
        }
        // 40 blocks appended, the last 32 kept: blocks 8..=39.
        assert_eq!(hot.get(39, 40), Some(block(39, 10)));
        assert_eq!(hot.get(8, 40), Some(block(8, 10)));
        assert_eq!(hot.get(7, 40), None);
        assert_eq!(hot.get(40, 40), None);
        // A block bigger than the byte bound pushes every other one out but stays itself.
        hot.push(block(40, HotBlocks::MAX_BYTES + 1));
        assert_eq!(hot.blocks.len(), 1);
        assert_eq!(
            hot.get(40, 41).map(|b| b.len()),
            Some(HotBlocks::MAX_BYTES + 1)
        );
        assert_eq!(hot.get(39, 41), None);
        hot.push(block(41, 10));
        assert_eq!(hot.blocks.len(), 1);
        assert_eq!(hot.bytes, 10);
    }
}
