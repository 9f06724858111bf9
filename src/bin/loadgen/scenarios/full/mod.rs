//! The pipeline, full buyer: hold, order, then pay through the signed
//! webhook (`buyer`); then what the purchases add up to (`tally`), and the
//! payment jobs settled and the orders read back (`settle`).

mod buyer;
mod settle;
mod tally;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use anyhow::Context;
use serde_json::json;

use crate::{
    client::Api,
    config::{Args, Flow, Mode, PREFER_WAIT},
    scenarios::{
        full::{
            buyer::Shop,
            settle::{read_back, settle_payments},
            tally::tally,
        },
        progress::Progress,
        records::{FullReport, RunReport},
        stock_check::stock_check,
        target::Target,
    },
};

pub(crate) async fn run_pipeline_full(
    api: &mut Api,
    args: &Args,
    target: Target,
) -> anyhow::Result<RunReport> {
    eprintln!(
        "pipeline (full flow): {} buyers' purchases from {} buyers on product {} (stock {}), \
         fail {:.0}% / abandon {:.0}%",
        args.requests,
        args.clients,
        target.product_id,
        target.initial_stock,
        args.fail_share * 100.0,
        args.abandon_share * 100.0
    );
    let hold = api
        .prepare_post(
            "/api/v1/holds",
            &json!({ "product_id": target.product_id, "qty": args.qty }),
            Some(PREFER_WAIT),
        )
        .context("preparing the hold request")?;
    let progress = Progress::start(
        "[pipeline full buyers]".into(),
        args.requests,
        "buyers/s",
        args.quiet,
    );
    let shop = Arc::new(Shop {
        hold,
        secret: args.webhook_secret.clone(),
        run_tag: uuid::Uuid::new_v4().simple().to_string(),
        fail_share: args.fail_share,
        abandon_share: args.abandon_share,
        orders_made: AtomicUsize::new(0),
        requests: progress.http_counter(),
    });
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut buyers = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let mut conn = api.fork();
        let shop = Arc::clone(&shop);
        let next = Arc::clone(&next);
        let done = progress.counter();
        let requests = args.requests;
        let share = requests / args.clients + 1;
        buyers.push(tokio::spawn(async move {
            let mut purchases = Vec::with_capacity(share);
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                purchases.push(shop.buy(&mut conn).await);
                done.fetch_add(1, Ordering::Relaxed);
            }
            purchases
        }));
    }
    let mut purchases = Vec::with_capacity(args.requests);
    for buyer in buyers {
        purchases.extend(buyer.await.context("a buyer task panicked")?);
    }
    let buyers_done = Instant::now();
    progress.finish().await;
    let buyer_requests = shop.requests.load(Ordering::Relaxed);

    let mut report = RunReport::new(Mode::Pipeline, Flow::Full, args, target);
    let tally = tally(&mut report, &purchases, start, buyers_done, buyer_requests);
    let payments = settle_payments(
        api,
        tally.payments,
        start,
        buyers_done,
        args.quiet,
        &mut report,
    )
    .await;
    let read = read_back(
        api,
        tally.order_checks,
        &tally.orphan_holds,
        args.qty,
        args.quiet,
        &mut report,
    )
    .await;
    report.full = Some(FullReport {
        fail_share: args.fail_share,
        abandon_share: args.abandon_share,
        holds_polled_after_wait: tally.holds_polled,
        orders: tally.orders,
        payments,
        order_states: read.order_states,
        holds_without_order: read.holds_without_order,
    });
    report.stock_check = Some(
        stock_check(
            api,
            target,
            report.granted,
            args.qty,
            Some((read.canceled_units, read.released_units)),
        )
        .await?,
    );
    Ok(report)
}
