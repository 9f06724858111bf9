//! The problems a hold is refused with for its product's rules (sale
//! window, per-customer limit), the same whether the api refuses at once
//! or the worker decides the job.

use chrono::{DateTime, Utc};

use crate::{
    problem::{Code, Problem},
    time,
};

/// `sale_not_started`, with when it starts.
pub fn sale_not_started(product_id: i64, starts_at: DateTime<Utc>) -> Problem {
    let mut problem = Problem::new(
        Code::SaleNotStarted,
        format!(
            "the sale of product {product_id} starts at {}",
            time::format(&starts_at)
        ),
    );
    problem.starts_at = Some(time::format(&starts_at));
    problem
}

pub fn sale_ended(product_id: i64) -> Problem {
    Problem::new(
        Code::SaleEnded,
        format!("the sale of product {product_id} has ended"),
    )
}

pub fn customer_limit_reached(product_id: i64, max: i64, has: i64, qty: i64) -> Problem {
    Problem::new(
        Code::CustomerLimitReached,
        format!(
            "product {product_id} is limited to {max} per customer; you have {has}, {qty} requested"
        ),
    )
}
