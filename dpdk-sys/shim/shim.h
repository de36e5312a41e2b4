/* Out-of-line wrappers for DPDK's static inline functions.
 *
 * Rust cannot call a static inline function, so each one the project needs
 * gets a one-line wrapper here. They are meant to be called once per burst
 * (rx, tx, alloc, free, ring ops), never per packet: per-packet accessors are
 * written in Rust over the mbuf's fields. */
#ifndef TGW_SHIM_H
#define TGW_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;
struct rte_lpm;

uint16_t tgw_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t tgw_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *tgw_pktmbuf_alloc(struct rte_mempool *mp);
int tgw_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n);
void tgw_pktmbuf_free(struct rte_mbuf *m);

unsigned int tgw_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned int n);
unsigned int tgw_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned int n);
unsigned int tgw_ring_count(const struct rte_ring *r);

uint64_t tgw_rdtsc(void);
unsigned int tgw_lcore_id(void);
int tgw_errno(void);

/* rte_lpm_lookup_bulk is inline, and rte_lpm_lookupx4 takes an xmm_t by
 * value, which Rust cannot pass with the C ABI: both go through here. */
int tgw_lpm_lookup_bulk(const struct rte_lpm *lpm, const uint32_t *ips, uint32_t *next_hops, unsigned int n);

#endif
