//! Sends this crate's test binaries' `rte_flow_*` calls to `rte::flow::fake`
//! (`__wrap_rte_flow_*`) instead of DPDK. Only the test binaries: the
//! flag is `rustc-link-arg-tests`, so nothing else links against the fake.

fn main() {
    println!(
        "cargo:rustc-link-arg-tests=-Wl,--wrap=rte_flow_validate,--wrap=rte_flow_create,--wrap=rte_flow_destroy,--wrap=rte_flow_query"
    );
}
