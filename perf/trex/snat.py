"""snat: tenants' VMs open flows to the Internet through their tenant's
source NAT pool: GRE from each tenant's host with its key, inside a VM
10.0.0.1.. of the tenant to the client 1.1.1.7 from many source ports.
tgw decapsulates, opens a flow and SNATs it to the tenant's pool address
(3.3.x.y), or, for tenant 0's 10.0.0.7, to its elastic IP 4.4.4.200.
(tgw-perf has no such profile: this is its `decap` from private sources.)

TRex port 1 (tgw's und0). Tunables: --tenants, --vms (sources per
tenant, 10.0.0.1 up), --ports (source ports per VM, 1024 up; a VM holds
at most 16 blocks of 64 pool ports), --size (inner frame), --proto (udp
to port 5001, or tcp: SYNs to port 80, each opening a connection),
--dport (another destination port; the lab's tenants may not send to TCP
port 25, so `--proto tcp --dport 25` is what their firewall drops).

    start -f perf/trex/snat.py -p 1 -m 1mpps -t --tenants 250 --vms 8
"""

from scapy.layers.inet import GRE, IP, TCP, UDP
from scapy.layers.l2 import Ether

import tgw_lab as lab

PORT = "und"
DEFAULTS = {"tenants": lab.DEFAULT_TENANTS, "vms": 8, "ports": 64, "size": 64, "proto": "udp",
            "dport": 0}

# TCP: the SYN's checksum is kept right without checksum offload: what the
# field engine adds to the covered words (the VM's address octet, the
# source port) it takes away elsewhere in them, from the low half of the
# sequence number and from the window, counting down in step.
SEQ = 0x5EED8000
WINDOW = 0xFFFF


def build(tenants=lab.DEFAULT_TENANTS, vms=8, ports=64, size=64, proto="udp", dport=0):
    """`dport` 0: 5001 for UDP, 80 for TCP."""
    if not 1 <= vms <= 254 or not 1 <= ports <= 1024 or not 0 <= dport <= 65535:
        raise ValueError("vms must be 1..254, ports 1..1024 and dport 0..65535")
    if proto == "udp":
        # No UDP checksum: the field engine changes what it covers.
        l4 = UDP(sport=lab.PORT_FIRST, dport=dport or 5001, chksum=0)
    elif proto == "tcp":
        l4 = TCP(sport=lab.PORT_FIRST, dport=dport or 80, flags="S", seq=SEQ - 1,
                 window=WINDOW)
    else:
        raise ValueError("proto must be udp or tcp")
    inner = lab.pad(
        Ether(dst=lab.tenant_mac(0), src=lab.VM_MAC)
        / IP(src="10.0.0.1", dst=lab.CLIENT, ttl=64)
        / l4,
        size,
        trailer=proto == "tcp",
    )
    pkt = (
        Ether(dst=lab.GW_UND_MAC, src=lab.HOST_MAC)
        / IP(src=lab.host(0), dst=lab.GW_UND, ttl=64)
        / GRE(key_present=1, key=lab.KEY_BASE, proto=0x6558)
        / inner
    )
    l4_name = proto.upper()
    vm = lab.tenant_vm(tenants, [("IP.src", 1)]) + lab.Vm(
        vars=[
            lab.Var("vm", 1, vms, 1),
            lab.Var("sport", lab.PORT_FIRST, lab.PORT_FIRST + ports - 1, 2),
        ],
        writes=[
            lab.Write("t_idx", "GRE.key", add=lab.KEY_BASE),
            lab.Write("t_idx", "Ether:1.dst", fixup=2),
            lab.Write("vm", "IP:1.src", fixup=3),
            lab.Write("sport", l4_name + ".sport"),
        ],
        fix=["IP", "IP:1"],
    )
    if proto == "tcp":
        low = SEQ & 0xFFFF
        vm += lab.Vm(
            vars=[
                # vm + seq_low and sport + window stay constant.
                lab.Var("seq_low", low - vms, low - 1, 2, op="dec", init=low - 1),
                lab.Var("window", WINDOW - ports + 1, WINDOW, 2, op="dec", init=WINDOW),
            ],
            writes=[lab.Write("seq_low", "TCP.seq", fixup=2), lab.Write("window", "TCP.window")],
        )
    return pkt, vm


def register():
    return lab.LabProfile("snat", DEFAULTS, build)
