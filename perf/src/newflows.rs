//! What the `new-flows` profile reports: the flows tgw created, as a rate
//! per worker core beside the frames it forwarded, and the frames that
//! could not open one, by reason, so that a full table shows as such.
//!
//! tgw writes its counters once, when it stops, so they cover the whole
//! run (warm-up, window, drain), not the window. The rate is the window's
//! forwarding rate times the flows created per frame forwarded over the
//! whole run: exact while every forwarded frame opened a flow (the share
//! near 1), an average over the run when some could not.

use crate::gen::GenResult;

/// The drops of a frame whose flow could not be created.
const REFUSALS: [&str; 4] = ["flow_table_full", "quota", "unreplied_quota", "no_nat_port"];

/// tgw's flows created over a run, from its `--stats-json` workers.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    pub flows: u64,
    pub workers: usize,
    pub refused: Vec<(&'static str, u64)>,
}

impl Created {
    /// Sums every worker's tenants' `flows_created` and refusals; `None`
    /// without workers (testpmd).
    pub fn from_workers(workers: &[serde_json::Value]) -> Option<Created> {
        if workers.is_empty() {
            return None;
        }
        let flows = workers
            .iter()
            .filter_map(|w| w.get("tenants")?.as_object())
            .flat_map(|t| t.values())
            .filter_map(|t| t.get("flows_created")?.as_u64())
            .sum();
        let refused = REFUSALS
            .iter()
            .map(|&r| {
                let n = workers
                    .iter()
                    .filter_map(|w| w.get("drops")?.get(r)?.as_u64())
                    .sum();
                (r, n)
            })
            .collect();
        Some(Created {
            flows,
            workers: workers.len(),
            refused,
        })
    }

    /// Flows created per frame the generator got back, over the run.
    pub fn per_received(&self, gen: &GenResult) -> f64 {
        self.flows as f64 / gen.received_total.max(1) as f64
    }

    /// New flows per second per worker core in the window.
    pub fn per_second_per_core(&self, gen: &GenResult) -> f64 {
        gen.received_mpps() * 1e6 * self.per_received(gen) / self.workers.max(1) as f64
    }

    pub fn json(&self, gen: &GenResult) -> serde_json::Value {
        let refused: serde_json::Map<_, _> = self
            .refused
            .iter()
            .map(|&(r, n)| (r.to_owned(), n.into()))
            .collect();
        serde_json::json!({
            "flows_created": self.flows, "workers": self.workers,
            "created_per_received": self.per_received(gen),
            "per_second_per_core": self.per_second_per_core(gen),
            "refused": refused,
        })
    }

    /// One line under the device's row of the table.
    pub fn line(&self, gen: &GenResult) -> String {
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        format!(
            "new flows: {:.3} M/s per core; {} created = {:.1}% of {} forwarded; refused: {}",
            self.per_second_per_core(gen) / 1e6,
            self.flows,
            self.per_received(gen) * 100.0,
            gen.received_total,
            refused.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_of_every_tenant_and_worker_count_and_refusals_show() {
        let workers = serde_json::json!([
            {"tenants": {"t0": {"flows_created": 600}, "t1": {"flows_created": 200}},
             "drops": {"flow_table_full": 5, "tx_full": 9}},
            {"tenants": {"t0": {"flows_created": 200}}, "drops": {"unreplied_quota": 2}},
        ]);
        let c = Created::from_workers(workers.as_array().unwrap()).unwrap();
        assert_eq!((c.flows, c.workers), (1000, 2));
        assert_eq!(c.refused[0], ("flow_table_full", 5));
        assert_eq!(c.refused[2], ("unreplied_quota", 2));
        let gen = GenResult {
            seconds: 2.0,
            sent: 2000,
            received: 800,
            sent_total: 3000,
            received_total: 1250,
        };
        assert_eq!(c.per_received(&gen), 0.8);
        // 400 frames/s forwarded in the window, 80% opened a flow, 2 cores.
        assert_eq!(c.per_second_per_core(&gen), 160.0);
        assert!(
            c.line(&gen).contains("flow_table_full 5"),
            "{}",
            c.line(&gen)
        );
        assert!(Created::from_workers(&[]).is_none());
    }
}
