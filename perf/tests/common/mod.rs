//! What perf's integration tests share.
#![allow(dead_code)]

/// The network namespace guard: it lives in `src/` because `tgw-perf
/// scenario` uses it too.
#[path = "../../src/netns.rs"]
pub mod netns;

/// A scratch directory, made by `new` and removed on drop, even when the
/// test fails.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    /// `tgw-perf-NAME-PID` in the temporary directory.
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tgw-perf-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `tgw-perf ARGS --json FILE` (with `--no-huge` unless the test
/// command found hugepages), asserts it succeeded and printed `ratio`,
/// and returns its JSON report.
pub fn tgw_perf(args: &[&str], ratio: &str) -> serde_json::Value {
    let json = std::env::temp_dir().join(format!(
        "tgw-perf-test-{}-{}.json",
        args[0],
        std::process::id()
    ));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tgw-perf"));
    cmd.args(args).arg("--json").arg(&json);
    if std::env::var("TGW_HUGEPAGES").as_deref() != Ok("1") {
        cmd.arg("--no-huge");
    }
    let out = cmd.output().expect("run tgw-perf");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tgw-perf {} failed:\n{stdout}\n{}",
        args[0],
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(ratio), "no ratio in:\n{stdout}");
    let report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    report
}
