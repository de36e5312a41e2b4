/* Everything tgw binds from DPDK 22.11. bindgen reads this file; shim.c
 * adds out-of-line copies of the static inline functions Rust cannot call. */
#include <rte_config.h>
#include <rte_version.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_flow.h>
#include <rte_pdump.h>
#include <rte_telemetry.h>
#include <rte_lpm.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include "shim.h"
