//! tgw: a multi-tenant cloud gateway on DPDK.
//!
//! `tgw --config FILE` boots the appliance from a TOML file and forwards
//! until SIGINT or SIGTERM, changed at runtime through its control socket
//! (`tgwctl`) and by SIGHUP; `--check` only validates the file (and
//! builds its tables, as a start would).
#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use tracing::error;

use tgw::{gateway, report, supervise};

/// The flow tables and LPM tries are big vectors read at random: blocks of
/// 2 MiB or more get their own mappings advised for transparent huge pages,
/// so that a lookup in a table of a million flows does not also miss the
/// TLB (the hugetlbfs pool is left to DPDK's mempools).
#[global_allocator]
static ALLOC: rte::HugeAlloc = rte::HugeAlloc;

/// Multi-tenant cloud gateway on DPDK: GRE-keyed tenants, per-tenant
/// routing, NAT and firewall, run-to-completion on poll-mode lcores.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:\n  tgw --config examples/l2fwd-null.toml --check\n  tgw --config examples/l2fwd-null.toml\n\nWhile it runs, tgwctl changes and shows its state through the control socket ([control] socket, default /run/tgw/<file_prefix>.sock; docs/api.md), and SIGHUP reads FILE again and applies the difference (a bad file changes nothing and is logged with FILE:LINE).\n\nWhile it runs, its counters are served to Prometheus at /metrics ([metrics] listen; docs/metrics.md), shown by tgwctl stats and tgwctl top, and by DPDK's tools (dpdk-telemetry.py -f PREFIX, dpdk-dumpcap, dpdk-proc-info; docs/dpdk-tools.md).\n\nUnder systemd (Type=notify; packaging/systemd/tgw.service, docs/appliance.md) it sends READY=1 once every port is up and every worker polls, and WATCHDOG=1 only while every worker's heartbeat is fresh.\n\nLogs go to stderr, one line an event, coloured only on a terminal (RUST_LOG=debug for more); the counters are printed to stdout at exit.\n\nExit status: 0 after SIGINT/SIGTERM, 1 for a bad config or a start-up failure, 70 when a worker died (panicked, or its heartbeat stopped for [dataplane] watchdog_ms) and tgw stopped itself: restart it."
)]
struct Args {
    /// The configuration file (TOML; see examples/ and docs/config.md).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,

    /// Validate the configuration and exit: 0 if it is valid, 1 with one
    /// `FILE:LINE: problem` line per problem otherwise (and, for a file
    /// valid line by line, `FILE: tables: problem` if its tables cannot
    /// be built, as a start would build them).
    #[arg(long)]
    check: bool,

    /// At exit, also write the counters as JSON to this file.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tgw::logs::init();

    let cpus = match ctl::cpuset::usable_cpus() {
        Ok(cpus) => cpus,
        Err(e) => {
            eprintln!("tgw: cannot read the CPUs this process may use: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match ctl::config::load(&args.config, &cpus) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    if args.check {
        if let Err(e) = gateway::check_tables(&config, &cpus, &args.config) {
            eprintln!("{}: {e}", args.config.display());
            return ExitCode::FAILURE;
        }
        println!("{}: ok", args.config.display());
        return ExitCode::SUCCESS;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    let signals = [
        (signal_hook::consts::SIGINT, &stop),
        (signal_hook::consts::SIGTERM, &stop),
        (signal_hook::consts::SIGHUP, &reload),
    ];
    for (signal, flag) in signals {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(flag)) {
            eprintln!("tgw: cannot handle signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }

    // The counters go to stdout, and as JSON to --stats-json, whether tgw
    // stopped on a signal or because a worker died.
    let emit = |report: &report::Report| -> Result<(), String> {
        print!("{}", report.table());
        if let Some(path) = &args.stats_json {
            let text = report.json().to_string();
            std::fs::write(path, text + "\n")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    };
    let launch = gateway::Launch {
        config_path: &args.config,
        cpus: &cpus,
        stop,
        reload,
    };
    match gateway::run(&config, launch, &emit) {
        Ok(report) => {
            if let Err(e) = emit(&report) {
                error!("{e}");
                return ExitCode::FAILURE;
            }
            if report.failure.is_some() {
                ExitCode::from(supervise::EXIT_WORKER_FAILED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
