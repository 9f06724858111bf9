//! How a buyer sends a command and waits for a sale to open: a 429 waits
//! its `Retry-After`, a hold refused `sale_not_started` waits for the
//! start, then the same request goes again; before an opening every
//! buyer is connected and fires a little early, as a crowd does.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hyper::{StatusCode, header::HeaderValue};

use crate::{
    client::{Answer, Api, PreparedPost, problem_code, starts_at},
    config::{
        DROP_CONNECT_AHEAD, DROP_EARLY, DROP_LATE, MAX_NOT_STARTED_RETRIES,
        MAX_RATE_LIMITED_RETRIES, SALE_NOT_STARTED,
    },
};

/// What a request waited through before the answer that stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Waits {
    /// 429s honored.
    pub(crate) rate_limited: usize,
    /// `sale_not_started` refusals honored.
    pub(crate) not_started: usize,
}

/// A request's answer that stands, and when its attempt went out.
pub(crate) struct Sent {
    pub(crate) answer: Answer,
    /// When the attempt that got `answer` was sent (`first` for the first).
    pub(crate) sent: Instant,
    pub(crate) answered: Instant,
    pub(crate) waits: Waits,
}

/// Sends `post` as the buyer `auth` until an answer stands: a 429 or a
/// `sale_not_started` is honored and sent again (a bounded number of
/// times). The first attempt counts from `first` (its due time when the
/// load is paced).
pub(crate) async fn send_patiently(
    api: &mut Api,
    post: &PreparedPost,
    auth: Option<&HeaderValue>,
    first: Instant,
) -> Sent {
    let mut waits = Waits::default();
    let mut sent = first;
    loop {
        let answer = api.post_as(post, auth).await;
        let answered = Instant::now();
        let pause = match &answer {
            Answer::Http {
                status,
                retry_after,
                ..
            } if *status == StatusCode::TOO_MANY_REQUESTS
                && waits.rate_limited < MAX_RATE_LIMITED_RETRIES =>
            {
                waits.rate_limited += 1;
                Duration::from_secs(retry_after.unwrap_or(1).max(1))
            }
            Answer::Http {
                status,
                body,
                retry_after,
                ..
            } if *status == StatusCode::CONFLICT
                && problem_code(body.as_ref()) == Some(SALE_NOT_STARTED)
                && waits.not_started < MAX_NOT_STARTED_RETRIES =>
            {
                waits.not_started += 1;
                until_start(starts_at(body.as_ref()), *retry_after, Utc::now())
            }
            _ => {
                return Sent {
                    answer,
                    sent,
                    answered,
                    waits,
                };
            }
        };
        tokio::time::sleep(pause).await;
        sent = Instant::now();
    }
}

/// How long a buyer refused `sale_not_started` waits: until just past the
/// problem's `starts_at` (`Retry-After` is that rounded up to whole
/// seconds, and a buyer at a drop does not lose the rest of a second),
/// never longer than `Retry-After`.
fn until_start(
    starts: Option<DateTime<Utc>>,
    retry_after: Option<u64>,
    now: DateTime<Utc>,
) -> Duration {
    let cap = Duration::from_secs(retry_after.unwrap_or(1).max(1));
    match starts {
        Some(starts) => (starts - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .saturating_add(Duration::from_millis(1))
            .min(cap),
        None => cap,
    }
}

/// A sale opening at a known time (`--sale-starts-in`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Opening {
    pub(crate) wall: DateTime<Utc>,
    /// The same moment on the monotonic clock.
    pub(crate) at: Instant,
}

impl Opening {
    pub(crate) fn new(wall: DateTime<Utc>) -> Self {
        let (now_wall, now) = (Utc::now(), Instant::now());
        let at = match (wall - now_wall).to_std() {
            Ok(ahead) => now + ahead,
            Err(_) => now
                .checked_sub((now_wall - wall).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(now),
        };
        Self { wall, at }
    }

    /// When buyer `n` first fires: spread evenly (a golden-ratio sequence,
    /// deterministic) from DROP_EARLY before the opening to DROP_LATE after.
    pub(crate) fn fire_at(&self, n: usize) -> Instant {
        let u = (n as f64 * 0.618_033_988_749_894_9).fract();
        let offset = (DROP_EARLY + DROP_LATE).mul_f64(u);
        let earliest = self.at.checked_sub(DROP_EARLY).unwrap_or(self.at);
        earliest + offset
    }

    /// When a client opens its connections, ahead of its first buyer.
    fn connect_at(&self) -> Instant {
        self.at
            .checked_sub(DROP_EARLY + DROP_CONNECT_AHEAD)
            .unwrap_or(self.at)
    }

    /// Milliseconds from the opening to `t` (negative before it).
    pub(crate) fn ms_to(&self, t: Instant) -> f64 {
        match t.checked_duration_since(self.at) {
            Some(after) => after.as_secs_f64() * 1000.0,
            None => -(self.at - t).as_secs_f64() * 1000.0,
        }
    }

    /// The same for a server time (`completed_at`; same host, same clock).
    pub(crate) fn ms_to_wall(&self, t: DateTime<Utc>) -> f64 {
        (t - self.wall)
            .num_microseconds()
            .map_or(0.0, |us| us as f64 / 1000.0)
    }
}

/// Before a client's first buyer of an opening: waits until shortly before
/// it, then opens the client's connections, so every buyer is connected
/// and waiting when the sale opens.
pub(crate) async fn connect_ahead(opening: Option<Opening>, conns: &mut [Api]) {
    let Some(opening) = opening else {
        return;
    };
    tokio::time::sleep_until(opening.connect_at().into()).await;
    for conn in conns {
        // A failed open is retried by the first request, which reports it.
        let _ = conn.open().await;
    }
}

/// Buyer `n`'s turn: at once, or at its moment around the opening.
pub(crate) async fn wait_turn(opening: Option<Opening>, n: usize) {
    if let Some(opening) = opening {
        tokio::time::sleep_until(opening.fire_at(n).into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_buyer_waits_for_the_start_within_retry_after() {
        let now = Utc::now();
        let starts = now + chrono::Duration::milliseconds(250);
        assert_eq!(
            until_start(Some(starts), Some(1), now),
            Duration::from_millis(251)
        );
        // Already open by our clock: straight away (1 ms).
        let past = now - chrono::Duration::seconds(1);
        assert_eq!(
            until_start(Some(past), Some(1), now),
            Duration::from_millis(1)
        );
        // No starts_at: Retry-After, at least a second.
        assert_eq!(until_start(None, Some(3), now), Duration::from_secs(3));
        assert_eq!(until_start(None, None, now), Duration::from_secs(1));
        // A starts_at far off is capped by Retry-After.
        let far = now + chrono::Duration::seconds(60);
        assert_eq!(until_start(Some(far), Some(2), now), Duration::from_secs(2));
    }

    #[test]
    fn buyers_fire_around_the_opening() {
        let opening = Opening::new(Utc::now() + chrono::Duration::seconds(10));
        let offsets: Vec<f64> = (0..1000)
            .map(|n| opening.ms_to(opening.fire_at(n)))
            .collect();
        let early = DROP_EARLY.as_secs_f64() * 1000.0;
        let late = DROP_LATE.as_secs_f64() * 1000.0;
        assert!(
            offsets
                .iter()
                .all(|&ms| ms >= -early - 1.0 && ms < late + 1.0)
        );
        let before = offsets.iter().filter(|&&ms| ms < 0.0).count();
        // The share before the opening is EARLY / (EARLY + LATE).
        let expected = 1000.0 * early / (early + late);
        assert!((before as f64 - expected).abs() < 20.0, "{before}");
        assert!(opening.ms_to(opening.connect_at()) < -early);
        let wall = opening.wall + chrono::Duration::milliseconds(12);
        assert_eq!(opening.ms_to_wall(wall), 12.0);
    }
}
