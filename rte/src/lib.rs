//! Safe layer over DPDK (work in progress).
