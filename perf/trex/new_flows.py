"""new_flows: a flood of clients never seen before to tenant 0's elastic
IP (tgw-perf `--profile new-flows`): random source address in 1.0.0.0/8
and random source port, so nearly every packet opens a flow. The flows
are one-way; the lab config's `unreplied_s = 1` recycles them.

TRex port 0 (tgw's pub0). Tunables: --size.

    start -f perf/trex/new_flows.py -p 0 -m 5mpps
"""

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import tgw_lab as lab

PORT = "pub"
DEFAULTS = {"size": 64}


def build(size=64):
    pkt = lab.pad(
        Ether(dst=lab.GW_PUB_MAC, src=lab.CLIENT_MAC)
        / IP(src=lab.CLIENTS_FIRST, dst=lab.EIP, ttl=64)
        / UDP(sport=40000, dport=5001, chksum=0),
        size,
    )
    vm = lab.Vm(
        vars=[
            lab.Var("client", lab.ip_int(lab.CLIENTS_FIRST), lab.ip_int(lab.CLIENTS_LAST), 4,
                    op="random"),
            lab.Var("sport", lab.PORT_FIRST, lab.PORT_LAST, 2, op="random"),
        ],
        writes=[lab.Write("client", "IP.src"), lab.Write("sport", "UDP.sport")],
        fix=["IP"],
    )
    return pkt, vm


def register():
    return lab.LabProfile("new_flows", DEFAULTS, build)
