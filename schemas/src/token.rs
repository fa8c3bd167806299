//! Join tokens: the edge signs (sessionId, userId, region, expiry) with HMAC-SHA256; gateways
//! check the signature, the expiry and that the token is for the session being joined.
//!
//! Format: `kid "." base64url(claims JSON) "." base64url(HMAC-SHA256(secret, kid "." claims
//! JSON))`. The key id is derived from the secret, so every process with the same secret agrees
//! on it without configuration. A signer signs with its current key and verifies with it and
//! with previous keys until each one's retirement: a secret is rotated without refusing the
//! tickets already out. Tokens of the older two-part format (no key id) verify with the current
//! key only.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// What a token grants: one user, one session, one region, until an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "sid")]
    pub session_id: String,
    #[serde(rename = "uid")]
    pub user_id: String,
    #[serde(rename = "reg")]
    pub region: String,
    /// Expiry, epoch milliseconds.
    #[serde(rename = "exp")]
    pub expires_at: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error(
        "token was signed with a key this server does not know (from another deployment, or retired long ago)"
    )]
    UnknownKey,
    #[error("token was signed with a retired key; ask the edge for a new one")]
    RetiredKey,
}

/// One signing key and its id.
#[derive(Clone)]
struct Key {
    id: String,
    mac: HmacSha256,
}

impl Key {
    fn new(secret: &[u8]) -> Self {
        let mut id = Sha256::new();
        id.update(b"tickcast token key id\0");
        id.update(secret);
        let id: String = id.finalize().iter().take(4).map(|b| format!("{b:02x}")).collect();
        Self { id, mac: HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length") }
    }

    fn mac(&self, signed: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        for part in signed {
            mac.update(part);
        }
        mac
    }
}

/// Signs with the current secret (`TICKCAST_TOKEN_SECRET`) and verifies with it and with the
/// previous ones until their retirement (`TICKCAST_PREVIOUS_TOKEN_SECRETS`).
#[derive(Clone)]
pub struct TokenSigner {
    current: Key,
    /// Keys that still verify, each until an instant (epoch ms).
    previous: Vec<(Key, i64)>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSigner {{ current: {}, previous: {} }}", self.current.id, self.previous.len())
    }
}

impl TokenSigner {
    /// A signer for `secret` (any length).
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        Self { current: Key::new(secret), previous: Vec::new() }
    }

    /// The same signer, also verifying tokens signed with `secret` until `retire_at_ms`.
    #[must_use]
    pub fn with_previous(mut self, secret: &[u8], retire_at_ms: i64) -> Self {
        self.previous.push((Key::new(secret), retire_at_ms));
        self
    }

    /// The id of the key that signs.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    /// A token for `claims`.
    #[must_use]
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize infallibly");
        let key = &self.current;
        let signature = key.mac(&[key.id.as_bytes(), b".", &payload]).finalize().into_bytes();
        format!("{}.{}.{}", key.id, URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(signature))
    }

    /// The claims of a token signed with a key of this signer and not expired at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (first, second, third) = (parts.next(), parts.next(), parts.next());
        if parts.next().is_some() {
            return Err(TokenError::Malformed);
        }
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed);
        let (payload, mac) = match (first, second, third) {
            (Some(kid), Some(payload), Some(signature)) => {
                let key = if kid == self.current.id {
                    &self.current
                } else {
                    let (key, retire_at_ms) =
                        self.previous.iter().find(|(key, _)| key.id == kid).ok_or(TokenError::UnknownKey)?;
                    if now_ms >= *retire_at_ms {
                        return Err(TokenError::RetiredKey);
                    }
                    key
                };
                let payload = decode(payload)?;
                let mac = key.mac(&[kid.as_bytes(), b".", &payload]);
                (payload, (mac, decode(signature)?))
            }
            (Some(payload), Some(signature), None) => {
                let payload = decode(payload)?;
                let mac = self.current.mac(&[&payload]);
                (payload, (mac, decode(signature)?))
            }
            _ => return Err(TokenError::Malformed),
        };
        // verify_slice compares in constant time.
        mac.0.verify_slice(&mac.1).map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.expires_at <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            session_id: "s1".into(),
            user_id: "u1".into(),
            region: "eu-west-1".into(),
            expires_at: 2_000,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let signer = TokenSigner::new(b"secret");
        let token = signer.sign(&claims());
        assert_eq!(signer.verify(&token, 1_999), Ok(claims()));
        assert_eq!(signer.verify(&token, 2_000), Err(TokenError::Expired));
    }

    #[test]
    fn forged_tokens_are_refused() {
        let token = TokenSigner::new(b"other").sign(&claims());
        let signer = TokenSigner::new(b"secret");
        assert_eq!(signer.verify(&token, 0), Err(TokenError::UnknownKey));
        // Another secret's signature under this key's id.
        let (_, rest) = token.split_once('.').unwrap();
        assert_eq!(signer.verify(&format!("{}.{rest}", signer.key_id()), 0), Err(TokenError::BadSignature));
        // Changing the claims breaks the signature.
        let token = signer.sign(&claims());
        let mut parts = token.split('.');
        let (kid, _, sig) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let mut forged_claims = claims();
        forged_claims.user_id = "u2".into();
        let forged =
            format!("{kid}.{}.{sig}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap()));
        assert_eq!(signer.verify(&forged, 0), Err(TokenError::BadSignature));
        assert_eq!(signer.verify("garbage", 0), Err(TokenError::Malformed));
        assert_eq!(signer.verify(&format!("{kid}.b.c"), 0), Err(TokenError::Malformed));
        assert_eq!(signer.verify("a.b.c.d", 0), Err(TokenError::Malformed));
    }

    #[test]
    fn a_rotated_out_key_verifies_until_its_retirement() {
        let old = TokenSigner::new(b"old secret");
        let token = old.sign(&claims());
        let rotated = TokenSigner::new(b"new secret").with_previous(b"old secret", 1_500);
        assert_ne!(rotated.key_id(), old.key_id());
        assert_eq!(rotated.verify(&token, 1_000), Ok(claims()), "in its grace period");
        assert_eq!(rotated.verify(&token, 1_500), Err(TokenError::RetiredKey));
        assert_eq!(TokenSigner::new(b"new secret").verify(&token, 1_000), Err(TokenError::UnknownKey));
        // New tokens are signed with the new key.
        let fresh = rotated.sign(&claims());
        assert!(fresh.starts_with(rotated.key_id()));
        assert_eq!(rotated.verify(&fresh, 1_999), Ok(claims()));
    }

    #[test]
    fn tokens_of_the_two_part_format_verify_with_the_current_key() {
        let payload = serde_json::to_vec(&claims()).unwrap();
        let mut mac = HmacSha256::new_from_slice(b"secret").unwrap();
        mac.update(&payload);
        let legacy = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(TokenSigner::new(b"secret").verify(&legacy, 0), Ok(claims()));
        assert_eq!(TokenSigner::new(b"other").verify(&legacy, 0), Err(TokenError::BadSignature));
    }
}
