//! The buyers' options: who they are (tokens), how hard each one pushes
//! (holds per buyer), and the product's rules loadgen sets for the run (a
//! per-customer limit, an opening time).

use anyhow::ensure;

/// The longest wait `--sale-starts-in` may ask for: a benchmark, not a
/// real drop.
const MAX_SALE_STARTS_IN_SECS: f64 = 3600.0;
/// Each of a buyer's holds has a connection of its own.
const MAX_HOLDS_PER_BUYER: usize = 64;

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct BuyerArgs {
    /// HS256 key of the buyers' tokens (the api's BUYER_JWT_SECRET): each
    /// simulated buyer gets a token of its own (`sub` loadgen-<run>-<n>,
    /// valid 1 h), signed once and sent on its holds and orders. Unset:
    /// anonymous buyers. Pipeline only: the baseline has no buyers.
    #[arg(long, env = "BUYER_JWT_SECRET", hide_env_values = true)]
    pub(crate) jwt_secret: Option<String>,
    /// `aud` claim of the tokens (the api's BUYER_JWT_AUDIENCE).
    #[arg(long, env = "BUYER_JWT_AUDIENCE")]
    pub(crate) jwt_audience: Option<String>,
    /// Hold requests each buyer fires at once, each on a connection of its
    /// own (a crowd of eager buyers); --requests counts buyers, so a run
    /// sends requests × K holds.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub(crate) holds_per_buyer: usize,
    /// Set the product's max_per_customer to N (on the fresh product, or by
    /// PATCH on --product) and check at the end that no buyer was granted
    /// more than N units. Needs --jwt-secret and --mode pipeline.
    #[arg(long, value_name = "N")]
    pub(crate) max_per_customer: Option<i64>,
    /// Open the sale SECS seconds from now (the product's sale_starts_at):
    /// every buyer connects and waits, fires a little before the opening,
    /// and when refused `sale_not_started` waits for the start and tries
    /// again. Needs --mode pipeline.
    #[arg(long, value_name = "SECS")]
    pub(crate) sale_starts_in: Option<f64>,
}

impl BuyerArgs {
    pub(crate) fn validate(&self, pipeline: bool, qty: i64) -> anyhow::Result<()> {
        ensure!(
            (1..=MAX_HOLDS_PER_BUYER).contains(&self.holds_per_buyer),
            "--holds-per-buyer must be between 1 and {MAX_HOLDS_PER_BUYER}"
        );
        if let Some(secret) = &self.jwt_secret {
            ensure!(!secret.is_empty(), "--jwt-secret must not be empty");
        }
        ensure!(
            self.jwt_audience.is_none() || self.jwt_secret.is_some(),
            "--jwt-audience needs --jwt-secret (or BUYER_JWT_SECRET)"
        );
        if let Some(max) = self.max_per_customer {
            ensure!(max >= 1, "--max-per-customer must be at least 1");
            ensure!(
                self.jwt_secret.is_some(),
                "--max-per-customer needs --jwt-secret (or BUYER_JWT_SECRET): a limited \
                 product refuses holds without a buyer token"
            );
            ensure!(
                qty <= max,
                "--qty {qty} is over --max-per-customer {max}: every hold would be refused"
            );
            ensure!(
                pipeline,
                "--max-per-customer needs --mode pipeline: the baseline ignores the limit"
            );
        }
        if let Some(secs) = self.sale_starts_in {
            ensure!(
                secs.is_finite() && secs > 0.0 && secs <= MAX_SALE_STARTS_IN_SECS,
                "--sale-starts-in must be a number of seconds in (0, {MAX_SALE_STARTS_IN_SECS}]"
            );
            ensure!(
                pipeline,
                "--sale-starts-in needs --mode pipeline: the baseline ignores the sale window"
            );
        }
        Ok(())
    }

    /// Whether the run reports on its buyers (tokens, several holds each,
    /// or product rules set by loadgen).
    pub(crate) fn any(&self) -> bool {
        self.jwt_secret.is_some()
            || self.holds_per_buyer > 1
            || self.max_per_customer.is_some()
            || self.sale_starts_in.is_some()
    }
}
