//! The pipeline, full buyer: hold, order, then pay through the signed
//! webhook (`buyer`); then what the purchases add up to (`tally`), and the
//! payment jobs settled and the orders read back (`settle`).

mod buyer;
mod intent;
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
    measure::EtaAccuracy,
    scenarios::{
        crowd::{Buyers, buyers_report},
        full::{
            buyer::Shop,
            settle::{read_back, settle_payments},
            tally::tally,
        },
        gate::{connect_ahead, wait_turn},
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
    buyers: &Buyers,
) -> anyhow::Result<RunReport> {
    let per_buyer = if buyers.holds_per_buyer > 1 {
        format!(" ({} holds each)", buyers.holds_per_buyer)
    } else {
        String::new()
    };
    eprintln!(
        "pipeline (full flow): {} buyers' purchases{per_buyer} from {} buyers on product {} \
         (stock {}), fail {:.0}% / abandon {:.0}%",
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
    if let Some(opening) = buyers.opening {
        eprintln!(
            "pipeline: the sale opens in {:.1} s; buyers connect and wait",
            opening.ms_to(Instant::now()) / -1000.0
        );
    }
    let shop = Arc::new(Shop {
        hold,
        crowd: buyers.crowd.clone(),
        secret: args.webhook_secret.clone(),
        run_tag: uuid::Uuid::new_v4().simple().to_string(),
        fail_share: args.fail_share,
        abandon_share: args.abandon_share,
        orders_made: AtomicUsize::new(0),
        requests: progress.http_counter(),
    });
    // With an opening the run is timed from it.
    let start = buyers
        .opening
        .map_or_else(Instant::now, |opening| opening.at);
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let mut conns: Vec<Api> = (0..buyers.holds_per_buyer).map(|_| api.fork()).collect();
        let shop = Arc::clone(&shop);
        let next = Arc::clone(&next);
        let done = progress.counter();
        let requests = args.requests;
        let share = (requests / args.clients + 1) * conns.len();
        let opening = buyers.opening;
        clients.push(tokio::spawn(async move {
            let mut purchases = Vec::with_capacity(share);
            connect_ahead(opening, &mut conns).await;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                wait_turn(opening, n).await;
                purchases.extend(shop.buy(&mut conns, n).await);
                done.fetch_add(1, Ordering::Relaxed);
            }
            purchases
        }));
    }
    let mut purchases = Vec::with_capacity(args.hold_requests());
    for client in clients {
        purchases.extend(client.await.context("a buyer task panicked")?);
    }
    let buyers_done = Instant::now();
    progress.finish().await;
    let buyer_requests = shop.requests.load(Ordering::Relaxed);

    let mut report = RunReport::new(Mode::Pipeline, Flow::Full, args, target);
    let tally = tally(
        &mut report,
        &purchases,
        (start, buyers_done),
        buyer_requests,
        (args.qty, buyers.opening),
    );
    report.queue_eta = EtaAccuracy::of(&tally.etas);
    report.buyers = buyers
        .reported
        .then(|| buyers_report(buyers, &tally.fates, target.max_per_customer));
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
