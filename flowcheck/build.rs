//! Sends this crate's test binaries' `rte_flow_*` calls to `rte::flow::fake`
//! (`__wrap_rte_flow_*`) instead of DPDK. Only the test binaries: the
//! flag is `rustc-link-arg-tests`, so nothing else links against the fake.
//! Each wrapped symbol is a function librte_ethdev.so.23 (DPDK 22.11)
//! exports (`nm -D`), not an inline: a call to an inline would not reach
//! the linker.

/// The synchronous API, then the template/async API.
const WRAPPED: &[&str] = &[
    "rte_flow_validate",
    "rte_flow_create",
    "rte_flow_destroy",
    "rte_flow_query",
    "rte_flow_info_get",
    "rte_flow_configure",
    "rte_flow_pattern_template_create",
    "rte_flow_pattern_template_destroy",
    "rte_flow_actions_template_create",
    "rte_flow_actions_template_destroy",
    "rte_flow_template_table_create",
    "rte_flow_template_table_destroy",
    "rte_flow_async_create",
    "rte_flow_async_destroy",
    "rte_flow_push",
    "rte_flow_pull",
];

fn main() {
    let wraps: Vec<String> = WRAPPED.iter().map(|s| format!("--wrap={s}")).collect();
    println!("cargo:rustc-link-arg-tests=-Wl,{}", wraps.join(","));
}
