//! Operator CLI over the same library: `cargo run --bin admin -- --help`.
//! Reads DATABASE_URL and AMQP_URL (or their `_FILE` forms) like the
//! services.

use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use flash_sale::{
    broker::{self, Broker, Event},
    config::{Migrate, Settings},
    db::{
        self,
        payment_events::{self, Resolution},
        products::{self, Unchanged},
    },
    dead_letters,
    domain::{
        EventState, MAX_NAME_CHARS, MAX_PRICE, MAX_STOCK, NewProduct, ProductChange,
        payment::MAX_NOTE_CHARS, product::window_is_ordered,
    },
    startup, time,
};
use serde_json::json;

#[derive(Parser)]
#[command(about = "flash-sale operator tools")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the database if missing and apply pending migrations (run it
    /// with a user that has DDL rights; the services can then run with
    /// MIGRATE=off and data rights only).
    Migrate,
    /// Products: list, create, restock, edit.
    #[command(subcommand)]
    Products(ProductCmd),
    /// Payment events that need an operator (unmatched, needs_refund,
    /// conflict; `--state resolved`: the resolved ones), or `resolve`.
    #[command(args_conflicts_with_subcommands = true)]
    Payments {
        #[command(subcommand)]
        action: Option<PaymentCmd>,
        #[arg(long, value_parser = ["unmatched", "needs_refund", "conflict", "resolved"])]
        state: Option<String>,
    },
    /// Depth of every command queue and of the dead-letter queue.
    Queues,
    /// The dead-letter queue.
    #[command(subcommand)]
    DeadLetters(DeadLetterCmd),
}

#[derive(Subcommand)]
enum ProductCmd {
    List,
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        price: i64,
        #[arg(long)]
        stock: i64,
        /// Units one buyer may hold and buy in all (holds then need a
        /// buyer token).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=MAX_STOCK))]
        max_per_customer: Option<i64>,
        /// RFC 3339, e.g. 2026-12-24T09:00:00Z.
        #[arg(long, value_parser = parse_time)]
        sale_starts_at: Option<DateTime<Utc>>,
        #[arg(long, value_parser = parse_time)]
        sale_ends_at: Option<DateTime<Utc>>,
    },
    Restock {
        id: i64,
        qty: i64,
    },
    /// Change a product's name, price, limit or sale window; `none` clears
    /// a limit or a window end.
    Edit {
        id: i64,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        price: Option<i64>,
        /// A number, or `none`.
        #[arg(long, value_parser = parse_limit)]
        max_per_customer: Option<Cleared<i64>>,
        /// RFC 3339, or `none`.
        #[arg(long, value_parser = parse_cleared_time)]
        sale_starts_at: Option<Cleared<DateTime<Utc>>>,
        /// RFC 3339, or `none`.
        #[arg(long, value_parser = parse_cleared_time)]
        sale_ends_at: Option<Cleared<DateTime<Utc>>>,
    },
}

/// A value, or `none` to clear it.
#[derive(Clone, Debug)]
struct Cleared<T>(Option<T>);

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 date-time: {e}"))
}

fn parse_cleared_time(s: &str) -> Result<Cleared<DateTime<Utc>>, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Cleared(None));
    }
    parse_time(s).map(|at| Cleared(Some(at)))
}

fn parse_limit(s: &str) -> Result<Cleared<i64>, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Cleared(None));
    }
    match s.parse::<i64>() {
        Ok(n) if (1..=MAX_STOCK).contains(&n) => Ok(Cleared(Some(n))),
        _ => Err(format!("a number from 1 to {MAX_STOCK}, or none")),
    }
}

#[derive(Subcommand)]
enum PaymentCmd {
    /// Mark an unmatched, needs_refund or conflict event as handled.
    Resolve {
        job_id: uuid::Uuid,
        /// What was done (1 to 1000 characters).
        #[arg(long)]
        note: String,
    },
}

#[derive(Subcommand)]
enum DeadLetterCmd {
    /// Show dead letters without removing them.
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Send decodable dead letters back to their partition.
    Redrive {
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Remove the ones no worker can decode.
        #[arg(long)]
        drop_undecodable: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    startup::exit_status("admin", run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Arc::new(Settings::from_env()?);
    match cli.command {
        Cmd::Migrate => {
            let pool = db::open(settings.database_url.expose(), Migrate::Auto, 2).await?;
            let applied = db::MIGRATOR.iter().count();
            pool.close().await;
            print(&json!({ "schema": "current", "migrations": applied }))
        }
        Cmd::Products(cmd) => products_cmd(&settings, cmd).await,
        Cmd::Payments { action, state } => {
            let pool = db::open(settings.database_url.expose(), Migrate::Off, 2).await?;
            if let Some(PaymentCmd::Resolve { job_id, note }) = action {
                return resolve_payment(&pool, job_id, &note).await;
            }
            let states = match state.as_deref() {
                Some("unmatched") => vec![EventState::Unmatched],
                Some("needs_refund") => vec![EventState::NeedsRefund],
                Some("conflict") => vec![EventState::Conflict],
                Some("resolved") => {
                    let data = payment_events::list_resolved(&pool, 1000).await?;
                    return print(&json!({ "data": data }));
                }
                _ => EventState::NEEDS_OPERATOR.to_vec(),
            };
            print(&json!({ "data": payment_events::list(&pool, &states, 1000).await? }))
        }
        Cmd::Queues => {
            let broker = Broker::connect(&settings.amqp, settings.partitions, "admin").await?;
            let channel = broker.channel().await?;
            let mut queues = serde_json::Map::new();
            for partition in 0..settings.partitions {
                let name = broker::partition_queue(partition);
                let depth = dead_letters::depth(&channel, &name).await?;
                queues.insert(name, json!(depth));
            }
            let dead = dead_letters::depth(&channel, broker::DEAD_LETTER_QUEUE).await?;
            queues.insert(broker::DEAD_LETTER_QUEUE.into(), json!(dead));
            broker.close().await;
            print(&serde_json::Value::Object(queues))
        }
        Cmd::DeadLetters(cmd) => {
            let broker = Broker::connect(&settings.amqp, settings.partitions, "admin").await?;
            let out = match cmd {
                DeadLetterCmd::List { limit } => {
                    json!({ "data": dead_letters::list(&broker, limit).await? })
                }
                DeadLetterCmd::Redrive {
                    limit,
                    drop_undecodable,
                } => json!(dead_letters::redrive(&broker, limit, drop_undecodable).await?),
            };
            broker.close().await;
            print(&out)
        }
    }
}

async fn products_cmd(settings: &Settings, cmd: ProductCmd) -> anyhow::Result<()> {
    let pool = db::open(settings.database_url.expose(), Migrate::Off, 2).await?;
    let changed = match cmd {
        ProductCmd::List => return print(&json!({ "data": products::list(&pool).await? })),
        ProductCmd::Create {
            name,
            price,
            stock,
            max_per_customer,
            sale_starts_at,
            sale_ends_at,
        } => {
            check_name_and_price(&name, price)?;
            anyhow::ensure!(
                (0..=MAX_STOCK).contains(&stock),
                "stock must be 0 to {MAX_STOCK}"
            );
            anyhow::ensure!(
                window_is_ordered(sale_starts_at, sale_ends_at),
                "the sale must end after it starts"
            );
            let new = NewProduct {
                name,
                price,
                stock,
                max_per_customer,
                sale_starts_at,
                sale_ends_at,
            };
            products::create(&pool, &new).await?
        }
        ProductCmd::Edit {
            id,
            name,
            price,
            max_per_customer,
            sale_starts_at,
            sale_ends_at,
        } => {
            check_name_and_price(name.as_deref().unwrap_or("-"), price.unwrap_or(0))?;
            let change = ProductChange {
                name,
                price,
                max_per_customer: max_per_customer.map(|c| c.0),
                sale_starts_at: sale_starts_at.map(|c| c.0),
                sale_ends_at: sale_ends_at.map(|c| c.0),
            };
            match products::change(&pool, id, &change).await? {
                Ok(product) => product,
                Err(Unchanged::NotFound) => anyhow::bail!("product {id} not found"),
                Err(Unchanged::WindowOutOfOrder) => {
                    anyhow::bail!("the sale would end before it starts")
                }
                Err(Unchanged::LimitBelowHeld(most)) => {
                    anyhow::bail!(
                        "a buyer already has {most} units; the limit cannot go below that"
                    )
                }
            }
        }
        ProductCmd::Restock { id, qty } => {
            anyhow::ensure!(
                (1..=MAX_STOCK).contains(&qty),
                "qty must be 1 to {MAX_STOCK}"
            );
            products::restock(&pool, id, qty)
                .await?
                .with_context(|| format!("product {id} not found"))?
        }
    };
    // Api replicas refresh their caches at once instead of within a second.
    if let Ok(broker) = Broker::connect(&settings.amqp, settings.partitions, "admin").await {
        let _ = broker
            .publish_event(&Event::StockChanged {
                product_id: changed.id,
            })
            .await;
        broker.close().await;
    }
    print(&json!(changed))
}

/// As `POST /api/v1/admin/payments/{job_id}/resolve`.
async fn resolve_payment(pool: &sqlx::MySqlPool, id: uuid::Uuid, note: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_NOTE_CHARS).contains(&note.chars().count()) && !note.trim().is_empty(),
        "note must be 1 to {MAX_NOTE_CHARS} characters, not blank"
    );
    match payment_events::resolve(pool, id, note, &time::now()).await? {
        Resolution::Resolved(event) => print(&json!(event)),
        Resolution::NotFound => anyhow::bail!("payment event {id} not found"),
        Resolution::AlreadyResolved(event) => anyhow::bail!(
            "payment event {id} was already resolved: {}",
            event.resolution_note.unwrap_or_default()
        ),
        Resolution::NothingToResolve(event) => anyhow::bail!(
            "payment event {id} is {:?}: only unmatched, needs_refund and conflict events need an operator",
            event.state
        ),
    }
}

fn check_name_and_price(name: &str, price: i64) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_NAME_CHARS).contains(&name.chars().count()) && !name.trim().is_empty(),
        "name must be 1 to {MAX_NAME_CHARS} characters"
    );
    anyhow::ensure!(
        (0..=MAX_PRICE).contains(&price),
        "price must be 0 to {MAX_PRICE}"
    );
    Ok(())
}

fn print(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
