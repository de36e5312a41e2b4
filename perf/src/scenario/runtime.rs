//! The runtime steps (issue 11): tgw changed while it runs, with the real
//! hosts on both sides, through `tgwctl` on its control socket and
//! `SIGHUP`, before the checks of issue 5 (which then show that nothing
//! else moved).
//!
//! 1. tgw starts without tenant 2's elastic IP: host 2 cannot be reached
//!    through 2.2.2.12 until `tgwctl eip add` binds it.
//! 2. `tgwctl rule del` takes tenant 1's `in allow tcp dport 22` away: a
//!    new connection to 2.2.2.11:22 is refused (it times out: tgw drops
//!    silently); `tgwctl rule add` puts it back first in line.
//! 3. 2.2.2.12 is unbound while a TCP connection streams through it: the
//!    flow ends at its next segment, dropped as `revoked`
//!    (docs/decisions.md, "Runtime changes"), and the client stalls; bound
//!    again, a new connection works.
//! 4. `SIGHUP` with a broken config file: tgw refuses it with its
//!    FILE:LINE, the running state stays exactly as it was, and traffic
//!    flows.
//!
//! What the steps make tgw drop and decide on purpose (the SYNs they have
//! refused, the revoked flow's segments) is judged by each step and
//! handed to the checks at exit as [`Effects`], which allow exactly that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::after::decisions;
use super::checks::Checks;
use super::live::fields;
use super::world::{py, World};
use super::{check_interrupt, u, workers_total, Host, CLIENT, HOSTS, PRIVATE};
use crate::netns::ProcId;

/// How long a connection that must fail may try: a SYN gets its answer in
/// milliseconds here, and Linux retransmits only after 1 s, so this sends
/// one SYN.
const REFUSED_TIMEOUT_S: &str = "0.5";
/// The bytes echoed by a connection that must work.
const REACH_BYTES: usize = 4 << 10;
/// How long the streaming client waits for a chunk to go before it calls
/// the connection stalled: far beyond a pause of a healthy connection
/// here (the bulk check sees none).
const STALL_S: f64 = 1.0;
/// How long it may stream at most.
const STREAM_LIMIT_S: f64 = 10.0;
/// How long tgw's counters may take to show what was sent: a worker off
/// its CPU (two vCPUs, shared) counts late.
const SETTLE: Duration = Duration::from_secs(5);
/// How long tgw may take to say what it made of a SIGHUP.
const SIGHUP_LIMIT: Duration = Duration::from_secs(10);

/// The check names (tests/scenario.rs asserts each by its start).
pub const BIND: &str =
    "tenant 2's elastic IP bound at runtime: 2.2.2.12 unreachable, then tgwctl eip add and host2 answers";
pub const RULE: &str =
    "tenant 1's in allow tcp dport 22 removed at runtime: a new connection to 2.2.2.11:22 refused, then put back";
pub const UNBIND: &str =
    "2.2.2.12 unbound under an open TCP connection: its next segment revoked, the client stalls; bound again, a new connection works";
pub const SIGHUP: &str =
    "SIGHUP with a broken config file: refused with FILE:LINE, the running state unchanged, traffic flows";

/// `tgwctl` on the scenario's tgw.
pub struct Ctl {
    pub bin: PathBuf,
    pub socket: PathBuf,
}

impl Ctl {
    /// `tgwctl --socket SOCKET ARGS` in tgw's namespace: its stdout if it
    /// exits 0, else what it said and its exit status.
    fn run(&self, w: &World, args: &[&str]) -> Result<String, String> {
        let (bin, socket) = (
            self.bin.to_str().ok_or("tgwctl path")?,
            self.socket.to_str().ok_or("socket path")?,
        );
        let mut argv = vec![bin, "--socket", socket];
        argv.extend_from_slice(args);
        let out = w
            .net
            .try_run(&w.gw, &argv, Duration::from_secs(30))
            .map_err(|e| format!("tgwctl {}: {e}", args.join(" ")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "tgwctl {}: {} ({})",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            ))
        }
    }

    /// [`Ctl::run`] with `--json`, parsed.
    pub(super) fn json(&self, w: &World, args: &[&str]) -> Result<Value, String> {
        let mut argv = vec!["--json"];
        argv.extend_from_slice(args);
        let out = self.run(w, &argv)?;
        serde_json::from_str(&out).map_err(|e| format!("tgwctl {}: {e}: {out:?}", args.join(" ")))
    }

    /// The counters once tgw has counted what a step sent: read until
    /// `done` holds of them and two reads 100 ms apart agree, or
    /// [`SETTLE`] has passed (the step then judges what they say).
    fn settled(&self, w: &World, done: impl Fn(&Counts) -> bool) -> Result<Counts, String> {
        let deadline = Instant::now() + SETTLE;
        let mut last = self.counts(w)?;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.counts(w)?;
            if (done(&now) && now == last) || Instant::now() >= deadline {
                return Ok(now);
            }
            last = now;
        }
    }

    /// The counters the steps judge, as `tgwctl stats` shows them now.
    fn counts(&self, w: &World) -> Result<Counts, String> {
        let stats = self.json(w, &["stats"])?;
        let total = workers_total(&stats);
        let drops = total["drops"]
            .as_object()
            .ok_or("tgwctl stats: no drops")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
            .collect();
        let default_in = HOSTS.map(|h| decisions(&stats, h.tenant, "default in").unwrap_or(0));
        let expired = HOSTS.map(|h| u(&total["tenants"][h.tenant], "flows_expired"));
        Ok(Counts {
            drops,
            default_in,
            expired,
        })
    }
}

/// Counters read with `tgwctl stats`, summed over the workers.
#[derive(PartialEq)]
struct Counts {
    drops: BTreeMap<String, u64>,
    /// Each tenant's `default in` decisions.
    default_in: [u64; 2],
    /// Each tenant's flows ended.
    expired: [u64; 2],
}

impl Counts {
    /// The drop reasons that rose since `before`, by how much.
    fn rose(&self, before: &Counts) -> BTreeMap<String, u64> {
        self.drops
            .iter()
            .filter_map(|(k, &n)| {
                let was = before.drops.get(k).copied().unwrap_or(0);
                (n > was).then(|| (k.clone(), n - was))
            })
            .collect()
    }
}

/// What the steps made tgw count on purpose, each judged by its step: the
/// checks on tgw's counters at exit expect it on top of what the issue-5
/// checks cause.
#[derive(Default)]
pub struct Effects {
    drops: BTreeMap<String, u64>,
    /// Each tenant's `default in` decisions: SYNs refused once their rule
    /// was gone.
    pub default_in: [u64; 2],
    /// TCP connections the steps opened to each tenant's open port: flows
    /// created and decided by its `in allow tcp dport`.
    pub opened_in: [u64; 2],
}

impl std::fmt::Display for Effects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let drops: Vec<String> = self.drops.iter().map(|(k, n)| format!("{k} {n}")).collect();
        f.write_str(&drops.join(", "))
    }
}

impl Effects {
    /// Drops of `reason` the steps caused.
    pub fn drops(&self, reason: &str) -> u64 {
        self.drops.get(reason).copied().unwrap_or(0)
    }

    /// Takes the drops that rose during a step, if they are all of the
    /// reasons `expected`; `not_local` (a Linux stack's stray frame) may
    /// rise any time and is left to the check at exit, which counts it on
    /// the captures.
    fn take(&mut self, rose: &BTreeMap<String, u64>, expected: &[&str]) -> Result<(), String> {
        let other: Vec<String> = rose
            .iter()
            .filter(|(k, _)| !expected.contains(&k.as_str()) && k.as_str() != "not_local")
            .map(|(k, n)| format!("{k} +{n}"))
            .collect();
        for (k, n) in rose {
            if expected.contains(&k.as_str()) {
                *self.drops.entry(k.clone()).or_default() += n;
            }
        }
        if other.is_empty() {
            Ok(())
        } else {
            Err(format!("tgw also dropped {}", other.join(", ")))
        }
    }
}

/// What the steps need of the running scenario.
pub struct Runtime<'a> {
    pub ctl: Ctl,
    pub tgw: ProcId,
    /// The file tgw was started with (`--config`), which SIGHUP reads.
    pub config_path: &'a Path,
    pub workers: usize,
}

/// The four steps, in order, each a check; what they caused on purpose.
pub fn steps(
    w: &mut World,
    rt: &Runtime,
    checks: &mut Checks,
    interrupted: &AtomicBool,
) -> Result<Effects, String> {
    let mut effects = Effects::default();
    checks.record(BIND, bind(w, rt, &mut effects));
    check_interrupt(interrupted)?;
    checks.record(RULE, remove_rule(w, rt, &mut effects));
    check_interrupt(interrupted)?;
    checks.record(UNBIND, unbind_open(w, rt, &mut effects));
    check_interrupt(interrupted)?;
    checks.record(SIGHUP, broken_sighup(w, rt, &mut effects));
    check_interrupt(interrupted)?;
    Ok(effects)
}

/// Step 1: 2.2.2.12, left out of the file, is unreachable until tgwctl
/// binds it; then host 2 answers through it.
fn bind(w: &World, rt: &Runtime, effects: &mut Effects) -> Result<String, String> {
    let h = &HOSTS[1];
    let unbound = unreachable(w, rt, h, effects);
    // Bound whatever the step found, so that the checks after it reach
    // host 2.
    let (public, private) = (h.public.to_string(), PRIVATE.to_string());
    let added = rt.ctl.run(
        w,
        &[
            "eip", "add", &public, "tenant", h.tenant, "private", &private,
        ],
    );
    let unbound = unbound?;
    added?;
    if !bound(w, rt, h)? {
        return Err(format!(
            "tgwctl eip show does not list {public} after eip add"
        ));
    }
    effects.opened_in[1] += 1;
    let reached = reach(w, h)?;
    Ok(format!(
        "before: {unbound}; `tgwctl eip add {public} tenant {} private {private}`; after: {reached}",
        h.tenant
    ))
}

/// `h`'s elastic IP not bound: not listed, and a connection to it fails,
/// its SYN dropped as `no_route` (an address tgw has nothing for).
fn unreachable(w: &World, rt: &Runtime, h: &Host, effects: &mut Effects) -> Result<String, String> {
    if bound(w, rt, h)? {
        return Err(format!("{} is bound before tgwctl binds it", h.public));
    }
    let before = rt.ctl.counts(w)?;
    let target = format!("{}:{}", h.public, h.port);
    let refused = refused(w, &target)?;
    let rose = rt
        .ctl
        .settled(w, |c| risen(&c.rose(&before), "no_route") > 0)?
        .rose(&before);
    let dropped = risen(&rose, "no_route");
    if dropped == 0 {
        return Err(format!(
            "{target} {refused}, but tgw counted no no_route drop: {rose:?}"
        ));
    }
    effects.take(&rose, &["no_route"])?;
    Ok(format!(
        "{target} {refused}, {dropped} SYN dropped as no_route"
    ))
}

/// Step 2: without tenant 1's `in allow tcp dport 22`, a new connection
/// to 2.2.2.11:22 is refused by its `default in`; put back first in line,
/// host 1 answers again.
fn remove_rule(w: &World, rt: &Runtime, effects: &mut Effects) -> Result<String, String> {
    let h = &HOSTS[0];
    let (handle, at) = rule_handle(w, rt, h)?
        .ok_or_else(|| format!("{} has no in allow tcp dport {}", h.tenant, h.port))?;
    let before = rt.ctl.counts(w)?;
    let handle = handle.to_string();
    rt.ctl
        .run(w, &["rule", "del", "tenant", h.tenant, "handle", &handle])?;
    let refused = without_rule(w, rt, h, &before, effects);
    // Back whatever the step found, so that the checks after it meet the
    // firewall as configured.
    let port = h.port.to_string();
    let put_back = rt.ctl.run(
        w,
        &[
            "rule", "add", "tenant", h.tenant, "position", "0", "in", "allow", "tcp", "dport",
            &port,
        ],
    );
    let refused = refused?;
    put_back?;
    let Some((new, 0)) = rule_handle(w, rt, h)? else {
        return Err("the rule is not first after rule add position 0".to_owned());
    };
    effects.opened_in[0] += 1;
    let reached = reach(w, h)?;
    Ok(format!(
        "`tgwctl rule del tenant {} handle {handle}` (position {at}): {refused}; \
         put back first (handle {new}): {reached}",
        h.tenant
    ))
}

/// With `h`'s rule gone: gone from rule show, and a new connection to its
/// port refused by the tenant's `default in`, one SYN each.
fn without_rule(
    w: &World,
    rt: &Runtime,
    h: &Host,
    before: &Counts,
    effects: &mut Effects,
) -> Result<String, String> {
    if rule_handle(w, rt, h)?.is_some() {
        return Err("still listed after rule del".to_owned());
    }
    let target = format!("{}:{}", h.public, h.port);
    let refused = refused(w, &target)?;
    let after = rt.ctl.settled(w, |c| {
        let syns = risen(&c.rose(before), "firewall");
        syns > 0 && c.default_in[0].saturating_sub(before.default_in[0]) == syns
    })?;
    let rose = after.rose(before);
    let syns = risen(&rose, "firewall");
    let decided = after.default_in[0].saturating_sub(before.default_in[0]);
    if syns == 0 || decided != syns {
        return Err(format!(
            "{target} {refused}; tgw dropped {syns} as firewall, {} default in decided {decided}",
            h.tenant
        ));
    }
    effects.take(&rose, &["firewall"])?;
    effects.default_in[0] += decided;
    Ok(format!(
        "{target} {refused}, {syns} SYN refused by {}'s default in",
        h.tenant
    ))
}

/// Step 3: a connection streams through 2.2.2.12; unbinding the address
/// ends its flow at the next segment (`revoked`) and the client stalls;
/// bound again, a new connection works.
fn unbind_open(w: &mut World, rt: &Runtime, effects: &mut Effects) -> Result<String, String> {
    let h = &HOSTS[1];
    let (public, port) = (h.public.to_string(), h.port.to_string());
    let script = w.net.path("stream.py");
    let (stall, limit) = (STALL_S.to_string(), STREAM_LIMIT_S.to_string());
    let client = w.client.clone();
    effects.opened_in[1] += 1;
    let stream = w.net.spawn(
        &client,
        "stream",
        &[
            "python3",
            script.to_str().ok_or("script path")?,
            &public,
            &port,
            &stall,
            &limit,
        ],
    );
    let sport = streaming(w, stream)?;
    let remote = format!("{CLIENT}:{sport}");
    let stalled = stalls(w, rt, stream, &remote, effects);
    // Bound again whatever the step found (adding it again is no error),
    // so that the checks after it reach host 2.
    let private = PRIVATE.to_string();
    let bound = rt.ctl.run(
        w,
        &[
            "eip", "add", &public, "tenant", h.tenant, "private", &private,
        ],
    );
    let stalled = stalled?;
    bound?;
    effects.opened_in[1] += 1;
    let reached = reach(w, h)?;
    Ok(format!("{stalled}; bound again: {reached}"))
}

/// With stream.py streaming from `remote` through tenant 2's elastic IP:
/// the flow is listed; `tgwctl eip del` ends it at its next segment
/// (`revoked`) and the client stalls.
fn stalls(
    w: &mut World,
    rt: &Runtime,
    stream: ProcId,
    remote: &str,
    effects: &mut Effects,
) -> Result<String, String> {
    let h = &HOSTS[1];
    let (public, port) = (h.public.to_string(), h.port.to_string());
    let wait = Duration::from_secs_f64(STREAM_LIMIT_S + 5.0);
    let flow =
        |w: &World| -> Result<bool, String> {
            let shown = rt
                .ctl
                .json(w, &["flow", "show", "--tenant", h.tenant, "--port", &port])?;
            Ok(shown["flows"].as_array().into_iter().flatten().any(|f| {
                f["remote"] == remote && f["public"] == format!("{public}:{port}").as_str()
            }))
        };
    if !flow(w)? {
        w.net.wait(stream, wait);
        return Err(format!(
            "no flow of {remote} to {public}:{port} in tgwctl flow show"
        ));
    }
    let before = rt.ctl.counts(w)?;
    // Still streaming: a stall from now on is the unbind's.
    if w.net.stdout(stream).contains('{') {
        let done = w.net.wait(stream, wait);
        return Err(format!(
            "the stream ended before the unbind: {}",
            done.stdout.trim()
        ));
    }
    let unbound = rt.ctl.run(w, &["eip", "del", &public]);
    let done = w.net.wait(stream, wait);
    unbound?;
    let v: Value = serde_json::from_str(done.stdout.lines().last().unwrap_or_default())
        .map_err(|_| format!("stream.py said {:?} {:?}", done.stdout, done.stderr))?;
    let outcome = v["outcome"].as_str().unwrap_or("no answer");
    if outcome != "stalled" {
        return Err(format!(
            "the client's connection went on after the unbind: {outcome} ({v})"
        ));
    }
    // Host 2's end would wait for more data, then close, and its FIN
    // would meet the address bound again as a packet of no flow
    // (`invalid_state`) during the checks after this one: end it now,
    // while its RST is one of this step's drops.
    let sport = remote.rsplit(':').next().unwrap_or_default();
    let killed = w.net.run(
        &w.hosts[1],
        &[
            "ss",
            "-K",
            "-tn",
            "dst",
            &CLIENT.to_string(),
            "dport",
            "=",
            &format!(":{sport}"),
        ],
    );
    let killed = String::from_utf8_lossy(&killed.stdout);
    if !killed.contains(&format!("{PRIVATE}:{port}")) {
        return Err(format!(
            "host2's end of {remote} not found to close: {killed:?}"
        ));
    }
    let after = rt.ctl.settled(w, |c| {
        c.expired[1] > before.expired[1]
            && (rt.workers > 1 || risen(&c.rose(&before), "revoked") > 0)
    })?;
    let rose = after.rose(&before);
    let ended = after.expired[1].saturating_sub(before.expired[1]);
    let revoked = risen(&rose, "revoked");
    // The segment ends the flow where the flow lives; with two workers the
    // segments may all arrive at the other one (steering followed the
    // address, which is gone), and then the owner's sweep ends it
    // (decisions.md, "Runtime changes").
    let swept = rt.workers > 1 && revoked == 0;
    let listed = flow(w)?;
    if ended == 0 || (revoked == 0 && !swept) || listed {
        return Err(format!(
            "after the unbind: {ended} flows of {} ended, drops {rose:?}, the flow still listed: {listed}",
            h.tenant
        ));
    }
    // The client's segments after the flow ended find no address
    // (no_route); the host's acknowledgements and its RST no public
    // address to leave from (no_nat).
    effects.take(&rose, &["revoked", "no_route", "no_nat"])?;
    let drops: Vec<String> = rose.iter().map(|(k, n)| format!("{k} {n}")).collect();
    Ok(format!(
        "{} KiB streamed from {remote} to {public}:{port}; `tgwctl eip del {public}`: the client \
         stalled (nothing acknowledged for {STALL_S} s), the flow ended{} and left flow show; \
         host2's end closed (ss -K); drops {}",
        u(&v, "sent") >> 10,
        if swept {
            " by its owner's sweep (its segments reached the other worker)"
        } else {
            " at its next segment (revoked)"
        },
        drops.join(", ")
    ))
}

/// Step 4: a broken file in place of tgw's, SIGHUP: tgw logs the file's
/// line at fault and keeps its running state; traffic flows.
fn broken_sighup(w: &mut World, rt: &Runtime, effects: &mut Effects) -> Result<String, String> {
    let path = rt.config_path;
    let good = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Tenant 2's key as a string: what a hand edit gets wrong.
    let key = format!("key = {}", HOSTS[1].key);
    let line = good
        .lines()
        .position(|l| l.trim() == key)
        .ok_or_else(|| format!("no {key:?} in {}", path.display()))?;
    let broken: String = good
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == line {
                format!("key = \"{}\"\n", HOSTS[1].key)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let at = format!("{}:{}:", path.display(), line + 1);
    let state = rt.ctl.run(w, &["config", "show"])?;
    let logged = w.net.stderr(rt.tgw).len();
    std::fs::write(path, &broken).map_err(|e| format!("{}: {e}", path.display()))?;
    let said = if w.net.signal(rt.tgw, "HUP") {
        sighup_answer(w, rt.tgw, logged)
    } else {
        Err("tgw is not running to take SIGHUP".to_owned())
    };
    std::fs::write(path, &good).map_err(|e| format!("{}: {e}", path.display()))?;
    let said = said?;
    if !said.contains("refused") || !said.contains(&at) {
        return Err(format!(
            "tgw said, after SIGHUP: {said:?}; expected a refusal at {at}"
        ));
    }
    if rt.ctl.run(w, &["config", "show"])? != state {
        return Err("the running state changed (tgwctl config show differs)".to_owned());
    }
    effects.opened_in[0] += 1;
    let reached = reach(w, &HOSTS[0])?;
    let error = said
        .lines()
        .find(|l| l.contains(&at))
        .unwrap_or_default()
        .trim();
    Ok(format!(
        "tgw logged {error:?}; tgwctl config show the same before and after; {reached}"
    ))
}

/// What tgw logged about the SIGHUP past byte `from` of its stderr.
fn sighup_answer(w: &World, tgw: ProcId, from: usize) -> Result<String, String> {
    let deadline = Instant::now() + SIGHUP_LIMIT;
    loop {
        let log = w.net.stderr(tgw);
        let new = log.get(from..).unwrap_or_default();
        if let Some(at) = new.find("SIGHUP:") {
            // The message and the error lines that follow it.
            std::thread::sleep(Duration::from_millis(100));
            let log = w.net.stderr(tgw);
            return Ok(log.get(from + at..).unwrap_or_default().to_owned());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "tgw said nothing of the SIGHUP in {SIGHUP_LIMIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until stream.py streams; its source port.
fn streaming(w: &mut World, id: ProcId) -> Result<u16, String> {
    let deadline = Instant::now() + Duration::from_secs_f64(STREAM_LIMIT_S);
    loop {
        let out = w.net.stdout(id);
        if let Some(rest) = out.split("streaming from port ").nth(1) {
            return rest
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("stream.py said {out:?}"));
        }
        if out.contains('{') || Instant::now() >= deadline {
            let done = w
                .net
                .wait(id, Duration::from_secs_f64(STREAM_LIMIT_S + 5.0));
            return Err(format!(
                "the stream did not flow before the unbind: {} {}",
                done.stdout.trim(),
                done.stderr.trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether tgwctl lists `h`'s elastic IP, bound to its tenant's 10.0.0.7.
fn bound(w: &World, rt: &Runtime, h: &Host) -> Result<bool, String> {
    let shown = rt.ctl.json(w, &["eip", "show"])?;
    Ok(shown.as_array().into_iter().flatten().any(|e| {
        e["public"] == h.public.to_string().as_str()
            && e["tenant"] == h.tenant
            && e["private"] == PRIVATE.to_string().as_str()
    }))
}

/// The handle of `h`'s tenant's `in allow tcp dport PORT`, and its
/// position among the tenant's rules.
fn rule_handle(w: &World, rt: &Runtime, h: &Host) -> Result<Option<(u64, usize)>, String> {
    let shown = rt.ctl.json(w, &["rule", "show", "--tenant", h.tenant])?;
    let rules = shown.as_array().ok_or("tgwctl rule show: not a list")?;
    Ok(rules.iter().enumerate().find_map(|(i, r)| {
        let ours = r["direction"] == "in"
            && r["action"] == "allow"
            && r["proto"] == "tcp"
            && r["dport"] == h.port;
        ours.then(|| r["handle"].as_u64().map(|n| (n, i))).flatten()
    }))
}

/// A connection from the client to `target` that must not open: how it
/// ended (`timed out after N ms`), or why that is wrong.
fn refused(w: &World, target: &str) -> Result<String, String> {
    let v = py(w, &w.client, "connect.py", &[REFUSED_TIMEOUT_S, target])?;
    let outcome = v[target]["outcome"].as_str().unwrap_or("no answer");
    let ms = &v[target]["ms"];
    if outcome == "connected" {
        Err(format!("{target} connected after {ms} ms"))
    } else {
        Ok(format!("{outcome} after {ms} ms"))
    }
}

/// The client reaches `h` at its elastic IP: the host answers at
/// 10.0.0.7, sees the client, and echoes every byte.
fn reach(w: &World, h: &Host) -> Result<String, String> {
    let v = py(
        w,
        &w.client,
        "tcp.py",
        &[
            &h.public.to_string(),
            &h.port.to_string(),
            &REACH_BYTES.to_string(),
        ],
    )?;
    let id = v["identity"].as_str().unwrap_or_default();
    let f = fields(id);
    let (local, peer) = (
        f.get("local").copied().unwrap_or_default(),
        f.get("peer").copied().unwrap_or_default(),
    );
    if !id.starts_with(h.name) || local != PRIVATE.to_string() || peer != CLIENT.to_string() {
        return Err(format!("{}:{} answered {id:?}", h.public, h.port));
    }
    if v["intact"] != true || u(&v, "back") != REACH_BYTES as u64 {
        return Err(format!(
            "{} of {REACH_BYTES} bytes came back from {}",
            u(&v, "back"),
            h.name
        ));
    }
    Ok(format!(
        "{} answered at {PRIVATE}:{} and saw {CLIENT}, {} KiB echoed",
        h.name,
        h.port,
        REACH_BYTES >> 10
    ))
}

/// How much drops of `reason` rose.
fn risen(rose: &BTreeMap<String, u64>, reason: &str) -> u64 {
    rose.get(reason).copied().unwrap_or(0)
}
