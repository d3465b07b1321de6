//! Just enough DER to read and write what Fabric's Go code reads and writes with `encoding/asn1`:
//! ECDSA signatures, the outer layer of a certificate, and block headers (the writers are public
//! for the latter). Parsing follows Go's rules (minimal
//! lengths and integers, no indefinite lengths) so that we accept and reject the same bytes.

use crate::CryptoError;

const TAG_INTEGER: u8 = 0x02;
pub const TAG_BIT_STRING: u8 = 0x03;
pub const TAG_SEQUENCE: u8 = 0x30;
pub const TAG_OCTET_STRING: u8 = 0x04;

/// One TLV read from the front of `input`: its tag, its contents, the whole encoding and what
/// follows it.
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub contents: &'a [u8],
    pub whole: &'a [u8],
    pub rest: &'a [u8],
}

pub(crate) fn read_tlv(input: &[u8]) -> Result<Tlv<'_>, CryptoError> {
    let malformed = CryptoError::MalformedSignature;
    let (&tag, after_tag) = input.split_first().ok_or(malformed("truncated tag"))?;
    if tag & 0x1f == 0x1f {
        return Err(malformed("multi-byte tags are not used here"));
    }
    let (&first, mut after_len) = after_tag
        .split_first()
        .ok_or(malformed("truncated length"))?;
    let len = if first < 0x80 {
        first as usize
    } else if first == 0x80 {
        return Err(malformed("indefinite length found (not DER)"));
    } else {
        let n = (first & 0x7f) as usize;
        if n > 4 || after_len.len() < n {
            return Err(malformed("length too large or truncated"));
        }
        if after_len[0] == 0 {
            return Err(malformed("superfluous leading zeros in length"));
        }
        let mut len = 0usize;
        for &b in &after_len[..n] {
            len = (len << 8) | b as usize;
        }
        if len < 0x80 {
            return Err(malformed("non-minimal length"));
        }
        after_len = &after_len[n..];
        len
    };
    if after_len.len() < len {
        return Err(malformed("data truncated"));
    }
    let header_len = input.len() - after_len.len();
    Ok(Tlv {
        tag,
        contents: &after_len[..len],
        whole: &input[..header_len + len],
        rest: &after_len[len..],
    })
}

/// Reads a DER INTEGER that must be strictly positive, as Fabric requires of `r` and `s`.
/// Returns its magnitude without leading zero bytes.
fn read_positive_integer(input: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    let malformed = CryptoError::MalformedSignature;
    let tlv = read_tlv(input)?;
    if tlv.tag != TAG_INTEGER {
        return Err(malformed("expected an INTEGER"));
    }
    let c = tlv.contents;
    match c {
        [] => return Err(malformed("empty integer")),
        [0x00, b, ..] if b & 0x80 == 0 => return Err(malformed("integer not minimally-encoded")),
        [0xff, b, ..] if b & 0x80 != 0 => return Err(malformed("integer not minimally-encoded")),
        [b, ..] if b & 0x80 != 0 => {
            return Err(malformed(
                "invalid signature, R and S must be larger than zero",
            ));
        }
        _ => {}
    }
    let magnitude = match c.iter().position(|&b| b != 0) {
        Some(i) => &c[i..],
        None => {
            return Err(malformed(
                "invalid signature, R and S must be larger than zero",
            ));
        }
    };
    Ok((magnitude, tlv.rest))
}

/// Parses an ECDSA signature `SEQUENCE { r, s }`. Like Go's `asn1.Unmarshal` as Fabric calls it,
/// bytes after the SEQUENCE are ignored.
pub(crate) fn parse_ecdsa_signature(sig: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    let seq = read_tlv(sig)?;
    if seq.tag != TAG_SEQUENCE {
        return Err(CryptoError::MalformedSignature("expected a SEQUENCE"));
    }
    let (r, rest) = read_positive_integer(seq.contents)?;
    let (s, rest) = read_positive_integer(rest)?;
    if !rest.is_empty() {
        return Err(CryptoError::MalformedSignature(
            "trailing data in signature SEQUENCE",
        ));
    }
    Ok((r, s))
}

pub fn write_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

pub fn write_tlv(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    write_length(out, contents.len());
    out.extend_from_slice(contents);
}

/// Writes a non-negative big-endian integer as a minimal DER INTEGER.
pub fn write_unsigned_integer(out: &mut Vec<u8>, magnitude: &[u8]) {
    let start = magnitude
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(magnitude.len());
    let m = &magnitude[start..];
    let mut contents = Vec::with_capacity(m.len() + 1);
    if m.is_empty() || m[0] & 0x80 != 0 {
        contents.push(0);
    }
    contents.extend_from_slice(m);
    write_tlv(out, TAG_INTEGER, &contents);
}

pub(crate) fn encode_ecdsa_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(72);
    write_unsigned_integer(&mut inner, r);
    write_unsigned_integer(&mut inner, s);
    let mut out = Vec::with_capacity(inner.len() + 2);
    write_tlv(&mut out, TAG_SEQUENCE, &inner);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_signature() {
        let r = [0x80u8; 32];
        let s = [0x01u8; 32];
        let der = encode_ecdsa_signature(&r, &s);
        let (pr, ps) = parse_ecdsa_signature(&der).unwrap();
        assert_eq!(pr, &r);
        assert_eq!(ps, &s);
    }

    #[test]
    fn ignores_bytes_after_the_sequence_like_go() {
        let mut der = encode_ecdsa_signature(&[1], &[2]);
        der.extend_from_slice(b"junk");
        assert!(parse_ecdsa_signature(&der).is_ok());
    }

    #[test]
    fn rejects_non_der() {
        // non-minimal integer (leading zero before a byte < 0x80)
        assert!(
            parse_ecdsa_signature(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01]).is_err()
        );
        // negative r
        assert!(parse_ecdsa_signature(&[0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01]).is_err());
        // zero s
        assert!(parse_ecdsa_signature(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00]).is_err());
        // indefinite length
        assert!(
            parse_ecdsa_signature(&[0x30, 0x80, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0, 0]).is_err()
        );
        // non-minimal long-form length
        assert!(
            parse_ecdsa_signature(&[0x30, 0x81, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]).is_err()
        );
        // truncated
        assert!(parse_ecdsa_signature(&[0x30, 0x06, 0x02, 0x01]).is_err());
        assert!(parse_ecdsa_signature(&[]).is_err());
        // empty integer
        assert!(parse_ecdsa_signature(&[0x30, 0x04, 0x02, 0x00, 0x02, 0x00]).is_err());
    }

    #[test]
    fn long_lengths_encode_minimally() {
        let mut out = Vec::new();
        write_length(&mut out, 300);
        assert_eq!(out, vec![0x82, 0x01, 0x2c]);
        let data = vec![0u8; 300];
        let mut tlv = Vec::new();
        write_tlv(&mut tlv, TAG_SEQUENCE, &data);
        let parsed = read_tlv(&tlv).unwrap();
        assert_eq!(parsed.contents.len(), 300);
        assert!(parsed.rest.is_empty());
    }
}
