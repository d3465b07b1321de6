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

/// A fresh 24-byte random nonce, the size Fabric's `crypto.GetRandomNonce` makes.
pub fn random_nonce() -> [u8; 24] {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut n = [0u8; 24];
    // The system RNG failing is not recoverable for a signer; an all-zero nonce would silently
    // weaken tx ids, so fall back to hashing the time rather than leave it zero.
    if SystemRandom::new().fill(&mut n).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        n.copy_from_slice(&sha256(&t.to_be_bytes())[..24]);
    }
    n
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
