//! Runs the pipeline over the frames of the bench for a fixed count, for
//! instruction-level profiles that wall-clock benches cannot give on a VM
//! without hardware counters:
//!
//!   cargo build --release -p dataplane --example pipeline_profile
//!   valgrind --tool=callgrind --cache-sim=yes target/release/examples/pipeline_profile decap
//!   (or encap, or nat: flow hits toward an elastic IP; a second argument
//!   `offload` runs the worker with offload on, its flows offered once)
//!   callgrind_annotate callgrind.out.<pid>
//!
//! New flows have their own program, `pipeline_newflows`: a second
//! caller of `Pipeline::process_staged` in this one changed how the
//! compiler inlined the pipeline, and with it these counts (docs/working.md).

#[path = "../benches/scenario/mod.rs"]
mod scenario;

use dataplane::offload::Link;
use dataplane::pipeline::Pipeline;
use dataplane::ratelimit::TokenBucket;
use dataplane::{Frame, VecFrame, Verdict, WorkerCounters};
use scenario::TENANTS;

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "encap".into());
    let (frames, port, out, t) = scenario::profile(&which);
    let counters = WorkerCounters::new(TENANTS as usize);
    let mut pipeline =
        Pipeline::new(TokenBucket::new(1000, 50, 2_000_000_000), 0).with_neighbours(&t.neighbours);
    if std::env::args().nth(2).as_deref() == Some("offload") {
        // Room for every flow's request: each is offered once, and every
        // later hit pays the test of its flow's offload state alone.
        let link = Link::new(0, 2 * frames.len(), 1);
        pipeline = pipeline.with_offload(std::sync::Arc::new(link));
    }
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
