//! Property tests for the pure parts of the library: the webhook signature
//! check, command (de)serialisation, idempotency keys and fingerprints, wire
//! timestamps and the api's constant-time comparison. No database, no broker.
//!
//! Failures are not persisted (`failure_persistence: None`) so a failing run
//! never writes a `proptest-regressions` file into the tree; proptest prints
//! the minimal failing input instead.

use chrono::{DateTime, Utc};
use flash_sale::{
    api::constant_time_eq,
    commands::{Command, HoldRequest, OrderRequest, PaymentRequest, SweepRequest},
    domain::idempotency::{IdempotencyKey, MAX_KEY_CHARS, fingerprint},
    signature::{SignatureError, TOLERANCE_SECS, sign, verify},
    time,
};
use proptest::prelude::*;
use uuid::Uuid;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any i64, with the edges (and their neighbours) drawn often.
fn edgy_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => any::<i64>(),
        1 => prop::sample::select(vec![
            i64::MIN,
            i64::MIN + 1,
            i64::MIN + TOLERANCE_SECS,
            -1,
            0,
            1,
            1_800_000_000,
            i64::MAX - TOLERANCE_SECS,
            i64::MAX - 1,
            i64::MAX,
        ]),
        1 => -2_000_000_000i64..=4_000_000_000,
    ]
}

/// Bytes that are often valid UTF-8 / JSON-ish, sometimes arbitrary.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        "(?s).{0,128}".prop_map(String::into_bytes),
    ]
}

/// Two secrets that are different HMAC keys. HMAC zero-pads short keys to the
/// block size, so "k" and "k\0" are the *same* key; such pairs are excluded.
fn distinct_secrets() -> impl Strategy<Value = (String, String)> {
    ("(?s).{0,80}", "(?s).{0,80}").prop_filter("same HMAC key", |(a, b)| {
        a.trim_end_matches('\0') != b.trim_end_matches('\0')
    })
}

/// Header-shaped strings: comma-separated `name=value` parts built from the
/// pieces verify looks for, with stray whitespace, so the fuzzing reaches past
/// the first split.
fn header_like() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("t".to_owned()),
        Just("v1".to_owned()),
        Just(" t ".to_owned()),
        Just("v0".to_owned()),
        "[a-z0-9 ]{0,4}",
    ];
    let value = prop_oneof![
        edgy_i64().prop_map(|n| n.to_string()),
        "[0-9a-fA-F]{0,70}",
        "-?[0-9]{18,22}",
        "(?s).{0,12}",
    ];
    let part = prop_oneof![
        8 => (name, value, any::<bool>()).prop_map(|(n, v, eq)| {
            if eq { format!("{n}={v}") } else { format!("{n}{v}") }
        }),
        1 => "(?s).{0,8}",
    ];
    prop::collection::vec(part, 0..6).prop_map(|parts| parts.join(","))
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Anonymous, or any customer id a token's `sub` may carry (quotes,
/// controls and non-ASCII included).
fn customer() -> impl Strategy<Value = Option<String>> {
    prop::option::of("(?s).{1,40}")
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (uuid(), edgy_i64(), edgy_i64(), customer()).prop_map(
            |(job_id, product_id, qty, customer_id)| Command::Hold(HoldRequest {
                job_id,
                product_id,
                qty,
                customer_id,
            })
        ),
        (uuid(), uuid(), customer()).prop_map(|(job_id, hold_id, customer_id)| Command::Order(
            OrderRequest {
                job_id,
                hold_id,
                customer_id
            }
        )),
        (uuid(), uuid())
            .prop_map(|(job_id, order_id)| Command::Payment(PaymentRequest { job_id, order_id })),
        edgy_i64().prop_map(|product_id| Command::Sweep(SweepRequest { product_id })),
    ]
}

/// JSON objects shaped like commands but with random types, values and
/// extra or missing fields.
fn command_like_json() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(vec![
        "type",
        "job_id",
        "product_id",
        "qty",
        "hold_id",
        "order_id",
        "extra",
    ]);
    let value = prop_oneof![
        prop::sample::select(vec!["hold", "order", "payment", "sweep", "nuke"])
            .prop_map(serde_json::Value::from),
        uuid().prop_map(|u| serde_json::Value::from(u.to_string())),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        "(?s).{0,40}".prop_map(serde_json::Value::from),
    ];
    prop::collection::vec((key, value), 0..7).prop_map(|fields| {
        let map: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        serde_json::Value::Object(map).to_string().into_bytes()
    })
}

/// Strings around the 255-character limit, often (partly) whitespace.
fn key_candidate() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(vec![
            ' ', '\t', '\n', '\r', '\u{0B}', '\u{0C}', '\u{85}', '\u{A0}', '\u{2028}',
            '\u{3000}', '\u{FEFF}', '\u{200B}', 'k', 'é',
        ]),
    ];
    prop_oneof![
        any::<String>(),
        prop::collection::vec(ch.clone(), 0..=300).prop_map(|c| c.into_iter().collect()),
        prop::collection::vec(ch, 250..=260).prop_map(|c| c.into_iter().collect()),
        (
            0usize..=300,
            prop::sample::select(vec![' ', '\u{3000}', 'k', 'é', '😀'])
        )
            .prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
    ]
}

/// RFC 3339 only has four-digit years 0000..=9999.
const RFC3339_MIN_MS: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
const RFC3339_MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

fn assert_millis_shape(s: &str) -> Result<(), TestCaseError> {
    prop_assert!(s.ends_with('Z'), "{s:?} does not end with Z");
    let body = &s[..s.len() - 1];
    let (_, frac) = body
        .rsplit_once('.')
        .ok_or_else(|| TestCaseError::fail(format!("{s:?} has no fraction")))?;
    prop_assert_eq!(frac.len(), 3, "{:?} fraction is not 3 digits", s);
    prop_assert!(frac.bytes().all(|b| b.is_ascii_digit()), "{:?}", s);
    Ok(())
}

// ---------------------------------------------------------------- signature

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn verify_never_panics_on_arbitrary_input(
        secret in "(?s).{0,80}",
        header in proptest::option::of("(?s).{0,200}"),
        body in body(),
        now in edgy_i64(),
    ) {
        let _ = verify(&secret, header.as_deref(), &body, now);
    }

    #[test]
    fn verify_never_panics_on_header_like_input(
        secret in "(?s).{0,80}",
        header in header_like(),
        body in body(),
        now in edgy_i64(),
    ) {
        let result = verify(&secret, Some(&header), &body, now);
        // A header without both a t and a v1 can never be accepted.
        if !header.contains("t") || !header.contains("v1") {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn missing_header_is_missing(secret in "(?s).{0,40}", body in body(), now in edgy_i64()) {
        prop_assert_eq!(verify(&secret, None, &body, now), Err(SignatureError::Missing));
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn signed_within_tolerance_verifies(
        secret in "(?s).{0,80}",
        body in body(),
        t in edgy_i64(),
        delta in -TOLERANCE_SECS..=TOLERANCE_SECS,
    ) {
        // Near the i64 edges, saturate: |now - t| only shrinks.
        let now = t.saturating_add(delta);
        prop_assert!(now.abs_diff(t) <= TOLERANCE_SECS.unsigned_abs());
        let header = sign(&secret, t, &body);
        prop_assert_eq!(verify(&secret, Some(&header), &body, now), Ok(()));
    }

    #[test]
    fn extra_and_unknown_parts_do_not_hide_a_good_signature(
        secret in "(?s).{0,40}",
        body in body(),
        t in edgy_i64(),
        junk in "[0-9a-f]{0,32}",
    ) {
        let junk = if junk.len() % 2 == 1 { &junk[1..] } else { &junk[..] };
        let header = format!(" v1={junk} , {} ,v9=whatever", sign(&secret, t, &body));
        prop_assert_eq!(verify(&secret, Some(&header), &body, t), Ok(()));
    }

    #[test]
    fn any_single_byte_change_of_the_body_is_a_mismatch(
        secret in "(?s).{0,40}",
        body in prop::collection::vec(any::<u8>(), 1..256),
        t in edgy_i64(),
        index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let header = sign(&secret, t, &body);
        let mut tampered = body.clone();
        let i = index.index(tampered.len());
        tampered[i] ^= flip;
        prop_assert_eq!(
            verify(&secret, Some(&header), &tampered, t),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn appended_or_truncated_body_is_a_mismatch(
        secret in "(?s).{0,40}",
        body in prop::collection::vec(any::<u8>(), 1..128),
        extra in any::<u8>(),
        t in edgy_i64(),
    ) {
        let header = sign(&secret, t, &body);
        let mut longer = body.clone();
        longer.push(extra);
        prop_assert_eq!(
            verify(&secret, Some(&header), &longer, t),
            Err(SignatureError::Mismatch)
        );
        prop_assert_eq!(
            verify(&secret, Some(&header), &body[..body.len() - 1], t),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_different_secret_is_a_mismatch(
        (secret, other) in distinct_secrets(),
        body in body(),
        t in edgy_i64(),
    ) {
        let header = sign(&secret, t, &body);
        prop_assert_eq!(
            verify(&other, Some(&header), &body, t),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_different_timestamp_is_a_mismatch(
        secret in "(?s).{0,40}",
        body in body(),
        t in edgy_i64(),
        claimed in edgy_i64(),
    ) {
        prop_assume!(t != claimed);
        // Re-label a good signature with another t (a replay with a fresh t).
        let good = sign(&secret, t, &body);
        let v1 = good.split_once(",v1=").map(|(_, v)| v).unwrap_or_default();
        let forged = format!("t={claimed},v1={v1}");
        prop_assert_eq!(
            verify(&secret, Some(&forged), &body, claimed),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn outside_tolerance_is_stale(
        secret in "(?s).{0,40}",
        body in body(),
        t in edgy_i64(),
        now in edgy_i64(),
    ) {
        prop_assume!(now.abs_diff(t) > TOLERANCE_SECS.unsigned_abs());
        let header = sign(&secret, t, &body);
        prop_assert_eq!(
            verify(&secret, Some(&header), &body, now),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn just_outside_tolerance_is_stale(
        secret in "(?s).{0,40}",
        body in body(),
        t in edgy_i64(),
        offset in (TOLERANCE_SECS + 1)..=10_000,
        future in any::<bool>(),
    ) {
        let now = if future { t.checked_add(offset) } else { t.checked_sub(offset) };
        prop_assume!(now.is_some());
        let now = now.unwrap_or_default();
        let header = sign(&secret, t, &body);
        prop_assert_eq!(
            verify(&secret, Some(&header), &body, now),
            Err(SignatureError::Stale)
        );
    }
}

#[test]
fn tolerance_edges_at_the_i64_extremes() {
    let body = br#"{"id":"evt_1"}"#;
    for t in [i64::MIN, i64::MIN + 1, 0, i64::MAX - 1, i64::MAX] {
        let header = sign("s", t, body);
        assert_eq!(verify("s", Some(&header), body, t), Ok(()), "t={t}");
        for now in [i64::MIN, i64::MAX] {
            let expected = if now.abs_diff(t) <= 300 {
                Ok(())
            } else {
                Err(SignatureError::Stale)
            };
            assert_eq!(
                verify("s", Some(&header), body, now),
                expected,
                "t={t} now={now}"
            );
        }
        if let Some(now) = t.checked_add(300) {
            assert_eq!(verify("s", Some(&header), body, now), Ok(()), "t={t} +300");
        }
        if let Some(now) = t.checked_sub(300) {
            assert_eq!(verify("s", Some(&header), body, now), Ok(()), "t={t} -300");
        }
        if let Some(now) = t.checked_add(301) {
            let got = verify("s", Some(&header), body, now);
            assert_eq!(got, Err(SignatureError::Stale), "t={t} +301");
        }
        if let Some(now) = t.checked_sub(301) {
            let got = verify("s", Some(&header), body, now);
            assert_eq!(got, Err(SignatureError::Stale), "t={t} -301");
        }
    }
}

// ----------------------------------------------------------------- commands

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Command::decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_command_like_json(bytes in command_like_json()) {
        if let Ok(cmd) = Command::decode(&bytes) {
            // Whatever decodes re-encodes to something that decodes the same.
            prop_assert_eq!(Command::decode(&cmd.encode()).ok(), Some(cmd));
        }
    }

    #[test]
    fn encode_then_decode_round_trips(cmd in command()) {
        let bytes = cmd.encode();
        prop_assert!(!bytes.is_empty());
        prop_assert_eq!(Command::decode(&bytes).ok(), Some(cmd));
    }

    #[test]
    fn partition_is_in_range(cmd in command(), partitions in 1u16..=u16::MAX) {
        let p = cmd.partition(partitions);
        prop_assert!(p < partitions, "{p} >= {partitions}");
        prop_assert_eq!(p, cmd.partition(partitions));
    }
}

// -------------------------------------------------------------- idempotency

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn idempotency_key_accepts_exactly_1_to_255_non_blank_chars(raw in key_candidate()) {
        let chars = raw.chars().count();
        let blank = raw.chars().all(char::is_whitespace);
        let expected_ok = (1..=MAX_KEY_CHARS).contains(&chars) && !blank;
        match IdempotencyKey::parse(&raw) {
            Ok(key) => {
                prop_assert!(expected_ok, "accepted {chars} chars, blank={blank}: {raw:?}");
                prop_assert_eq!(key.as_str(), raw.as_str());
            }
            Err(_) => {
                prop_assert!(!expected_ok, "rejected {chars} chars, blank={blank}: {raw:?}");
            }
        }
    }

    #[test]
    fn fingerprint_is_deterministic(parts in prop::collection::vec("(?s).{0,40}", 0..6)) {
        let a: Vec<&str> = parts.iter().map(String::as_str).collect();
        let copy = parts.clone();
        let b: Vec<&str> = copy.iter().map(String::as_str).collect();
        prop_assert_eq!(fingerprint(&a), fingerprint(&b));
        prop_assert_eq!(fingerprint(&a), fingerprint(&a));
    }

    #[test]
    fn fingerprint_separates_different_part_lists(
        a in prop::collection::vec("[ab]{0,3}", 0..4),
        b in prop::collection::vec("[ab]{0,3}", 0..4),
    ) {
        // Small alphabet so concatenations often coincide ("ab","" vs "a","b").
        let fa = fingerprint(&a.iter().map(String::as_str).collect::<Vec<_>>());
        let fb = fingerprint(&b.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(a == b, fa == fb, "{:?} vs {:?}", a, b);
    }
}

// --------------------------------------------------------------------- time

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn format_always_has_millis_and_z(
        ms in DateTime::<Utc>::MIN_UTC.timestamp_millis()..=DateTime::<Utc>::MAX_UTC.timestamp_millis(),
    ) {
        let at = DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| TestCaseError::fail(format!("{ms} out of chrono's range")))?;
        assert_millis_shape(&time::format(&at))?;
    }

    #[test]
    fn format_round_trips_through_rfc3339(
        ms in prop_oneof![
            RFC3339_MIN_MS..=RFC3339_MAX_MS,
            prop::sample::select(vec![RFC3339_MIN_MS, -1, 0, 1, RFC3339_MAX_MS]),
            0i64..=4_102_444_800_000, // 1970..2100
        ],
    ) {
        let at = DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| TestCaseError::fail(format!("{ms} out of chrono's range")))?;
        let s = time::format(&at);
        assert_millis_shape(&s)?;
        let back = DateTime::parse_from_rfc3339(&s)
            .map_err(|e| TestCaseError::fail(format!("{s:?}: {e}")))?;
        prop_assert_eq!(back.timestamp_millis(), ms, "{}", s);
        prop_assert_eq!(back.with_timezone(&Utc), at);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Outside years 0000..=9999 chrono writes a signed, longer year
    /// ("+10000-…", "-0001-…") that is not RFC 3339 and does not parse back.
    /// Kept as a record of that limit: run with `--ignored` to see it fail.
    #[test]
    #[ignore = "time::format is not RFC 3339 outside years 0000..=9999"]
    fn format_round_trips_over_chrono_full_range(
        ms in DateTime::<Utc>::MIN_UTC.timestamp_millis()..=DateTime::<Utc>::MAX_UTC.timestamp_millis(),
    ) {
        let at = DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| TestCaseError::fail(format!("{ms} out of chrono's range")))?;
        let s = time::format(&at);
        let back = DateTime::parse_from_rfc3339(&s)
            .map_err(|e| TestCaseError::fail(format!("{ms} -> {s:?}: {e}")))?;
        prop_assert_eq!(back.timestamp_millis(), ms);
    }
}

// ---------------------------------------------------------------------- api

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn constant_time_eq_is_true_for_equal_slices(a in prop::collection::vec(any::<u8>(), 0..128)) {
        let b = a.clone();
        prop_assert!(constant_time_eq(&a, &b));
    }

    #[test]
    fn constant_time_eq_is_false_when_one_byte_differs(
        a in prop::collection::vec(any::<u8>(), 1..128),
        index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut b = a.clone();
        let i = index.index(b.len());
        b[i] ^= flip;
        prop_assert!(!constant_time_eq(&a, &b));
        prop_assert!(!constant_time_eq(&b, &a));
    }

    #[test]
    fn constant_time_eq_is_false_for_a_prefix(
        a in prop::collection::vec(any::<u8>(), 1..128),
        cut in any::<prop::sample::Index>(),
    ) {
        let prefix = &a[..cut.index(a.len())];
        prop_assert!(!constant_time_eq(&a, prefix));
        prop_assert!(!constant_time_eq(prefix, &a));
    }

    #[test]
    fn constant_time_eq_agrees_with_eq(
        a in prop::collection::vec(0u8..4, 0..6),
        b in prop::collection::vec(0u8..4, 0..6),
    ) {
        prop_assert_eq!(constant_time_eq(&a, &b), a == b);
    }
}
