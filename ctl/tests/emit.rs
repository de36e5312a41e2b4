//! `Config::to_toml`, what `tgwctl config show` prints: read back by the
//! file's own parser, it gives the same `Config`, for the examples, the
//! valid files the other tests use, and generated configurations that set
//! every optional key (or leave it out) at random.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use ctl::config::{parse, Config, CpuSet};

/// Generated configurations use CPUs 0-7; the files, whatever they name.
const CPUS: &str = "0-7";

fn cpus(list: &str) -> CpuSet {
    list.parse().expect("test CPU list")
}

fn parsed(text: &str, name: &str, cpu_list: &str) -> Config {
    match parse(text, name, &cpus(cpu_list)) {
        Ok(c) => c,
        Err(e) => panic!("{name} was refused:\n{e}\n--- text ---\n{text}"),
    }
}

/// Emits `config`, reads the text back and checks it is the same
/// configuration, and that emitting that gives the same text. Returns the
/// text.
fn round_trip(config: &Config, name: &str, cpu_list: &str) -> String {
    let text = config.to_toml();
    let back = parsed(&text, &format!("{name} as emitted"), cpu_list);
    assert_eq!(
        &back, config,
        "{name}: the emitted text reads back to another Config:\n{text}"
    );
    assert_eq!(back.to_toml(), text, "{name}: emitting is not stable");
    text
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_example_reads_back_the_same() {
    let examples = files(&manifest_dir().join("../examples"));
    assert!(examples.len() >= 3, "examples: {examples:?}");
    for path in examples {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).expect("example");
        let config = parsed(&text, &name, "0-127");
        round_trip(&config, &name, "0-127");
    }
}

/// The files of `tests/data` that the config tests accept (most are there
/// to be refused).
#[test]
fn every_valid_test_file_reads_back_the_same() {
    let mut valid = 0;
    for path in files(&manifest_dir().join("tests/data")) {
        let text = std::fs::read_to_string(&path).expect("test file");
        let name = path.display().to_string();
        if let Ok(config) = parse(&text, &name, &cpus("0-3")) {
            round_trip(&config, &name, "0-3");
            valid += 1;
        }
    }
    assert!(valid >= 1, "no valid file in tests/data");
}

#[test]
fn generated_configurations_read_back_the_same() {
    for seed in 1..=200u64 {
        let text = generate(seed);
        let name = format!("generated config {seed}");
        let config = parsed(&text, &name, CPUS);
        round_trip(&config, &name, CPUS);
    }
}

/// The generator does reach what it is meant to vary: a generator that
/// quietly left keys out would leave the emitter untested on them.
#[test]
fn the_generator_sets_every_key_of_the_file() {
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for seed in 1..=200u64 {
        let doc: toml::Table = toml::from_str(&generate(seed)).expect("generated TOML");
        for (section, keys) in keys_of(&doc) {
            seen.entry(section).or_default().extend(keys);
        }
    }
    for (section, keys) in file_keys() {
        let got = seen.get(&section).cloned().unwrap_or_default();
        let missing: Vec<&String> = keys.difference(&got).collect();
        assert!(
            missing.is_empty(),
            "{section}: never generated: {missing:?}"
        );
    }
}

/// Every key the parser knows, in every section, is in the text: what is
/// left at its default is written too, so that another tgw with other
/// defaults restarts into the same state. The keys come from the parser's
/// own "expected one of" list, so a key added to the file format and not
/// to the emitter fails here.
#[test]
fn every_key_of_the_file_is_written() {
    let config = parsed(FULL, "full", CPUS);
    let text = round_trip(&config, "full", CPUS);
    let doc: toml::Table = toml::from_str(&text).expect("emitted TOML");
    let written = keys_of(&doc);
    for (section, keys) in file_keys() {
        let got = written.get(&section).cloned().unwrap_or_default();
        let missing: Vec<&String> = keys.difference(&got).collect();
        assert!(
            missing.is_empty(),
            "{section}: not written: {missing:?}\n{text}"
        );
    }
}

/// A configuration where every optional value is set (to its default
/// where it has one): written out, every key of the file appears.
const FULL: &str = r#"
[[port]]
name = "pub0"
device = "net_null0"
role = "public"
mac = "02:00:00:00:00:01"
peer_mac = "02:00:00:00:00:02"
addresses = ["1.1.1.1/24"]
[[port]]
name = "und0"
device = "net_null1"
role = "underlay"
addresses = ["172.168.0.1/24"]
[[worker]]
lcore = 1
rx = ["pub0:0", "und0:0"]
[[tenant]]
name = "t1"
key = 1000
hosts = ["172.168.0.11"]
prefixes = ["10.0.0.0/24"]
public_prefixes = ["2.2.2.0/24"]
mac = "02:00:00:00:10:00"
routes = [
  { prefix = "10.0.0.0/24", to = "172.168.0.11" },
  { prefix = "2.2.2.0/24", to = "172.168.0.11" },
  { prefix = "0.0.0.0/0", to = "public" },
]
neighbours = [{ ip = "10.0.0.7", mac = "02:00:00:00:0a:07" }]
rules = [
  { direction = "in", action = "allow", proto = "tcp", sport = "1024-65535", dport = 22 },
  { direction = "in", action = "allow", proto = "icmp", icmp_type = 3, icmp_code = 4 },
]
[[route]]
prefix = "0.0.0.0/0"
via = "1.1.1.254"
[[neighbour]]
port = "pub0"
ip = "1.1.1.254"
mac = "02:00:00:00:fe:fe"
[[eip]]
public = "3.3.3.3"
tenant = "t1"
private = "10.0.0.7"
[[snat]]
tenant = "t1"
addresses = ["4.4.4.4"]
[metrics]
listen = "127.0.0.1:9400"
[offload]
mode = "shadow"
"#;

/// The keys of every section of the file, as the parser lists them when
/// it meets an unknown one: `section` for the top level, `port`,
/// `tenant.route` and so on for the tables. Of a tenant's two forms of
/// routes, neighbours and rules, the inline arrays the emitter writes.
fn file_keys() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    out.insert("section".to_owned(), expected(&refusal("zzz = 1\n")));
    for (section, header) in [
        ("dataplane", "[dataplane]"),
        ("eal", "[eal]"),
        ("mempool", "[mempool]"),
        ("port", "[[port]]"),
        ("worker", "[[worker]]"),
        ("tenant", "[[tenant]]"),
        ("route", "[[route]]"),
        ("neighbour", "[[neighbour]]"),
        ("eip", "[[eip]]"),
        ("snat", "[[snat]]"),
        ("flows", "[flows]"),
        ("icmp", "[icmp]"),
        ("tcp", "[tcp]"),
        ("arp", "[arp]"),
        ("control", "[control]"),
        ("metrics", "[metrics]"),
        ("offload", "[offload]"),
    ] {
        let mut keys = expected(&refusal(&format!("{header}\nzzz = 1\n")));
        if section == "tenant" {
            for sub in ["route", "neighbour", "rule"] {
                assert!(keys.remove(sub), "tenant has no `{sub}` form: {keys:?}");
            }
        }
        out.insert(section.to_owned(), keys);
    }
    for (section, key) in [
        ("tenant.route", "routes"),
        ("tenant.neighbour", "neighbours"),
        ("tenant.rule", "rules"),
    ] {
        let text = format!("[[tenant]]\n{key} = [{{ zzz = 1 }}]\n");
        out.insert(section.to_owned(), expected(&refusal(&text)));
    }
    out
}

/// The parser's message about the unknown key `zzz` in `text`.
fn refusal(text: &str) -> String {
    let errors = parse(text, "keys", &cpus(CPUS)).expect_err("zzz is refused");
    errors
        .iter()
        .map(|e| e.message.clone())
        .find(|m| m.contains("`zzz`"))
        .unwrap_or_else(|| panic!("no message about zzz for {text:?}: {errors}"))
}

/// The backquoted names after "expected" in a message.
fn expected(message: &str) -> BTreeSet<String> {
    let (_, list) = message
        .split_once("expected")
        .unwrap_or_else(|| panic!("no list of keys in {message:?}"));
    let keys: BTreeSet<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!keys.is_empty(), "no keys in {message:?}");
    keys
}

/// The keys written in each section of `doc`, named as [`file_keys`]
/// names them; for arrays of tables, those of any entry.
fn keys_of(doc: &toml::Table) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    out.insert("section".to_owned(), doc.keys().cloned().collect());
    let mut add = |section: String, table: &toml::Table| {
        out.entry(section)
            .or_default()
            .extend(table.keys().cloned());
    };
    for (section, value) in doc {
        match value {
            toml::Value::Table(t) => add(section.clone(), t),
            toml::Value::Array(entries) => {
                for entry in entries.iter().filter_map(toml::Value::as_table) {
                    add(section.clone(), entry);
                    if section != "tenant" {
                        continue;
                    }
                    for (list, sub) in [
                        ("routes", "tenant.route"),
                        ("neighbours", "tenant.neighbour"),
                        ("rules", "tenant.rule"),
                        ("route", "tenant.route"),
                        ("neighbour", "tenant.neighbour"),
                        ("rule", "tenant.rule"),
                    ] {
                        let items = entry.get(list).and_then(toml::Value::as_array);
                        for item in items.into_iter().flatten() {
                            if let Some(t) = item.as_table() {
                                add(sub.to_owned(), t);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // The sub-table forms count as the inline arrays they stand for.
    if let Some(tenant) = out.get_mut("tenant") {
        for (sub, list) in [
            ("route", "routes"),
            ("neighbour", "neighbours"),
            ("rule", "rules"),
        ] {
            if tenant.remove(sub) {
                tenant.insert(list.to_owned());
            }
        }
    }
    out
}

#[test]
fn the_text_reads_as_the_examples_do() {
    let path = manifest_dir().join("../examples/reference.toml");
    let text = std::fs::read_to_string(&path).expect("reference.toml");
    let config = parsed(&text, "reference.toml", "0-127");
    let out = config.to_toml();
    assert!(out.starts_with("# "), "no header comment:\n{out}");
    // Sections in the order of the file reference.
    let order = [
        "\n[dataplane]\n",
        "\n[eal]\n",
        "\n[mempool]\n",
        "\n[[port]]\n",
        "\n[[worker]]\n",
        "\n[[tenant]]\n",
        "\n[[route]]\n",
        "\n[[neighbour]]\n",
        "\n[[eip]]\n",
        "\n[flows]\n",
        "\n[icmp]\n",
        "\n[tcp]\n",
        "\n[arp]\n",
        "\n[control]\n",
        "\n[metrics]\n",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|h| out.find(h).unwrap_or_else(|| panic!("no {h:?} in\n{out}")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "order {at:?}:\n{out}");
    // t2 is written with sub-tables; it comes out in t1's compact form.
    for want in [
        "routes = [\n  { prefix = \"10.0.0.0/24\", to = \"172.168.0.12\" },\n  { prefix = \"0.0.0.0/0\", to = \"public\" },\n]\n",
        "neighbours = [\n  { ip = \"10.0.0.7\", mac = \"02:00:00:00:0a:17\" },\n]\n",
        "  { direction = \"in\", action = \"allow\", proto = \"tcp\", src = \"0.0.0.0/0\", dst = \"0.0.0.0/0\", dport = 23 },\n",
        "\n[[port]]\nname = \"pub0\"\ndevice = \"net_null0\"\nrole = \"public\"\n",
        "\n[[worker]]\nlcore = 1\ncpu = 1\nrx = [\"pub0:0\", \"und0:0\"]\n",
    ] {
        assert!(out.contains(want), "no {want:?} in\n{out}");
    }
}

/// Strings the operator writes freely (devargs, EAL arguments) keep every
/// character: quotes, backslashes, control characters, non-ASCII.
#[test]
fn free_text_is_escaped() {
    let args = [
        "--vdev-arg=\"quoted\"",
        "--path=C:\\dir\\file",
        "--tab=\t--newline=\n--cr=\r--del=\u{7f}--nul=\u{0}",
        "--both='single' \"double\" '''",
        "--é✓ #not a comment",
    ];
    let mut text = String::from("[eal]\nextra_args = [");
    for a in args {
        write!(text, "{}, ", toml::Value::String(a.to_owned())).expect("string");
    }
    text.push_str("]\n");
    text.push_str(&MINIMAL.replace("net_null0", "net_null0,x=\\\"y z\\\",w='v',p=C:\\\\x #hash"));
    let config = parsed(&text, "free text", CPUS);
    assert_eq!(config.eal.extra_args, args);
    assert_eq!(
        config.ports[0].device,
        "net_null0,x=\"y z\",w='v',p=C:\\x #hash"
    );
    round_trip(&config, "free text", CPUS);
}

const MINIMAL: &str = r#"
[[port]]
name = "pub0"
device = "net_null0"
role = "public"
addresses = ["1.1.1.1/24"]
[[port]]
name = "und0"
device = "net_null1"
role = "underlay"
addresses = ["172.168.0.1/24"]
[[worker]]
lcore = 1
rx = ["pub0:0", "und0:0"]
"#;

// ---------------------------------------------------------------------
// The generator: valid configurations where each optional key is written
// or left out at random, and each written value is drawn from its whole
// range, so that a value the emitter drops or bends shows up as a
// difference after the round trip.

/// xorshift64*: deterministic, so that a failing seed can be rerun.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64 - 1) as usize]
    }

    /// A unicast MAC, quoted.
    fn mac(&mut self) -> String {
        let b = self.next().to_le_bytes();
        format!(
            "\"{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\"",
            (b[0] & 0xfe) | 2,
            b[1],
            b[2],
            b[3],
            b[4],
            b[5] | 1
        )
    }
}

/// Lines of one table, each key written only if chosen.
struct Table<'a> {
    text: &'a mut String,
}

impl Table<'_> {
    fn key(&mut self, key: &str, value: impl std::fmt::Display) {
        writeln!(self.text, "{key} = {value}").expect("string");
    }

    /// Writes the key if `write`; returns `write`.
    fn maybe(&mut self, write: bool, key: &str, value: impl std::fmt::Display) -> bool {
        if write {
            self.key(key, value);
        }
        write
    }
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// The port names the generator chose, for the sections that refer to
/// them.
struct Ports {
    names: Vec<String>,
}

fn generate(seed: u64) -> String {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut text = String::new();
    let workers = rng.range(1, 3) as usize;
    let big_held = rng.coin();
    // What the mempool must hold is bounded by the choices below: with
    // three workers or a big [arp] max_held the default pool is too small.
    let mbufs = if workers <= 2 && !big_held && rng.coin() {
        None
    } else {
        Some(rng.range(40_000, 200_000))
    };
    let data_room = rng.coin().then(|| rng.range(9_146, 20_000));
    let hugepages = rng.coin().then(|| rng.coin());
    let main_lcore = rng.pick(&[0u64, 5]);

    if rng.coin() {
        text.push_str("[dataplane]\n");
        let mut t = Table { text: &mut text };
        t.maybe(rng.coin(), "mode", quoted(rng.pick(&["gateway", "l2fwd"])));
        let any = rng.range(100, 3_600_000);
        let watchdog = rng.pick(&[0, 100, 250, 3_600_000, any]);
        t.maybe(rng.coin(), "watchdog_ms", watchdog);
        // At least the most tenants (5) and rules (5 x 6) generated.
        t.maybe(rng.coin(), "tenant_slots", rng.range(5, 65_534));
        t.maybe(rng.coin(), "rule_slots", rng.range(30, 1 << 22));
    }

    // [eal]: when absent, the main lcore is 0.
    let main_lcore = if main_lcore != 0 || hugepages.is_some() || rng.coin() {
        text.push_str("[eal]\n");
        let mut t = Table { text: &mut text };
        if main_lcore != 0 {
            t.key("main_lcore", main_lcore);
        } else {
            t.maybe(rng.coin(), "main_lcore", 0);
        }
        let prefix = rng.pick(&["tgw", "a", "x.y-z_1", "T9"]);
        t.maybe(rng.coin(), "file_prefix", quoted(prefix));
        if let Some(h) = hugepages {
            t.key("hugepages", h);
        }
        let per_mbuf = data_room.unwrap_or(2176) + 192;
        let need_mib = (mbufs.unwrap_or(32_767) * per_mbuf).div_ceil(1 << 20);
        let memory = need_mib + rng.range(1, 4096);
        if hugepages == Some(false) && need_mib >= 512 {
            t.key("memory_mb", memory);
        } else {
            t.maybe(rng.coin(), "memory_mb", memory);
        }
        t.maybe(rng.coin(), "in_memory", rng.coin());
        let args: Vec<String> = (0..rng.range(0, 3))
            .map(|i| quoted(&format!("--log-level=pmd.{i}:debug \"'\\\té")))
            .collect();
        t.maybe(rng.coin(), "extra_args", list(&args));
        main_lcore
    } else {
        0
    };

    if mbufs.is_some() || data_room.is_some() || rng.coin() {
        text.push_str("[mempool]\n");
        let mut t = Table { text: &mut text };
        if let Some(m) = mbufs {
            t.key("mbufs", m);
        }
        t.maybe(rng.coin(), "cache_size", rng.range(0, 512));
        if let Some(d) = data_room {
            t.key("data_room", d);
        }
    }

    let ports = ports(&mut rng, &mut text, data_room);
    worker_tables(&mut rng, &mut text, workers, main_lcore, &ports);
    let tenants = rng.pick(&[0u64, 1, 2, 3, 5]) as usize;
    let remote = rng.coin();
    let names: Vec<String> = (0..tenants)
        .map(|i| tenant(&mut rng, &mut text, i, workers, remote))
        .collect();
    global_routes(&mut rng, &mut text, &ports, remote);
    global_neighbours(&mut rng, &mut text, &ports);
    nat(&mut rng, &mut text, &names);
    packet_sections(&mut rng, &mut text, big_held);
    // Last, so that the draws above stay those of the seeds before it.
    if rng.coin() {
        text.push_str("[control]\n");
        let socket = rng.pick(&["/run/tgw/tgw.sock", "/var/run/gw/ctl \"1\".sock", "/s"]);
        Table { text: &mut text }.maybe(rng.coin(), "socket", quoted(socket));
    }
    if rng.coin() {
        text.push_str("[metrics]\n");
        let remote = rng.coin();
        let listen = if remote {
            rng.pick(&["0.0.0.0:9400", "[::]:80", "10.1.2.3:65535"])
        } else {
            rng.pick(&["127.0.0.1:9400", "[::1]:9400", "127.9.9.9:1"])
        };
        let mut t = Table { text: &mut text };
        t.maybe(rng.coin(), "listen", quoted(listen));
        t.maybe(remote || rng.coin(), "allow_remote", remote);
    }
    if rng.coin() {
        text.push_str("[offload]\n");
        let mut t = Table { text: &mut text };
        let mode = rng.pick(&["\"auto\"", "\"off\"", "\"shadow\""]);
        t.maybe(rng.coin(), "mode", mode);
        t.maybe(rng.coin(), "max_flows", rng.pick(&[1, 65_536, 1 << 24]));
        t.maybe(rng.coin(), "tenant_share", rng.range(1, 100));
        t.maybe(rng.coin(), "query_interval_ms", rng.range(10, 30_000));
        t.maybe(rng.coin(), "queue_depth", rng.range(16, 1 << 20));
        let df = rng.pick(&["\"copy\"", "\"set\""]);
        t.maybe(rng.coin(), "outer_df", df);
        let deny = rng.pick(&[0, 4096, 65_536]);
        t.maybe(rng.coin(), "max_deny_rules", deny);
    }
    text
}

/// Two or three ports: pub0 (public), und0 (underlay), maybe a third of
/// either role. Names and devargs vary; the subnets are fixed, for the
/// routes and hosts that need them.
fn ports(rng: &mut Rng, text: &mut String, data_room: Option<u64>) -> Ports {
    let max_mtu = data_room.map_or(2176 - 146, |d| (d - 146).min(9000));
    let count = rng.range(2, 3);
    let mut names = Vec::new();
    for i in 0..count {
        let name = match i {
            0 => rng.pick(&["pub0", "Public-side_0"]),
            1 => rng.pick(&["und0", "u"]),
            _ => "third",
        };
        names.push(name.to_owned());
        text.push_str("[[port]]\n");
        let mut t = Table { text };
        t.key("name", quoted(name));
        let devargs = rng.pick(&["", ",size=64", ",x=\"a b\",c='d' #e"]);
        t.key("device", quoted(&format!("net_null{i}{devargs}")));
        let (role, addresses) = match i {
            0 => ("public", vec!["1.1.1.1/24"]),
            1 => ("underlay", vec!["172.168.0.1/24", "172.169.0.1/16"]),
            _ if rng.coin() => ("public", vec!["6.6.6.1/24"]),
            _ => ("underlay", vec!["172.170.0.9/24"]),
        };
        t.key("role", quoted(role));
        t.maybe(rng.coin(), "mac", rng.mac());
        t.maybe(rng.coin(), "peer_mac", rng.mac());
        let written: Vec<String> = addresses.iter().map(|a| quoted(a)).collect();
        // The first two ports' first subnets are what the rest relies on.
        if i < 2 || rng.coin() {
            t.key("addresses", list(&written));
        } else {
            t.maybe(rng.coin(), "addresses", "[]");
        }
        t.maybe(rng.coin(), "mtu", rng.range(68, max_mtu));
        t.maybe(rng.coin(), "rx_desc", 1u64 << rng.range(6, 10));
        t.maybe(rng.coin(), "tx_desc", 1u64 << rng.range(6, 10));
    }
    Ports { names }
}

/// Each worker polls its own queue of the first port; the other ports have
/// one queue per worker or fewer, spread over the workers.
fn worker_tables(rng: &mut Rng, text: &mut String, workers: usize, main_lcore: u64, ports: &Ports) {
    let mut rx: Vec<Vec<String>> = vec![Vec::new(); workers];
    for (p, name) in ports.names.iter().enumerate() {
        let queues = if p == 0 {
            workers
        } else {
            rng.range(1, workers as u64) as usize
        };
        for q in 0..queues {
            rx[q % workers].push(quoted(&format!("{name}:{q}")));
        }
    }
    let mut lcores: Vec<u64> = Vec::new();
    for queues in &mut rx {
        let lcore = loop {
            let l = rng.range(1, 127);
            if l != main_lcore && !lcores.contains(&l) {
                break l;
            }
        };
        lcores.push(lcore);
        // The order a worker polls in is kept: turn it around at times.
        if rng.coin() {
            queues.reverse();
        }
        text.push_str("[[worker]]\n");
        let mut t = Table { text };
        t.key("lcore", lcore);
        if lcore > 7 || rng.coin() {
            t.key("cpu", rng.range(0, 7));
        }
        t.key("rx", list(queues));
    }
}

/// Tenant `i`: its prefixes are 10.i.0.0/16 (and 192.168.i.0/24), its
/// hosts on und0's subnets or, when `remote`, behind the underlay route to
/// 10.99.0.0/16. Returns its name.
fn tenant(rng: &mut Rng, text: &mut String, i: usize, workers: usize, remote: bool) -> String {
    text.push_str("[[tenant]]\n");
    let mut t = Table { text };
    let name = format!("t{i}{}", rng.pick(&["", "-a_B", "_x"]));
    t.key("name", quoted(&name));
    let key = match i {
        0 => {
            let any = rng.range(1, 1000);
            rng.pick(&[0, u64::from(u32::MAX), any])
        }
        _ => 1000 * i as u64 + rng.range(1, 999),
    };
    t.key("key", key);
    let encap = rng.pick(&["", "gretap", "ipv4"]);
    if !encap.is_empty() {
        t.key("encap", quoted(encap));
    }
    let gretap = encap != "ipv4";
    t.maybe(rng.coin(), "gre_checksum", rng.coin());
    t.maybe(rng.coin(), "gre_sequence", workers == 1 && rng.coin());
    let mut hosts = vec![format!("172.168.0.{}", 10 + i * 4)];
    if rng.coin() {
        hosts.push(format!("172.169.{i}.7"));
    }
    if remote {
        hosts.push(format!("10.99.{i}.1"));
    }
    let quoted_hosts: Vec<String> = hosts.iter().map(|h| quoted(h)).collect();
    t.key("hosts", list(&quoted_hosts));
    let mut prefixes = vec![quoted(&format!("10.{i}.0.0/16"))];
    if rng.coin() {
        prefixes.push(quoted(&format!("192.168.{i}.0/24")));
    }
    t.key("prefixes", list(&prefixes));
    let public = rng.coin().then(|| format!("2.2.{i}.0/24"));
    match &public {
        Some(p) => t.key("public_prefixes", list(&[quoted(p)])),
        None => {
            t.maybe(rng.coin(), "public_prefixes", "[]");
        }
    }
    if gretap {
        t.maybe(rng.coin(), "mac", rng.mac());
    }
    let actions = ["\"allow\"", "\"deny\""];
    t.maybe(rng.coin(), "default_in", rng.pick(&actions));
    t.maybe(rng.coin(), "default_out", rng.pick(&actions));

    let mut routes = vec![format!(
        "{{ prefix = \"10.{i}.0.0/16\", to = {} }}",
        quoted_hosts[rng.range(0, quoted_hosts.len() as u64 - 1) as usize]
    )];
    if let Some(p) = &public {
        routes.push(format!("{{ prefix = \"{p}\", to = {} }}", quoted_hosts[0]));
    }
    for (prefix, to) in [
        ("0.0.0.0/0", rng.pick(&["public", "blackhole"])),
        ("192.0.2.0/24", "local"),
        ("198.51.100.0/25", "blackhole"),
        ("10.200.0.0/16", &hosts[hosts.len() - 1]),
    ] {
        if rng.coin() {
            routes.push(format!("{{ prefix = \"{prefix}\", to = \"{to}\" }}"));
        }
    }
    let neighbours: Vec<String> = if gretap {
        (0..rng.range(0, 2))
            .map(|j| format!("{{ ip = \"10.{i}.0.{}\", mac = {} }}", 7 + j, rng.mac()))
            .collect()
    } else {
        Vec::new()
    };
    let rules: Vec<String> = (0..rng.range(0, 6)).map(|_| rule(rng, i)).collect();
    // Inline arrays, then sub-tables: the tenant's own keys must come
    // before its first sub-table.
    let mut sub = String::new();
    for (key, table, entries) in [
        ("routes", "route", routes),
        ("neighbours", "neighbour", neighbours),
        ("rules", "rule", rules),
    ] {
        if entries.is_empty() {
            if rng.coin() {
                writeln!(text, "{key} = []").expect("string");
            }
        } else if rng.coin() {
            writeln!(text, "{key} = [\n  {},\n]", entries.join(",\n  ")).expect("string");
        } else {
            for e in entries {
                let body = e.trim_start_matches("{ ").trim_end_matches(" }");
                writeln!(sub, "[[tenant.{table}]]\n{}", body.replace(", ", "\n")).expect("string");
            }
        }
    }
    text.push_str(&sub);
    name
}

/// A rule of tenant `i` as an inline table. Its own end (dst inbound, src
/// outbound) is one of the tenant's prefixes when written.
fn rule(rng: &mut Rng, i: usize) -> String {
    let inbound = rng.coin();
    let mut keys = vec![
        format!("direction = \"{}\"", if inbound { "in" } else { "out" }),
        format!("action = {}", rng.pick(&["\"allow\"", "\"deny\""])),
    ];
    let proto = rng.pick(&[
        "", "\"any\"", "\"tcp\"", "\"udp\"", "\"icmp\"", "6", "17", "1", "47", "0", "255",
    ]);
    if !proto.is_empty() {
        keys.push(format!("proto = {proto}"));
    }
    let own = rng.pick(&["", "10.I.0.0/16", "10.I.0.7/32", "0.0.0.0/0"]);
    let other = rng.pick(&["", "203.0.113.0/24", "0.0.0.0/0", "8.8.8.8/32"]);
    for (key, prefix) in [
        ("src", if inbound { other } else { own }),
        ("dst", if inbound { own } else { other }),
    ] {
        if !prefix.is_empty() {
            keys.push(format!(
                "{key} = \"{}\"",
                prefix.replace('I', &i.to_string())
            ));
        }
    }
    if matches!(proto, "\"tcp\"" | "\"udp\"" | "6" | "17") {
        for key in ["sport", "dport"] {
            let value = rng.pick(&["", "22", "\"443\"", "\"1024-65535\"", "\"0-65535\"", "0"]);
            if !value.is_empty() {
                keys.push(format!("{key} = {value}"));
            }
        }
    }
    if matches!(proto, "\"icmp\"" | "1") && rng.coin() {
        keys.push(format!("icmp_type = {}", rng.range(0, 255)));
        if rng.coin() {
            keys.push(format!("icmp_code = {}", rng.range(0, 255)));
        }
    }
    format!("{{ {} }}", keys.join(", "))
}

fn global_routes(rng: &mut Rng, text: &mut String, ports: &Ports, remote: bool) {
    let (public, underlay) = (&ports.names[0], &ports.names[1]);
    if rng.coin() {
        text.push_str("[[route]]\nprefix = \"0.0.0.0/0\"\nvia = \"1.1.1.254\"\n");
        Table { text }.maybe(rng.coin(), "port", quoted(public));
    }
    // The same prefix may be routed on both sides.
    if remote || rng.coin() {
        text.push_str("[[route]]\nprefix = \"10.99.0.0/16\"\nvia = \"172.168.0.254\"\n");
        Table { text }.maybe(rng.coin(), "port", quoted(underlay));
    }
    if rng.coin() {
        text.push_str("[[route]]\nprefix = \"10.99.0.0/16\"\nvia = \"1.1.1.253\"\n");
    }
}

fn global_neighbours(rng: &mut Rng, text: &mut String, ports: &Ports) {
    for (port, ip) in [
        (&ports.names[0], "1.1.1.254"),
        (&ports.names[1], "172.168.0.254"),
        (&ports.names[1], "172.169.200.1"),
    ] {
        if rng.coin() {
            let mac = rng.mac();
            writeln!(
                text,
                "[[neighbour]]\nport = {}\nip = \"{ip}\"\nmac = {mac}",
                quoted(port)
            )
            .expect("string");
        }
    }
}

/// Elastic IPs 3.3.i.j onto 10.i.0.(20+j), and pools of 4.4.i.j, for some
/// of the tenants called `names`.
fn nat(rng: &mut Rng, text: &mut String, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        for j in 0..rng.range(0, 2) {
            writeln!(
                text,
                "[[eip]]\npublic = \"3.3.{i}.{}\"\ntenant = {}\nprivate = \"10.{i}.0.{}\"",
                j + 1,
                quoted(name),
                20 + j
            )
            .expect("string");
        }
    }
    for (i, name) in names.iter().enumerate() {
        if !rng.coin() {
            continue;
        }
        let addresses: Vec<String> = (1..=rng.range(1, 3))
            .map(|j| quoted(&format!("4.4.{i}.{j}")))
            .collect();
        writeln!(text, "[[snat]]\ntenant = {}", quoted(name)).expect("string");
        let mut t = Table { text };
        t.key("addresses", list(&addresses));
        let lo = rng.range(0, 65_000);
        let hi = rng.range(lo + 63, 65_535);
        t.maybe(rng.coin(), "ports", format!("\"{lo}-{hi}\""));
        t.maybe(rng.coin(), "max_blocks", rng.range(1, 64));
        let filtering = rng.pick(&["\"address-and-port-dependent\"", "\"endpoint-independent\""]);
        t.maybe(rng.coin(), "filtering", filtering);
    }
}

/// `[flows]`, `[icmp]`, `[tcp]`, `[arp]`, each absent or with some keys;
/// the shares within the bounds the written (or default) totals set.
fn packet_sections(rng: &mut Rng, text: &mut String, big_held: bool) {
    if rng.coin() {
        text.push_str("[flows]\n");
        let mut t = Table { text };
        let any = rng.range(1, 1 << 20);
        let capacity = rng.pick(&[1, 65_536, 1 << 28, any]);
        let capacity = if t.maybe(rng.coin(), "capacity", capacity) {
            capacity
        } else {
            65_536
        };
        let per_tenant = rng.range(1, capacity);
        let per_tenant = if t.maybe(rng.coin(), "per_tenant", per_tenant) {
            per_tenant
        } else {
            (capacity / 4).max(1)
        };
        t.maybe(rng.coin(), "unreplied_per_tenant", rng.range(1, per_tenant));
        t.maybe(rng.coin(), "unreplied_total", rng.range(1, capacity));
        let transitory = rng.range(240, 100_000);
        let transitory = if t.maybe(rng.coin(), "tcp_transitory_s", transitory) {
            transitory
        } else {
            240
        };
        t.maybe(rng.coin(), "unreplied_s", rng.range(1, transitory));
        let u32_max = u64::from(u32::MAX);
        t.maybe(rng.coin(), "tcp_established_s", rng.range(7_440, u32_max));
        t.maybe(rng.coin(), "udp_s", rng.range(120, u32_max));
        t.maybe(rng.coin(), "icmp_s", rng.range(60, u32_max));
    }
    if rng.coin() {
        text.push_str("[icmp]\n");
        let mut t = Table { text };
        let rate = rng.pick(&[0, 1, 1000, u64::from(u32::MAX)]);
        t.maybe(rng.coin(), "rate_per_sec", rate);
        let burst = if rate == 0 { 0 } else { 1 };
        t.maybe(rng.coin(), "burst", rng.range(burst, u64::from(u32::MAX)));
    }
    if rng.coin() {
        text.push_str("[tcp]\n");
        Table { text }.maybe(rng.coin(), "mss_clamp", rng.coin());
    }
    if big_held || rng.coin() {
        text.push_str("[arp]\n");
        let mut t = Table { text };
        t.maybe(rng.coin(), "reachable_s", rng.range(1, u64::from(u32::MAX)));
        t.maybe(rng.coin(), "retry_ms", rng.range(10, u64::from(u32::MAX)));
        t.maybe(rng.coin(), "max_pending", rng.range(1, 64));
        t.maybe(rng.coin(), "retries", rng.range(1, 10));
        let any = rng.range(16, 1 << 20);
        let entries = rng.pick(&[16, 4096, 1 << 20, any]);
        let entries = if t.maybe(rng.coin(), "entries", entries) {
            entries
        } else {
            4096
        };
        // Up to 5 tenants of up to 2 static neighbours each (`tenant`):
        // the tenants' part holds 10, a tenant's share 2.
        let port_entries = rng.range(1, entries - 10);
        let port_entries = if t.maybe(rng.coin(), "port_entries", port_entries) {
            port_entries
        } else {
            (entries / 4).max(1)
        };
        // Left out, per_tenant defaults to entries / 16 within what
        // port_entries leaves (once taken above it, and refused when
        // written back).
        let per_tenant = rng.range(2, entries - port_entries);
        if entries / 16 < 2 {
            t.key("per_tenant", per_tenant);
        } else {
            t.maybe(rng.coin(), "per_tenant", per_tenant);
        }
        // max_held counts against the pool: big only when the pool was
        // sized for it.
        let max_held = if big_held {
            let held = rng.range(1025, 4096);
            t.key("max_held", held);
            held
        } else {
            let held = rng.range(4, 1024);
            if t.maybe(rng.coin(), "max_held", held) {
                held
            } else {
                1024
            }
        };
        t.maybe(
            rng.coin(),
            "held_per_tenant",
            rng.range(1, max_held - max_held / 4),
        );
    }
}
