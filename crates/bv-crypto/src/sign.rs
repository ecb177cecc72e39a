//! Ed25519 signatures for statements the service makes to its customers
//! (erasure receipts): anyone holding the public key can check them, which
//! an HMAC could not offer. The signing key is derived from a 256-bit
//! secret (a vault service key) used as the Ed25519 seed.

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::CryptoError;
use crate::keys::SecretKey;

/// A signing key.
pub struct Signer(Ed25519KeyPair);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// The signing key whose seed is `seed`.
    pub fn from_seed(seed: &SecretKey) -> Result<Self, CryptoError> {
        Ed25519KeyPair::from_seed_unchecked(seed.expose())
            .map(Self)
            .map_err(|_| CryptoError::KeyMaterial("not an Ed25519 seed".into()))
    }

    /// The public key (32 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        self.0.public_key().as_ref().to_vec()
    }

    /// The signature of `msg` (64 bytes).
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.0.sign(msg).as_ref().to_vec()
    }
}

/// Whether `sig` is `public_key`'s signature of `msg`.
pub fn verify(public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(msg, sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_any_change() {
        let s = Signer::from_seed(&SecretKey::from_bytes([7; 32])).unwrap();
        let sig = s.sign(b"erased 3 objects");
        assert_eq!((s.public_key().len(), sig.len()), (32, 64));
        assert!(verify(&s.public_key(), b"erased 3 objects", &sig));
        assert!(!verify(&s.public_key(), b"erased 4 objects", &sig));
        let other = Signer::from_seed(&SecretKey::from_bytes([8; 32])).unwrap();
        assert!(!verify(&other.public_key(), b"erased 3 objects", &sig));
        let mut bad = sig.clone();
        bad[0] ^= 1;
        assert!(!verify(&s.public_key(), b"erased 3 objects", &bad));
        // The same seed is the same key.
        let again = Signer::from_seed(&SecretKey::from_bytes([7; 32])).unwrap();
        assert_eq!(again.public_key(), s.public_key());
    }
}
