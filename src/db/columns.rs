//! How each enum is spelled in its column: the one place a status, kind,
//! state or reason is written for SQL. Fixed statements bind the enum
//! (`WHERE status = ?`); text statements render it with
//! [`Sql::word`](super::text::Sql::word). Nothing else spells them.
//!
//! sqlx's derive only accepts MySQL `ENUM` columns, and MariaDB reports our
//! `utf8mb4_bin` VARCHARs as binary, so these go through `str`.

use sqlx::{
    Decode, Encode, MySql, Type,
    encode::IsNull,
    error::BoxDynError,
    mysql::{MySqlTypeInfo, MySqlValueRef},
};

use super::text::SqlWord;
use crate::domain::{
    EventState, HoldStatus, JobKind, JobStatus, LedgerReason, OrderStatus, PaymentStatus,
};

macro_rules! words {
    ($ty:ident { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl SqlWord for $ty {
            fn sql_word(self) -> &'static str {
                match self {
                    $($ty::$variant => $word),+
                }
            }
        }

        impl $ty {
            #[cfg(test)]
            const ALL: &'static [$ty] = &[$($ty::$variant),+];

            fn from_word(word: &str) -> Option<Self> {
                match word {
                    $($word => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }

        impl Type<MySql> for $ty {
            fn type_info() -> MySqlTypeInfo {
                <str as Type<MySql>>::type_info()
            }
            fn compatible(ty: &MySqlTypeInfo) -> bool {
                <str as Type<MySql>>::compatible(ty)
            }
        }

        impl<'r> Decode<'r, MySql> for $ty {
            fn decode(value: MySqlValueRef<'r>) -> Result<Self, BoxDynError> {
                let word = <&str as Decode<MySql>>::decode(value)?;
                $ty::from_word(word)
                    .ok_or_else(|| format!("{word:?} is not a {}", stringify!($ty)).into())
            }
        }

        impl Encode<'_, MySql> for $ty {
            fn encode_by_ref(&self, buf: &mut Vec<u8>) -> Result<IsNull, BoxDynError> {
                <&str as Encode<MySql>>::encode_by_ref(&self.sql_word(), buf)
            }
        }
    };
}

words!(HoldStatus { Active => "active", Used => "used", Expired => "expired" });
words!(OrderStatus { Pending => "pending", Paid => "paid", Canceled => "canceled" });
words!(JobKind { Hold => "hold", Order => "order", Payment => "payment" });
words!(JobStatus { Queued => "queued", Succeeded => "succeeded", Failed => "failed" });
words!(PaymentStatus { Success => "success", Failed => "failed" });
words!(EventState {
    Received => "received",
    Applied => "applied",
    Duplicate => "duplicate",
    AwaitingOrder => "awaiting_order",
    NeedsRefund => "needs_refund",
    Unmatched => "unmatched",
    Conflict => "conflict",
});
words!(LedgerReason {
    Initial => "initial",
    Restock => "restock",
    Hold => "hold",
    HoldExpired => "hold_expired",
    PaymentFailed => "payment_failed",
});

#[cfg(test)]
mod tests {
    use super::*;

    /// The column spells each value as the wire does, and as a plain
    /// lower-case word (it is rendered inside quotes).
    fn check<T: SqlWord + serde::Serialize>(all: &[T]) {
        for value in all {
            let word = value.sql_word();
            assert!(
                !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{word:?}"
            );
            assert_eq!(serde_json::to_value(value).expect("json"), word);
        }
    }

    #[test]
    fn every_enum_is_spelled_as_on_the_wire() {
        check(HoldStatus::ALL);
        check(OrderStatus::ALL);
        check(JobKind::ALL);
        check(JobStatus::ALL);
        check(PaymentStatus::ALL);
        check(EventState::ALL);
        check(LedgerReason::ALL);
        assert_eq!(HoldStatus::from_word("active"), Some(HoldStatus::Active));
        assert_eq!(HoldStatus::from_word("Active"), None);
    }
}
