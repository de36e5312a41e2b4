//! Commands of DPDK's telemetry socket (`dpdk-telemetry.py -f PREFIX`).
//!
//! [`register`] adds a command such as `/tgw/workers`: a Rust closure that
//! gets the command's parameter (what follows the first comma) and answers
//! with a [`Value`], a small tree of dicts, arrays, numbers and strings.
//! DPDK calls one C trampoline for every command, on its telemetry thread;
//! the trampoline finds the closure in a process-wide registry (DPDK 22.11
//! cannot unregister a command, so closures live as long as the process),
//! runs it under `catch_unwind`, and converts its answer to DPDK's
//! `rte_tel_data`.
//!
//! DPDK 22.11 renders what it is given within fixed limits and drops what
//! does not fit without a word: a dict entry past 256, an array entry past
//! 512, a string past 127 bytes (8191 for an answer that is one string), a
//! dict inside an array, and any entry past its 16 KiB output buffer. An
//! answer that is silently cut is worse than none, so every answer is
//! checked against those limits first (what [`reply`] shows): one that
//! does not fit is replaced by `{"error": "..."}` saying why, and
//! commands that can grow (with tenants, workers) must take a parameter
//! that bounds them (a page, a name). Strings are cut to their limit and anything but
//! printable ASCII in them becomes `?` (DPDK 22.11 drops control
//! characters and mis-reads bytes above 0x7f).

use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use dpdk_sys as sys;

use crate::{Error, Result};

/// DPDK 22.11's limits (lib/telemetry: `MAX_CMD_LEN`, `MAX_OUTPUT_LEN`,
/// `RTE_TEL_MAX_*`), as the bytes a Rust string may have.
pub mod limits {
    /// A command name (`MAX_CMD_LEN` is 56 with the NUL).
    pub const COMMAND: usize = 55;
    /// A help text, a dict key, a string inside a dict or an array.
    pub const STRING: usize = dpdk_sys::RTE_TEL_MAX_STRING_LEN as usize - 1;
    /// An answer that is one string.
    pub const SINGLE_STRING: usize = dpdk_sys::RTE_TEL_MAX_SINGLE_STRING_LEN as usize - 1;
    pub const DICT_ENTRIES: usize = dpdk_sys::RTE_TEL_MAX_DICT_ENTRIES as usize;
    pub const ARRAY_ENTRIES: usize = dpdk_sys::RTE_TEL_MAX_ARRAY_ENTRIES as usize;
    /// The whole reply, `{"CMD":ANSWER}`, with its NUL.
    pub const OUTPUT: usize = 16 * 1024;
    /// Containers inside containers: the answer, a dict in it, and a dict
    /// or an array in that. DPDK renders deeper ones, but each level costs
    /// its telemetry thread another 16 KiB buffer.
    pub const DEPTH: usize = 3;
    /// Dicts and arrays below the answer. Each is an `rte_tel_data` that
    /// DPDK mallocs at about 66 KiB whatever it holds.
    pub const CONTAINERS: usize = 64;
}

/// What a command answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    /// A signed 32-bit number: DPDK 22.11 has no wider signed one.
    Int(i32),
    U64(u64),
    /// Entries all of one kind: strings, `Int`s, `U64`s, or (only as the
    /// whole answer) arrays of those. DPDK 22.11 has no array of dicts.
    Array(Vec<Value>),
    Dict(Dict),
}

/// Named entries, in order. Keys are `A-Z a-z 0-9 _ /`, at most
/// [`limits::STRING`] bytes: names, not data (a tenant's name goes in a
/// value).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dict(Vec<(String, Value)>);

impl Dict {
    pub fn new() -> Dict {
        Dict::default()
    }

    /// Adds `key`, for building in one expression.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Dict {
        self.insert(key, value);
        self
    }

    pub fn insert(&mut self, key: &str, value: impl Into<Value>) {
        self.0.push((key.to_owned(), value.into()));
    }

    pub fn entries(&self) -> &[(String, Value)] {
        &self.0
    }
}

impl Value {
    /// The answer of a command that could not answer: `{"error": why}`.
    pub fn error(why: impl fmt::Display) -> Value {
        Value::Dict(Dict::new().with("error", why.to_string()))
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::U64(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::U64(v.into())
    }
}

impl From<u16> for Value {
    fn from(v: u16) -> Value {
        Value::U64(v.into())
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(v.into())
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}

impl From<Dict> for Value {
    fn from(v: Dict) -> Value {
        Value::Dict(v)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::Array(v.into_iter().map(Into::into).collect())
    }
}

/// A command's handler: its parameter (`None` without a comma) to its
/// answer.
type Handler = dyn Fn(Option<&str>) -> Value + Send + Sync;

/// Every command registered here, by name: the trampoline's way back to
/// the closure.
static COMMANDS: Mutex<Vec<(String, Arc<Handler>)>> = Mutex::new(Vec::new());

/// Registers `cmd` (`/` then `A-Z a-z 0-9 _ /`, at most
/// [`limits::COMMAND`] bytes) with `help` (at most [`limits::STRING`]
/// bytes, shown by `/help,CMD`). `handler` runs on DPDK's telemetry thread
/// (one per client connection), never on an lcore; a panic in it answers
/// an error. Registering a name again replaces its handler. Works before
/// or after EAL init; the socket exists once EAL is up, unless EAL was
/// given `--no-telemetry`.
pub fn register<F>(cmd: &str, help: &str, handler: F) -> Result<()>
where
    F: Fn(Option<&str>) -> Value + Send + Sync + 'static,
{
    let invalid = Error {
        op: "rte_telemetry_register_cmd",
        errno: libc::EINVAL,
    };
    let name_ok = cmd.starts_with('/')
        && cmd.len() <= limits::COMMAND
        && cmd
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/');
    if !name_ok || help.len() > limits::STRING {
        return Err(invalid);
    }
    let (Ok(c_cmd), Ok(c_help)) = (CString::new(cmd), CString::new(help)) else {
        return Err(invalid);
    };
    let mut commands = COMMANDS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(entry) = commands.iter_mut().find(|(name, _)| name == cmd) {
        entry.1 = Arc::new(handler);
        return Ok(());
    }
    // SAFETY: both strings are NUL-terminated and checked against DPDK's
    // limits; DPDK copies them. The trampoline is a plain function that
    // lives as long as the process.
    let ret = unsafe {
        sys::rte_telemetry_register_cmd(c_cmd.as_ptr(), Some(trampoline), c_help.as_ptr())
    };
    Error::check("rte_telemetry_register_cmd", ret)?;
    commands.push((cmd.to_owned(), Arc::new(handler)));
    Ok(())
}

/// What DPDK sends for `value` as the answer of `cmd` (`{"CMD":...}`),
/// checked, cleaned and rendered as the trampoline does, without DPDK:
/// for tests of a command's answers, and to size them.
pub fn reply(cmd: &str, value: Value) -> String {
    let (value, _) = checked(cmd, value);
    let mut out = format!("{{\"{cmd}\":");
    let _ = render(&value, &mut out);
    out.push('}');
    out
}

/// The handler's answer, or an error if it panicked; `None` for a
/// command not registered here.
fn run(cmd: &str, param: Option<&str>) -> Option<Value> {
    let handler = {
        let commands = COMMANDS.lock().unwrap_or_else(|e| e.into_inner());
        let (_, h) = commands.iter().find(|(name, _)| name == cmd)?;
        Arc::clone(h)
    };
    Some(
        catch_unwind(AssertUnwindSafe(|| handler(param)))
            .unwrap_or_else(|_| Value::error("the command's handler panicked")),
    )
}

/// `value` made to fit (strings cut and cleaned) with the containers it
/// needs, or an error that says why it cannot.
fn checked(cmd: &str, value: Value) -> (Value, usize) {
    let value = clean(value, Place::Answer);
    match check(cmd, &value) {
        Ok(containers) => (value, containers),
        Err(why) => (
            // The reply is keyed by the command: the error says what to
            // do, within the 127 bytes of a string.
            clean(
                Value::error(format!("{why}; ask for less: /help,{cmd}")),
                Place::Answer,
            ),
            0,
        ),
    }
}

/// Called by DPDK's telemetry thread for every command registered here.
unsafe extern "C" fn trampoline(
    cmd: *const c_char,
    params: *const c_char,
    d: *mut sys::rte_tel_data,
) -> c_int {
    if cmd.is_null() || d.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: DPDK passes the command it matched (a NUL-terminated string
    // in its receive buffer) and the parameter after the comma or NULL,
    // both valid for this call.
    let (cmd, params) = unsafe {
        (
            CStr::from_ptr(cmd).to_string_lossy(),
            (!params.is_null()).then(|| CStr::from_ptr(params).to_string_lossy()),
        )
    };
    let filled = catch_unwind(AssertUnwindSafe(|| {
        let value = run(&cmd, params.as_deref())
            .unwrap_or_else(|| Value::error("no such command in this process"));
        let (value, containers) = checked(&cmd, value);
        // SAFETY: `d` is the rte_tel_data DPDK handed this callback, and
        // `value` passed `check`, which counted its containers.
        unsafe { fill_answer(d, &value, containers) }
    }));
    match filled {
        Ok(()) => 0,
        // DPDK answers `{"CMD":null}`.
        Err(_) => -libc::EFAULT,
    }
}

/// Where a value sits, which decides what DPDK 22.11 lets it be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The whole answer.
    Answer,
    /// An entry of a dict.
    InDict,
    /// An entry of an array.
    InArray,
}

/// Strings cut to their limit with anything but printable ASCII replaced;
/// a number as the whole answer becomes a string (22.11 has no such
/// answer).
fn clean(value: Value, place: Place) -> Value {
    match value {
        Value::Str(s) => {
            let max = if place == Place::Answer {
                limits::SINGLE_STRING
            } else {
                limits::STRING
            };
            Value::Str(
                s.chars()
                    .map(|c| {
                        if c == ' ' || c.is_ascii_graphic() {
                            c
                        } else {
                            '?'
                        }
                    })
                    .take(max)
                    .collect(),
            )
        }
        Value::Int(n) if place == Place::Answer => Value::Str(n.to_string()),
        Value::U64(n) if place == Place::Answer => Value::Str(n.to_string()),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| clean(v, Place::InArray))
                .collect(),
        ),
        Value::Dict(Dict(entries)) => Value::Dict(Dict(
            entries
                .into_iter()
                .map(|(k, v)| (k, clean(v, Place::InDict)))
                .collect(),
        )),
        other => other,
    }
}

/// Whether DPDK 22.11 renders `value`, as the answer of `cmd`, whole:
/// the containers below the answer (each one `rte_tel_data` to allocate),
/// or why not. Strings must have been [`clean`]ed.
fn check(cmd: &str, value: &Value) -> std::result::Result<usize, String> {
    let mut containers = 0;
    shape(value, Place::Answer, 1, &mut containers)?;
    if containers > limits::CONTAINERS {
        return Err(format!(
            "{containers} nested dicts and arrays; at most {} are sent",
            limits::CONTAINERS
        ));
    }
    // `{"CMD":` + answer + `}` and the NUL, with every append strictly
    // inside the buffer (telemetry_json.h); a little margin besides.
    let mut len = Length(0);
    render(value, &mut len).map_err(|_| "cannot render".to_owned())?;
    let total = cmd.len() + 4 + len.0 + 2;
    if total + 16 > limits::OUTPUT {
        return Err(format!(
            "the answer is {total} bytes, DPDK sends at most {}",
            limits::OUTPUT - 16
        ));
    }
    Ok(containers)
}

fn shape(
    value: &Value,
    place: Place,
    depth: usize,
    containers: &mut usize,
) -> std::result::Result<(), String> {
    let nested = |containers: &mut usize| {
        if place != Place::Answer {
            *containers += 1;
        }
        if depth > limits::DEPTH {
            Err(format!(
                "containers nested {depth} deep; at most {} are sent",
                limits::DEPTH
            ))
        } else {
            Ok(())
        }
    };
    match value {
        Value::Str(_) | Value::Int(_) | Value::U64(_) => Ok(()),
        Value::Dict(Dict(entries)) => {
            if place == Place::InArray {
                return Err("a dict inside an array is not sent by DPDK 22.11".into());
            }
            nested(containers)?;
            if entries.len() > limits::DICT_ENTRIES {
                return Err(format!(
                    "a dict of {} entries; at most {} are sent",
                    entries.len(),
                    limits::DICT_ENTRIES
                ));
            }
            for (key, v) in entries {
                let key_ok = !key.is_empty()
                    && key.len() <= limits::STRING
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/');
                if !key_ok {
                    return Err(format!(
                        "dict key {key:?}: DPDK takes 1 to {} of A-Z a-z 0-9 _ /",
                        limits::STRING
                    ));
                }
                shape(v, Place::InDict, depth + 1, containers)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            nested(containers)?;
            if items.len() > limits::ARRAY_ENTRIES {
                return Err(format!(
                    "an array of {} entries; at most {} are sent",
                    items.len(),
                    limits::ARRAY_ENTRIES
                ));
            }
            let kind = |v: &Value| std::mem::discriminant(v);
            if let Some(first) = items.first() {
                if items.iter().any(|v| kind(v) != kind(first)) {
                    return Err("an array of mixed kinds; DPDK arrays hold one".into());
                }
                if matches!(first, Value::Array(_)) && place != Place::Answer {
                    return Err(
                        "arrays of arrays are sent only as the whole answer in DPDK 22.11".into(),
                    );
                }
            }
            for v in items {
                shape(v, Place::InArray, depth + 1, containers)?;
            }
            Ok(())
        }
    }
}

/// Counts what is written to it.
struct Length(usize);

impl fmt::Write for Length {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// `value` as DPDK 22.11's telemetry_json.h writes it (no spaces; `"` and
/// `\` escaped; cleaned strings hold nothing else that needs it).
fn render(value: &Value, out: &mut impl fmt::Write) -> fmt::Result {
    match value {
        Value::Str(s) => {
            out.write_char('"')?;
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.write_char('\\')?;
                }
                out.write_char(c)?;
            }
            out.write_char('"')
        }
        Value::Int(n) => write!(out, "{n}"),
        Value::U64(n) => write!(out, "{n}"),
        Value::Array(items) => {
            out.write_char('[')?;
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.write_char(',')?;
                }
                render(v, out)?;
            }
            out.write_char(']')
        }
        Value::Dict(Dict(entries)) => {
            out.write_char('{')?;
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.write_char(',')?;
                }
                write!(out, "\"{k}\":")?;
                render(v, out)?;
            }
            out.write_char('}')
        }
    }
}

/// The `rte_tel_data` of every nested container, allocated before any is
/// filled, so that running out of memory is found before DPDK owns some
/// of them; those not handed to DPDK are freed on drop.
struct Containers(Vec<*mut sys::rte_tel_data>);

impl Containers {
    fn alloc(n: usize) -> Option<Containers> {
        let mut all = Containers(Vec::with_capacity(n));
        for _ in 0..n {
            // SAFETY: a plain malloc of an rte_tel_data; NULL when out of
            // memory.
            let d = unsafe { sys::rte_tel_data_alloc() };
            if d.is_null() {
                return None;
            }
            all.0.push(d);
        }
        Some(all)
    }

    fn take(&mut self) -> Option<*mut sys::rte_tel_data> {
        self.0.pop()
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for d in self.0.drain(..) {
            // SAFETY: allocated by rte_tel_data_alloc and never handed to
            // DPDK (those were taken out).
            unsafe { sys::rte_tel_data_free(d) };
        }
    }
}

/// Fills DPDK's `d` with a value that passed [`check`], which found it
/// has `containers` nested dicts and arrays.
///
/// # Safety
/// `d` is the `rte_tel_data` of a telemetry callback.
unsafe fn fill_answer(d: *mut sys::rte_tel_data, value: &Value, containers: usize) {
    let Some(mut pool) = Containers::alloc(containers) else {
        let why = cstring("out of memory for the answer");
        // SAFETY: `d` is DPDK's; the string is NUL-terminated.
        unsafe { sys::rte_tel_data_string(d, why.as_ptr()) };
        return;
    };
    match value {
        Value::Str(s) => {
            let s = cstring(s);
            // SAFETY: `d` is DPDK's; the string is NUL-terminated and
            // within RTE_TEL_MAX_SINGLE_STRING_LEN.
            unsafe { sys::rte_tel_data_string(d, s.as_ptr()) };
        }
        // SAFETY: as for this function; containers come from `pool`.
        _ => unsafe { fill(d, value, &mut pool) },
    }
}

/// Fills `d` with a dict or an array, allocating nested containers from
/// `pool`; DPDK frees those it was given when it has sent the answer
/// (`keep` = 0).
///
/// # Safety
/// `d` is a valid `rte_tel_data` (DPDK's, or one from `pool`).
unsafe fn fill(d: *mut sys::rte_tel_data, value: &Value, pool: &mut Containers) {
    match value {
        Value::Dict(Dict(entries)) => {
            // SAFETY: `d` is valid (this function's contract).
            unsafe { sys::rte_tel_data_start_dict(d) };
            for (key, v) in entries {
                let key = cstring(key);
                let k = key.as_ptr();
                match v {
                    Value::Str(s) => {
                        let s = cstring(s);
                        // SAFETY: `d` is a dict; `k` and `s` are
                        // NUL-terminated and within DPDK's limits (checked).
                        unsafe { sys::rte_tel_data_add_dict_string(d, k, s.as_ptr()) };
                    }
                    // SAFETY: `d` is a dict; `k` is NUL-terminated and a
                    // valid name (checked).
                    Value::Int(n) => unsafe {
                        sys::rte_tel_data_add_dict_int(d, k, *n);
                    },
                    // SAFETY: as for an Int.
                    Value::U64(n) => unsafe {
                        sys::rte_tel_data_add_dict_u64(d, k, *n);
                    },
                    Value::Dict(_) | Value::Array(_) => {
                        let Some(child) = pool.take() else { continue };
                        // SAFETY: `child` is a fresh rte_tel_data; once
                        // added with keep = 0 DPDK owns and frees it, and
                        // one it refused is freed here.
                        unsafe {
                            fill(child, v, pool);
                            if sys::rte_tel_data_add_dict_container(d, k, child, 0) != 0 {
                                sys::rte_tel_data_free(child);
                            }
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            let kind = match items.first() {
                Some(Value::Str(_)) | None => sys::RTE_TEL_STRING_VAL,
                Some(Value::Int(_)) => sys::RTE_TEL_INT_VAL,
                Some(Value::U64(_)) => sys::RTE_TEL_U64_VAL,
                Some(_) => sys::RTE_TEL_CONTAINER,
            };
            // SAFETY: `d` is valid (this function's contract).
            unsafe { sys::rte_tel_data_start_array(d, kind) };
            for v in items {
                match v {
                    Value::Str(s) => {
                        let s = cstring(s);
                        // SAFETY: `d` is an array of strings (every entry
                        // is of the first's kind: checked); `s` is
                        // NUL-terminated and within DPDK's limits.
                        unsafe { sys::rte_tel_data_add_array_string(d, s.as_ptr()) };
                    }
                    // SAFETY: `d` is an array of ints (checked).
                    Value::Int(n) => unsafe {
                        sys::rte_tel_data_add_array_int(d, *n);
                    },
                    // SAFETY: `d` is an array of u64s (checked).
                    Value::U64(n) => unsafe {
                        sys::rte_tel_data_add_array_u64(d, *n);
                    },
                    Value::Array(_) => {
                        let Some(child) = pool.take() else { continue };
                        // SAFETY: as for a dict's container above.
                        unsafe {
                            fill(child, v, pool);
                            if sys::rte_tel_data_add_array_container(d, child, 0) != 0 {
                                sys::rte_tel_data_free(child);
                            }
                        }
                    }
                    // `check` refuses dicts in arrays.
                    Value::Dict(_) => {}
                }
            }
        }
        Value::Str(_) | Value::Int(_) | Value::U64(_) => {}
    }
}

/// A cleaned string as C's: it holds no NUL (cleaning made it ASCII
/// without controls).
fn cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(v: Value) -> std::result::Result<usize, String> {
        check("/t", &clean(v, Place::Answer))
    }

    #[test]
    fn renders_as_dpdk_writes_json() {
        let v = Value::Dict(
            Dict::new()
                .with("a", 1u64)
                .with("b", -2)
                .with("s", "x\"y\\z")
                .with("l", vec![1u64, 2])
                .with("d", Dict::new().with("e", "f")),
        );
        let mut out = String::new();
        render(&v, &mut out).unwrap();
        assert_eq!(
            out,
            r#"{"a":1,"b":-2,"s":"x\"y\\z","l":[1,2],"d":{"e":"f"}}"#
        );
    }

    #[test]
    fn strings_are_cleaned_and_cut() {
        let v = clean(
            Value::Dict(Dict::new().with("s", format!("é\n{}", "a".repeat(300)))),
            Place::Answer,
        );
        let Value::Dict(d) = v else { panic!() };
        let Value::Str(s) = &d.entries()[0].1 else {
            panic!()
        };
        assert_eq!(s.len(), limits::STRING);
        assert!(s.starts_with("??a"));
        assert_eq!(clean(Value::U64(7), Place::Answer), Value::Str("7".into()));
    }

    #[test]
    fn shapes_dpdk_cannot_send_are_refused() {
        let dict_in_array = Value::Array(vec![Value::Dict(Dict::new())]);
        assert!(fits(dict_in_array).is_err());
        let mixed = Value::Array(vec![Value::U64(1), Value::Int(1)]);
        assert!(fits(mixed).is_err());
        let bad_key = Value::Dict(Dict::new().with("t-1", 1u64));
        assert!(fits(bad_key).is_err());
        let deep = Value::Dict(Dict::new().with(
            "a",
            Dict::new().with("b", Dict::new().with("c", Dict::new())),
        ));
        assert!(fits(deep).is_err());
        let nested_arrays = Value::Dict(Dict::new().with("a", vec![Value::Array(vec![])]));
        assert!(fits(nested_arrays).is_err());
        let arrays = Value::Array(vec![Value::from(vec![1u64]), Value::from(vec![2u64])]);
        assert_eq!(fits(arrays), Ok(2));
    }

    #[test]
    fn counts_and_sizes_are_bounded() {
        let wide =
            (0..=limits::DICT_ENTRIES).fold(Dict::new(), |d, i| d.with(&format!("k{i}"), 1u64));
        assert!(fits(Value::Dict(wide)).is_err());
        let long = Value::from(vec![0u64; limits::ARRAY_ENTRIES + 1]);
        assert!(fits(long).is_err());
        let many = (0..=limits::CONTAINERS)
            .fold(Dict::new(), |d, i| d.with(&format!("k{i}"), Dict::new()));
        assert!(fits(Value::Dict(many)).is_err());
        // 200 entries of 100 bytes: past 16 KiB.
        let big = (0..200).fold(Dict::new(), |d, i| d.with(&format!("k{i}"), "x".repeat(90)));
        let why = fits(Value::Dict(big)).unwrap_err();
        assert!(why.contains("16368"), "{why}");
        let small = (0..100).fold(Dict::new(), |d, i| d.with(&format!("k{i}"), "x".repeat(90)));
        assert_eq!(fits(Value::Dict(small)), Ok(0));
    }
}
