//! The set of CPUs the process may run on.
//!
//! Validation takes a [`CpuSet`] as an input instead of asking the machine,
//! so that tests give the same answer on every host. The daemon passes
//! [`usable_cpus`].

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::str::FromStr;

/// Linux's largest `NR_CPUS`; a list naming CPUs past it is corrupt, and the
/// bound keeps a hostile "0-4294967295" from allocating without end.
pub const MAX_CPUS: u32 = 8192;

/// A set of CPU numbers, as in the kernel's list format `0-3,8,10-11`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(BTreeSet<u32>);

impl CpuSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `cpu`; returns false if it was already there.
    pub fn insert(&mut self, cpu: u32) -> bool {
        self.0.insert(cpu)
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }

    /// The CPUs in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// Number of CPUs in the set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<u32> for CpuSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// Why a CPU list did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuListError(String);

impl fmt::Display for CpuListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CpuListError {}

fn parse_cpu(s: &str) -> Result<u32, CpuListError> {
    let cpu: u32 = s
        .trim()
        .parse()
        .map_err(|_| CpuListError(format!("{s:?} is not a CPU number")))?;
    if cpu >= MAX_CPUS {
        return Err(CpuListError(format!("CPU {cpu} is not below {MAX_CPUS}")));
    }
    Ok(cpu)
}

impl FromStr for CpuSet {
    type Err = CpuListError;

    /// Parses the kernel's list format (`0-3,8`, possibly empty).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = CpuSet::new();
        for part in s.trim().split(',').filter(|p| !p.trim().is_empty()) {
            match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (parse_cpu(lo)?, parse_cpu(hi)?);
                    if lo > hi {
                        return Err(CpuListError(format!("range {part:?} is reversed")));
                    }
                    set.0.extend(lo..=hi);
                }
                None => {
                    set.insert(parse_cpu(part)?);
                }
            }
        }
        Ok(set)
    }
}

impl fmt::Display for CpuSet {
    /// Writes the kernel's list format, ranges collapsed: `0-3,8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut cpus = self.iter().peekable();
        let mut first = true;
        while let Some(lo) = cpus.next() {
            let mut hi = lo;
            while cpus.peek() == Some(&(hi + 1)) {
                hi += 1;
                cpus.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if hi == lo {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// The CPUs this process may run on.
///
/// `available_parallelism` only gives a count, and lcores are CPU numbers:
/// with an affinity mask of `2-3` the count is 2 but lcore 0 is unusable.
/// The affinity list in `/proc/self/status` is what `sched_getaffinity`
/// returns; the online list is the fallback where `/proc` is not mounted.
pub fn usable_cpus() -> io::Result<CpuSet> {
    match std::fs::read_to_string("/proc/self/status") {
        Ok(status) => {
            if let Some(list) = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            {
                return list
                    .parse()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    std::fs::read_to_string("/sys/devices/system/cpu/online")?
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_lists() {
        let set: CpuSet = "0-2,5, 7-8\n".parse().unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 1, 2, 5, 7, 8]);
        assert_eq!(set.to_string(), "0-2,5,7-8");
        assert!("".parse::<CpuSet>().unwrap().is_empty());
    }

    #[test]
    fn rejects_garbage_and_huge_ranges() {
        assert!("x".parse::<CpuSet>().is_err());
        assert!("3-1".parse::<CpuSet>().is_err());
        assert!("0-4294967295".parse::<CpuSet>().is_err());
        assert!("1-".parse::<CpuSet>().is_err());
    }

    #[test]
    fn this_process_has_a_cpu() {
        let cpus = usable_cpus().unwrap();
        assert!(!cpus.is_empty());
    }
}
