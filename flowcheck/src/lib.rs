//! flowcheck: the structures tgw hands `rte_flow`, checked at the real call
//! boundary.
//!
//! This crate's test binaries are linked with `-Wl,--wrap=rte_flow_validate,
//! --wrap=rte_flow_create,--wrap=rte_flow_destroy,--wrap=rte_flow_query`
//! and the template/async API's symbols (`rte_flow_info_get`,
//! `_configure`, templates, tables, `_async_create`, `_async_destroy`,
//! `_push`, `_pull`: build.rs), so every such call — from `rte::flow`'s
//! lowering, with the real C structs — lands in `rte::flow::fake`
//! (feature `fake-nic`), which decodes and records it and answers as a
//! capable NIC (as mlx5 in HW steering mode on ports a test makes async). Tests compare the
//! recorded rules with the ones they meant. No `unsafe` here: it stays in
//! `rte`.
//!
//! The library holds what the tests share: one EAL on virtual devices.

#![forbid(unsafe_code)]

use std::sync::OnceLock;

use rte::Eal;

/// The EAL of a test binary, with net_null0 and net_null1 (ports 0 and 1),
/// made once; registers the calling thread.
pub fn eal() -> &'static Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    let eal = EAL.get_or_init(|| {
        sweep_stale_runtime_dirs();
        let prefix = format!("--file-prefix=flowcheck-{}", std::process::id());
        let args = [
            "-l",
            "0",
            "--no-huge",
            "-m",
            "128",
            "--no-shconf",
            "--no-pci",
            "--no-telemetry",
            "--log-level=lib.eal:error",
            &prefix,
            "--vdev=net_null0",
            "--vdev=net_null1",
        ];
        Eal::init(&args).expect("EAL init")
    });
    eal.register_thread().expect("register thread");
    eal
}

/// EAL leaves `/var/run/dpdk/PREFIX` behind even with --no-shconf; a test
/// binary removes those of earlier flowcheck runs whose process is gone.
fn sweep_stale_runtime_dirs() {
    let Ok(entries) = std::fs::read_dir("/var/run/dpdk") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("flowcheck-") else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
