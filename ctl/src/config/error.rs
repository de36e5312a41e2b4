//! Configuration problems, each tied to the file and line to fix.

use std::fmt;

use super::span::LineIndex;

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to [`load`](super::load) or [`parse`](super::parse).
    pub file: String,
    /// 1-based line of the offending value; `None` when the file as a whole
    /// is at fault (it cannot be read).
    pub line: Option<usize>,
    /// What is wrong and how to fix it, on one line.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration file, in line order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The problems, in line order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never the case for a returned error).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    /// One `FILE:LINE: message` per line, no trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects problems while the whole file is checked, so that one run of
/// `--check` shows all of them.
pub(crate) struct Report<'a> {
    file: &'a str,
    lines: LineIndex,
    errors: Vec<ConfigError>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(file: &'a str, text: &str) -> Self {
        Self {
            file,
            lines: LineIndex::new(text),
            errors: Vec::new(),
        }
    }

    /// Records a problem at byte `offset` of the text.
    pub(crate) fn at(&mut self, offset: usize, message: impl Into<String>) {
        let line = self.lines.line(offset);
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: Some(line),
            message: message.into(),
        });
    }

    /// The 1-based line of byte `offset`, for messages that point back at
    /// an earlier definition.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.lines.line(offset)
    }

    pub(crate) fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// The problems sorted by line; problems on one line keep the order in
    /// which they were found.
    pub(crate) fn finish(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|e| e.line);
        ConfigErrors(self.errors)
    }
}
