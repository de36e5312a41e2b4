//! `tgw-setup`: makes the machine ready for a config, with DPDK's own
//! tools: hugepages through `dpdk-hugepages.py` (`[eal] memory_mb`), and
//! every `[[port]]` whose device is a PCI address bound to `vfio-pci`
//! through `dpdk-devbind.py`. It runs before tgw (tgw-setup.service,
//! docs/appliance.md).
//!
//! What it does is decided from facts read first (sysfs, /proc/mounts)
//! and only then carried out, so the decisions are tested on a fake sysfs
//! root and `--dry-run` prints the same plan it would run. Running it
//! twice does nothing the second time; it never names a device the
//! config does not name (every PCI address handed to `dpdk-devbind.py`
//! comes from a `[[port]] device`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::config::Config;

/// The hugepage size tgw-setup reserves: 2 MiB, which every x86 and arm64
/// kernel has and which DPDK's mempools fill well.
pub const PAGE_KB: u64 = 2048;
/// The driver DPDK's PMDs need the NIC on.
pub const VFIO: &str = "vfio-pci";

/// What the machine looks like, as far as the config's needs go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// 2 MiB pages reserved (`nr_hugepages`); `None` when the kernel has
    /// no 2 MiB hugepages at all.
    pub hugepages: Option<u64>,
    /// Some hugetlbfs is mounted (DPDK finds it in /proc/mounts).
    pub hugetlbfs: bool,
    /// Entries of /sys/kernel/iommu_groups: none means the IOMMU is off
    /// (or the kernel has none), and vfio-pci cannot take a device.
    pub iommu_groups: usize,
    /// vfio's no-IOMMU mode is on (`enable_unsafe_noiommu_mode`): vfio-pci
    /// then works without an IOMMU, unsafely, and says so in the kernel log.
    pub noiommu: bool,
    /// The vfio-pci driver is registered (its module is loaded).
    pub vfio_pci: bool,
    /// Each PCI address the config names: `None` when there is no such
    /// device, else the driver it is bound to (`""` for none).
    pub devices: BTreeMap<String, Option<String>>,
}

impl Facts {
    /// Reads the facts from a sysfs root (`/sys`) and the text of
    /// /proc/mounts, for the PCI addresses `pci`.
    pub fn read(sys: &Path, mounts: &str, pci: &[&str]) -> Facts {
        let count = |dir: &str| std::fs::read_dir(sys.join(dir)).map_or(0, |d| d.count());
        let hugepages = std::fs::read_to_string(sys.join(format!(
            "kernel/mm/hugepages/hugepages-{PAGE_KB}kB/nr_hugepages"
        )))
        .ok()
        .and_then(|s| s.trim().parse().ok());
        let noiommu =
            std::fs::read_to_string(sys.join("module/vfio/parameters/enable_unsafe_noiommu_mode"))
                .is_ok_and(|s| s.trim() == "Y");
        let devices = pci
            .iter()
            .map(|&addr| {
                let dev = sys.join("bus/pci/devices").join(addr);
                let driver = dev.exists().then(|| {
                    std::fs::read_link(dev.join("driver"))
                        .ok()
                        .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
                        .unwrap_or_default()
                });
                (addr.to_owned(), driver)
            })
            .collect();
        Facts {
            hugepages,
            hugetlbfs: mounts
                .lines()
                .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs")),
            iommu_groups: count("kernel/iommu_groups"),
            noiommu,
            vfio_pci: sys.join("bus/pci/drivers").join(VFIO).is_dir(),
            devices,
        }
    }
}

/// One step of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Already as the config needs: said, nothing done.
    Ok(String),
    /// A command to run, why, and what to tell the operator if it fails.
    Run {
        argv: Vec<String>,
        why: String,
        on_failure: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Ok(what) => write!(f, "ok: {what}"),
            Step::Run { argv, why, .. } => write!(f, "{why}: {}", argv.join(" ")),
        }
    }
}

/// The steps that make the machine as `config` needs it, or every reason
/// it cannot be (one line each, with the fix).
pub fn plan(config: &Config, facts: &Facts) -> Result<Vec<Step>, Vec<String>> {
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    hugepages(config, facts, &mut steps, &mut errors);
    binding(config, facts, &mut steps, &mut errors);
    if errors.is_empty() {
        Ok(steps)
    } else {
        Err(errors)
    }
}

fn hugepages(config: &Config, facts: &Facts, steps: &mut Vec<Step>, errors: &mut Vec<String>) {
    let eal = &config.eal;
    if !eal.hugepages {
        steps.push(Step::Ok(
            "[eal] hugepages = false: tgw runs with --no-huge, nothing to reserve".into(),
        ));
        return;
    }
    let Some(have) = facts.hugepages else {
        errors.push(format!(
            "this kernel has no {PAGE_KB} kB hugepages (no /sys/kernel/mm/hugepages/hugepages-{PAGE_KB}kB): \
             build it with CONFIG_HUGETLBFS, or set [eal] hugepages = false (functional use only)"
        ));
        return;
    };
    let want = u64::from(eal.memory_mb).div_ceil(PAGE_KB / 1024);
    if have >= want {
        steps.push(Step::Ok(format!(
            "{have} hugepages of 2 MiB reserved, [eal] memory_mb = {} needs {want}",
            eal.memory_mb
        )));
    } else {
        steps.push(Step::Run {
            argv: vec![
                "dpdk-hugepages.py".into(),
                "--pagesize".into(),
                "2M".into(),
                "--reserve".into(),
                format!("{}M", eal.memory_mb),
            ],
            why: format!(
                "reserve {want} hugepages of 2 MiB for [eal] memory_mb = {} ({have} now)",
                eal.memory_mb
            ),
            on_failure: "the kernel could not find that much contiguous memory: reserve hugepages at boot (hugepages= on the kernel command line) or lower [eal] memory_mb".into(),
        });
    }
    if facts.hugetlbfs {
        steps.push(Step::Ok("hugetlbfs is mounted".into()));
    } else {
        steps.push(Step::Run {
            argv: vec!["dpdk-hugepages.py".into(), "--mount".into()],
            why: "mount hugetlbfs on /dev/hugepages".into(),
            on_failure: "mounting needs root (CAP_SYS_ADMIN)".into(),
        });
    }
}

fn binding(config: &Config, facts: &Facts, steps: &mut Vec<Step>, errors: &mut Vec<String>) {
    let mut to_bind = Vec::new();
    for port in config.ports.iter().filter(|p| p.is_pci()) {
        let addr = port.dpdk_name();
        match facts.devices.get(addr) {
            None | Some(None) => errors.push(format!(
                "port {:?}: no PCI device {addr} on this machine (lspci -D lists them); fix [[port]] device",
                port.name
            )),
            Some(Some(driver)) if driver == VFIO => steps.push(Step::Ok(format!(
                "port {:?}: {addr} is on {VFIO}",
                port.name
            ))),
            Some(Some(driver)) => to_bind.push((port, addr, driver)),
        }
    }
    if config.ports.iter().all(|p| !p.is_pci()) {
        steps.push(Step::Ok(
            "no [[port]] is a PCI device: nothing to bind".into(),
        ));
        return;
    }
    if to_bind.is_empty() {
        return;
    }
    if facts.iommu_groups == 0 && !facts.noiommu {
        errors.push(format!(
            "no IOMMU: /sys/kernel/iommu_groups is empty, so {VFIO} cannot take {}; turn the IOMMU on \
             (VT-d/AMD-Vi in the firmware, intel_iommu=on or amd_iommu=on on the kernel command line) \
             or, on a machine without one, vfio's no-IOMMU mode \
             (echo Y > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode)",
            to_bind
                .iter()
                .map(|(_, addr, _)| *addr)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return;
    }
    if !facts.vfio_pci {
        steps.push(Step::Run {
            argv: vec!["modprobe".into(), VFIO.into()],
            why: format!("load the {VFIO} module"),
            on_failure: format!(
                "no {VFIO} module for this kernel: install the kernel's modules (linux-image-*) or build it with CONFIG_VFIO_PCI"
            ),
        });
    }
    for (port, addr, driver) in to_bind {
        let from = if driver.is_empty() {
            "no driver".to_owned()
        } else {
            format!("{driver}; its kernel interface goes away")
        };
        steps.push(Step::Run {
            argv: vec![
                "dpdk-devbind.py".into(),
                format!("--bind={VFIO}"),
                addr.to_owned(),
            ],
            why: format!("bind port {:?} ({addr}, now on {from}) to {VFIO}", port.name),
            on_failure: "dpdk-devbind.py refuses a device whose interface is up or routed: take it down (ip link set DEV down) or fix [[port]] device".into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpuset::CpuSet;

    fn config(ports: &[&str], eal: &str) -> Config {
        let mut text = format!("[eal]\n{eal}\n");
        for (i, dev) in ports.iter().enumerate() {
            let role = if i == 0 { "public" } else { "underlay" };
            text += &format!("[[port]]\nname = \"p{i}\"\ndevice = \"{dev}\"\nrole = \"{role}\"\n");
        }
        text += "[[worker]]\nlcore = 1\nrx = [";
        text += &(0..ports.len())
            .map(|i| format!("\"p{i}:0\""))
            .collect::<Vec<_>>()
            .join(", ");
        text += "]\n";
        crate::config::parse(&text, "t.toml", &"0-1".parse::<CpuSet>().unwrap())
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn facts(devices: &[(&str, Option<&str>)]) -> Facts {
        Facts {
            hugepages: Some(512),
            hugetlbfs: true,
            iommu_groups: 12,
            noiommu: false,
            vfio_pci: true,
            devices: devices
                .iter()
                .map(|(a, d)| (a.to_string(), d.map(str::to_owned)))
                .collect(),
        }
    }

    fn runs(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Run { argv, .. } => Some(argv.join(" ")),
                Step::Ok(_) => None,
            })
            .collect()
    }

    #[test]
    fn binds_only_the_pci_ports_not_yet_on_vfio() {
        let c = config(
            &["0000:03:00.0", "0000:03:00.1,rxq_pkt_fill=1", "net_null0"],
            "memory_mb = 512",
        );
        let f = facts(&[
            ("0000:03:00.0", Some("ixgbe")),
            ("0000:03:00.1", Some("vfio-pci")),
        ]);
        let steps = plan(&c, &f).unwrap();
        assert_eq!(
            runs(&steps),
            ["dpdk-devbind.py --bind=vfio-pci 0000:03:00.0"]
        );
        // Done: the second run changes nothing.
        let mut bound = f.clone();
        bound
            .devices
            .insert("0000:03:00.0".into(), Some("vfio-pci".into()));
        assert_eq!(runs(&plan(&c, &bound).unwrap()), Vec::<String>::new());
    }

    #[test]
    fn hugepages_follow_memory_mb_and_are_never_lowered() {
        let c = config(&["net_null0", "net_null1"], "memory_mb = 2048");
        let mut f = facts(&[]);
        f.hugetlbfs = false;
        assert_eq!(
            runs(&plan(&c, &f).unwrap()),
            [
                "dpdk-hugepages.py --pagesize 2M --reserve 2048M",
                "dpdk-hugepages.py --mount"
            ]
        );
        f.hugepages = Some(1024);
        f.hugetlbfs = true;
        assert_eq!(runs(&plan(&c, &f).unwrap()), Vec::<String>::new());
        f.hugepages = Some(4096);
        assert_eq!(runs(&plan(&c, &f).unwrap()), Vec::<String>::new());
        let off = config(
            &["net_null0", "net_null1"],
            "hugepages = false\nmemory_mb = 2048",
        );
        f.hugepages = Some(0);
        assert_eq!(runs(&plan(&off, &f).unwrap()), Vec::<String>::new());
    }

    #[test]
    fn no_iommu_and_missing_devices_are_errors_that_say_the_fix() {
        let c = config(&["0000:03:00.0", "0000:04:00.0"], "memory_mb = 512");
        let mut f = facts(&[("0000:03:00.0", Some("ixgbe")), ("0000:04:00.0", None)]);
        f.iommu_groups = 0;
        let errors = plan(&c, &f).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("no PCI device 0000:04:00.0"),
            "{errors:?}"
        );
        assert!(errors[1].contains("intel_iommu=on"), "{errors:?}");
        // No-IOMMU mode lets vfio-pci work; a missing module is loaded.
        f.noiommu = true;
        f.vfio_pci = false;
        f.devices.insert("0000:04:00.0".into(), Some(String::new()));
        assert_eq!(
            runs(&plan(&c, &f).unwrap()),
            [
                "modprobe vfio-pci",
                "dpdk-devbind.py --bind=vfio-pci 0000:03:00.0",
                "dpdk-devbind.py --bind=vfio-pci 0000:04:00.0"
            ]
        );
    }

    #[test]
    fn facts_come_from_a_sysfs_root() {
        let root = std::env::temp_dir().join(format!("tgw-setup-sysfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mk = |p: &str| std::fs::create_dir_all(root.join(p)).unwrap();
        mk("kernel/mm/hugepages/hugepages-2048kB");
        std::fs::write(
            root.join("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
            "64\n",
        )
        .unwrap();
        mk("kernel/iommu_groups/7");
        mk("bus/pci/drivers/ixgbe");
        mk("bus/pci/devices/0000:03:00.0");
        mk("bus/pci/devices/0000:03:00.1");
        std::os::unix::fs::symlink(
            "../../../bus/pci/drivers/ixgbe",
            root.join("bus/pci/devices/0000:03:00.0/driver"),
        )
        .unwrap();
        let mounts =
            "sysfs /sys sysfs rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,pagesize=2M 0 0\n";
        let f = Facts::read(
            &root,
            mounts,
            &["0000:03:00.0", "0000:03:00.1", "0000:09:00.0"],
        );
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(f.hugepages, Some(64));
        assert!(f.hugetlbfs);
        assert_eq!(f.iommu_groups, 1);
        assert!(!f.vfio_pci && !f.noiommu);
        assert_eq!(f.devices["0000:03:00.0"], Some("ixgbe".into()));
        assert_eq!(f.devices["0000:03:00.1"], Some(String::new()));
        assert_eq!(f.devices["0000:09:00.0"], None);
    }
}
