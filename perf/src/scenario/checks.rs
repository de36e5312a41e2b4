//! Every check's outcome and the human summary.

use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
}

impl Status {
    pub(super) fn name(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
        }
    }
}

struct Check {
    name: String,
    status: Status,
    detail: String,
}

/// Every check's outcome, printed as it is recorded.
#[derive(Default)]
pub(super) struct Checks(Vec<Check>);

impl Checks {
    pub(super) fn record(&mut self, name: &str, result: Result<String, String>) {
        let (status, detail) = match result {
            Ok(d) => (Status::Pass, d),
            Err(d) => (Status::Fail, d),
        };
        println!("{} {name}: {detail}", status.name());
        self.0.push(Check {
            name: name.to_owned(),
            status,
            detail,
        });
    }

    pub(super) fn count(&self, status: Status) -> usize {
        self.0.iter().filter(|c| c.status == status).count()
    }

    pub(super) fn json(&self) -> Value {
        self.0
            .iter()
            .map(|c| json!({"name": c.name, "status": c.status.name(), "detail": c.detail}))
            .collect()
    }
}

/// The human summary, filled in as the checks learn things.
#[derive(Default)]
pub(super) struct Summary {
    pub(super) reached: Vec<String>,
    pub(super) blocked: Vec<String>,
    pub(super) tgw: Vec<String>,
    /// The lines of tgw's /metrics the scrape check judged.
    pub(super) metrics: Vec<String>,
}
