//! testpmd's best rate on this machine since it booted, kept between runs
//! of `tgw-perf run`: the yardstick a run's testpmd rounds are judged
//! against.
//!
//! A run judges testpmd by the best rate testpmd showed in the run itself
//! (the host only ever slows a device, so its best is its true rate). A
//! run that the host slowed from its first round to its last has no
//! better rate of its own to see that by: every round looks clean, and
//! its ratio is off, as both sides' I/O, slowed, weighs more than it
//! should (nat 0.70–0.73 and decap 0.80–0.90 of testpmd in such runs,
//! against 0.60–0.64 and 0.59–0.67 in runs in memif's fast state the
//! same hour; docs/perf.md, session 18). Kept per boot, so that another
//! host or kernel starts afresh, and per bench (profile, frame size,
//! hugepages, memif ring), so that one bench's rate never judges another.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

/// The bests of one boot.
#[derive(Debug, Default, PartialEq)]
pub struct History {
    boot: String,
    /// testpmd's best received rate, Mpps, by bench ([`bench_key`]).
    testpmd: BTreeMap<String, f64>,
}

/// Where the bests are kept unless `--history` says otherwise:
/// `$XDG_STATE_HOME/tgw-perf/best.json`, else under `~/.local/state`.
pub fn default_path() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
        .join("tgw-perf")
        .join("best.json")
}

/// What a testpmd rate depends on besides the host's mood.
pub fn bench_key(profile: &str, size: usize, hugepages: bool, memif_rsize: Option<u8>) -> String {
    let huge = if hugepages {
        "hugepages"
    } else {
        "no-hugepages"
    };
    let rsize = memif_rsize.map_or("default".to_owned(), |r| r.to_string());
    format!("{profile},{size}B,{huge},rsize={rsize}")
}

/// This boot's id: bests from another boot are not this machine's.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl History {
    /// The bests of boot `boot` kept at `path`: none if the file is
    /// missing, unreadable or of another boot.
    pub fn load(path: &Path, boot: &str) -> History {
        let empty = History {
            boot: boot.to_owned(),
            testpmd: BTreeMap::new(),
        };
        let Some(v) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        else {
            return empty;
        };
        if boot.is_empty() || v["boot"] != boot {
            return empty;
        }
        let testpmd = v["testpmd_mpps"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, r)| Some((k.clone(), r.as_f64().filter(|r| *r > 0.0)?)))
                    .collect()
            })
            .unwrap_or_default();
        History { testpmd, ..empty }
    }

    /// testpmd's best on `bench` since boot, if a run saw it.
    pub fn testpmd(&self, bench: &str) -> Option<f64> {
        self.testpmd.get(bench).copied()
    }

    /// Notes that testpmd received `mpps` on `bench`.
    pub fn record(&mut self, bench: &str, mpps: f64) {
        if mpps > 0.0 && mpps.is_finite() {
            let best = self.testpmd.entry(bench.to_owned()).or_insert(0.0);
            *best = best.max(mpps);
        }
    }

    /// Writes the bests to `path` whole (a file beside it, renamed over
    /// it), its directory made if need be.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let text = json!({"boot": self.boot, "testpmd_mpps": self.testpmd}).to_string() + "\n";
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bests come back for the same boot and bench, are the highest
    /// seen, and are forgotten across a boot.
    #[test]
    fn bests_are_kept_per_boot_and_bench_and_only_rise() {
        let dir = std::env::temp_dir().join(format!("tgw-perf-history-{}", std::process::id()));
        let path = dir.join("state").join("best.json");
        let nat = bench_key("nat", 64, true, None);
        let udp = bench_key("udp", 64, true, Some(12));
        assert_ne!(nat, udp);

        let mut h = History::load(&path, "boot-a");
        assert_eq!(h.testpmd(&nat), None, "no file, no best");
        h.record(&nat, 35.0);
        h.record(&nat, 16.0);
        h.record(&udp, f64::NAN);
        h.save(&path).unwrap();

        let mut again = History::load(&path, "boot-a");
        assert_eq!(again.testpmd(&nat), Some(35.0), "the higher rate stays");
        assert_eq!(again.testpmd(&udp), None, "no rate from a NaN");
        again.record(&nat, 37.5);
        again.save(&path).unwrap();
        assert_eq!(History::load(&path, "boot-a").testpmd(&nat), Some(37.5));

        assert_eq!(
            History::load(&path, "boot-b").testpmd(&nat),
            None,
            "another boot"
        );
        assert_eq!(History::load(&path, "").testpmd(&nat), None, "no boot id");
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(
            History::load(&path, "boot-a"),
            History::load(&dir.join("none"), "boot-a")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
