//! Join tokens: the edge signs (sessionId, userId, region, expiry) with HMAC-SHA256; gateways
//! check the signature, the expiry and that the token is for the session being joined.
//!
//! Format: `base64url(claims JSON) "." base64url(HMAC-SHA256(secret, claims JSON))`.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

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
}

/// Signs and verifies tokens with one secret (`TICKCAST_TOKEN_SECRET`).
#[derive(Clone)]
pub struct TokenSigner {
    key: HmacSha256,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner { .. }")
    }
}

impl TokenSigner {
    /// A signer for `secret` (any length).
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        Self { key: HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length") }
    }

    /// A token for `claims`.
    #[must_use]
    pub fn sign(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize infallibly");
        let mut mac = self.key.clone();
        mac.update(&payload);
        let signature = mac.finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(signature))
    }

    /// The claims of a token signed with this secret and not expired at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.key.clone();
        mac.update(&payload);
        // verify_slice compares in constant time.
        mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
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
        assert_eq!(signer.verify(&token, 0), Err(TokenError::BadSignature));
        // Changing the claims breaks the signature.
        let (_, sig) =
            signer.sign(&claims()).split_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())).unwrap();
        let mut forged_claims = claims();
        forged_claims.user_id = "u2".into();
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap()));
        assert_eq!(signer.verify(&forged, 0), Err(TokenError::BadSignature));
        assert_eq!(signer.verify("garbage", 0), Err(TokenError::Malformed));
        assert_eq!(signer.verify("a.b.c", 0), Err(TokenError::Malformed));
    }
}
