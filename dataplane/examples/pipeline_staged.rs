//! `pipeline_profile`'s frames in bursts of 32, each burst staged first
//! (`Pipeline::stage_public`, `Pipeline::stage_underlay`) and then
//! processed frame by frame with its hints, as the daemon's workers do:
//!
//!   cargo build --release -p dataplane --example pipeline_staged
//!   valgrind --tool=callgrind target/release/examples/pipeline_staged decap [PASSES]
//!   (or encap, or nat; PASSES over the profile's frames, 100 by default)
//!
//! Instructions a frame without the setup: run it at 1 and at 101 passes
//! and divide the difference by 100 passes' frames (docs/working.md).
//!
//! A program of its own, so that `pipeline_profile`'s one-at-a-time loop
//! is compiled as it always was (a second caller of `process_staged` in
//! one program changes what the compiler inlines, and the counts).
//!
//! The stages are given a prefetch that stands for the worker's
//! (`RtePrefetch` in src/worker.rs, an instruction): what the stages do
//! only for a real prefetch is then counted, as the worker runs it.

#[path = "../benches/scenario/mod.rs"]
mod scenario;

use dataplane::flow::Prefetch;
use dataplane::pipeline::{Hint, Pipeline};
use dataplane::ratelimit::TokenBucket;
use dataplane::{Checked, Frame, VecFrame, Verdict, WorkerCounters};
use scenario::TENANTS;

/// The worker's prefetch (`rte::prefetch`, an instruction that retires at
/// once) as this crate can count it without `unsafe`: the address is
/// computed and kept (`black_box`, a store), about what the instruction
/// costs.
struct Counted;

impl Prefetch for Counted {
    const INSTRUCTION: bool = true;

    #[inline(always)]
    fn prefetch<T>(&self, r: &T) {
        std::hint::black_box(r as *const T);
    }
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "encap".into());
    let passes: usize = match std::env::args().nth(2).map(|p| p.parse()) {
        None => 100,
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("pipeline_staged: PASSES: {e}");
            std::process::exit(2);
        }
    };
    let (frames, port, out, t) = scenario::profile(&which);
    let counters = WorkerCounters::new(TENANTS as usize);
    let mut pipeline =
        Pipeline::new(TokenBucket::new(1000, 50, 2_000_000_000), 0).with_neighbours(&t.neighbours);
    let mut frame = VecFrame::new(&frames[0], port);
    let mut forwarded = 0u64;
    for _ in 0..passes {
        for burst in frames.chunks(32) {
            let mut hints = [Hint::default(); 32];
            let bytes = burst.iter().map(|f| &f[..]);
            pipeline.stage_public(&t, port, bytes, &Counted, 0, &mut hints);
            let bytes = burst.iter().map(|f| (&f[..], Checked::Unknown));
            pipeline.stage_underlay(&t, port, bytes, &Counted, 0, &mut hints);
            for (f, hint) in burst.iter().zip(&hints) {
                frame.refill(f);
                let v = pipeline.process_staged(&t, &counters, &mut frame, 0, hint);
                if v == Verdict::Forward(out) {
                    forwarded += 1;
                }
            }
        }
    }
    println!(
        "{which} staged: {forwarded} of {} frames forwarded, last {} bytes",
        passes * frames.len(),
        frame.len()
    );
}
