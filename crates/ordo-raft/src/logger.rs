//! raft-rs logs through `slog`; this bridge sends its records to `tracing` under the target
//! `ordo_raft::raft` (log spec name `ordo.raft.raft`), with the channel and node ID attached, so
//! that Raft's own messages ("became leader at term 2") land in the node's structured log.

use std::fmt::Write as _;

use slog::{Drain, KV, Key, Level, OwnedKVList, Record, Serializer};

struct TracingDrain {
    channel: String,
    id: u64,
}

/// Collects slog key-values as ` key=value` text.
struct Collect(String);

impl Serializer for Collect {
    fn emit_arguments(&mut self, key: Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut kv = Collect(String::new());
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let (channel, id, msg, kv) = (&self.channel, self.id, record.msg(), kv.0);
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "ordo_raft::raft", %channel, node = id, "{msg}{kv}")
            }
            Level::Warning => {
                tracing::warn!(target: "ordo_raft::raft", %channel, node = id, "{msg}{kv}")
            }
            Level::Info => {
                tracing::info!(target: "ordo_raft::raft", %channel, node = id, "{msg}{kv}")
            }
            Level::Debug => {
                tracing::debug!(target: "ordo_raft::raft", %channel, node = id, "{msg}{kv}")
            }
            Level::Trace => {
                tracing::trace!(target: "ordo_raft::raft", %channel, node = id, "{msg}{kv}")
            }
        }
        Ok(())
    }
}

/// A raft-rs logger for one channel's node.
pub fn raft_logger(channel: &str, id: u64) -> slog::Logger {
    let drain = TracingDrain {
        channel: channel.to_string(),
        id,
    };
    slog::Logger::root(drain.fuse(), slog::o!())
}
