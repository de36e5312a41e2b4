//! Finds Debian's DPDK through pkg-config, compiles the C shim against it and
//! links the shared libraries. With `--features regenerate` it also reruns
//! bindgen over `shim/wrapper.h` into `src/bindings.rs`; without it the
//! checked-in bindings are used, so a normal build needs no libclang.

use std::process::{exit, Command};

const INSTALL_HINT: &str =
    "install Debian's DPDK 22.11: apt-get install libdpdk-dev dpdk pkg-config";

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-changed=shim/wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let version = pkg_config(&["--modversion"]);
    if !version.starts_with("22.11") {
        fail(&format!(
            "found DPDK {version}, tgw is built for 22.11 LTS; {INSTALL_HINT}"
        ));
    }
    // The `pkg-config` crate drops `-include rte_config.h` and `-march=...`,
    // both of which DPDK's headers need, so the raw output is used.
    let cflags: Vec<String> = pkg_config(&["--cflags"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let libs = pkg_config(&["--libs"]);

    let mut shim = cc::Build::new();
    shim.file("shim/shim.c")
        .include("shim")
        .opt_level(3)
        .warnings(true);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("tgw_dpdk_shim");

    for lib in libs.split_whitespace() {
        if let Some(name) = lib.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={name}");
        } else if let Some(dir) = lib.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else {
            println!("cargo:rustc-link-arg={lib}");
        }
    }

    #[cfg(feature = "regenerate")]
    regenerate(&cflags);
}

/// Runs `pkg-config ARGS libdpdk`, or stops the build with one line saying
/// which packages to install.
fn pkg_config(args: &[&str]) -> String {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("libdpdk")
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(_) => fail(&format!("pkg-config does not know libdpdk; {INSTALL_HINT}")),
        Err(_) => fail(&format!("pkg-config is not installed; {INSTALL_HINT}")),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("dpdk-sys: {msg}");
    exit(1)
}

#[cfg(feature = "regenerate")]
fn regenerate(cflags: &[String]) {
    let manifest = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    // bindgen loads libclang at run time and panics when it is not there.
    if std::panic::catch_unwind(bindgen::clang_version).is_err() {
        fail("libclang is missing; apt-get install clang libclang-dev (only needed with --features regenerate)");
    }
    let bindings = bindgen::Builder::default()
        .header("shim/wrapper.h")
        .clang_args(cflags)
        .clang_arg("-Ishim")
        .allowlist_function("rte_(eal|lcore|eth|pktmbuf|mempool|mbuf|ring|flow|pdump|telemetry|tel_data|thread|socket|get_tsc|delay|lpm|hash|version|strerror|log|exit|dev|rand|srand|malloc|free|zmalloc)_?.*")
        .allowlist_function("rte_(get_main_lcore|get_next_lcore|strerror|version|exit|rand|srand|free|malloc|zmalloc)")
        .allowlist_function("tgw_.*")
        .allowlist_type("rte_(mbuf|mempool|eth|ether|flow|ring|lpm|hash|ipv4|ipv6|udp|tcp|gre|icmp|arp|vlan|pdump|lcore|proc|rss|mtr|dev|tel|log)_.*")
        .allowlist_var("RTE_.*")
        // Passes an xmm_t by value: the Rust side cannot match that ABI.
        .blocklist_function("rte_lpm_lookupx4")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .no_debug("rte_flow_item_gtp_psc")
        .derive_default(true)
        .generate_comments(false)
        .layout_tests(true)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen failed: {e}")));
    bindings
        .write_to_file(manifest.join("src/bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write src/bindings.rs: {e}")));
}
