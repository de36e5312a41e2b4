//! `tgw-perf churn-test`: zero loss under change (issue 11). tgw on memif
//! with traffic tenants, one elastic-IP tenant and churned tenants; the
//! paced generator sends a fixed rate to the traffic tenants and the
//! elastic IP while the churn driver changes the churned tenants through
//! the control socket (and, on purpose, unbinds and binds the traffic's
//! elastic IP). Prints per-tenant sent/received/misrouted, tgw's drops by
//! reason and the churn's latencies; `--json` writes them for tests.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::churn::{self, ChurnArgs, ChurnReport};
use crate::dut::{self, Setup};
use crate::paced::{self, FlowCounts, PacedResult};
use crate::profile::{self, KEY_BASE};

#[derive(clap::Args, Debug)]
pub struct ChurnTestArgs {
    /// Seconds of churn.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Changes a second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Frames a second of traffic, over all flows.
    #[arg(long, default_value_t = 20_000)]
    pub traffic: u64,
    /// Traffic tenants (one flow each to its public address); one more
    /// tenant holds the traffic's elastic IP.
    #[arg(long, default_value_t = 16)]
    pub tenants: u32,
    /// Churned tenants (the traffic uses none of them).
    #[arg(long, default_value_t = 64)]
    pub churned: u32,
    /// Unbind the traffic's elastic IP at a third of the churn and bind it
    /// again at two thirds.
    #[arg(long)]
    pub flap_eip: bool,
    /// Seconds of traffic before the churn starts, and after it ends.
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
    /// The tgw binary (default: next to tgw-perf, else on PATH).
    #[arg(long)]
    pub tgw: Option<PathBuf>,
    /// Run without hugepages.
    #[arg(long)]
    pub no_huge: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// How far past its time the churn may end (connecting, the last
/// request) before the traffic's last window is said to overlap it.
const OVERRUN_SLACK: f64 = 0.1;

/// The churned tenants start at this index of the address plan.
const CHURN_INDEX: u32 = 1000;

pub fn run(args: &ChurnTestArgs) -> Result<(), String> {
    let hugepages = !args.no_huge && dut::hugepages_available();
    let setup = Setup::new(
        "tgw-churn",
        hugepages,
        args.tgw.clone(),
        PathBuf::new(),
        (0, 1),
        None,
    )?;
    let dir = setup.dir.clone();
    let result = measure(&setup, args);
    let outcome = match result {
        Ok(out) => {
            print!("{}", table(args, &out));
            if let Some(path) = &args.json {
                std::fs::write(path, out.to_string() + "\n")
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            Ok(())
        }
        Err(e) => Err(format!("{e} (logs in {})", dir.display())),
    };
    if outcome.is_ok() && std::env::var_os("TGW_PERF_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

/// The generator first (it owns the memif sockets), then tgw; once the
/// generator sends, `settle` seconds of traffic alone, the churn, and
/// `settle` seconds more; then tgw stops and writes its counters.
fn measure(setup: &Setup, args: &ChurnTestArgs) -> Result<Value, String> {
    for s in &setup.sockets {
        let _ = std::fs::remove_file(s);
    }
    let traffic_seconds = args.settle * 2.0 + args.seconds;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let gen_prefix = format!("tgw-churn-gen-{}", std::process::id());
    let mut gen = Command::new(exe);
    gen.arg("paced")
        .arg("--sockets")
        .args(&setup.sockets)
        .arg("--file-prefix")
        .arg(&gen_prefix)
        .arg("--lcore")
        .arg(setup.main_lcore.to_string())
        .arg("--rate")
        .arg(args.traffic.to_string())
        .arg("--seconds")
        .arg(traffic_seconds.to_string())
        .arg("--tail")
        .arg(args.settle.to_string())
        .arg("--tenants")
        .arg(args.tenants.to_string());
    if !setup.hugepages {
        gen.arg("--no-huge");
    }
    let gen_log = std::fs::File::create(setup.dir.join("paced.log")).map_err(|e| e.to_string())?;
    let child = gen
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(gen_log)
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut gen = crate::GenChild {
        child,
        prefix: gen_prefix,
    };
    crate::wait_for_files(&setup.sockets, Duration::from_secs(10));

    let prefix = format!("tgw-churn-{}", std::process::id());
    let control = setup.dir.join("tgw.sock");
    // memif's client makes the rings: 4096 slots (the default is 1024).
    // On two shared vCPUs the generator, tgw's control loop and the
    // churn take turns on one of them; at 50,000 frames/s 1024 slots are
    // 20 ms of the generator's absence, which a busy machine's scheduler
    // exceeds, and then tgw's TX toward it is full (`tx_full`).
    let config = setup.tgw_base_config(&prefix, true, ",rsize=12") + &sections(args, &control);
    let running = setup.start_tgw(prefix, &config)?;

    let lines = gen_lines(&mut gen)?;
    let ready = lines
        .recv_timeout(Duration::from_secs(40))
        .unwrap_or_default();
    let churn = if ready.contains("ready") {
        let started = Instant::now();
        wait_for_socket(&control, Duration::from_secs(20));
        sleep_until(started + Duration::from_secs_f64(args.settle));
        churn::drive(&ChurnArgs {
            socket: control.clone(),
            rate: args.rate,
            seconds: args.seconds,
            tenants: args.churned,
            first_index: CHURN_INDEX,
            flap_eip: args
                .flap_eip
                .then(|| format!("{},e0,{}", paced::EIP, paced::EIP_PRIVATE)),
        })
        .map(|r| (r, started.elapsed().as_secs_f64()))
    } else {
        Err("the generator never started sending: did tgw start?".to_owned())
    };
    let line = lines
        .recv_timeout(Duration::from_secs_f64(traffic_seconds + 30.0))
        .unwrap_or_default();
    let stats = crate::running_stop(running);
    if let Some(mut stdin) = gen.child.stdin.take() {
        let _ = stdin.write_all(b"\n");
    }
    drop(gen);

    let (churn, churn_end) = churn?;
    let value: Value = serde_json::from_str(line.trim())
        .map_err(|_| "the generator reported no result".to_owned())?;
    let traffic = PacedResult::from_json(&value).ok_or("the generator's result is malformed")?;
    let stats = stats?.ok_or("tgw wrote no counters")?;
    Ok(report(args, &churn, churn_end, &traffic, &stats))
}

/// The generator's stdout, line by line, read on a thread so that waits
/// can time out.
fn gen_lines(gen: &mut crate::GenChild) -> Result<mpsc::Receiver<String>, String> {
    let stdout = gen.child.stdout.take().ok_or("generator has no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

fn wait_for_socket(path: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !path.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

/// Everything after the ports: the control socket, the traffic tenants
/// (`t0`…, each reached at its public address), the elastic IP's tenant
/// (`e0`, plan index `tenants`), the churned tenants (`c0`…, plan index
/// [`CHURN_INDEX`] on).
fn sections(args: &ChurnTestArgs, control: &Path) -> String {
    let mut out = String::new();
    let vm = profile::mac(profile::VM_MAC);
    let hmac = profile::mac(profile::HOST_MAC);
    let _ = writeln!(
        out,
        "[control]\nsocket = \"{}\"\n\n[dataplane]\nmode = \"gateway\"\n\n[[eip]]\npublic = \"{}\"\ntenant = \"e0\"\nprivate = \"{}\"\n",
        control.display(),
        paced::EIP,
        paced::EIP_PRIVATE
    );
    let _ = writeln!(
        out,
        "[[neighbour]]\nport = \"pub0\"\nip = \"1.1.1.7\"\nmac = \"{}\"\n",
        profile::mac(profile::CLIENT_MAC)
    );
    for i in 0..=args.tenants {
        let (name, public) = if i < args.tenants {
            (format!("t{i}"), Some(profile::public(i)))
        } else {
            ("e0".to_owned(), None)
        };
        let h = profile::host(i);
        let public_prefixes = public.map_or(String::new(), |p| format!("\"{p}/32\""));
        let public_route = public.map_or(String::new(), |p| {
            format!("{{ prefix = \"{p}/32\", to = \"{h}\" }}, ")
        });
        let public_neigh = public.map_or(String::new(), |p| {
            format!(", {{ ip = \"{p}\", mac = \"{vm}\" }}")
        });
        let _ = writeln!(
            out,
            r#"[[tenant]]
name = "{name}"
key = {key}
hosts = ["{h}"]
prefixes = ["10.0.0.0/24"]
public_prefixes = [{public_prefixes}]
mac = "{tmac}"
default_in = "allow"
routes = [{{ prefix = "10.0.0.0/24", to = "{h}" }}, {public_route}{{ prefix = "0.0.0.0/0", to = "public" }}]
neighbours = [{{ ip = "10.0.0.7", mac = "{vm}" }}{public_neigh}]

[[neighbour]]
port = "und0"
ip = "{h}"
mac = "{hmac}"
"#,
            key = KEY_BASE + i,
            tmac = profile::mac(profile::tenant_mac(i)),
        );
    }
    for j in 0..args.churned {
        let index = CHURN_INDEX + j;
        let h = profile::host(index);
        let _ = writeln!(
            out,
            r#"[[tenant]]
name = "{name}"
key = {key}
hosts = ["{h}"]
prefixes = ["10.0.0.0/24"]
routes = [{{ prefix = "10.0.0.0/24", to = "{h}" }}, {{ prefix = "10.9.0.0/24", to = "{h}" }}, {{ prefix = "0.0.0.0/0", to = "public" }}]
"#,
            name = churn::tenant_name(j),
            key = KEY_BASE + index,
        );
    }
    out
}

/// The run as JSON: per tenant, the churn, tgw's drops by reason.
fn report(
    args: &ChurnTestArgs,
    churn: &ChurnReport,
    churn_end: f64,
    traffic: &PacedResult,
    stats: &Value,
) -> Value {
    let tenant = |f: usize, c: &FlowCounts| {
        let name = if (f as u32) < args.tenants {
            format!("t{f}")
        } else {
            "e0".to_owned()
        };
        json!({
            "tenant": name, "sent": c.sent, "received": c.received,
            "misrouted": c.misrouted, "tail_sent": c.tail_sent,
            "tail_received": c.tail_received,
        })
    };
    let tenants: Vec<Value> = traffic
        .flows
        .iter()
        .enumerate()
        .map(|(f, c)| tenant(f, c))
        .collect();
    let mut drops = serde_json::Map::new();
    for w in stats["workers"].as_array().into_iter().flatten() {
        for (reason, n) in w["drops"].as_object().into_iter().flatten() {
            let n = n.as_u64().unwrap_or(0);
            if n > 0 {
                let sum = drops.get(reason).and_then(Value::as_u64).unwrap_or(0);
                drops.insert(reason.clone(), (sum + n).into());
            }
        }
    }
    let rx_missed: u64 = stats["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["rx_missed"].as_u64())
        .sum();
    json!({
        "seconds": args.seconds, "rate": args.rate, "traffic_fps": args.traffic,
        "churn": churn.to_json(),
        // Past the traffic's settle time, the tail window overlaps the
        // churn: the tail counts are then not after it.
        "churn_overran": churn_end > args.settle + args.seconds + OVERRUN_SLACK,
        "tenants": tenants, "tx_full": traffic.tx_full, "foreign": traffic.foreign,
        "drops": drops, "rx_missed": rx_missed,
    })
}

fn table(args: &ChurnTestArgs, out: &Value) -> String {
    let mut s = String::new();
    let c = &out["churn"];
    let _ = writeln!(
        s,
        "churn: {} changes in {:.2} s ({:.0}/s asked {}/s), refused {}, latency p50 {} us p99 {} us max {} us{}",
        c["made"],
        c["seconds"].as_f64().unwrap_or(0.0),
        c["rate"].as_f64().unwrap_or(0.0),
        args.rate,
        c["refused"],
        c["p50_us"],
        c["p99_us"],
        c["max_us"],
        if out["churn_overran"] == true { " (overran its time)" } else { "" }
    );
    if let Some(flap) = c["flap"].as_array() {
        let _ = writeln!(
            s,
            "elastic IP {} unbound at {:.2} s, bound again at {:.2} s",
            paced::EIP,
            flap[0].as_f64().unwrap_or(0.0),
            flap[1].as_f64().unwrap_or(0.0)
        );
    }
    let _ = writeln!(
        s,
        "traffic {} frames/s · {:<6} {:>9} {:>9} {:>9} {:>9} {:>12} {:>13}",
        args.traffic,
        "tenant",
        "sent",
        "received",
        "lost",
        "misrouted",
        "tail sent",
        "tail received"
    );
    for t in out["tenants"].as_array().into_iter().flatten() {
        let n = |k: &str| t[k].as_u64().unwrap_or(0);
        let _ = writeln!(
            s,
            "{:<24} {:<6} {:>9} {:>9} {:>9} {:>9} {:>12} {:>13}",
            "",
            t["tenant"].as_str().unwrap_or(""),
            n("sent"),
            n("received"),
            n("sent").saturating_sub(n("received")),
            n("misrouted"),
            n("tail_sent"),
            n("tail_received")
        );
    }
    let _ = writeln!(
        s,
        "tx ring full {} · foreign frames {} · tgw rx_missed {} · tgw drops {}",
        out["tx_full"], out["foreign"], out["rx_missed"], out["drops"]
    );
    s
}
