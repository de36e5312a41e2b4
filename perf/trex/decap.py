"""decap: every tenant's host sends GRE with its key (tgw-perf `--profile
decap`): inside, the tenant's public address to the Internet client.
tgw checks the key against the outer source, decapsulates and sends the
inner packet out of the public side untranslated (a public prefix).

TRex port 1 (tgw's und0). Tunables: --tenants, --size (of the inner
frame, as tgw-perf's).

    start -f perf/trex/decap.py -p 1 -m 10mpps -t --tenants 250
"""

from scapy.layers.inet import GRE, IP, UDP
from scapy.layers.l2 import Ether

import tgw_lab as lab

PORT = "und"
DEFAULTS = {"tenants": lab.DEFAULT_TENANTS, "size": 64}


def build(tenants=lab.DEFAULT_TENANTS, size=64):
    """Tenant 0's packet; the field engine walks the outer source (host),
    key, inner gateway MAC and inner source (public address) together."""
    inner = lab.pad(
        Ether(dst=lab.tenant_mac(0), src=lab.VM_MAC)
        / IP(src=lab.public(0), dst=lab.CLIENT, ttl=64)
        / UDP(sport=40000, dport=5001, chksum=0),
        size,
    )
    pkt = (
        Ether(dst=lab.GW_UND_MAC, src=lab.HOST_MAC)
        / IP(src=lab.host(0), dst=lab.GW_UND, ttl=64)
        / GRE(key_present=1, key=lab.KEY_BASE, proto=0x6558)
        / inner
    )
    vm = lab.tenant_vm(tenants, [("IP.src", 1), ("IP:1.src", 0)]) + lab.Vm(
        writes=[
            lab.Write("t_idx", "GRE.key", add=lab.KEY_BASE),
            lab.Write("t_idx", "Ether:1.dst", fixup=2),
        ],
        fix=["IP", "IP:1"],
    )
    return pkt, vm


def register():
    return lab.LabProfile("decap", DEFAULTS, build)
