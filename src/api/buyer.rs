//! Buyer identity: `Authorization: Bearer <JWT>` on the command routes,
//! HS256 with `BUYER_JWT_SECRET` (jsonwebtoken checks the signature, the
//! algorithm, `exp`, `nbf` and `aud`). The customer id is the token's `sub`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::error::ApiError;
use crate::{config::BuyerJwt, problem::Code};

/// Clock difference allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// A customer id is 1 to 255 characters (the column's width).
const MAX_SUB_CHARS: usize = 255;

/// How buyer tokens are checked; built once at start.
pub struct BuyerTokens {
    key: DecodingKey,
    validation: Validation,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl BuyerTokens {
    pub fn new(settings: &BuyerJwt) -> anyhow::Result<Self> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        match &settings.audience {
            Some(audience) => {
                // jsonwebtoken checks `aud` only when present unless told
                // it is required.
                validation.set_required_spec_claims(&["exp", "sub", "aud"]);
                validation.set_audience(&[audience]);
            }
            None => {
                validation.set_required_spec_claims(&["exp", "sub"]);
                validation.validate_aud = false;
            }
        }
        let key = DecodingKey::from_secret(settings.secret.expose().as_bytes())
            .map_err(|e| anyhow::anyhow!("BUYER_JWT_SECRET cannot be used as an HS256 key: {e}"))?;
        Ok(Self { key, validation })
    }

    /// The customer id a valid token names.
    pub fn customer(&self, token: &str) -> Result<String, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| unauthorized(format!("the buyer token is not valid: {e}")))?;
        let sub = data.claims.sub;
        let chars = sub.chars().count();
        if chars == 0 || chars > MAX_SUB_CHARS || sub.trim().is_empty() {
            return Err(unauthorized(format!(
                "the buyer token's sub must be 1 to {MAX_SUB_CHARS} characters"
            )));
        }
        Ok(sub)
    }
}

pub fn unauthorized(detail: impl Into<String>) -> ApiError {
    ApiError::new(Code::Unauthorized, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::{Value, json};

    fn tokens(audience: Option<&str>) -> BuyerTokens {
        BuyerTokens::new(&BuyerJwt {
            secret: Secret::new("k"),
            audience: audience.map(str::to_owned),
        })
        .expect("key")
    }

    fn sign(claims: &Value, key: &str, alg: Algorithm) -> String {
        encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(key.as_bytes()).expect("key"),
        )
        .expect("sign")
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn a_good_token_names_its_customer() {
        let t = sign(
            &json!({"sub": "c-1", "exp": now() + 60}),
            "k",
            Algorithm::HS256,
        );
        assert_eq!(tokens(None).customer(&t).expect("valid"), "c-1");
        // Within the leeway.
        let t = sign(
            &json!({"sub": "c-1", "exp": now() - 10}),
            "k",
            Algorithm::HS256,
        );
        assert!(tokens(None).customer(&t).is_ok());
    }

    #[test]
    fn bad_tokens_are_refused() {
        let exp = now() + 60;
        let refused = [
            sign(&json!({"sub": "c", "exp": exp}), "other", Algorithm::HS256),
            sign(&json!({"sub": "c", "exp": exp}), "k", Algorithm::HS384),
            sign(
                &json!({"sub": "c", "exp": now() - 120}),
                "k",
                Algorithm::HS256,
            ),
            sign(
                &json!({"sub": "c", "exp": exp, "nbf": now() + 120}),
                "k",
                Algorithm::HS256,
            ),
            sign(&json!({"exp": exp}), "k", Algorithm::HS256),
            sign(&json!({"sub": "c"}), "k", Algorithm::HS256),
            sign(&json!({"sub": "", "exp": exp}), "k", Algorithm::HS256),
            sign(
                &json!({"sub": "x".repeat(256), "exp": exp}),
                "k",
                Algorithm::HS256,
            ),
            "not.a.token".to_owned(),
        ];
        for token in refused {
            assert!(tokens(None).customer(&token).is_err(), "{token}");
        }
    }

    #[test]
    fn the_audience_must_match_when_set() {
        let exp = now() + 60;
        let shop = sign(
            &json!({"sub": "c", "exp": exp, "aud": "shop"}),
            "k",
            Algorithm::HS256,
        );
        let other = sign(
            &json!({"sub": "c", "exp": exp, "aud": "blog"}),
            "k",
            Algorithm::HS256,
        );
        let none = sign(&json!({"sub": "c", "exp": exp}), "k", Algorithm::HS256);
        assert!(tokens(Some("shop")).customer(&shop).is_ok());
        assert!(tokens(Some("shop")).customer(&other).is_err());
        assert!(tokens(Some("shop")).customer(&none).is_err());
        assert!(tokens(None).customer(&other).is_ok());
    }
}
