#!/usr/bin/python3
"""Writes N packets of a TRex profile to a pcap, without TRex.

    pcap_from_profile.py PROFILE.py OUT.pcap N [TUNABLE...]

The profile is loaded as TRex loads it (its directory on sys.path,
`register().get_streams(tunables=[...], direction=0, port_id=0)`), with a
stand-in `trex_stl_lib.api` that records what the profile asks of TRex:
the scapy packet and the field-engine instructions, their keyword
arguments checked against TRex's own signatures. The recorded variables
are then expanded over N packets deterministically, the way TRex's data
path steps them on one core (src/stx/stl/trex_stl_stream_vm.h):

- each variable starts one step before its init_value (TRex's default:
  max for "dec", else min);
- before each packet, every variable that is nobody's `next_var` steps
  ("inc" by step, past max around to min; "dec" the other way; "random"
  draws in [min, max], here from a fixed seed, so not TRex's sequence);
  a variable that wraps steps its `next_var`, and so on down the chain
  (a chain whose head starts at its min, for "inc", wraps on the first
  step: the first packet has every variable of it at its init_value);
- then the writes put value + add_val, big-endian, the variable's size,
  at the field's offset plus offset_fixup, and the named IPv4 headers get
  their checksum recomputed.

Prints a JSON line: the port the profile sends on ("pub" or "und") and
the packet count.
"""

import importlib
import inspect
import json
import os
import random
import struct
import sys
import types

from scapy.layers.l2 import Ether
from scapy.packet import NoPayload

SEED = 0x1234


# ---------------------------------------------------------------------------
# The stand-in for trex_stl_lib.api: records, with TRex's signatures.


class STLVM:
    def __init__(self):
        self.cmds = []

    def var(self, name, min_value, max_value, size, op, step=1, split_to_cores=True,
            next_var=None, init_value=None):
        assert size in (1, 2, 4, 8), "size %r" % size
        assert op in ("inc", "dec", "random"), "op %r" % op
        assert not (next_var and op == "random"), "TRex refuses next_var on random"
        assert min_value <= max_value < 1 << (8 * size), (name, min_value, max_value)
        # TRex's default start (STLVmFlowVar): max for "dec", else min.
        if init_value is None:
            init_value = max_value if op == "dec" else min_value
        init = init_value
        assert min_value <= init <= max_value, (name, init)
        self.cmds.append(("var", dict(name=name, min=min_value, max=max_value, size=size,
                                      op=op, step=step, next_var=next_var, init=init)))

    def write(self, fv_name, pkt_offset, offset_fixup=0, add_val=0, byte_order="big"):
        assert byte_order == "big"
        self.cmds.append(("write", dict(var=fv_name, field=pkt_offset, fixup=offset_fixup,
                                        add=add_val)))

    def fix_chksum(self, offset="IP"):
        self.cmds.append(("fix", dict(layer=offset)))


class STLPktBuilder:
    def __init__(self, pkt=None, pkt_buffer=None, vm=None, path_relative_to_profile=False):
        self.pkt, self.vm = pkt, vm


class STLTXCont:
    def __init__(self, bps_L1=None, bps_L2=None, pps=None, percentage=None):
        pass


class STLStream:
    def __init__(self, name=None, packet=None, mode=None, **kwargs):
        self.packet, self.mode = packet, mode


def install_stand_in():
    api = types.ModuleType("trex_stl_lib.api")
    for c in (STLVM, STLPktBuilder, STLTXCont, STLStream):
        setattr(api, c.__name__, c)
    pkg = types.ModuleType("trex_stl_lib")
    pkg.api = api
    sys.modules["trex_stl_lib"] = pkg
    sys.modules["trex_stl_lib.api"] = api


# ---------------------------------------------------------------------------
# Offsets of scapy fields, as TRex names them: "IP.src", "IP:1.dst".


def layer(pkt, name):
    """The `name` layer ("IP", "IP:1" = the second IP) and its offset."""
    cls, _, nth = name.partition(":")
    nth = int(nth or 0)
    total = len(bytes(pkt))
    cur = pkt
    while not isinstance(cur, NoPayload):
        if type(cur).__name__ == cls:
            if nth == 0:
                return cur, total - len(bytes(cur))
            nth -= 1
        cur = cur.payload
    raise KeyError("no layer %s" % name)


def field_offset(pkt, name):
    """Offset of field `name` in the built `pkt`: every bit of the field
    flipped in a parsed copy (whose lengths and checksums are fixed
    values), and the bytes that changed found."""
    raw = bytes(pkt)
    lname, _, fname = name.rpartition(".")
    copy = Ether(raw)
    lay, _ = layer(copy, lname)
    fld = lay.get_field(fname)
    value = lay.getfieldval(fname)
    width = fld.sz
    as_int = int.from_bytes(fld.i2m(lay, value) if not isinstance(value, int)
                            else value.to_bytes(width, "big"), "big")
    flipped = (as_int ^ ((1 << 8 * width) - 1)).to_bytes(width, "big")
    lay.setfieldval(fname, fld.m2i(lay, flipped) if not isinstance(value, int)
                    else int.from_bytes(flipped, "big"))
    changed = [i for i, (a, b) in enumerate(zip(raw, bytes(copy))) if a != b]
    assert len(bytes(copy)) == len(raw) and changed and \
        changed == list(range(changed[0], changed[0] + width)), name
    return changed[0]


# ---------------------------------------------------------------------------
# The expansion.


class Counter:
    """One variable as TRex's data path keeps it (src/stx/stl/
    trex_stl_stream_vm.h): it holds the value one step before its start,
    and each packet steps it before the writes."""

    def __init__(self, v, rng):
        self.v, self.rng = v, rng
        if v["op"] == "random":
            self.value = None
        else:
            # One step back from init, within [min, max].
            back = -v["step"] if v["op"] == "inc" else v["step"]
            span = v["max"] - v["min"] + 1
            self.value = v["min"] + (v["init"] - v["min"] + back) % span

    def step(self):
        """Steps (inc_mod / dec_mod); whether it wrapped, which is when
        TRex runs the next variable of the chain."""
        v = self.v
        if v["op"] == "random":
            self.value = self.rng.randint(v["min"], v["max"])
            return False
        if v["op"] == "inc":
            left = v["max"] - self.value
            if v["step"] <= left:
                self.value += v["step"]
                return False
            self.value = v["min"] + (v["step"] - left - 1)
            return True
        left = self.value - v["min"]
        if v["step"] <= left:
            self.value -= v["step"]
            return False
        self.value = v["max"] - (v["step"] - left - 1)
        return True


def expand(pkt, cmds, n):
    rng = random.Random(SEED)
    vars = {c["name"]: Counter(c, rng) for k, c in cmds if k == "var"}
    dependent = {c["next_var"] for k, c in cmds if k == "var" and c["next_var"]}
    assert dependent <= set(vars), "next_var names no variable"
    writes = [(c, field_offset(pkt, c["field"]) + c["fixup"]) for k, c in cmds if k == "write"]
    fixes = [layer(pkt, c["layer"])[1] for k, c in cmds if k == "fix"]
    base = bytes(pkt)
    out = []
    for _ in range(n):
        for name, c in vars.items():
            if name in dependent:
                continue
            while c.step() and c.v["next_var"]:
                c = vars[c.v["next_var"]]
        frame = bytearray(base)
        for w, at in writes:
            size = vars[w["var"]].v["size"]
            value = (vars[w["var"]].value + w["add"]) % (1 << 8 * size)
            frame[at:at + size] = value.to_bytes(size, "big")
        for at in fixes:
            ipv4_checksum(frame, at)
        out.append(bytes(frame))
    return out


def ipv4_checksum(frame, at):
    hlen = (frame[at] & 0x0F) * 4
    frame[at + 10:at + 12] = b"\0\0"
    words = struct.unpack("!%dH" % (hlen // 2), bytes(frame[at:at + hlen]))
    s = sum(words)
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    frame[at + 10:at + 12] = struct.pack("!H", ~s & 0xFFFF)


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, b in enumerate(frames):
            f.write(struct.pack("<IIII", 0, i, len(b), len(b)))
            f.write(b)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    path, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    install_stand_in()
    # No __pycache__ beside the profiles, as TRex's loader leaves none.
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    module = importlib.import_module(os.path.basename(path).split(".")[0])
    profile = module.register()
    # TRex reads the tunables' defaults off get_streams
    # (STLProfile.get_module_tunables): every argument needs one.
    assert "tunables" in inspect.signature(profile.get_streams).parameters
    code, defaults = profile.get_streams.__code__, profile.get_streams.__defaults__
    assert defaults is None or len(defaults) == code.co_argcount - 1
    streams = profile.get_streams(tunables=sys.argv[4:], direction=0, port_id=0)
    assert len(streams) == 1 and isinstance(streams[0].mode, STLTXCont)
    built = streams[0].packet
    frames = expand(built.pkt, built.vm.cmds, n)
    write_pcap(out, frames)
    print(json.dumps({"port": module.PORT, "packets": len(frames)}))


if __name__ == "__main__":
    main()
