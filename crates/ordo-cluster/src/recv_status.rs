//! The status a stream ends with when a client's next message cannot be read.
//!
//! Fabric's stream handlers (Broadcast, Deliver, Cluster Step) return the receive error as it is,
//! so its clients see Go gRPC's codes and words: `RESOURCE_EXHAUSTED` "grpc: received message
//! larger than max (N vs. M)" for a message over `MaxRecvMsgSize`, `INTERNAL` "grpc: failed to
//! unmarshal the received message: …" for bytes that are not the expected protobuf. tonic reports
//! the first as `OUT_OF_RANGE` and the second in prost's words; [`go_grpc_recv_status`] gives
//! them Go's code and prefix, so that a client (or an operator reading its logs) can tell a
//! refused message from a lost connection, as with Fabric's orderer.
//!
//! Anything else (the client reset the stream, the connection broke) is passed on unchanged: no
//! one is left to read it.

use tonic::{Code, Status};

/// tonic's words for a message over the decoding limit (tonic 0.14's `codec/decode.rs`).
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large: found ";
/// prost's words for bytes that do not decode (`prost::DecodeError`'s display).
const PROST_DECODE: &str = "failed to decode Protobuf message";

/// The status a stream handler ends the stream with after `e` from `Streaming::message`.
pub fn go_grpc_recv_status(e: Status) -> Status {
    match e.code() {
        Code::OutOfRange => match too_large(e.message()) {
            Some((found, limit)) => Status::resource_exhausted(format!(
                "grpc: received message larger than max ({found} vs. {limit})"
            )),
            None => e,
        },
        Code::Internal if e.message().starts_with(PROST_DECODE) => Status::internal(format!(
            "grpc: failed to unmarshal the received message: {}",
            e.message()
        )),
        _ => e,
    }
}

/// The message's size and the limit, from tonic's "found N bytes, the limit is: M bytes".
fn too_large(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix(TONIC_TOO_LARGE)?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn an_oversized_message_is_resource_exhausted_in_go_words() {
        let s = go_grpc_recv_status(Status::out_of_range(
            "Error, decoded message length too large: found 2097157 bytes, the limit is: 1048576 bytes",
        ));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(
            s.message(),
            "grpc: received message larger than max (2097157 vs. 1048576)"
        );
    }

    #[test]
    fn undecodable_bytes_are_internal_in_go_words() {
        // As tonic-prost reports a decode error: the status carries prost's display of it.
        let e = ordo_proto::common::Envelope::decode(&[0x0f, 0xff][..]).unwrap_err();
        let s = go_grpc_recv_status(Status::internal(e.to_string()));
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(
            s.message(),
            format!("grpc: failed to unmarshal the received message: {e}")
        );
    }

    #[test]
    fn other_errors_pass_unchanged() {
        let s = go_grpc_recv_status(Status::cancelled("h2 protocol error: stream reset"));
        assert_eq!(s.code(), Code::Cancelled);
        assert_eq!(s.message(), "h2 protocol error: stream reset");
        let s = go_grpc_recv_status(Status::out_of_range("something else"));
        assert_eq!(s.code(), Code::OutOfRange);
    }
}
