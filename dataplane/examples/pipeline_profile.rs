//! Runs the pipeline over the frames of the bench for a fixed count, for
//! instruction-level profiles that wall-clock benches cannot give on a VM
//! without hardware counters:
//!
//!   cargo build --release -p dataplane --example pipeline_profile
//!   valgrind --tool=callgrind --cache-sim=yes target/release/examples/pipeline_profile decap
//!   callgrind_annotate callgrind.out.<pid>

#[path = "../benches/scenario/mod.rs"]
mod scenario;

use dataplane::pipeline::Pipeline;
use dataplane::ratelimit::TokenBucket;
use dataplane::{Frame, VecFrame, Verdict, WorkerCounters};
use scenario::{decap_frames, encap_frames, tables, TENANTS};

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "encap".into());
    let (frames, port, out) = match which.as_str() {
        "decap" => (decap_frames(), 1, 0),
        _ => (encap_frames(), 0, 1),
    };
    let t = tables();
    let counters = WorkerCounters::new(TENANTS as usize);
    let mut pipeline = Pipeline::new(TokenBucket::new(1000, 50, 2_000_000_000), 0);
    let mut frame = VecFrame::new(&frames[0], port);
    let mut forwarded = 0u64;
    for _ in 0..100 {
        for f in &frames {
            frame.refill(f);
            if pipeline.process(&t, &counters, &mut frame, 0) == Verdict::Forward(out) {
                forwarded += 1;
            }
        }
    }
    println!(
        "{which}: {forwarded} of {} frames forwarded, last {} bytes",
        100 * frames.len(),
        frame.len()
    );
}
