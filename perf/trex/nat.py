"""nat: clients all over the Internet send to tenant 0's elastic IP
(tgw-perf `--profile nat`); tgw finds or opens each client's flow, DNATs
it to 10.0.0.7 and encapsulates it toward tenant 0's host with key 1000.

TRex port 0 (tgw's pub0). Tunables: --flows (clients, 1.0.0.1 up; the
config's flow table holds 262144), --size.

    start -f perf/trex/nat.py -p 0 -m 10mpps -t --flows 100000
"""

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import tgw_lab as lab

PORT = "pub"
DEFAULTS = {"flows": 10000, "size": 64}


def build(flows=10000, size=64):
    first = lab.ip_int(lab.CLIENTS_FIRST)
    if not 1 <= flows <= lab.ip_int(lab.CLIENTS_LAST) - first + 1:
        raise ValueError("flows must be 1..%d" % (lab.ip_int(lab.CLIENTS_LAST) - first + 1))
    pkt = lab.pad(
        Ether(dst=lab.GW_PUB_MAC, src=lab.CLIENT_MAC)
        / IP(src=lab.CLIENTS_FIRST, dst=lab.EIP, ttl=64)
        / UDP(sport=40000, dport=5001, chksum=0),
        size,
    )
    vm = lab.Vm(
        vars=[lab.Var("client", first, first + flows - 1, 4)],
        writes=[lab.Write("client", "IP.src")],
        fix=["IP"],
    )
    return pkt, vm


def register():
    return lab.LabProfile("nat", DEFAULTS, build)
