//! The template/async flow API (`rte_flow_configure`,
//! `rte_flow_async_create`, …), where a PMD has one.
