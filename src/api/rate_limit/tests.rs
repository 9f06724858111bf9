//! client_address against proxy chains and forgeries; buckets, refusals
//! and the sweep.

use axum::http::HeaderValue;

use super::*;

fn limiter(per_sec: u32, burst: u32) -> RateLimiter {
    RateLimiter::new(Some(RateLimit { per_sec, burst })).expect("a limit is configured")
}

fn retry_after(result: Result<(), ApiError>) -> u64 {
    match result {
        Err(ApiError::RetryAfter(problem, secs)) => {
            assert_eq!(problem.code, "rate_limited");
            assert_eq!(problem.status, 429);
            secs
        }
        other => panic!("expected a rate limit refusal, got {other:?}"),
    }
}

fn xff(values: &[&'static str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append("x-forwarded-for", HeaderValue::from_static(value));
    }
    headers
}

fn nets(items: &[&str]) -> Vec<IpNet> {
    items.iter().map(|n| n.parse().expect("net")).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn peer(s: &str) -> SocketAddr {
    SocketAddr::new(ip(s), 40000)
}

#[test]
fn off_means_no_limiter() {
    assert!(RateLimiter::new(None).is_none());
}

#[test]
fn a_burst_then_refusal_with_retry_after() {
    let limiter = limiter(1, 3);
    let buyer = Subject::Buyer("b".into());
    for _ in 0..3 {
        assert!(limiter.check(&buyer).is_ok());
    }
    // One token a second: the next is under a second away.
    assert_eq!(retry_after(limiter.check(&buyer)), 1);
    assert_eq!(retry_after(limiter.check(&buyer)), 1);
}

#[test]
fn buckets_are_independent() {
    let limiter = limiter(1, 2);
    let a = Subject::Buyer("a".into());
    for _ in 0..2 {
        assert!(limiter.check(&a).is_ok());
    }
    assert!(limiter.check(&a).is_err());
    assert!(limiter.check(&Subject::Buyer("b".into())).is_ok());
    // A buyer's sub that looks like an address is still a buyer.
    assert!(limiter.check(&Subject::Buyer("127.0.0.1".into())).is_ok());
    assert!(limiter.check(&Subject::Address(ip("127.0.0.1"))).is_ok());
    assert!(limiter.check(&a).is_err());
}

#[test]
fn retry_after_is_whole_seconds_rounded_up() {
    assert_eq!(whole_seconds_up(Duration::ZERO), 1);
    assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
    assert_eq!(whole_seconds_up(Duration::from_secs(1)), 1);
    assert_eq!(whole_seconds_up(Duration::from_millis(1001)), 2);
    assert_eq!(whole_seconds_up(Duration::from_secs(7)), 7);
}

#[test]
fn refilled_buckets_are_swept() {
    // A token a millisecond: every bucket is full again 2 ms later.
    let limiter = limiter(1000, 1);
    for n in 0..SWEEP_EVERY - 1 {
        let subject = Subject::Address(IpAddr::from((n as u32).to_be_bytes()));
        assert!(limiter.check(&subject).is_ok());
    }
    assert_eq!(limiter.len(), SWEEP_EVERY as usize - 1);
    // Not a guess at a delay: past this, each bucket has refilled.
    std::thread::sleep(Duration::from_millis(5));
    // The SWEEP_EVERY-th check sweeps before taking its own token.
    assert!(limiter.check(&Subject::Buyer("last".into())).is_ok());
    assert_eq!(limiter.len(), 1);
}

#[test]
fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
    let trusted = nets(&["10.0.0.0/8"]);
    let headers = xff(&["10.1.1.1, 198.51.100.7"]);
    assert_eq!(
        client_address(peer("203.0.113.9"), &headers, &trusted),
        ip("203.0.113.9")
    );
    assert_eq!(
        client_address(peer("203.0.113.9"), &headers, &[]),
        ip("203.0.113.9")
    );
}

#[test]
fn a_trusted_peer_without_the_header_is_the_client() {
    let trusted = nets(&["10.0.0.0/8"]);
    assert_eq!(
        client_address(peer("10.0.0.2"), &HeaderMap::new(), &trusted),
        ip("10.0.0.2")
    );
}

#[test]
fn the_first_untrusted_entry_from_the_right_is_the_client() {
    let trusted = nets(&["10.0.0.0/8", "192.0.2.1/32"]);
    let headers = xff(&["198.51.100.7, 10.0.0.5, 192.0.2.1"]);
    assert_eq!(
        client_address(peer("10.0.0.2"), &headers, &trusted),
        ip("198.51.100.7")
    );
}

#[test]
fn spoofed_left_entries_are_not_believed() {
    let trusted = nets(&["10.0.0.0/8"]);
    // The client wrote the first two; our proxy appended its peer.
    let headers = xff(&["1.2.3.4, 10.9.9.9, 203.0.113.50"]);
    assert_eq!(
        client_address(peer("10.0.0.2"), &headers, &trusted),
        ip("203.0.113.50")
    );
}

#[test]
fn every_header_instance_counts_the_last_one_rightmost() {
    let trusted = nets(&["10.0.0.0/8"]);
    let headers = xff(&["198.51.100.1", "198.51.100.2, 10.0.0.3", "10.0.0.4"]);
    assert_eq!(
        client_address(peer("10.0.0.2"), &headers, &trusted),
        ip("198.51.100.2")
    );
    let headers = xff(&["198.51.100.1", "10.0.0.3", "10.0.0.4"]);
    assert_eq!(
        client_address(peer("10.0.0.2"), &headers, &trusted),
        ip("198.51.100.1")
    );
}

#[test]
fn all_trusted_means_the_leftmost() {
    let trusted = nets(&["10.0.0.0/8"]);
    let headers = xff(&["10.0.0.7, 10.0.0.8"]);
    assert_eq!(
        client_address(peer("10.0.0.2"), &headers, &trusted),
        ip("10.0.0.7")
    );
}

#[test]
fn garbage_stops_at_the_last_trusted_hop() {
    let trusted = nets(&["10.0.0.0/8"]);
    for value in [
        "198.51.100.7, unknown, 10.0.0.5",
        "198.51.100.7, , 10.0.0.5",
        "198.51.100.7, 999.1.1.1, 10.0.0.5",
    ] {
        let headers = xff(&[Box::leak(value.to_owned().into_boxed_str())]);
        assert_eq!(
            client_address(peer("10.0.0.2"), &headers, &trusted),
            ip("10.0.0.5"),
            "{value}"
        );
    }
    // Garbage in the peer's own entry: the peer is the last trusted hop.
    let headers = xff(&["198.51.100.7, garbage"]);
    assert_eq!(
        client_address(peer("10.0.0.2"), &headers, &trusted),
        ip("10.0.0.2")
    );
    let mut headers = HeaderMap::new();
    headers.append(
        "x-forwarded-for",
        HeaderValue::from_bytes(b"198.51.100.7\xff").expect("opaque bytes"),
    );
    assert_eq!(
        client_address(peer("10.0.0.2"), &headers, &trusted),
        ip("10.0.0.2")
    );
}

#[test]
fn ipv4_mapped_addresses_are_ipv4() {
    let trusted = nets(&["127.0.0.1/32"]);
    let headers = xff(&["::ffff:198.51.100.7, ::ffff:127.0.0.1"]);
    assert_eq!(
        client_address(peer("::ffff:127.0.0.1"), &headers, &trusted),
        ip("198.51.100.7")
    );
    assert_eq!(
        client_address(peer("::ffff:203.0.113.9"), &HeaderMap::new(), &[]),
        ip("203.0.113.9")
    );
}

#[test]
fn entries_with_ports_are_addresses() {
    let trusted = nets(&["10.0.0.0/8"]);
    let headers = xff(&["198.51.100.7:5555, [2001:db8::1]:443, 10.0.0.5:80"]);
    assert_eq!(
        client_address(peer("10.0.0.2"), &headers, &trusted),
        ip("2001:db8::1")
    );
}

#[test]
fn a_buyer_is_their_own_subject_else_the_address() {
    let headers = xff(&["198.51.100.7"]);
    let trusted = nets(&["127.0.0.1/32"]);
    assert_eq!(
        subject_for(Some("buyer-1"), peer("127.0.0.1"), &headers, &trusted),
        Subject::Buyer("buyer-1".into())
    );
    assert_eq!(
        subject_for(None, peer("127.0.0.1"), &headers, &trusted),
        Subject::Address(ip("198.51.100.7"))
    );
}
