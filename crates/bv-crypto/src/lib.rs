//! BetterVideo's cryptography, kept pure: keys and bytes in, bytes out.
//!
//! - [`keys`]: 256-bit secret keys (zeroed on drop, never printed), key
//!   wrapping with AES-256-GCM bound to a context, and the [`keys::RootKeys`]
//!   seam that a KMS can implement.
//! - [`format`]: the sealed-object format (spec: `docs/sealed-object-format.md`),
//!   with streaming [`format::Sealer`] / [`format::Opener`] and random access
//!   by segment for HTTP Range.
//! - [`secret`]: bearer tokens and their stored hashes, argon2id passwords,
//!   HMAC-SHA256 for signed links.
//! - [`sign`]: Ed25519 signatures anyone can check (erasure receipts).
//!
//! All primitives come from aws-lc-rs (the same AES-GCM assembly as BoringSSL);
//! this crate knows no HTTP, no SQL, no video and no storage.
#![forbid(unsafe_code)]

pub mod error;
pub mod format;
pub mod keys;
pub mod links;
pub mod secret;
pub mod sign;

pub use error::CryptoError;
pub use keys::SecretKey;
