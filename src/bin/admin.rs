//! Operator CLI over the same library: `cargo run --bin admin -- --help`.
//! Reads DATABASE_URL and AMQP_URL (or their `_FILE` forms) like the
//! services.

use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};
use flash_sale::{
    broker::{self, Broker, Event},
    config::{Migrate, Settings},
    db::{self, payment_events, products},
    dead_letters,
    domain::{EventState, MAX_NAME_CHARS, MAX_PRICE, MAX_STOCK, NewProduct},
    startup,
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
    /// Products: list, create, restock.
    #[command(subcommand)]
    Products(ProductCmd),
    /// Payment events that need an operator (unmatched, needs_refund, conflict).
    Payments {
        #[arg(long, value_parser = ["unmatched", "needs_refund", "conflict"])]
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
    },
    Restock {
        id: i64,
        qty: i64,
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
        Cmd::Payments { state } => {
            let pool = db::open(settings.database_url.expose(), Migrate::Off, 2).await?;
            let states = match state.as_deref() {
                Some("unmatched") => vec![EventState::Unmatched],
                Some("needs_refund") => vec![EventState::NeedsRefund],
                Some("conflict") => vec![EventState::Conflict],
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
        ProductCmd::Create { name, price, stock } => {
            anyhow::ensure!(
                (1..=MAX_NAME_CHARS).contains(&name.chars().count()) && !name.trim().is_empty(),
                "name must be 1 to {MAX_NAME_CHARS} characters"
            );
            anyhow::ensure!(
                (0..=MAX_PRICE).contains(&price),
                "price must be 0 to {MAX_PRICE}"
            );
            anyhow::ensure!(
                (0..=MAX_STOCK).contains(&stock),
                "stock must be 0 to {MAX_STOCK}"
            );
            products::create(&pool, &NewProduct { name, price, stock }).await?
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

fn print(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
