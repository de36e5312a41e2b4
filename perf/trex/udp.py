"""udp: the I/O baseline (tgw-perf `--profile udp`): one client to one
address over many source ports, through tgw in `l2fwd` mode, which sends
every frame from pub0 out of und0 with only the MACs rewritten.

TRex port 0 (tgw's pub0), tgw with `mode = "l2fwd"`:
    python3 perf/trex/tgw_lab.py --l2fwd > tgw-l2fwd.toml
Tunables: --flows (source ports, 1024 up), --size.

    start -f perf/trex/udp.py -p 0 -m 100% -t --flows 1024
"""

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import tgw_lab as lab

PORT = "pub"
DEFAULTS = {"flows": 1024, "size": 64}


def build(flows=1024, size=64):
    if not 1 <= flows <= lab.PORT_LAST - lab.PORT_FIRST + 1:
        raise ValueError("flows must be 1..%d" % (lab.PORT_LAST - lab.PORT_FIRST + 1))
    pkt = lab.pad(
        Ether(dst=lab.GW_PUB_MAC, src=lab.CLIENT_MAC)
        / IP(src=lab.CLIENT, dst="2.2.2.11", ttl=64)
        / UDP(sport=lab.PORT_FIRST, dport=5001, chksum=0),
        size,
    )
    vm = lab.Vm(
        vars=[lab.Var("sport", lab.PORT_FIRST, lab.PORT_FIRST + flows - 1, 2)],
        writes=[lab.Write("sport", "UDP.sport")],
    )
    return pkt, vm


def register():
    return lab.LabProfile("udp", DEFAULTS, build)
