//! Console sessions: signed, stateless cookies that every api replica
//! accepts, and the CSRF token each form carries.
//!
//! The signing key is derived from `ADMIN_TOKEN`, which every replica has,
//! so no store is shared; rotating the token ends every session. A session
//! is `<expires unix secs>.<nonce>`, signed by the `cookie` crate (HMAC-
//! SHA256). Its CSRF token is an HMAC of the nonce under the same key: a
//! page from this site can read it, another site cannot. Logging in uses a
//! short pre-session cookie the same way, so the login form has one too.

use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use cookie::{Cookie, CookieJar, Key, SameSite};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use uuid::Uuid;

use super::super::state::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "flash_console";
/// The pre-session cookie the login form's CSRF token is tied to.
const LOGIN_COOKIE: &str = "flash_console_login";
/// Where the console's cookies are sent.
const COOKIE_PATH: &str = "/console";
/// How long a login form may stay open.
const LOGIN_FORM_SECS: i64 = 3600;

/// A logged-in operator.
pub struct Session {
    nonce: String,
    key: Key,
}

impl Session {
    /// The CSRF token this session's forms carry.
    pub fn csrf(&self) -> String {
        csrf_for(&self.key, "session", &self.nonce)
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        matches(&self.key, "session", &self.nonce, presented)
    }

    /// The operator's session, if the request carries a valid, unexpired one.
    pub fn from_parts(parts: &Parts, state: &AppState) -> Option<Self> {
        let key = key(state);
        let value = verified(&parts.headers, &key, SESSION_COOKIE)?;
        let (expires, nonce) = value.split_once('.')?;
        let expires: i64 = expires.parse().ok()?;
        if expires <= chrono::Utc::now().timestamp() {
            return None;
        }
        Some(Self {
            nonce: nonce.to_owned(),
            key,
        })
    }
}

/// A new session for `state`'s console: the `Set-Cookie` value that
/// starts it.
pub fn start(state: &AppState, secure: bool) -> HeaderValue {
    let lifetime = state.settings.console_session;
    let expires = chrono::Utc::now().timestamp() + lifetime.as_secs() as i64;
    let value = format!("{expires}.{}", Uuid::new_v4().simple());
    signed_cookie(
        state,
        SESSION_COOKIE,
        value,
        lifetime.as_secs() as i64,
        secure,
    )
}

/// The `Set-Cookie` value that ends a session (or a login form's cookie).
pub fn end(name: &'static str, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((name, ""))
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::ZERO)
        .build();
    header_value(&cookie)
}

/// The session cookie's end.
pub fn end_session(secure: bool) -> HeaderValue {
    end(SESSION_COOKIE, secure)
}

/// A login form: its CSRF token and the cookie it is tied to.
pub struct LoginForm {
    pub csrf: String,
    pub cookie: HeaderValue,
}

/// A fresh login form's token and cookie.
pub fn login_form(state: &AppState, secure: bool) -> LoginForm {
    let nonce = Uuid::new_v4().simple().to_string();
    let expires = chrono::Utc::now().timestamp() + LOGIN_FORM_SECS;
    let csrf = csrf_for(&key(state), "login", &nonce);
    let cookie = signed_cookie(
        state,
        LOGIN_COOKIE,
        format!("{expires}.{nonce}"),
        LOGIN_FORM_SECS,
        secure,
    );
    LoginForm { csrf, cookie }
}

/// Whether `presented` is the CSRF token of the login form whose cookie
/// the request carries.
pub fn login_csrf_matches(headers: &HeaderMap, state: &AppState, presented: Option<&str>) -> bool {
    let key = key(state);
    let Some(value) = verified(headers, &key, LOGIN_COOKIE) else {
        return false;
    };
    let Some((expires, nonce)) = value.split_once('.') else {
        return false;
    };
    let live = expires
        .parse::<i64>()
        .is_ok_and(|at| at > chrono::Utc::now().timestamp());
    live && matches(&key, "login", nonce, presented)
}

/// The login form cookie's end, once logged in.
pub fn end_login_form(secure: bool) -> HeaderValue {
    end(LOGIN_COOKIE, secure)
}

/// The cookies' key: derived from `ADMIN_TOKEN` (a labelled SHA-512 of
/// it, the 64 bytes the `cookie` crate's key takes).
fn key(state: &AppState) -> Key {
    let mut hash = Sha512::new();
    hash.update(b"flash-sale console session v1\0");
    hash.update(state.admin_token.expose().as_bytes());
    Key::from(&hash.finalize())
}

fn signed_cookie(
    state: &AppState,
    name: &'static str,
    value: String,
    max_age_secs: i64,
    secure: bool,
) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    let mut jar = CookieJar::new();
    jar.signed_mut(&key(state)).add(cookie);
    let signed = jar.get(name).map(header_value);
    // The jar holds what `add` just put in it.
    signed.unwrap_or_else(|| HeaderValue::from_static(""))
}

/// The value of cookie `name` if the request carries it signed by `key`.
fn verified(headers: &HeaderMap, key: &Key, name: &str) -> Option<String> {
    let mut jar = CookieJar::new();
    for line in headers.get_all(header::COOKIE) {
        let Ok(line) = line.to_str() else { continue };
        for cookie in Cookie::split_parse(line.to_owned()).flatten() {
            jar.add_original(cookie);
        }
    }
    jar.signed(key).get(name).map(|c| c.value().to_owned())
}

fn header_value(cookie: &Cookie<'_>) -> HeaderValue {
    // A cookie of our own making: ASCII names, hex and digits.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn csrf_for(key: &Key, purpose: &str, nonce: &str) -> String {
    hex::encode(csrf_mac(key, purpose, nonce).finalize().into_bytes())
}

fn csrf_mac(key: &Key, purpose: &str, nonce: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.signing())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(b"csrf.");
    mac.update(purpose.as_bytes());
    mac.update(b".");
    mac.update(nonce.as_bytes());
    mac
}

fn matches(key: &Key, purpose: &str, nonce: &str, presented: Option<&str>) -> bool {
    let Some(presented) = presented.and_then(|p| hex::decode(p.trim()).ok()) else {
        return false;
    };
    // verify_slice compares in constant time.
    csrf_mac(key, purpose, nonce)
        .verify_slice(&presented)
        .is_ok()
}

/// Whether the request came over https: `X-Forwarded-Proto: https` from
/// a trusted proxy (the api itself serves plain HTTP).
pub fn came_over_https(parts: &Parts, state: &AppState) -> bool {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_canonical());
    let trusted = peer.is_some_and(|ip| {
        state
            .settings
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    });
    trusted
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}
