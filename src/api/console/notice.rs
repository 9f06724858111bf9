//! What an action did, told on the page it returns to: the action
//! redirects (so a reload does not repeat it) with the outcome in the
//! query, and the page words it. Only numbers and ids travel, never text,
//! so a crafted link cannot put words on an operator's screen.

use serde::Deserialize;

use super::layout::Banner;

/// An action's outcome.
pub enum Done {
    Redriven { redriven: u64, left: u64 },
    Dropped { dropped: u64 },
    Resolved { job_id: uuid::Uuid },
    Created { product_id: i64 },
    Restocked { product_id: i64 },
    Changed { product_id: i64 },
}

impl Done {
    /// `page` with this outcome in its query.
    pub fn location(&self, page: &str) -> String {
        let query = match self {
            Done::Redriven { redriven, left } => format!("done=redriven&n={redriven}&left={left}"),
            Done::Dropped { dropped } => format!("done=dropped&n={dropped}"),
            Done::Resolved { job_id } => format!("done=resolved&id={job_id}"),
            Done::Created { product_id } => format!("done=created&id={product_id}"),
            Done::Restocked { product_id } => format!("done=restocked&id={product_id}"),
            Done::Changed { product_id } => format!("done=changed&id={product_id}"),
        };
        format!("{page}?{query}")
    }
}

/// The outcome as a page's query carries it.
#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    done: Option<String>,
    n: Option<u64>,
    left: Option<u64>,
    id: Option<String>,
}

impl Notice {
    /// The banner that words it; none for an unknown or partial query.
    pub fn banner(&self) -> Banner {
        let id = || {
            self.id
                .as_deref()
                .filter(|id| id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        };
        let notice = match (self.done.as_deref(), self.n, self.left, id()) {
            (Some("redriven"), Some(n), Some(left), _) => Some(format!(
                "Re-drove {n} dead letter{}; {left} left in the queue.",
                plural(n)
            )),
            (Some("dropped"), Some(n), _, _) => {
                Some(format!("Dropped {n} undecodable dead letter{}.", plural(n)))
            }
            (Some("resolved"), _, _, Some(id)) => {
                Some(format!("Payment event {id} marked resolved."))
            }
            (Some("created"), _, _, Some(id)) => Some(format!("Product #{id} created.")),
            (Some("restocked"), _, _, Some(id)) => Some(format!("Product #{id} restocked.")),
            (Some("changed"), _, _, Some(id)) => Some(format!("Product #{id} saved.")),
            _ => None,
        };
        Banner {
            notice,
            problem: None,
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
