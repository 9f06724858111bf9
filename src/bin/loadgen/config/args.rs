//! Command-line arguments and their validation.

use std::path::PathBuf;

use anyhow::ensure;
use clap::{Parser, ValueEnum};

use crate::config::{buyers::BuyerArgs, cost::CostArgs};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "Flash-sale load generator: C buyers race for one product over HTTP"
)]
pub(crate) struct Args {
    /// Base URL of the api (loopback addresses only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) url: String,
    /// Product to hold; when omitted a fresh product is created per mode
    /// (needs the admin token).
    #[arg(long)]
    pub(crate) product: Option<i64>,
    /// Concurrent buyers.
    #[arg(long, default_value_t = 64)]
    pub(crate) clients: usize,
    /// Total hold requests (buyers' purchases), shared by all buyers; with
    /// --holds-per-buyer K, buyers, each sending K holds.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) requests: usize,
    /// Offered load of the hold phase, in requests per second across all
    /// buyers (open loop: request i is due at i / rate, a buyer's K holds
    /// together, and its latency counts from then, so a slow answer cannot
    /// hide the queue behind it).
    /// Unset: each buyer sends its next request as soon as the last is
    /// answered.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Units per hold.
    #[arg(long, default_value_t = 1)]
    pub(crate) qty: i64,
    /// Which path to load.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    pub(crate) mode: Mode,
    /// What each buyer does: hold only, or hold + order + pay [default:
    /// full for --mode pipeline, holds otherwise; the baseline has only
    /// holds].
    #[arg(long, value_enum)]
    pub(crate) flow: Option<Flow>,
    /// Admin bearer token, used to create fresh products.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// Secret that signs the payment webhooks (full flow).
    #[arg(
        long,
        env = "WEBHOOK_SECRET",
        hide_env_values = true,
        default_value = "dev-webhook-secret"
    )]
    pub(crate) webhook_secret: String,
    /// Share of orders paid with status `failed` (full flow).
    #[arg(long, default_value_t = 0.1)]
    pub(crate) fail_share: f64,
    /// Share of orders never paid (full flow); the rest pay `success`.
    #[arg(long, default_value_t = 0.1)]
    pub(crate) abandon_share: f64,
    /// Stock of a freshly created product [default: requests * K * qty / 2,
    /// so about half the holds are granted].
    #[arg(long)]
    pub(crate) stock: Option<i64>,
    /// After the sale, fire this many extra holds at the sold-out product
    /// with the same clients (0 = off).
    #[arg(long, default_value_t = 0)]
    pub(crate) sold_out_requests: usize,
    /// Write an SVG chart of accept latency (p50/p99) over time to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) svg: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten, next_help_heading = "Buyers")]
    pub(crate) buyers: BuyerArgs,
    #[command(flatten, next_help_heading = "Cost (pipeline hold run)")]
    pub(crate) cost: CostArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// Asynchronous holds: 202 + job, then poll the jobs.
    Pipeline,
    /// Synchronous holds: 201 or 409 at once.
    Baseline,
    /// Baseline, then pipeline, then their throughput ratio.
    Both,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Pipeline => "pipeline",
            Mode::Baseline => "baseline",
            Mode::Both => "both",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Flow {
    /// Hold requests only (accept latency without `Prefer: wait`, outcomes
    /// polled): comparable with earlier benchmark numbers.
    Holds,
    /// Hold, order, then pay through the signed webhook (docs/API.md, "How a purchase works").
    Full,
}

impl Flow {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Flow::Holds => "holds",
            Flow::Full => "full",
        }
    }
}

impl Args {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.clients >= 1, "--clients must be at least 1");
        ensure!(self.requests >= 1, "--requests must be at least 1");
        ensure!(self.qty >= 1, "--qty must be at least 1");
        if let Some(rate) = self.rate {
            ensure!(
                rate.is_finite() && rate > 0.0,
                "--rate must be a positive number of requests per second"
            );
        }
        if let Some(stock) = self.stock {
            ensure!(stock >= 0, "--stock must not be negative");
        }
        if let Some(product) = self.product {
            ensure!(product >= 1, "--product must be a positive id");
            if self.stock.is_some() {
                eprintln!("warning: --stock is ignored because --product is given");
            }
        }
        ensure!(
            !(self.mode == Mode::Baseline && self.flow == Some(Flow::Full)),
            "--flow full needs --mode pipeline or both: the baseline has only holds"
        );
        for (name, share) in [
            ("--fail-share", self.fail_share),
            ("--abandon-share", self.abandon_share),
        ] {
            ensure!(
                share.is_finite() && (0.0..=1.0).contains(&share),
                "{name} must be between 0 and 1, got {share}"
            );
        }
        ensure!(
            self.fail_share + self.abandon_share <= 1.0,
            "--fail-share + --abandon-share must not exceed 1"
        );
        self.buyers
            .validate(self.mode == Mode::Pipeline, self.qty)?;
        self.cost.validate()?;
        if !self.cost.cpu_pids.is_empty()
            && (self.mode == Mode::Baseline || self.flow_for(Mode::Pipeline) != Flow::Holds)
        {
            eprintln!(
                "warning: --cpu-pid is read over the pipeline's hold run only \
                 (--mode pipeline or both, --flow holds); this run reports no CPU"
            );
        }
        Ok(())
    }

    /// The flow a mode's run uses.
    pub(crate) fn flow_for(&self, mode: Mode) -> Flow {
        match (mode, self.flow) {
            (Mode::Baseline, _) => Flow::Holds,
            (_, Some(flow)) => flow,
            _ if self.mode == Mode::Pipeline => Flow::Full,
            _ => Flow::Holds,
        }
    }

    /// Stock of a freshly created product.
    pub(crate) fn fresh_stock(&self) -> i64 {
        self.stock.unwrap_or_else(|| {
            let units = (self.hold_requests() as i64).saturating_mul(self.qty);
            units / 2
        })
    }

    /// Hold requests of the main phase: K per buyer.
    pub(crate) fn hold_requests(&self) -> usize {
        self.requests.saturating_mul(self.buyers.holds_per_buyer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["loadgen"];
        argv.extend_from_slice(extra);
        Args::parse_from(argv)
    }

    #[test]
    fn flow_defaults_to_full_for_the_pipeline_only() {
        let pipeline = args(&["--mode", "pipeline"]);
        assert_eq!(pipeline.flow_for(Mode::Pipeline), Flow::Full);
        let both = args(&["--mode", "both"]);
        assert_eq!(both.flow_for(Mode::Pipeline), Flow::Holds);
        assert_eq!(both.flow_for(Mode::Baseline), Flow::Holds);
        let holds = args(&["--mode", "pipeline", "--flow", "holds"]);
        assert_eq!(holds.flow_for(Mode::Pipeline), Flow::Holds);
        assert!(
            args(&["--mode", "baseline", "--flow", "full"])
                .validate()
                .is_err()
        );
        assert!(
            args(&["--fail-share", "0.7", "--abandon-share", "0.5"])
                .validate()
                .is_err()
        );
        assert!(args(&["--fail-share=-0.1"]).validate().is_err());
    }

    #[test]
    fn buyer_flags_parse_and_default_off() {
        let plain = args(&["--mode", "pipeline"]);
        assert_eq!(plain.buyers.holds_per_buyer, 1);
        assert_eq!(plain.buyers.max_per_customer, None);
        assert_eq!(plain.buyers.sale_starts_in, None);
        let limited = args(&[
            "--mode",
            "pipeline",
            "--jwt-secret",
            "k",
            "--jwt-audience",
            "shop",
            "--max-per-customer",
            "2",
            "--holds-per-buyer",
            "3",
            "--sale-starts-in",
            "1.5",
            "--requests",
            "100",
        ]);
        assert!(limited.validate().is_ok());
        assert_eq!(limited.buyers.jwt_secret.as_deref(), Some("k"));
        assert_eq!(limited.buyers.jwt_audience.as_deref(), Some("shop"));
        assert_eq!(limited.buyers.max_per_customer, Some(2));
        assert_eq!(limited.buyers.sale_starts_in, Some(1.5));
        assert!(limited.buyers.any());
        // K holds per buyer: the fresh stock covers about half of them.
        assert_eq!(limited.hold_requests(), 300);
        assert_eq!(limited.fresh_stock(), 150);
    }

    #[test]
    fn buyer_flags_are_checked() {
        let refused: &[&[&str]] = &[
            // A limit without tokens: every hold would be 401.
            &["--mode", "pipeline", "--max-per-customer", "2"],
            // The baseline has no limit, no window.
            &["--jwt-secret", "k", "--max-per-customer", "2"],
            &["--sale-starts-in", "3"],
            &[
                "--mode",
                "pipeline",
                "--jwt-secret",
                "k",
                "--max-per-customer",
                "0",
            ],
            &[
                "--mode",
                "pipeline",
                "--jwt-secret",
                "k",
                "--max-per-customer",
                "1",
                "--qty",
                "2",
            ],
            &["--mode", "pipeline", "--holds-per-buyer", "0"],
            &["--mode", "pipeline", "--sale-starts-in", "0"],
            &["--mode", "pipeline", "--sale-starts-in", "nan"],
            &["--mode", "pipeline", "--jwt-secret", ""],
        ];
        for argv in refused {
            assert!(args(argv).validate().is_err(), "{argv:?}");
        }
        let fine: &[&[&str]] = &[
            &["--mode", "pipeline", "--sale-starts-in", "3"],
            &["--holds-per-buyer", "4"],
        ];
        for argv in fine {
            assert!(args(argv).validate().is_ok(), "{argv:?}");
        }
    }

    #[test]
    fn cost_flags_parse_and_are_checked() {
        let me = format!("loadgen={}", std::process::id());
        // The same process under two names is allowed (one name twice is not).
        let again = format!("again={}", std::process::id());
        let argv = [
            "--mode",
            "pipeline",
            "--flow",
            "holds",
            "--cpu-pid",
            &me,
            "--cpu-pid",
            &again,
            "--metrics-url",
            "http://127.0.0.1:9100/metrics",
        ];
        let parsed = args(&argv);
        assert!(parsed.validate().is_ok());
        assert_eq!(parsed.cost.cpu_pids.len(), 2);
        assert_eq!(parsed.cost.cpu_pids[1].name, "again");
        assert_eq!(parsed.cost.metrics_urls.len(), 1);
        // A malformed NAME=PID is refused by clap itself.
        let refused = Args::try_parse_from(["loadgen", "--cpu-pid", "flash-sale"]);
        assert!(refused.is_err());
        let remote = args(&["--metrics-url", "http://10.1.2.3/metrics"]);
        assert!(remote.validate().is_err());
    }
}
