//! What the rte test binaries share.

/// EAL leaves its runtime directory (`/var/run/dpdk/PREFIX`) behind even
/// with --no-shconf, and a test binary has no moment after its last test to
/// remove its own; so each run removes those named `{tag}{pid}` whose
/// process is gone. Each binary has its own tag, so that none removes the
/// directory of another one still running.
pub fn sweep_stale_runtime_dirs(tag: &str) {
    let Ok(entries) = std::fs::read_dir("/var/run/dpdk") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(tag) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
