//! Webhook signatures: `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(
//! secret, "<t>.<raw body>")>`, accepted within 300 s of now either way.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far the signed timestamp may be from now, past or future.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Signature header is missing")]
    Missing,
    #[error("the X-Signature header is malformed")]
    Malformed,
    #[error("the signature timestamp is more than 300 s from now")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// The header value for `body` signed at `t` (providers and tests).
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(digest(secret, t, body)))
}

/// Checks `header` against `body`; `now` is the current unix time.
pub fn verify(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match name.trim() {
            "t" => {
                t = Some(
                    value
                        .trim()
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            "v1" => {
                signatures.push(hex::decode(value.trim()).map_err(|_| SignatureError::Malformed)?)
            }
            // Unknown schemes are ignored so providers can add new ones.
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(t) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    // verify_slice compares in constant time.
    let matches = signatures.iter().any(|candidate| {
        mac(secret, t, body)
            .map(|m| m.verify_slice(candidate).is_ok())
            .unwrap_or(false)
    });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

fn digest(secret: &str, t: i64, body: &[u8]) -> Vec<u8> {
    mac(secret, t, body)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_fresh_correct_signature_passes() {
        let body = br#"{"a":1}"#;
        let header = sign("s3cret", NOW, body);
        assert_eq!(verify("s3cret", Some(&header), body, NOW), Ok(()));
        assert_eq!(verify("s3cret", Some(&header), body, NOW + 300), Ok(()));
        assert_eq!(verify("s3cret", Some(&header), body, NOW - 300), Ok(()));
    }

    #[test]
    fn anything_else_fails() {
        let body = br#"{"a":1}"#;
        let header = sign("s3cret", NOW, body);
        assert_eq!(
            verify("s3cret", None, body, NOW),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify("other", Some(&header), body, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("s3cret", Some(&header), b"{\"a\":2}", NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("s3cret", Some(&header), body, NOW + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify("s3cret", Some(&header), body, NOW - 301),
            Err(SignatureError::Stale)
        );
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "garbage"] {
            assert!(verify("s3cret", Some(bad), body, NOW).is_err(), "{bad}");
        }
    }
}
