//! The buyers of a run: each has a token of its own (HS256, the api's
//! BUYER_JWT_SECRET), signed once before the run, never per request.

use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use hyper::header::HeaderValue;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

use crate::config::TOKEN_LIFETIME;

#[derive(Serialize)]
struct Claims<'a> {
    sub: String,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// The buyers of one run: anonymous, or `n` buyers with signed tokens.
/// Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Crowd {
    signed: Option<Arc<Signed>>,
}

struct Signed {
    /// `loadgen-<run>-`: a buyer's `sub` is this and its number.
    prefix: String,
    /// `Bearer <token>`, one per buyer.
    headers: Vec<HeaderValue>,
}

impl Crowd {
    /// Anonymous buyers: no `Authorization` header.
    pub(crate) fn anonymous() -> Self {
        Self::default()
    }

    /// Signs a token for each of `buyers` buyers of run `run`.
    pub(crate) fn signed(
        secret: &str,
        audience: Option<&str>,
        run: &str,
        buyers: usize,
    ) -> anyhow::Result<Self> {
        let key = EncodingKey::from_secret(secret.as_bytes())
            .context("--jwt-secret cannot be used as an HS256 key")?;
        let prefix = format!("loadgen-{run}-");
        let iat = Utc::now().timestamp();
        let exp = iat + TOKEN_LIFETIME.as_secs() as i64;
        let header = Header::default();
        let mut headers = Vec::with_capacity(buyers);
        for n in 0..buyers {
            let claims = Claims {
                sub: format!("{prefix}{n}"),
                iat,
                exp,
                aud: audience,
            };
            let token =
                jsonwebtoken::encode(&header, &claims, &key).context("signing a buyer token")?;
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .context("a buyer token cannot be sent in a header")?;
            value.set_sensitive(true);
            headers.push(value);
        }
        Ok(Self {
            signed: Some(Arc::new(Signed { prefix, headers })),
        })
    }

    pub(crate) fn has_tokens(&self) -> bool {
        self.signed.is_some()
    }

    /// Buyer `n`'s `Authorization` header; past the last buyer the crowd
    /// comes round again (the sold-out phase's buyers come back).
    pub(crate) fn auth(&self, n: usize) -> Option<&HeaderValue> {
        let signed = self.signed.as_deref()?;
        signed.headers.get(n % signed.headers.len().max(1))
    }

    /// Buyer `n`'s customer id, as the api records it.
    pub(crate) fn sub(&self, n: usize) -> Option<String> {
        let signed = self.signed.as_deref()?;
        let n = n % signed.headers.len().max(1);
        Some(format!("{}{n}", signed.prefix))
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use serde_json::Value;

    use super::*;

    fn decode(header: &HeaderValue, key: &str, audience: &str) -> Value {
        let text = header.to_str().expect("ascii");
        let token = text.strip_prefix("Bearer ").expect("bearer");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        let key = DecodingKey::from_secret(key.as_bytes()).expect("key");
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .expect("a valid token")
            .claims
    }

    #[test]
    fn each_buyer_has_its_own_token() {
        let crowd = Crowd::signed("k", Some("shop"), "r1", 3).expect("signed");
        assert!(crowd.has_tokens());
        let claims = decode(crowd.auth(1).expect("buyer 1"), "k", "shop");
        assert_eq!(claims["sub"], "loadgen-r1-1");
        assert_eq!(claims["aud"], "shop");
        let exp = claims["exp"].as_i64().expect("exp");
        let lifetime = exp - Utc::now().timestamp();
        assert!((3590..=3600).contains(&lifetime), "{lifetime}");
        assert_ne!(crowd.auth(0), crowd.auth(1));
        // Round again past the last buyer.
        assert_eq!(crowd.auth(4), crowd.auth(1));
        assert_eq!(crowd.sub(2).as_deref(), Some("loadgen-r1-2"));
        assert_eq!(crowd.sub(3).as_deref(), Some("loadgen-r1-0"));
    }

    #[test]
    fn anonymous_buyers_send_nothing() {
        let crowd = Crowd::anonymous();
        assert!(!crowd.has_tokens());
        assert!(crowd.auth(0).is_none());
        assert!(crowd.sub(0).is_none());
    }
}
