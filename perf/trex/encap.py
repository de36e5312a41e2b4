"""encap: the Internet side sends to every tenant's public address (tgw-perf
`--profile encap`); tgw routes each into its tenant and encapsulates it in
GRE with the tenant's key toward the tenant's host.

TRex port 0 (tgw's pub0). Tunables: --tenants (the config's count),
--size (frame on the wire, FCS included).

    start -f perf/trex/encap.py -p 0 -m 10mpps -t --tenants 250
"""

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import tgw_lab as lab

PORT = "pub"
DEFAULTS = {"tenants": lab.DEFAULT_TENANTS, "size": 64}


def build(tenants=lab.DEFAULT_TENANTS, size=64):
    """Tenant 0's packet; the field engine walks the destination over
    every tenant's public address."""
    pkt = lab.pad(
        Ether(dst=lab.GW_PUB_MAC, src=lab.CLIENT_MAC)
        / IP(src=lab.CLIENT, dst=lab.public(0), ttl=64)
        # No UDP checksum: the field engine changes the pseudo-header.
        / UDP(sport=40000, dport=5001, chksum=0),
        size,
    )
    vm = lab.tenant_vm(tenants, [("IP.dst", 0)]) + lab.Vm(fix=["IP"])
    return pkt, vm


def register():
    return lab.LabProfile("encap", DEFAULTS, build)
