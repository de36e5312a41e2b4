//! tgw-setup: makes this machine ready for a tgw config with DPDK's own
//! tools (hugepages, NICs on vfio-pci); run by tgw-setup.service before
//! tgw.service, or by hand. See ctl::setup and docs/appliance.md.
#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::Parser;
use ctl::setup::{plan, Facts, Step};

/// Prepares the machine for a tgw config: reserves 2 MiB hugepages for
/// [eal] memory_mb with dpdk-hugepages.py (never fewer than are already
/// reserved), mounts hugetlbfs, and binds every [[port]] whose device is
/// a PCI address to vfio-pci with dpdk-devbind.py. Devices the config
/// does not name are never touched. Safe to run again: what is already
/// done is only reported.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:\n  tgw-setup --config /etc/tgw/tgw.toml --dry-run\n  tgw-setup --config /etc/tgw/tgw.toml\n\nExit status: 0 when the machine is ready, 1 when it cannot be made so (a bad config, no such PCI device, no IOMMU, a tool that failed): each problem is one line on stderr with its fix."
)]
struct Args {
    /// The tgw configuration file (the one tgw runs with).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,

    /// Print what would be done, do nothing.
    #[arg(long)]
    dry_run: bool,

    /// Where sysfs is (tests point it at a fake tree).
    #[arg(long, value_name = "DIR", default_value = "/sys", hide = true)]
    sysfs: PathBuf,

    /// The mount table to read (tests point it at a file).
    #[arg(long, value_name = "FILE", default_value = "/proc/mounts", hide = true)]
    mounts: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let fail = |what: &str| {
        eprintln!("tgw-setup: {what}");
        ExitCode::FAILURE
    };
    let cpus = match ctl::cpuset::usable_cpus() {
        Ok(cpus) => cpus,
        Err(e) => return fail(&format!("cannot read the CPUs this process may use: {e}")),
    };
    let config = match ctl::config::load(&args.config, &cpus) {
        Ok(config) => config,
        Err(errors) => return fail(&errors.to_string()),
    };
    let mounts = std::fs::read_to_string(&args.mounts).unwrap_or_default();
    let pci: Vec<&str> = config
        .ports
        .iter()
        .filter(|p| p.is_pci())
        .map(|p| p.dpdk_name())
        .collect();
    let facts = Facts::read(&args.sysfs, &mounts, &pci);
    let steps = match plan(&config, &facts) {
        Ok(steps) => steps,
        Err(errors) => {
            for e in errors {
                eprintln!("tgw-setup: error: {e}");
            }
            return ExitCode::FAILURE;
        }
    };
    for step in steps {
        match step {
            Step::Ok(_) => println!("tgw-setup: {step}"),
            Step::Run { .. } if args.dry_run => println!("tgw-setup: would {step}"),
            Step::Run {
                ref argv,
                ref on_failure,
                ..
            } => {
                println!("tgw-setup: {step}");
                let done = Command::new(&argv[0]).args(&argv[1..]).status();
                match done {
                    Ok(s) if s.success() => {}
                    Ok(s) => {
                        return fail(&format!("error: {} failed ({s}): {on_failure}", argv[0]))
                    }
                    Err(e) => {
                        return fail(&format!("error: cannot run {}: {e}: {on_failure}", argv[0]))
                    }
                }
            }
        }
    }
    if !args.dry_run {
        println!("tgw-setup: ready for {}", args.config.display());
    }
    ExitCode::SUCCESS
}
