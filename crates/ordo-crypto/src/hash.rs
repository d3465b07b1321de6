use ring::digest;

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Sha256Digest {
    sha256_concat(&[data])
}

/// SHA-256 of the concatenation of `parts`, without building the concatenation (Fabric hashes
/// `a ‖ b ‖ c` in many places: block data, signed metadata, tx ids).
pub fn sha256_concat(parts: &[&[u8]]) -> Sha256Digest {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_concat(&[b"a", b"", b"bc"]), sha256(b"abc"));
    }
}
