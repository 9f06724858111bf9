//! Rate limits at the edge (`RATE_LIMIT_PER_SEC`, `RATE_LIMIT_BURST`): a
//! token bucket (GCRA) per buyer, or per client address for anonymous
//! requests, on the routes that record commands (`POST /holds`,
//! `POST /orders`). A refused request is answered 429 `rate_limited` with
//! `Retry-After` before its body is read, so nothing is recorded.
//!
//! Buckets live in this replica's memory: behind a load balancer over N
//! replicas a client may get up to N times the rate.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use axum::{
    extract::ConnectInfo,
    http::{HeaderMap, request::Parts},
};
use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};
use ipnet::IpNet;

use super::error::ApiError;
use crate::{
    config::RateLimit,
    problem::{Code, Problem},
};

/// Whose bucket a request draws from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A buyer, by the `sub` of their token: one bucket wherever they
    /// connect from.
    Buyer(String),
    /// An anonymous client, by its address ([`client_address`]).
    Address(IpAddr),
}

/// Checks between two sweeps of idle buckets ([`RateLimiter::check`]).
const SWEEP_EVERY: u64 = 1024;

/// One replica's buckets. Built only when a limit is configured.
pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<Subject>,
    checks: AtomicU64,
}

impl RateLimiter {
    /// `None` when rate limiting is off (`RATE_LIMIT_PER_SEC=0`).
    pub fn new(limit: Option<RateLimit>) -> Option<Self> {
        let limit = limit?;
        // Settings guarantee both are ≥ 1; a zero would be a bug there, and
        // 1 is the safest reading of it.
        let per_sec = NonZeroU32::new(limit.per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        Some(Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(per_sec).allow_burst(burst)),
            checks: AtomicU64::new(0),
        })
    }

    /// Takes one token from `subject`'s bucket, or refuses with 429
    /// `rate_limited` and the whole seconds until a token is back (≥ 1).
    pub fn check(&self, subject: &Subject) -> Result<(), ApiError> {
        // A crowd of distinct addresses (or forged subjects) would add a key
        // per request forever. Every SWEEP_EVERY checks, keys whose bucket
        // has refilled (indistinguishable from a new one) are dropped, so
        // memory is bounded by the keys active within one refill period
        // plus SWEEP_EVERY; the sweep's cost, O(keys), is spread over the
        // checks that made those keys. Counting checks rather than running
        // a timer keeps it tied to the load that creates keys.
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        match self.limiter.check_key(subject) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                let secs = whole_seconds_up(wait);
                Err(ApiError::RetryAfter(
                    Box::new(Problem::new(
                        Code::RateLimited,
                        format!("too many requests; retry in {secs} s"),
                    )),
                    secs,
                ))
            }
        }
    }

    /// Drops the buckets that have refilled and returns their memory.
    fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Buckets held now (an estimate under concurrent checks).
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

/// `Retry-After` is whole seconds: rounding down would invite a retry that
/// is refused again; zero would invite one at once.
fn whole_seconds_up(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The bucket a request draws from: the buyer's when there is one, else the
/// client's address.
pub fn subject_for(
    buyer: Option<&str>,
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Subject {
    match buyer {
        Some(sub) => Subject::Buyer(sub.to_owned()),
        None => Subject::Address(client_address(peer, headers, trusted)),
    }
}

/// The client's address. The socket's peer, unless the peer is one of
/// `trusted` (a proxy of ours): then `X-Forwarded-For`, read from the right
/// (the entries our proxies appended), names the client as its first
/// untrusted entry. Entries left of that are the client's own to write, so
/// they are never believed. An entry that is not an address stops the walk
/// at the last trusted hop; if every entry is trusted, the leftmost is the
/// client.
pub fn client_address(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut last = peer.ip().to_canonical();
    if !is_trusted(&last) {
        return last;
    }
    // Later header instances were appended after earlier ones, so the
    // rightmost entry is the last instance's last.
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return last;
        };
        for entry in value.rsplit(',') {
            let Some(ip) = parse_entry(entry) else {
                return last;
            };
            if !is_trusted(&ip) {
                return ip;
            }
            last = ip;
        }
    }
    last
}

/// One `X-Forwarded-For` entry: an address, or an address with a port (as
/// some proxies write it), IPv4-mapped IPv6 read as IPv4.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

impl RateLimiter {
    /// Spends one token of the request's bucket: the verified buyer's
    /// (`buyer`), else the client address's (`trusted`: the proxies whose
    /// `X-Forwarded-For` is believed). Called by the `Buyer` extractor,
    /// which runs before the body is read, so a refused request costs no
    /// parsing and records nothing.
    pub fn throttle(
        &self,
        parts: &Parts,
        trusted: &[IpNet],
        buyer: Option<&str>,
    ) -> Result<(), ApiError> {
        // The server inserts the peer into every request (server.rs); a
        // router served some other way shares one bucket rather than none.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |info| info.0);
        self.check(&subject_for(buyer, peer, &parts.headers, trusted))
    }
}

#[cfg(test)]
mod tests;
