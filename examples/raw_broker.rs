//! The broker's own ceiling on this machine, for docs/BENCHMARKS.md: N
//! persistent messages published with confirms (1,000 in flight) to one
//! quorum queue while a consumer (prefetch 1,024) acks each one. No
//! database, no application logic.
//!
//! ```sh
//! rabbitmqctl add_vhost raw-bench
//! rabbitmqctl set_permissions -p raw-bench guest '.*' '.*' '.*'
//! cargo run --release --example raw_broker -- 100000
//! rabbitmqctl delete_vhost raw-bench
//! ```

use std::time::Instant;

use anyhow::Context;
use futures_util::{StreamExt, stream::FuturesUnordered};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, LongString},
};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/raw-bench";
const QUEUE: &str = "raw";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let publisher = Connection::connect(URL, ConnectionProperties::default())
        .await
        .context("connect (did you create the raw-bench vhost?)")?;
    let channel = publisher.create_channel().await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel.queue_declare(QUEUE.into(), durable, args).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    let consumer_connection = Connection::connect(URL, ConnectionProperties::default()).await?;
    let consumer_channel = consumer_connection.create_channel().await?;
    consumer_channel
        .basic_qos(1024, BasicQosOptions::default())
        .await?;
    let mut consumer = consumer_channel
        .basic_consume(
            QUEUE.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let started = Instant::now();
    let consume = tokio::spawn(async move {
        for _ in 0..n {
            let delivery = consumer.next().await.context("consumer ended")??;
            delivery.ack(BasicAckOptions::default()).await?;
        }
        anyhow::Ok(Instant::now())
    });
    let body = br#"{"type":"hold","job_id":"01a213d2-e5e7-7346-836e-84620ed1eb2f","product_id":1,"qty":1}"#;
    let mut in_flight = FuturesUnordered::new();
    for _ in 0..n {
        let confirm = channel
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?;
        in_flight.push(confirm);
        if in_flight.len() >= 1000
            && let Some(done) = in_flight.next().await
        {
            done?;
        }
    }
    while let Some(done) = in_flight.next().await {
        done?;
    }
    let published = started.elapsed();
    let acked = consume.await?? - started;
    println!(
        "{n} messages: publish with confirms {:.0}/s; publish to ack, end to end {:.0}/s",
        n as f64 / published.as_secs_f64(),
        n as f64 / acked.as_secs_f64()
    );
    Ok(())
}
