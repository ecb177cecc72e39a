//! 128-bit random identifiers, written as 32 lower-case hex digits.

use std::fmt;
use std::str::FromStr;

use crate::error::VaultError;

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A ", $what, " id: 128 random bits.")]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Result<Self, VaultError> {
                let mut b = [0u8; 16];
                bv_crypto::keys::random_bytes(&mut b)
                    .map_err(|e| VaultError::Key(e.to_string()))?;
                Ok(Self(b))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = VaultError;
            fn from_str(s: &str) -> Result<Self, VaultError> {
                let s = s.trim();
                let bad = || VaultError::Invalid(format!("{} id must be 32 hex digits", $what));
                if s.len() != 32 || !s.is_ascii() {
                    return Err(bad());
                }
                let mut b = [0u8; 16];
                for (i, x) in b.iter_mut().enumerate() {
                    *x = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
                }
                Ok(Self(b))
            }
        }
    };
}

id_type!(ObjectId, "object");
id_type!(TenantId, "tenant");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_roundtrip_and_reject_garbage() {
        let id = ObjectId::random().unwrap();
        assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
        assert_ne!(ObjectId::random().unwrap(), id);
        assert!("xyz".parse::<TenantId>().is_err());
        assert!("0".repeat(31).parse::<TenantId>().is_err());
        assert!("g".repeat(32).parse::<TenantId>().is_err());
    }
}
