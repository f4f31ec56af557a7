//! Static bearer tokens: configured by their SHA-256 (`sha256:` and 64 hex
//! digits), never in clear. Tokens are 256-bit random strings, so a fast
//! hash is the right one: there is nothing to brute-force, and the hash
//! keeps a leaked configuration file from leaking the tokens.

use std::fmt;

use ring::rand::SecureRandom;

const PREFIX: &str = "sha256:";

/// The SHA-256 of a static token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        TokenHash(bytes)
    }

    /// Parses the configured form, `sha256:` and 64 hex digits.
    ///
    /// # Errors
    ///
    /// A message naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let hex_digits = text.strip_prefix(PREFIX).ok_or_else(|| {
            format!("a token hash starts with `{PREFIX}` (see `tidegate auth hash-token`)")
        })?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut bytes)
            .map_err(|e| format!("`{PREFIX}` is followed by 64 hex digits: {e}"))?;
        Ok(TokenHash(bytes))
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", hex::encode(self.0))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The configured form of a token's hash: what `tidegate auth hash-token`
/// prints.
///
/// ```
/// let hash = tidegate_auth::hash_token("s3cret");
/// assert!(hash.starts_with("sha256:"));
/// assert_eq!(hash.len(), 7 + 64);
/// ```
pub fn hash_token(token: &str) -> String {
    TokenHash::of(token).to_string()
}

/// A new random token: `tg_` and 64 hex digits (256 bits from the system's
/// random source).
///
/// # Errors
///
/// When the system's random source fails.
pub fn generate_token() -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes)?;
    Ok(format!("tg_{}", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_through_its_text() {
        let hash = TokenHash::of("abc");
        assert_eq!(TokenHash::parse(&hash.to_string()), Ok(hash));
        // The SHA-256 of "abc" (FIPS 180-2 test vector).
        assert_eq!(
            hash.to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bad_hash_texts_are_refused() {
        for bad in [
            "",
            "sha256:",
            "md5:00",
            "sha256:zz",
            &format!("sha256:{}", "0".repeat(63)),
        ] {
            assert!(TokenHash::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn generated_tokens_differ() -> Result<(), ring::error::Unspecified> {
        let (a, b) = (generate_token()?, generate_token()?);
        assert_ne!(a, b);
        assert!(a.starts_with("tg_") && a.len() == 67);
        Ok(())
    }
}
