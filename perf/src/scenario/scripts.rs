//! The programs the scenario runs inside the namespaces: small Python 3
//! scripts (standard library only; `scripts/setup` installs python3), so
//! that every byte the checks look at comes from the real Linux stacks and
//! not from tgw's own code. Each client prints one JSON object as its last
//! line of stdout.

/// A server: `serve.py NAME DEV PORT...`, on the tenant hosts and on the
/// client. Each connection starts with what the peer sends: `sink\n` makes
/// it a sink that counts what it receives and answers with the count (bulk
/// TCP, on a port the firewall lets in); anything else gets one identity
/// line (NAME, the MAC of DEV, the address the connection reached, the
/// peer's address) and then the echo of everything received. Runs until
/// killed; says "listening" once every port is bound.
pub const SERVE: &str = r#"
import socket, sys, threading
name, dev = sys.argv[1], sys.argv[2]
mac = open(f"/sys/class/net/{dev}/address").read().strip()
SINK = b"sink\n"

def handle(c, peer):
    with c:
        c.settimeout(20)
        head = b""
        while len(head) < len(SINK):
            d = c.recv(len(SINK) - len(head))
            if not d:
                break
            head += d
        if head == SINK:
            n = 0
            while True:
                d = c.recv(1 << 20)
                if not d:
                    break
                n += len(d)
            c.sendall(f"{n}\n".encode())
            print("sunk", peer[0], n, flush=True)
            return
        local = c.getsockname()[0]
        c.sendall(f"{name} mac={mac} local={local} peer={peer[0]}\n".encode())
        data = bytearray(head)
        while True:
            d = c.recv(65536)
            if not d:
                break
            data += d
        c.sendall(data)
    print("echoed", peer[0], len(data), flush=True)

def serve(s):
    while True:
        c, peer = s.accept()
        threading.Thread(target=handle, args=(c, peer), daemon=True).start()

threads = []
for port in sys.argv[3:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(port)))
    s.listen(8)
    t = threading.Thread(target=serve, args=(s,), daemon=True)
    t.start()
    threads.append(t)
print("listening", flush=True)
for t in threads:
    t.join()
"#;

/// `tcp.py ADDR PORT BYTES`: connects, sends BYTES random bytes, half-closes,
/// reads the identity line and the echo.
pub const TCP: &str = r#"
import json, os, socket, sys, time
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(n)
t0 = time.monotonic()
try:
    s = socket.create_connection((addr, port), timeout=10)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    back = bytearray()
    while True:
        d = s.recv(65536)
        if not d:
            break
        back += d
    line, _, rest = bytes(back).partition(b"\n")
    print(json.dumps({"identity": line.decode(errors="replace"), "sent": n, "back": len(rest),
                      "intact": rest == data, "ms": round((time.monotonic() - t0) * 1000, 1)}))
except OSError as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
"#;

/// `bulk.py ADDR PORT SECONDS`: asks the server on PORT to be a sink, sends
/// as fast as it can for SECONDS, then reads the count the sink received; the client
/// namespace's own TCP counters (/proc/net/snmp is per namespace) give the
/// segments sent and retransmitted meanwhile.
pub const BULK: &str = r#"
import json, socket, sys, time
addr, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

EXT = ["TCPFastRetrans", "TCPLossProbes", "TCPTimeouts", "TCPSpuriousRTOs", "TCPDSACKRecv"]

def tcp_counters():
    c = {}
    for f in ("/proc/net/snmp", "/proc/net/netstat"):
        lines = [l.split() for l in open(f)]
        for head, vals in zip(lines[::2], lines[1::2]):
            c.update((head[0] + k, int(v)) for k, v in zip(head[1:], vals[1:]))
    return c

chunk = b"\x5a" * 65536
try:
    c0 = tcp_counters()
    s = socket.create_connection((addr, port), timeout=10)
    s.sendall(b"sink\n")
    sent = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        s.sendall(chunk)
        sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    got = int(s.makefile().readline())
    elapsed = time.monotonic() - t0
    c1 = tcp_counters()
    d = lambda k: c1.get(k, 0) - c0.get(k, 0)
    print(json.dumps({"sent": sent, "received": got, "seconds": round(elapsed, 3),
                      "mbps": round(got * 8 / elapsed / 1e6, 1),
                      "segments": d("Tcp:OutSegs"), "retransmitted": d("Tcp:RetransSegs"),
                      "why": {k: d("TcpExt:" + k) for k in EXT}}))
except (OSError, ValueError) as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
"#;

/// `ping.py ADDR COUNT TTL`: ICMP echo over a raw socket, one second per
/// request; the TTL of each matching reply as received.
pub const PING: &str = r#"
import json, os, socket, struct, sys, time
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
dst, count, ttl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
s.settimeout(0.2)
ident = os.getpid() & 0xffff
ttls, rtts = [], []
for seq in range(1, count + 1):
    payload = b"tgw-scenario %d" % seq
    head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    s.sendto(struct.pack("!BBHHH", 8, 0, csum(head + payload), ident, seq) + payload, (dst, 0))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1:
        try:
            data, src = s.recvfrom(2048)
        except socket.timeout:
            continue
        icmp = data[(data[0] & 15) * 4:]
        if src[0] == dst and icmp[0] == 0 and struct.unpack("!HH", icmp[4:8]) == (ident, seq) \
                and icmp[8:] == payload:
            ttls.append(data[8])
            rtts.append(round((time.monotonic() - t0) * 1000, 2))
            break
print(json.dumps({"sent": count, "replies": len(ttls), "ttls": ttls, "rtt_ms": rtts}))
"#;

/// `gre.py DST KEY N`: N GRE packets (version 0, K bit, KEY, protocol
/// 0x6558) around a broadcast Ethernet frame, from this host's underlay
/// address through a raw socket (the kernel writes the outer IPv4 header).
pub const GRE: &str = r#"
import json, socket, struct, sys
dst, key, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
inner = b"\xff" * 6 + b"\x02\x00\x00\x00\x99\x99" + b"\x08\x06" + b"\0" * 46
for _ in range(n):
    s.sendto(struct.pack("!HHI", 0x2000, 0x6558, key) + inner, (dst, 0))
print(json.dumps({"sent": n}))
"#;

/// `connect.py TIMEOUT ADDR:PORT...`: opens TCP to each target at once,
/// each with TIMEOUT seconds to connect, and says how each attempt ended:
/// `connected`, `timeout`, `refused`, or the error. Nothing is sent.
pub const CONNECT: &str = r#"
import json, socket, sys, threading, time
timeout = float(sys.argv[1])
out = {}

def attempt(target):
    addr, port = target.rsplit(":", 1)
    t0 = time.monotonic()
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((addr, int(port)))
        outcome = "connected"
    except socket.timeout:
        outcome = "timeout"
    except ConnectionRefusedError:
        outcome = "refused"
    except OSError as e:
        outcome = f"{type(e).__name__}: {e}"
    finally:
        s.close()
    out[target] = {"outcome": outcome, "ms": round((time.monotonic() - t0) * 1000, 1)}

threads = [threading.Thread(target=attempt, args=(t,)) for t in sys.argv[2:]]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(out))
"#;

/// `stream.py ADDR PORT STALL LIMIT` (runtime steps): asks the server on
/// PORT to be a sink and streams to it without pause; says `streaming
/// from port SPORT` once 256 KiB went, and goes on until no 16 KiB chunk
/// can be sent for STALL seconds (`stalled`: nothing is acknowledged any
/// more), the connection breaks (the error: a reset, say) or LIMIT seconds
/// pass (`never stalled`). Then it aborts the connection (SO_LINGER 0: one
/// RST, no retransmissions left behind to meet a later state of tgw).
pub const STREAM: &str = r#"
import json, socket, struct, sys, time
addr, port, stall, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
chunk = b"\x5a" * 16384
try:
    s = socket.create_connection((addr, port), timeout=5)
    sport = s.getsockname()[1]
    s.settimeout(stall)
    s.sendall(b"sink\n")
    sent, said, t0 = 0, False, time.monotonic()
    outcome = "never stalled"
    while time.monotonic() - t0 < limit:
        try:
            s.sendall(chunk)
        except socket.timeout:
            outcome = "stalled"
            break
        except OSError as e:
            outcome = f"{type(e).__name__}: {e}"
            break
        sent += len(chunk)
        if not said and sent >= 256 << 10:
            print(f"streaming from port {sport}", flush=True)
            said = True
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    print(json.dumps({"outcome": outcome, "sent": sent, "sport": sport,
                      "ms": round((time.monotonic() - t0) * 1000, 1)}))
except OSError as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
"#;

/// Every script by file name, written once into the scratch directory.
/// `frag_host.py PORT CLIENT SECONDS` (fragment checks, on a tenant
/// host): says hello from UDP PORT to CLIENT:PORT every 200 ms until an
/// answer comes, then takes datagrams from CLIENT for SECONDS at most (two
/// at most); prints each one's length and SHA-256 prefix.
pub const FRAG_HOST: &str = r#"
import hashlib, json, socket, sys, time
port, client, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", port))
u.settimeout(0.2)
got, t0 = [], time.monotonic()
while time.monotonic() - t0 < seconds and len(got) < 2:
    if not got:
        u.sendto(b"hello", (client, port))
    try:
        d, src = u.recvfrom(65535)
    except socket.timeout:
        continue
    if src[0] == client:
        got.append([len(d), hashlib.sha256(d).hexdigest()[:16]])
print(json.dumps({"received": got}))
"#;

/// `frag_client.py PORT ME BIG SMALL` (fragment checks, on the client):
/// waits on UDP PORT for a host's hello, then answers it twice: a datagram
/// of SMALL bytes whose two IPv4 fragments it writes itself (a raw
/// socket, source ME) and sends last first, 50 ms apart; then BIG bytes
/// through the socket with path MTU discovery off, which the stack sends
/// in fragments without DF. Prints each one's length and SHA-256 prefix.
pub const FRAG_CLIENT: &str = r#"
import hashlib, json, os, socket, struct, sys, time
port, me, big, small = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
def digest(b):
    return hashlib.sha256(b).hexdigest()[:16]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", port))
u.settimeout(10)
try:
    _, peer = u.recvfrom(2048)
except socket.timeout:
    print(json.dumps({"error": "no hello from the host"}))
    sys.exit(0)
first = bytes((i * 7 + 1) & 0xff for i in range(small))
udp = struct.pack("!HHHH", port, peer[1], 8 + len(first), 0) + first
pseudo = socket.inet_aton(me) + socket.inet_aton(peer[0]) + struct.pack("!BBH", 0, 17, len(udp))
udp = udp[:6] + struct.pack("!H", csum(pseudo + udp) or 0xffff) + udp[8:]
ident = (os.getpid() * 31) & 0xffff
def fragment(off, data, more):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), ident,
                    (0x2000 if more else 0) | (off // 8), 64, 17, 0,
                    socket.inet_aton(me), socket.inet_aton(peer[0]))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + data
cut = (len(udp) // 2) // 8 * 8
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
r.sendto(fragment(cut, udp[cut:], False), (peer[0], 0))
time.sleep(0.05)
r.sendto(fragment(0, udp[:cut], True), (peer[0], 0))
time.sleep(0.2)
second = bytes((i * 13 + 5) & 0xff for i in range(big))
u.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER: IP_PMTUDISC_DONT
u.sendto(second, peer)
print(json.dumps({"peer": peer[0], "sent": [[len(first), digest(first)], [len(second), digest(second)]]}))
"#;

/// `bigping.py DST BYTES`: one ICMP echo request of BYTES payload with
/// path MTU discovery off (no DF: the stack sends it in fragments); waits
/// 2 s for the reply and says whether its payload came back intact.
pub const BIGPING: &str = r#"
import json, os, socket, struct, sys, time
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
dst, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER: IP_PMTUDISC_DONT
s.settimeout(0.2)
ident, seq = (os.getpid() * 17) & 0xffff, 1
payload = bytes((i * 3 + 11) & 0xff for i in range(n))
head = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
s.sendto(struct.pack("!BBHHH", 8, 0, csum(head + payload), ident, seq) + payload, (dst, 0))
t0, intact, rtt = time.monotonic(), False, None
while time.monotonic() - t0 < 2 and not intact:
    try:
        data, src = s.recvfrom(65535)
    except socket.timeout:
        continue
    icmp = data[(data[0] & 15) * 4:]
    if src[0] == dst and icmp[0] == 0 and struct.unpack("!HH", icmp[4:8]) == (ident, seq):
        intact = icmp[8:] == payload
        rtt = round((time.monotonic() - t0) * 1000, 2)
print(json.dumps({"bytes": len(payload) + 28, "intact": intact, "rtt_ms": rtt}))
"#;

pub const ALL: [(&str, &str); 10] = [
    ("stream.py", STREAM),
    ("serve.py", SERVE),
    ("connect.py", CONNECT),
    ("tcp.py", TCP),
    ("bulk.py", BULK),
    ("ping.py", PING),
    ("gre.py", GRE),
    ("frag_host.py", FRAG_HOST),
    ("frag_client.py", FRAG_CLIENT),
    ("bigping.py", BIGPING),
];
