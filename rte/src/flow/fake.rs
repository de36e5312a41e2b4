//! A fake NIC for tests linked with `-Wl,--wrap=rte_flow_*` (feature
//! `fake-nic`).
