#!/usr/bin/python3
"""The lab's address plan, the field-engine variations as plain data, and
the tgw config that matches them.

Every profile beside this file (encap, decap, nat, new_flows, snat) builds
its packet with scapy from this plan and declares what TRex's field engine
varies per packet as `Var`/`Write` data. `stream()` turns that into a TRex
stream; it is the only place that imports `trex_stl_lib`, so the tests
(perf/trex/pcap_from_profile.py) load the same builders without TRex and
expand the same variables themselves.

The plan is tgw-perf's (perf/src/profile.rs): tenant `i` has GRE key
1000 + i, tunnel host 172.16.(1 + i/250).(1 + i%250), public prefix
2.2.(i/250).(1 + i%250)/32 and VM 10.0.0.7 behind it; the Internet client
is 1.1.1.7. Beyond tgw-perf: each tenant has a source NAT pool address,
3.3.(i/250).(1 + i%250), and the elastic IP of tenant 0's 10.0.0.7 is
4.4.4.200 (tgw-perf's 2.2.2.200 is tenant 699's public prefix once there
are that many tenants).

Run as a script, it writes the tgw config for the plan:
    python3 perf/trex/tgw_lab.py > perf/trex/tgw-lab.toml
(`--help` for the tenant count, devices and workers).
"""

import argparse
import ipaddress
import sys

KEY_BASE = 1000
# Tenants per third octet of the plan's addresses.
ROW = 250
MAX_TENANTS = 64000

CLIENT = "1.1.1.7"
CLIENT_MAC = "02:00:00:00:ee:01"
HOST_MAC = "02:00:00:00:ee:02"
VM = "10.0.0.7"
VM_MAC = "02:00:00:00:0a:07"
GW_PUB = "1.1.1.1"
GW_PUB_MAC = "02:00:00:00:00:01"
GW_UND = "172.16.0.1"
GW_UND_MAC = "02:00:00:00:01:01"
EIP = "4.4.4.200"
# The Internet clients of `nat` and `new_flows`: 1.0.0.0/8 from 1.0.0.1,
# as tgw-perf's.
CLIENTS_FIRST = "1.0.0.1"
CLIENTS_LAST = "1.255.255.254"
PORT_FIRST = 1024
PORT_LAST = 65535

DEFAULT_TENANTS = 250


def host(i):
    """Tenant `i`'s tunnel host, on the underlay's /16."""
    return "172.16.%d.%d" % (1 + i // ROW, 1 + i % ROW)


def public(i):
    """Tenant `i`'s public prefix (a /32)."""
    return "2.2.%d.%d" % (i // ROW, 1 + i % ROW)


def pool(i):
    """Tenant `i`'s source NAT pool address."""
    return "3.3.%d.%d" % (i // ROW, 1 + i % ROW)


def tenant_mac(i):
    """The gateway's MAC inside tenant `i`'s tunnels."""
    b = i.to_bytes(4, "big")
    return "02:74:" + ":".join("%02x" % x for x in b)


def ip_int(a):
    return int(ipaddress.IPv4Address(a))


def check_tenants(n):
    """The field engine walks tenants with a counter for the last octet
    (ROW values) and one for the third: past one row, a whole number of
    rows keeps the key's counter in step with them."""
    if not 1 <= n <= MAX_TENANTS or (n > ROW and n % ROW):
        raise ValueError(
            "tenants must be 1..%d, or a multiple of %d up to %d: got %d"
            % (ROW, ROW, MAX_TENANTS, n)
        )
    return n


# ---------------------------------------------------------------------------
# The field engine as data: what TRex's STLVM is told, in the same terms.


class Var:
    """STLVM.var: a counter of `size` bytes from `min` to `max` by `step`
    ("inc", "dec") or uniform in [min, max] ("random"), starting at
    `init` (TRex's default: `max` for "dec", else `min`). With `next_var`, the named variable steps once
    each time this one wraps (and only then)."""

    def __init__(self, name, min, max, size, op="inc", step=1, next_var=None, init=None):
        self.name, self.min, self.max, self.size = name, min, max, size
        self.op, self.step, self.next_var, self.init = op, step, next_var, init

    def __repr__(self):
        return "Var(%r, %d..%d, %s)" % (self.name, self.min, self.max, self.op)


class Write:
    """STLVM.write: the variable's value plus `add`, big-endian, `size` of
    the variable, at the scapy field `field` ("IP.src", "IP:1.dst") plus
    `fixup` bytes."""

    def __init__(self, var, field, fixup=0, add=0):
        self.var, self.field, self.fixup, self.add = var, field, fixup, add


class Vm:
    """A profile's variations: variables, writes, and the IPv4 headers
    whose checksum is fixed after the writes ("IP", "IP:1")."""

    def __init__(self, vars=(), writes=(), fix=()):
        self.vars, self.writes, self.fix = list(vars), list(writes), list(fix)

    def __add__(self, other):
        return Vm(self.vars + other.vars, self.writes + other.writes, self.fix + other.fix)


def tenant_vm(tenants, fields):
    """Walks tenants 0..tenants-1, one a packet: `t_lo` is the last octet
    of the plan's addresses (1 + i % 250), `t_hi` their third (i / 250,
    stepping when `t_lo` wraps), `t_idx` i itself (keys and MACs).
    `fields` are (field, third octet of tenant 0) pairs: 1 for hosts, 0
    for public and pool addresses."""
    n = check_tenants(tenants)
    rows = max(1, n // ROW)
    vars = [Var("t_lo", 1, min(n, ROW), 1, next_var="t_hi" if rows > 1 else None)]
    writes = [Write("t_lo", f, fixup=3) for f, _ in fields]
    if rows > 1:
        vars.append(Var("t_hi", 0, rows - 1, 1))
        writes += [Write("t_hi", f, fixup=2, add=base) for f, base in fields]
    vars.append(Var("t_idx", 0, n - 1, 4))
    return Vm(vars, writes)


def pad(pkt, size, trailer=False):
    """`pkt` padded to `size` bytes on the wire (FCS included: TRex and the
    NIC add the 4 bytes): with payload, or with an Ethernet trailer past
    the IP packet (`trailer`, for a TCP SYN that should carry no data)."""
    from scapy.packet import Padding, Raw

    missing = size - 4 - len(pkt)
    if missing <= 0:
        return pkt
    return pkt / (Padding if trailer else Raw)(b"\0" * missing)


# ---------------------------------------------------------------------------
# Tunables and the TRex wrapping.


def parse_tunables(defaults, tunables, name):
    """TRex passes tunables as an argparse list (`-t --tenants 1000`, or
    `-t tenants=1000,size=64`, which TRex turns into the same list)."""
    parser = argparse.ArgumentParser(prog=name, description="tgw lab profile %s" % name)
    for key, value in defaults.items():
        parser.add_argument("--" + key, type=type(value), default=value)
    return vars(parser.parse_args(list(tunables or [])))


def stream(pkt, vm):
    """A continuous TRex stream of `pkt` varied by `vm`. Variables step by
    their own step on every core (split_to_cores=False), so the tenants'
    counters stay in step with each other."""
    from trex_stl_lib.api import STLVM, STLPktBuilder, STLStream, STLTXCont

    trex_vm = STLVM()
    for v in vm.vars:
        # init_value goes through STLVM.var's **k to STLVmFlowVar.
        init = {} if v.init is None else {"init_value": v.init}
        trex_vm.var(
            name=v.name, min_value=v.min, max_value=v.max, size=v.size, op=v.op,
            step=v.step, split_to_cores=False, next_var=v.next_var, **init,
        )
    for w in vm.writes:
        trex_vm.write(fv_name=w.var, pkt_offset=w.field, offset_fixup=w.fixup, add_val=w.add)
    for f in vm.fix:
        trex_vm.fix_chksum(offset=f)
    # A fixed seed: "random" variables draw the same sequence every run.
    return STLStream(packet=STLPktBuilder(pkt=pkt, vm=trex_vm), mode=STLTXCont(),
                     random_seed=0x1234)


class LabProfile:
    """What TRex's `register()` returns: `build(**params)` gives the scapy
    packet and its `Vm`."""

    def __init__(self, name, defaults, build):
        self.name, self.defaults, self.build = name, defaults, build

    def get_streams(self, tunables=None, **kwargs):
        params = parse_tunables(self.defaults, tunables, self.name)
        pkt, vm = self.build(**params)
        return [stream(pkt, vm)]


# ---------------------------------------------------------------------------
# The tgw config for the plan.


def config(tenants=DEFAULT_TENANTS, pub="0000:01:00.0", und="0000:01:00.1",
           workers=1, eal=None, l2fwd=False):
    """The tgw config whose tenants, keys, hosts, elastic IP and pools are
    the profiles'. `eal` replaces the [eal] body (tests: no hugepages);
    `l2fwd` is the same config in l2fwd mode, for the `udp` baseline."""
    n = check_tenants(tenants)
    out = []
    w = out.append
    w("# perf/trex/tgw-lab.toml: tgw for the TRex profiles beside it, written by\n")
    w("#   python3 perf/trex/tgw_lab.py --tenants %d%s > perf/trex/tgw-lab.toml\n"
      % (n, " --l2fwd" if l2fwd else ""))
    w("# (perf/trex/README.md). TRex port 0 faces pub0, port 1 faces und0.\n\n")
    w("[dataplane]\nmode = \"%s\"\n\n" % ("l2fwd" if l2fwd else "gateway"))
    w("[eal]\n")
    w(eal if eal is not None else
      "main_lcore = 0\nfile_prefix = \"tgw-lab\"\nhugepages = true\nmemory_mb = 2048\n")
    w("\n[mempool]\nmbufs = 65535\ncache_size = 256\n\n")
    queues = ["%d" % q for q in range(workers)]
    for name, dev, role, mac, addr, peer in (
        ("pub0", pub, "public", GW_PUB_MAC, GW_PUB + "/24", CLIENT_MAC),
        ("und0", und, "underlay", GW_UND_MAC, GW_UND + "/16", HOST_MAC),
    ):
        w("[[port]]\nname = \"%s\"\ndevice = \"%s\"\nrole = \"%s\"\n" % (name, dev, role))
        w("mac = \"%s\"\naddresses = [\"%s\"]\npeer_mac = \"%s\"\n\n" % (mac, addr, peer))
    for q in queues:
        w("[[worker]]\nlcore = %d\nrx = [\"pub0:%s\", \"und0:%s\"]\n\n" % (1 + int(q), q, q))
    # Room for the tenants' hosts (port entries) and two neighbours in
    # each tenant's tunnels; the flow table for the floods: one-way flows
    # all stay unreplied, recycled after a second past half the share.
    ports = 1 << (n + 64 - 1).bit_length()
    tunnels = 1 << (2 * n + 64 - 1).bit_length()
    w("[arp]\nentries = %d\nport_entries = %d\n\n" % (ports + tunnels, ports))
    w("[tcp]\nmss_clamp = true\n\n")
    w("[flows]\ncapacity = 262144\nper_tenant = 262144\nunreplied_per_tenant = 262144\n")
    w("unreplied_s = 1\n\n")
    w("[[eip]]\npublic = \"%s\"\ntenant = \"t0\"\nprivate = \"%s\"\n\n" % (EIP, VM))
    w("[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"1.1.1.254\"\n\n")
    for ip in ("1.1.1.254", CLIENT):
        w("[[neighbour]]\nport = \"pub0\"\nip = \"%s\"\nmac = \"%s\"\n\n" % (ip, CLIENT_MAC))
    for i in range(n):
        h, p = host(i), public(i)
        w("[[tenant]]\nname = \"t%d\"\nkey = %d\nhosts = [\"%s\"]\n" % (i, KEY_BASE + i, h))
        w("prefixes = [\"10.0.0.0/24\"]\npublic_prefixes = [\"%s/32\"]\n" % p)
        w("mac = \"%s\"\ndefault_in = \"allow\"\n" % tenant_mac(i))
        # A cloud's usual rule: no mail straight from tenants' VMs.
        w("rules = [{ direction = \"out\", action = \"deny\", proto = \"tcp\", dport = 25 }]\n")
        w("routes = [{ prefix = \"10.0.0.0/24\", to = \"%s\" }, " % h)
        w("{ prefix = \"%s/32\", to = \"%s\" }, { prefix = \"0.0.0.0/0\", to = \"public\" }]\n" % (p, h))
        w("neighbours = [{ ip = \"%s\", mac = \"%s\" }, { ip = \"%s\", mac = \"%s\" }]\n\n"
          % (VM, VM_MAC, p, VM_MAC))
        w("[[snat]]\ntenant = \"t%d\"\naddresses = [\"%s\"]\n\n" % (i, pool(i)))
        w("[[neighbour]]\nport = \"und0\"\nip = \"%s\"\nmac = \"%s\"\n\n" % (h, HOST_MAC))
    return "".join(out).rstrip("\n") + "\n"


def main():
    p = argparse.ArgumentParser(description="Writes the tgw config of the TRex lab plan.")
    p.add_argument("--tenants", type=int, default=DEFAULT_TENANTS)
    p.add_argument("--pub", default="0000:01:00.0", help="device of pub0 (TRex port 0)")
    p.add_argument("--und", default="0000:01:00.1", help="device of und0 (TRex port 1)")
    p.add_argument("--workers", type=int, default=1, help="workers, lcores 1.., one RX queue each")
    p.add_argument("--eal", help="the [eal] body instead of the hugepage one")
    p.add_argument("--l2fwd", action="store_true", help="mode l2fwd, for the udp profile")
    a = p.parse_args()
    try:
        sys.stdout.write(config(a.tenants, a.pub, a.und, a.workers, a.eal, a.l2fwd))
    except ValueError as e:
        sys.exit("tgw_lab.py: %s" % e)


if __name__ == "__main__":
    main()
