//! How a buyer settles its order: pay `success`, pay `failed`, or never.

/// How a buyer settles its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Intent {
    Success,
    Failed,
    Abandon,
}

impl Intent {
    /// The order status this intent must end in.
    pub(super) fn expected_status(self) -> &'static str {
        match self {
            Intent::Success => "paid",
            Intent::Failed => "canceled",
            Intent::Abandon => "pending",
        }
    }

    pub(super) fn webhook_status(self) -> Option<&'static str> {
        match self {
            Intent::Success => Some("success"),
            Intent::Failed => Some("failed"),
            Intent::Abandon => None,
        }
    }
}

/// The intent of the k-th order created (0-based): a golden-ratio sequence
/// spreads the shares evenly over the run and is deterministic, so any
/// prefix of the orders has about the requested shares.
pub(super) fn pay_intent(k: usize, fail_share: f64, abandon_share: f64) -> Intent {
    let u = (k as f64 * 0.618_033_988_749_894_9).fract();
    if u < fail_share {
        Intent::Failed
    } else if u < fail_share + abandon_share {
        Intent::Abandon
    } else {
        Intent::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pay_intents_follow_the_shares() {
        let n = 10_000;
        let mut counts = (0, 0, 0);
        for k in 0..n {
            match pay_intent(k, 0.1, 0.2) {
                Intent::Failed => counts.0 += 1,
                Intent::Abandon => counts.1 += 1,
                Intent::Success => counts.2 += 1,
            }
        }
        assert!((990..=1010).contains(&counts.0), "{counts:?}");
        assert!((1990..=2010).contains(&counts.1), "{counts:?}");
        // Small prefixes are spread too.
        let first: Vec<Intent> = (0..20).map(|k| pay_intent(k, 0.1, 0.1)).collect();
        assert!(first.contains(&Intent::Failed) && first.contains(&Intent::Abandon));
        assert!((0..100).all(|k| pay_intent(k, 0.0, 0.0) == Intent::Success));
        assert!((0..100).all(|k| pay_intent(k, 1.0, 0.0) == Intent::Failed));
    }
}
