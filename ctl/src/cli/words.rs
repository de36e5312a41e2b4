//! Arguments written as `ip` writes them: a few values in order, then
//! `KEYWORD VALUE` pairs in any order (`10.1.0.0/16 via 192.0.2.2 tenant
//! blue`).

use serde_json::{Map, Value};

/// A usage error: what was wrong with the words, for exit code 2.
#[derive(Debug, PartialEq, Eq)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

pub fn usage<T>(message: impl Into<String>) -> Result<T, Usage> {
    Err(Usage(message.into()))
}

/// The words of one command, consumed as they are understood; whatever is
/// left at the end is an error naming it.
pub struct Words {
    words: Vec<String>,
    /// What the command is, for the messages (`route add`).
    command: &'static str,
}

impl Words {
    pub fn new(command: &'static str, words: Vec<String>) -> Words {
        Words { words, command }
    }

    /// Removes `KEYWORD VALUE` (either spelling of the keyword: `max_blocks`
    /// or `max-blocks`) and returns the value; a keyword given twice or
    /// without its value is an error.
    pub fn value(&mut self, keywords: &[&str]) -> Result<Option<String>, Usage> {
        let Some(i) = self.find(keywords) else {
            return Ok(None);
        };
        let keyword = self.words.remove(i);
        if i >= self.words.len() {
            return usage(format!("{}: `{keyword}` needs a value", self.command));
        }
        let value = self.words.remove(i);
        if self.find(keywords).is_some() {
            return usage(format!("{}: `{keyword}` is given twice", self.command));
        }
        Ok(Some(value))
    }

    /// Every value of a keyword that may be repeated (`address A address B`).
    pub fn values(&mut self, keywords: &[&str]) -> Result<Vec<String>, Usage> {
        let mut all = Vec::new();
        while let Some(i) = self.find(keywords) {
            let keyword = self.words.remove(i);
            if i >= self.words.len() {
                return usage(format!("{}: `{keyword}` needs a value", self.command));
            }
            all.push(self.words.remove(i));
        }
        Ok(all)
    }

    /// Removes a word that stands alone (`replace`, `public`); whether it
    /// was there.
    pub fn flag(&mut self, word: &str) -> bool {
        match self.words.iter().position(|w| w == word) {
            Some(i) => {
                self.words.remove(i);
                true
            }
            None => false,
        }
    }

    /// The first word left, which the command takes as `what`.
    pub fn first(&mut self, what: &str) -> Result<String, Usage> {
        if self.words.is_empty() {
            return usage(format!("{}: {what} is missing", self.command));
        }
        Ok(self.words.remove(0))
    }

    /// The first word left, if any.
    pub fn optional(&mut self) -> Option<String> {
        (!self.words.is_empty()).then(|| self.words.remove(0))
    }

    /// Everything left, taken.
    pub fn rest(&mut self) -> Vec<String> {
        std::mem::take(&mut self.words)
    }

    /// Succeeds only when every word was understood.
    pub fn done(self) -> Result<(), Usage> {
        match self.words.first() {
            None => Ok(()),
            Some(w) => usage(format!(
                "{}: unexpected `{w}` (see tgwctl {} --help)",
                self.command,
                self.command.split(' ').next().unwrap_or(self.command)
            )),
        }
    }

    fn find(&self, keywords: &[&str]) -> Option<usize> {
        self.words.iter().position(|w| {
            let w = w.strip_prefix("--").unwrap_or(w).replace('-', "_");
            keywords.iter().any(|k| k.replace('-', "_") == w)
        })
    }
}

/// A value for a key the config file reads as an integer (a port, a
/// protocol number, a handle): a number when it is written as one, else
/// the text as written, which tgw then refuses with the key's own message
/// (or takes, as `dport "1024-65535"`).
pub fn number_or_text(s: &str) -> Value {
    match s.parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::from(s),
    }
}

/// An object of the config file's keys.
#[derive(Default)]
pub struct Object(Map<String, Value>);

impl Object {
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    pub fn set_some(&mut self, key: &str, value: Option<impl Into<Value>>) -> &mut Self {
        if let Some(v) = value {
            self.set(key, v);
        }
        self
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn value(&mut self) -> Value {
        Value::Object(std::mem::take(&mut self.0))
    }
}
