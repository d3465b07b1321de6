//! The parts of Deliver that are decisions, not I/O (Fabric's `common/deliver/deliver.go`,
//! `binding.go`, `fileledger.Iterator`): checking a seek request's envelope (timestamp within the
//! time window, TLS binding under mutual TLS), decoding its `SeekInfo`, and planning which blocks
//! it asks for and when the stream must wait, stop or fail. A Deliver response to a bad request
//! carries only a status, so each refusal here is a status plus a reason for the log.

use ordo_proto::common::{ChannelHeader, Envelope, Payload, SignatureHeader, Status};
use ordo_proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
use ordo_proto::orderer::seek_position::Type as Position;
use ordo_proto::orderer::{SeekInfo, SeekPosition};
use prost::Message;

/// A refused request: the status Deliver answers, and why (for the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status:?}: {reason}")]
pub struct DeliverRefusal {
    pub status: Status,
    pub reason: String,
}

fn bad_request(reason: impl Into<String>) -> DeliverRefusal {
    DeliverRefusal {
        status: Status::BadRequest,
        reason: reason.into(),
    }
}

/// A seek envelope's headers, once checked.
#[derive(Debug, Clone)]
pub struct SeekEnvelope {
    pub channel_header: ChannelHeader,
    pub signature_header: SignatureHeader,
    pub data: bytes::Bytes,
}

/// Parses a seek envelope and checks its channel header as Fabric's `validateChannelHeader`: a
/// timestamp within `time_window_ns` of `now_ns` (nanoseconds since the Unix epoch), and, when
/// the server requires client certificates (`client_cert_hash` is the SHA-256 of the client's TLS
/// certificate), a `tls_cert_hash` equal to it.
pub fn parse_seek_envelope(
    env: &Envelope,
    now_ns: i128,
    time_window_ns: i64,
    client_cert_hash: Option<&[u8]>,
) -> Result<SeekEnvelope, DeliverRefusal> {
    let payload = Payload::decode(env.payload.clone())
        .map_err(|e| bad_request(format!("received an envelope with no payload: {e}")))?;
    let header = payload
        .header
        .ok_or_else(|| bad_request("received an envelope with no header"))?;
    let chdr = ChannelHeader::decode(header.channel_header)
        .map_err(|e| bad_request(format!("invalid channel header: {e}")))?;
    let Some(ts) = &chdr.timestamp else {
        return Err(bad_request(
            "channel header in envelope must contain timestamp",
        ));
    };
    let env_ns = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
    if (now_ns - env_ns).abs() > i128::from(time_window_ns) {
        return Err(bad_request(format!(
            "envelope timestamp {}s is more than {}ns apart from current server time",
            ts.seconds, time_window_ns
        )));
    }
    if let Some(actual) = client_cert_hash {
        if chdr.tls_cert_hash.is_empty() {
            return Err(bad_request("client didn't include its TLS cert hash"));
        }
        if chdr.tls_cert_hash.as_ref() != actual {
            return Err(bad_request(
                "claimed TLS cert hash does not match the actual TLS cert hash",
            ));
        }
    }
    let shdr = SignatureHeader::decode(header.signature_header)
        .map_err(|e| bad_request(format!("invalid signature header: {e}")))?;
    Ok(SeekEnvelope {
        channel_header: chdr,
        signature_header: shdr,
        data: payload.data,
    })
}

/// Decodes the `SeekInfo` of a seek envelope (after access control, as Fabric orders it).
pub fn decode_seek_info(data: &[u8]) -> Result<SeekInfo, DeliverRefusal> {
    let seek = SeekInfo::decode(data)
        .map_err(|e| bad_request(format!("malformed seekInfo payload: {e}")))?;
    if seek.start.is_none() || seek.stop.is_none() {
        return Err(bad_request("seekInfo missing start or stop"));
    }
    Ok(seek)
}

/// Whether a consenter error (no leader) should end the stream: unless the client asked for
/// BEST_EFFORT.
pub fn fails_on_consenter_error(seek: &SeekInfo) -> bool {
    seek.error_response != SeekErrorResponse::BestEffort as i32
}

/// What to do next for one SeekInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send block `n`.
    Send(u64),
    /// Wait until the ledger grows.
    Wait,
    /// End with this status (SUCCESS after the stop block, NOT_FOUND, ...).
    Finish(Status),
}

/// The blocks one SeekInfo asks for, fixed when the request arrives (`deliverBlocks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeekPlan {
    next: u64,
    stop: u64,
    fail_if_not_ready: bool,
    /// A start beyond the ledger's end: Fabric's NotFoundErrorIterator.
    not_found: bool,
}

impl SeekPlan {
    /// Plans a request against a ledger of `height` blocks.
    pub fn new(seek: &SeekInfo, height: u64) -> Result<Self, DeliverRefusal> {
        let start = seek.start.as_ref().and_then(|p| p.r#type.as_ref());
        let stop = seek.stop.as_ref().and_then(|p| p.r#type.as_ref());
        let newest = height.saturating_sub(1);
        let (first, not_found) = match start {
            Some(Position::Oldest(_)) => (0, false),
            Some(Position::Newest(_)) => (newest, false),
            Some(Position::Specified(s)) => (s.number, s.number > height),
            Some(Position::NextCommit(_)) => (height, false),
            None => (0, true),
        };
        let last = match stop {
            Some(Position::Oldest(_)) => first,
            // Start and stop both Newest: exactly one block, even if the ledger grows meanwhile.
            Some(Position::Newest(_)) if seek.start == seek.stop => first,
            Some(Position::Newest(_)) => newest,
            Some(Position::Specified(s)) => {
                if s.number < first {
                    return Err(bad_request(format!(
                        "stop block number {} is before start block number {first}",
                        s.number
                    )));
                }
                s.number
            }
            Some(Position::NextCommit(_)) => height,
            None => return Err(bad_request("seekInfo missing stop")),
        };
        Ok(SeekPlan {
            next: first,
            stop: last,
            fail_if_not_ready: seek.behavior == SeekBehavior::FailIfNotReady as i32,
            not_found,
        })
    }

    /// The next step, given the ledger's current height.
    pub fn step(&self, height: u64) -> Step {
        if self.not_found {
            return Step::Finish(Status::NotFound);
        }
        if self.next > self.stop {
            return Step::Finish(Status::Success);
        }
        if self.next < height {
            return Step::Send(self.next);
        }
        if self.fail_if_not_ready {
            Step::Finish(Status::NotFound)
        } else {
            Step::Wait
        }
    }

    /// Records that block `n` was sent.
    pub fn sent(&mut self, n: u64) {
        self.next = n + 1;
    }
}

/// A `SeekPosition` for block `n` (what Ordo's own pullers and tests send).
pub fn specified(n: u64) -> SeekPosition {
    SeekPosition {
        r#type: Some(Position::Specified(ordo_proto::orderer::SeekSpecified {
            number: n,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordo_proto::orderer::{SeekNewest, SeekOldest};

    fn pos(p: Position) -> Option<SeekPosition> {
        Some(SeekPosition { r#type: Some(p) })
    }
    fn oldest() -> Option<SeekPosition> {
        pos(Position::Oldest(SeekOldest {}))
    }
    fn newest() -> Option<SeekPosition> {
        pos(Position::Newest(SeekNewest {}))
    }
    fn at(n: u64) -> Option<SeekPosition> {
        Some(specified(n))
    }
    fn seek(
        start: Option<SeekPosition>,
        stop: Option<SeekPosition>,
        behavior: SeekBehavior,
    ) -> SeekInfo {
        SeekInfo {
            start,
            stop,
            behavior: behavior as i32,
            error_response: 0,
        }
    }

    /// Runs a plan against a ledger that does not grow; returns the blocks sent and the end.
    fn run(plan: &mut SeekPlan, height: u64) -> (Vec<u64>, Step) {
        let mut sent = Vec::new();
        loop {
            match plan.step(height) {
                Step::Send(n) => {
                    sent.push(n);
                    plan.sent(n);
                }
                other => return (sent, other),
            }
        }
    }

    #[test]
    fn oldest_to_newest_sends_the_whole_ledger() {
        let mut p =
            SeekPlan::new(&seek(oldest(), newest(), SeekBehavior::BlockUntilReady), 3).unwrap();
        assert_eq!(
            run(&mut p, 3),
            (vec![0, 1, 2], Step::Finish(Status::Success))
        );
    }

    #[test]
    fn newest_to_newest_is_exactly_one_block_even_if_the_ledger_grows() {
        let mut p =
            SeekPlan::new(&seek(newest(), newest(), SeekBehavior::BlockUntilReady), 5).unwrap();
        assert_eq!(run(&mut p, 9), (vec![4], Step::Finish(Status::Success)));
    }

    #[test]
    fn stop_newest_is_fixed_at_request_time() {
        let mut p =
            SeekPlan::new(&seek(at(1), newest(), SeekBehavior::BlockUntilReady), 3).unwrap();
        assert_eq!(run(&mut p, 10), (vec![1, 2], Step::Finish(Status::Success)));
    }

    #[test]
    fn stop_oldest_means_the_start_block() {
        let mut p =
            SeekPlan::new(&seek(at(2), oldest(), SeekBehavior::BlockUntilReady), 5).unwrap();
        assert_eq!(run(&mut p, 5), (vec![2], Step::Finish(Status::Success)));
    }

    #[test]
    fn block_until_ready_waits_and_fail_if_not_ready_fails() {
        let mut p = SeekPlan::new(&seek(at(2), at(4), SeekBehavior::BlockUntilReady), 3).unwrap();
        assert_eq!(run(&mut p, 3), (vec![2], Step::Wait));
        assert_eq!(run(&mut p, 5), (vec![3, 4], Step::Finish(Status::Success)));
        let mut p = SeekPlan::new(&seek(at(2), at(4), SeekBehavior::FailIfNotReady), 3).unwrap();
        assert_eq!(run(&mut p, 3), (vec![2], Step::Finish(Status::NotFound)));
    }

    #[test]
    fn refusals() {
        let e = SeekPlan::new(&seek(at(5), at(4), SeekBehavior::BlockUntilReady), 10).unwrap_err();
        assert_eq!(e.status, Status::BadRequest);
        // A start beyond the end of the ledger is NOT_FOUND; exactly at the end, it waits.
        let p = SeekPlan::new(&seek(at(11), at(20), SeekBehavior::BlockUntilReady), 10).unwrap();
        assert_eq!(p.step(10), Step::Finish(Status::NotFound));
        let p = SeekPlan::new(&seek(at(10), at(20), SeekBehavior::BlockUntilReady), 10).unwrap();
        assert_eq!(p.step(10), Step::Wait);
        assert_eq!(
            decode_seek_info(&seek(None, newest(), SeekBehavior::BlockUntilReady).encode_to_vec())
                .unwrap_err()
                .status,
            Status::BadRequest
        );
        assert!(decode_seek_info(b"\xff\xff").is_err());
    }
}
