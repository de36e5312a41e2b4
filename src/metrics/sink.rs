//! Where the families of a scrape go: [`Text`] writes the exposition
//! format straight into one buffer (what the endpoint serves), and
//! [`Families`] builds the `prometheus` crate's [`MetricFamily`]s (what
//! the crate's [`TextEncoder`](prometheus::TextEncoder) writes, and what
//! the tests hold `Text` to, byte for byte).
//!
//! Why two: at 10k tenants a scrape is some 230,000 samples. As
//! `MetricFamily`s that is a `Metric` and two `String`s per label per
//! sample, and the encoder formats each value into a fresh `String`:
//! about 140 ms a scrape here, three times the 50 ms. `Text`
//! writes the same bytes with no allocation per sample.

use std::fmt::Write as _;

use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};

/// A sample's value: a whole count (written exactly, as an integer) or a
/// real (seconds).
#[derive(Clone, Copy, Debug)]
pub enum Value {
    Count(u64),
    Real(f64),
}

/// Takes families one after another: a family, then its samples.
pub trait Sink {
    /// Starts a family; one with no sample is left out.
    fn family(&mut self, name: &'static str, help: &'static str, kind: MetricType);
    /// A sample of the family last started.
    fn sample(&mut self, labels: &[(&str, &str)], value: Value);

    fn count(&mut self, labels: &[(&str, &str)], value: u64) {
        self.sample(labels, Value::Count(value));
    }

    fn real(&mut self, labels: &[(&str, &str)], value: f64) {
        self.sample(labels, Value::Real(value));
    }

    /// A family of one sample without labels.
    fn single(&mut self, name: &'static str, help: &'static str, kind: MetricType, value: Value) {
        self.family(name, help, kind);
        self.sample(&[], value);
    }
}

/// The text exposition format (version 0.0.4), as the crate's
/// `TextEncoder` writes it.
pub struct Text {
    out: String,
    name: &'static str,
    /// The family's `# HELP` and `# TYPE`, written with its first sample.
    header: Option<(&'static str, MetricType)>,
}

impl Text {
    /// A writer whose buffer starts with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> Text {
        Text {
            out: String::with_capacity(bytes),
            name: "",
            header: None,
        }
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

impl Sink for Text {
    fn family(&mut self, name: &'static str, help: &'static str, kind: MetricType) {
        self.name = name;
        self.header = Some((help, kind));
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: Value) {
        let out = &mut self.out;
        if let Some((help, kind)) = self.header.take() {
            out.push_str("# HELP ");
            out.push_str(self.name);
            out.push(' ');
            escape(out, help, false);
            out.push_str("\n# TYPE ");
            out.push_str(self.name);
            out.push(' ');
            out.push_str(type_name(kind));
            out.push('\n');
        }
        out.push_str(self.name);
        let mut separator = '{';
        for &(name, v) in labels {
            out.push(separator);
            out.push_str(name);
            out.push_str("=\"");
            escape(out, v, true);
            out.push('"');
            separator = ',';
        }
        if !labels.is_empty() {
            out.push('}');
        }
        out.push(' ');
        match value {
            Value::Count(n) => decimal(out, n),
            // Writing to a String cannot fail.
            Value::Real(x) => drop(write!(out, "{x}")),
        }
        out.push('\n');
    }
}

/// The type's name in `# TYPE` (the encoder's `{:?}` lowercased).
fn type_name(kind: MetricType) -> &'static str {
    match kind {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::SUMMARY => "summary",
        MetricType::UNTYPED => "untyped",
        MetricType::HISTOGRAM => "histogram",
    }
}

/// `n` in decimal, as `{n}` writes it but without the formatter's
/// machinery: a scrape writes some 230,000 of them.
fn decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

/// `v` escaped as the format wants: `\` and newline always, `"` in label
/// values.
fn escape(out: &mut String, v: &str, quote: bool) {
    // Bytes, not chars: none of the three is part of a longer UTF-8
    // sequence, and most values have none of them.
    let special = |b: &u8| matches!(b, b'\\' | b'\n') || (quote && *b == b'"');
    if !v.as_bytes().iter().any(special) {
        out.push_str(v);
        return;
    }
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// The crate's families, for its encoder.
#[derive(Default)]
pub struct Families {
    done: Vec<MetricFamily>,
    current: Option<MetricFamily>,
}

impl Families {
    pub fn into_vec(mut self) -> Vec<MetricFamily> {
        self.close();
        self.done
    }

    /// Files the family being filled, unless it has no sample (the
    /// encoder refuses an empty family).
    fn close(&mut self) {
        if let Some(f) = self.current.take() {
            if !f.get_metric().is_empty() {
                self.done.push(f);
            }
        }
    }
}

impl Sink for Families {
    fn family(&mut self, name: &'static str, help: &'static str, kind: MetricType) {
        self.close();
        let mut f = MetricFamily::default();
        f.set_name(name.to_owned());
        f.set_help(help.to_owned());
        f.set_field_type(kind);
        self.current = Some(f);
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: Value) {
        let Some(f) = self.current.as_mut() else {
            return;
        };
        let pairs = labels
            .iter()
            .map(|&(name, v)| {
                let mut l = LabelPair::default();
                l.set_name(name.to_owned());
                l.set_value(v.to_owned());
                l
            })
            .collect();
        let value = match value {
            Value::Count(n) => n as f64,
            Value::Real(x) => x,
        };
        let mut m = Metric::from_label(pairs);
        if f.get_field_type() == MetricType::GAUGE {
            let mut g = proto::Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        } else {
            let mut c = proto::Counter::default();
            c.set_value(value);
            m.set_counter(c);
        }
        f.mut_metric().push(m);
    }
}
