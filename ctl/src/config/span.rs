//! Byte offsets in the configuration text turned into the 1-based line
//! numbers that an operator's editor shows, and a key found by its path.

/// Where each line of a text starts.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { starts }
    }

    /// The 1-based line holding byte `offset`; an offset past the end
    /// counts as the last line, so a span can never make this fail.
    pub(crate) fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i.max(1),
        }
    }
}

/// One step of a path to a key in a configuration file: a table's key,
/// or an element of an array of tables (`[[port]]`'s second is
/// `[Key("port"), Index(1)]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Key(&'static str),
    Index(usize),
}

/// Where `path` is in the TOML `text`: the 1-based line of the deepest
/// step found (a key's own line, else its table's header), and whether
/// the whole path was found. `None` when the text does not parse or not
/// even the first step is in it.
pub(crate) fn find(text: &str, path: &[Step]) -> Option<(usize, bool)> {
    use toml_edit::{ImDocument, Item};
    let doc = ImDocument::parse(text).ok()?;
    let mut item: &Item = doc.as_item();
    let mut at = None;
    for (i, step) in path.iter().enumerate() {
        let (next, offset) = match *step {
            Step::Key(k) => {
                let Some((key, next)) = item.as_table_like().and_then(|t| t.get_key_value(k))
                else {
                    break;
                };
                (next, key.span().or_else(|| next.span()))
            }
            Step::Index(n) => {
                let Some(table) = item.as_array_of_tables().and_then(|a| a.get(n)) else {
                    break;
                };
                // An element is an item of its own only by reference to
                // the table: its span is its header's.
                let Some(next) = item.get(n) else {
                    break;
                };
                (next, table.span())
            }
        };
        item = next;
        at = offset.map(|s| (s.start, i + 1 == path.len())).or(at);
    }
    let (offset, whole) = at?;
    Some((LineIndex::new(text).line(offset), whole))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_found_at_its_keys_line_or_its_tables() {
        let text = "[flows]\ncapacity = 5\n\n[[port]]\nname = \"a\"\n[[port]]\nname = \"b\"\ndevice = \"x\"\n";
        let k = Step::Key;
        assert_eq!(find(text, &[k("flows"), k("capacity")]), Some((2, true)));
        assert_eq!(find(text, &[k("flows"), k("udp_s")]), Some((1, false)));
        assert_eq!(
            find(text, &[k("port"), Step::Index(1), k("device")]),
            Some((8, true))
        );
        assert_eq!(
            find(text, &[k("port"), Step::Index(0), k("device")]),
            Some((4, false))
        );
        assert_eq!(find(text, &[k("metrics"), k("listen")]), None);
        assert_eq!(find("[broken", &[k("flows")]), None);
    }

    #[test]
    fn lines_are_one_based() {
        let idx = LineIndex::new("a\nbc\n\nd");
        assert_eq!(idx.line(0), 1);
        assert_eq!(idx.line(1), 1); // the newline ends line 1
        assert_eq!(idx.line(2), 2);
        assert_eq!(idx.line(3), 2);
        assert_eq!(idx.line(5), 3);
        assert_eq!(idx.line(6), 4);
        assert_eq!(idx.line(1000), 4);
        assert_eq!(LineIndex::new("").line(0), 1);
    }
}
