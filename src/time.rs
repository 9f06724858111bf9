//! Timestamps on the wire: RFC 3339, UTC, millisecond precision.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

pub fn format(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `#[serde(serialize_with = "time::millis")]`
pub fn millis<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(at))
}

/// `#[serde(serialize_with = "time::millis_opt")]`
pub fn millis_opt<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => s.serialize_str(&format(at)),
        None => s.serialize_none(),
    }
}

/// Now, cut to the millisecond the database keeps, so what a writer returns
/// equals what a later read returns.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).expect("valid");
        assert_eq!(format(&at), "2023-11-14T22:13:20.123Z");
        let whole = DateTime::from_timestamp_millis(1_700_000_000_000).expect("valid");
        assert_eq!(format(&whole), "2023-11-14T22:13:20.000Z");
    }
}
