//! How a batch of commands is cut into transactions: pure, no I/O.
//!
//! Holds are grouped per product (one transaction each, the product locked
//! once), products in the order their first hold arrived and each group in
//! arrival order. Orders, then payments, go in arrival order, a
//! transaction per chunk: orders first so that payments of the same batch
//! find them made. Sweeps are applied alone. No transaction holds more
//! than `max` commands.

use std::collections::HashMap;

use uuid::Uuid;

use crate::commands::{Command, HoldRequest, OrderRequest, PaymentRequest, SweepRequest};

/// The transactions of one batch; `M` is what carried each command (its
/// message), settled with it.
#[derive(Debug)]
pub struct Plan<M> {
    /// One product's holds per entry: `(product_id, commands)`.
    pub holds: Vec<(i64, Vec<(M, HoldRequest)>)>,
    pub orders: Vec<Vec<(M, OrderRequest)>>,
    pub payments: Vec<Vec<(M, PaymentRequest)>>,
    pub sweeps: Vec<(M, SweepRequest)>,
}

pub fn plan<M>(batch: Vec<(M, Command)>, max: usize) -> Plan<M> {
    let max = max.max(1);
    let mut per_product: Vec<(i64, Vec<(M, HoldRequest)>)> = Vec::new();
    let mut product_at: HashMap<i64, usize> = HashMap::new();
    let mut orders = Vec::new();
    let mut payments = Vec::new();
    let mut sweeps = Vec::new();
    for (message, command) in batch {
        match command {
            Command::Hold(hold) => {
                let at = *product_at.entry(hold.product_id).or_insert_with(|| {
                    per_product.push((hold.product_id, Vec::new()));
                    per_product.len() - 1
                });
                per_product[at].1.push((message, hold));
            }
            Command::Order(order) => orders.push((message, order)),
            Command::Payment(payment) => payments.push((message, payment)),
            Command::Sweep(sweep) => sweeps.push((message, sweep)),
        }
    }
    let mut holds = Vec::new();
    for (product_id, group) in per_product {
        holds.extend(chunks(group, max).into_iter().map(|c| (product_id, c)));
    }
    Plan {
        holds,
        orders: chunks(orders, max),
        payments: chunks(payments, max),
        sweeps,
    }
}

fn chunks<T>(items: Vec<T>, max: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    for item in items {
        match out.last_mut() {
            Some(last) if last.len() < max => last.push(item),
            _ => out.push(vec![item]),
        }
    }
    out
}

/// A command applied in a transaction of its own: a sweep, or an order a
/// batch left (payments came before it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alone {
    Order(OrderRequest),
    Sweep(SweepRequest),
}

/// `alone` in chains run one after another: the commands of one order
/// (a duplicate publish) together in arrival order, since side by side the
/// later could take the order's lock first; every other command alone, so
/// chains may run side by side.
pub fn chains<M>(alone: Vec<(M, Alone)>) -> Vec<Vec<(M, Alone)>> {
    let mut chains: Vec<Vec<(M, Alone)>> = Vec::new();
    let mut chain_of: HashMap<Uuid, usize> = HashMap::new();
    for (message, command) in alone {
        let order = match &command {
            Alone::Order(order) => Some(order.job_id),
            Alone::Sweep(_) => None,
        };
        match order.and_then(|o| chain_of.get(&o).copied()) {
            Some(at) => chains[at].push((message, command)),
            None => {
                if let Some(order) = order {
                    chain_of.insert(order, chains.len());
                }
                chains.push(vec![(message, command)]);
            }
        }
    }
    chains
}

/// Ids without repeats, first occurrence kept.
pub fn unique<'a>(ids: impl IntoIterator<Item = &'a Uuid>) -> Vec<Uuid> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(**id))
        .copied()
        .collect()
}

/// Customer ids without repeats, first occurrence kept.
pub fn unique_customers<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(product_id: i64) -> Command {
        Command::Hold(HoldRequest {
            job_id: Uuid::now_v7(),
            product_id,
            qty: 1,
            customer_id: None,
        })
    }

    fn order() -> Command {
        Command::Order(OrderRequest {
            job_id: Uuid::now_v7(),
            hold_id: Uuid::now_v7(),
            customer_id: None,
        })
    }

    fn payment() -> Command {
        Command::Payment(PaymentRequest {
            job_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
        })
    }

    fn numbered(commands: Vec<Command>) -> Vec<(u32, Command)> {
        (1..).zip(commands).collect()
    }

    fn messages<T>(items: &[(u32, T)]) -> Vec<u32> {
        items.iter().map(|(m, _)| *m).collect()
    }

    #[test]
    fn holds_group_per_product_in_arrival_order() {
        let batch = numbered(vec![hold(7), hold(3), order(), hold(7), hold(3), hold(7)]);
        let plan = plan(batch, 100);
        let groups: Vec<(i64, Vec<u32>)> = plan
            .holds
            .iter()
            .map(|(product, group)| (*product, messages(group)))
            .collect();
        assert_eq!(groups, vec![(7, vec![1, 4, 6]), (3, vec![2, 5])]);
        assert_eq!(plan.orders.len(), 1);
        assert_eq!(messages(&plan.orders[0]), vec![3]);
        assert!(plan.payments.is_empty() && plan.sweeps.is_empty());
    }

    #[test]
    fn no_transaction_holds_more_than_max() {
        let mut commands: Vec<Command> = (0..5).map(|_| hold(1)).collect();
        commands.extend((0..5).map(|_| payment()));
        commands.push(Command::Sweep(SweepRequest { product_id: 1 }));
        let plan = plan(numbered(commands), 2);
        let holds: Vec<Vec<u32>> = plan.holds.iter().map(|(_, g)| messages(g)).collect();
        assert_eq!(holds, vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert!(plan.holds.iter().all(|(product, _)| *product == 1));
        let payments: Vec<Vec<u32>> = plan.payments.iter().map(|c| messages(c)).collect();
        assert_eq!(payments, vec![vec![6, 7], vec![8, 9], vec![10]]);
        assert_eq!(messages(&plan.sweeps), vec![11]);
    }

    #[test]
    fn an_empty_batch_plans_nothing() {
        let plan = plan(Vec::<(u32, Command)>::new(), 10);
        assert!(plan.holds.is_empty() && plan.orders.is_empty());
        assert!(plan.payments.is_empty() && plan.sweeps.is_empty());
    }

    #[test]
    fn commands_of_one_order_chain_in_arrival_order_and_others_stand_alone() {
        let first = OrderRequest {
            job_id: Uuid::now_v7(),
            hold_id: Uuid::now_v7(),
            customer_id: None,
        };
        let second = OrderRequest {
            job_id: Uuid::now_v7(),
            hold_id: Uuid::now_v7(),
            customer_id: None,
        };
        let sweep = Alone::Sweep(SweepRequest { product_id: 7 });
        let alone = vec![
            (1, Alone::Order(first.clone())),
            (2, Alone::Order(second)),
            (3, sweep.clone()),
            (4, Alone::Order(first)),
            (5, sweep),
        ];
        let chains: Vec<Vec<u32>> = chains(alone).iter().map(|c| messages(c)).collect();
        assert_eq!(chains, vec![vec![1, 4], vec![2], vec![3], vec![5]]);
    }
}
