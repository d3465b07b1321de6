//! The simulated channel config: what a real config gives the engine (its sequence, the
//! consenters and the Raft settings), carried by config envelopes in a compact format of its own
//! instead of Fabric's protobuf `Config` with its MSPs and policies, which nothing here needs.

use bytes::Bytes;
use ordo_channel::ConfigView;
use ordo_channel::config::{ConfigReadError, ConsenterEntry, RaftSettings};
use ordo_proto::common::{Block, ChannelHeader, Envelope, Header, HeaderType, Payload};
use ordo_raft::blockcutter::BatchLimits;
use ordo_raft::chain::Options;
use prost::Message as _;

pub const CHANNEL: &str = "simchannel";
/// The Raft tick (Fabric's default TickInterval is 500 ms; the fixtures use 250 ms).
pub const TICK_NS: u64 = 100_000_000;
pub const ELECTION_TICK: usize = 10;

/// A node's made-up TLS certificate: the node's slot, then a generation that changes with each
/// rotation. Its first eight bytes are the node's "key", by which it finds itself.
pub fn cert(slot: usize, generation: u64) -> Bytes {
    let mut c = (slot as u64).to_be_bytes().to_vec();
    c.extend_from_slice(&generation.to_be_bytes());
    c.into()
}

/// The slot of a made-up certificate.
pub fn slot_of(cert: &[u8]) -> Option<usize> {
    Some(u64::from_be_bytes(cert.get(..8)?.try_into().ok()?) as usize)
}

/// The key by which node `slot` finds itself among the consenters.
pub fn self_key(slot: usize) -> Vec<u8> {
    (slot as u64).to_be_bytes().to_vec()
}

/// A simulated channel config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    pub sequence: u64,
    pub limits: BatchLimits,
    pub max_inflight_blocks: u64,
    pub snapshot_interval_size: u64,
    /// The consenters' certificates (client and server alike), in config order.
    pub certs: Vec<Bytes>,
}

const FIXED: usize = 8 + 4 + 4 + 8 + 8 + 8;

impl SimConfig {
    /// The bytes a config envelope carries.
    fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(FIXED + 16 * self.certs.len());
        b.extend_from_slice(&self.sequence.to_be_bytes());
        b.extend_from_slice(&self.limits.max_message_count.to_be_bytes());
        b.extend_from_slice(&self.limits.preferred_max_bytes.to_be_bytes());
        b.extend_from_slice(&self.limits.timeout_ns.to_be_bytes());
        b.extend_from_slice(&self.max_inflight_blocks.to_be_bytes());
        b.extend_from_slice(&self.snapshot_interval_size.to_be_bytes());
        for c in &self.certs {
            b.extend_from_slice(c);
        }
        b.into()
    }

    fn decode(data: &[u8]) -> Option<SimConfig> {
        let u64_at = |i: usize| Some(u64::from_be_bytes(data.get(i..i + 8)?.try_into().ok()?));
        let u32_at = |i: usize| Some(u32::from_be_bytes(data.get(i..i + 4)?.try_into().ok()?));
        let rest = data.get(FIXED..)?;
        if rest.len() % 16 != 0 {
            return None;
        }
        Some(SimConfig {
            sequence: u64_at(0)?,
            limits: BatchLimits {
                max_message_count: u32_at(8)?,
                preferred_max_bytes: u32_at(12)?,
                timeout_ns: u64_at(16)?,
            },
            max_inflight_blocks: u64_at(24)?,
            snapshot_interval_size: u64_at(32)?,
            certs: rest.chunks(16).map(Bytes::copy_from_slice).collect(),
        })
    }

    /// The config an update made from this one with consenters `certs` gives.
    pub fn next(&self, certs: Vec<Bytes>) -> SimConfig {
        SimConfig {
            sequence: self.sequence + 1,
            certs,
            ..self.clone()
        }
    }

    /// A CONFIG envelope (transaction number `n`) carrying this config.
    pub fn envelope(&self, n: u64) -> Bytes {
        envelope_with(n, HeaderType::Config, self.encode())
    }

    /// The config a CONFIG envelope carries.
    pub fn of_envelope(env: &[u8]) -> Option<SimConfig> {
        let env = Envelope::decode(env).ok()?;
        SimConfig::decode(&Payload::decode(env.payload).ok()?.data)
    }
}

/// An envelope of type `ty` (transaction number `n`) carrying `data`.
pub fn envelope_with(n: u64, ty: HeaderType, data: Bytes) -> Bytes {
    let ch = ChannelHeader {
        r#type: ty as i32,
        channel_id: CHANNEL.into(),
        tx_id: format!("tx{n:08}"),
        ..Default::default()
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: ch.encode_to_vec().into(),
            signature_header: Bytes::new(),
        }),
        data,
    };
    Envelope {
        payload: payload.encode_to_vec().into(),
        signature: vec![b's'; 16].into(),
    }
    .encode_to_vec()
    .into()
}

impl ConfigView for SimConfig {
    fn from_block(block: &Block) -> Result<Self, ConfigReadError> {
        let env = block
            .data
            .as_ref()
            .and_then(|d| d.data.first())
            .ok_or(ConfigReadError::NoEnvelope)?;
        SimConfig::of_envelope(env)
            .ok_or_else(|| ConfigReadError::Envelope("not a simulated config".into()))
    }

    fn sequence(&self) -> u64 {
        self.sequence
    }

    fn consenters(&self) -> Vec<ConsenterEntry> {
        self.certs
            .iter()
            .map(|c| ConsenterEntry {
                host: "sim".into(),
                port: slot_of(c).unwrap_or_default() as u32,
                client_tls_cert: c.clone(),
                server_tls_cert: c.clone(),
            })
            .collect()
    }

    fn consenter_certs(&self) -> Vec<Bytes> {
        self.certs.clone()
    }

    fn position_of(&self, self_key: &[u8]) -> Option<usize> {
        self.certs.iter().position(|c| c.get(..8) == Some(self_key))
    }

    fn raft_settings(&self) -> Result<RaftSettings, ConfigReadError> {
        Ok(RaftSettings {
            options: Options {
                election_tick: ELECTION_TICK,
                heartbeat_tick: 1,
                max_inflight_blocks: self.max_inflight_blocks,
                snapshot_interval_size: self.snapshot_interval_size,
                max_size_per_msg: u64::from(self.limits.preferred_max_bytes),
                election_timeout: None,
                adaptive_cutting: true,
                learner_first: true,
            },
            limits: self.limits,
            tick_ns: TICK_NS,
        })
    }

    fn restart_only_changes(&self, _next: &Self) -> Vec<String> {
        Vec::new()
    }
}
