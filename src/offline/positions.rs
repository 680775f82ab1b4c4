//! Where the fields of a YAML document are: the line and column of the key that names each
//! field (or of the item, in a sequence), read from the parser's marks, so that a finding at
//! `spec.egress[0].to[0].namespaceSelector.matchLabels.name` points at that key in the file.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub line: usize,
    pub column: usize,
}

/// A collection node: where it starts and where the parser saw its end (for a flow
/// collection, the closing bracket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: Position,
    pub end: Position,
}

/// The positions of every field of one document, by path (`spec.egress[0].ports`).
#[derive(Debug, Default)]
pub(crate) struct Positions {
    by_path: HashMap<String, Position>,
    spans: HashMap<String, Span>,
}

impl Positions {
    /// Reads the positions of a document's fields. A document that does not parse has none.
    pub(crate) fn of(text: &str) -> Self {
        Self::read(text, None)
    }

    /// Reads the positions of `paths` and of their parents only: a document of thousands
    /// of rules costs a walk, not a map of every field.
    pub(crate) fn of_paths(text: &str, paths: &[String]) -> Self {
        let mut wanted = std::collections::HashSet::new();
        for path in paths {
            let mut p = path.as_str();
            wanted.insert(p.to_string());
            while let Some(cut) = p.rfind(['.', '[']) {
                p = &p[..cut];
                wanted.insert(p.to_string());
            }
        }
        Self::read(text, Some(wanted))
    }

    fn read(text: &str, wanted: Option<std::collections::HashSet<String>>) -> Self {
        let mut walker = Walker {
            wanted,
            ..Walker::default()
        };
        if Parser::new_from_str(text).load(&mut walker, false).is_err() {
            return Self::default();
        }
        Self {
            by_path: walker.by_path,
            spans: walker.spans,
        }
    }

    /// The position of exactly `path` (its key, or its item).
    pub(crate) fn get(&self, path: &str) -> Option<Position> {
        self.by_path.get(path).copied()
    }

    /// The span of the mapping or sequence at exactly `path`.
    pub(crate) fn span(&self, path: &str) -> Option<Span> {
        self.spans.get(path).copied()
    }

    /// The position of `path`, or of its nearest parent present in the document.
    pub(crate) fn find(&self, path: &str) -> Option<Position> {
        let mut path = path;
        loop {
            if let Some(p) = self.by_path.get(path) {
                return Some(*p);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

#[derive(Debug)]
enum Frame {
    Map {
        path: String,
        /// The key just read, whose value comes next.
        key: Option<String>,
        start: Position,
    },
    Seq {
        path: String,
        next: usize,
        start: Position,
    },
}

/// Builds the path → position map from parser events.
#[derive(Debug, Default)]
struct Walker {
    /// Only these paths are kept, when set.
    wanted: Option<std::collections::HashSet<String>>,
    stack: Vec<Frame>,
    by_path: HashMap<String, Position>,
    spans: HashMap<String, Span>,
    /// Depth of a complex (non-scalar) mapping key being skipped.
    skipping_key: usize,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Walker {
    fn keep(&mut self, path: &str, position: Position) {
        if self.wanted.as_ref().is_none_or(|w| w.contains(path)) {
            self.by_path.insert(path.to_string(), position);
        }
    }

    /// The path of a value node starting now, recording sequence items' positions (a
    /// mapping item's is its first key's, where its text starts); `None` when the node is a
    /// mapping key instead.
    fn value_path(&mut self, mark: Marker, mapping: bool) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { key: None, .. }) => None,
            Some(Frame::Map { path, key, .. }) => {
                let full = join(path, key.as_deref().unwrap_or_default());
                *key = None;
                Some(full)
            }
            Some(Frame::Seq { path, next, .. }) => {
                let full = format!("{path}[{next}]");
                *next += 1;
                if !mapping {
                    let position = Position {
                        line: mark.line(),
                        column: mark.col() + 1,
                    };
                    self.keep(&full, position);
                }
                Some(full)
            }
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.skipping_key > 0 {
            self.skip_key(&event);
            return;
        }
        let at = Position {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match event {
            Event::Scalar(text, ..) if self.value_path(mark, false).is_none() => self.key(text, at),
            Event::Alias(_) => {
                self.value_path(mark, false);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(event, Event::MappingStart(..));
                match self.value_path(mark, is_map) {
                    Some(path) if is_map => self.stack.push(Frame::Map {
                        path,
                        key: None,
                        start: at,
                    }),
                    Some(path) => self.stack.push(Frame::Seq {
                        path,
                        next: 0,
                        start: at,
                    }),
                    // a mapping used as a key: not a field name
                    None => self.skipping_key = 1,
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(Frame::Map { path, start, .. } | Frame::Seq { path, start, .. }) =
                    self.stack.pop()
                    && self.wanted.as_ref().is_none_or(|w| w.contains(&path))
                {
                    self.spans.insert(path, Span { start, end: at });
                }
            }
            _ => {}
        }
    }
}

impl Walker {
    /// A mapping key at `at`: the field's position is the key's.
    fn key(&mut self, text: String, at: Position) {
        let Some(Frame::Map { path, key, .. }) = self.stack.last_mut() else {
            return;
        };
        let field = join(path, &text);
        // the first key of a sequence item places the item
        let item = path.ends_with(']').then(|| path.clone());
        *key = Some(text);
        self.keep(&field, at);
        if let Some(item) = item
            && !self.by_path.contains_key(&item)
        {
            self.keep(&item, at);
        }
    }

    /// Inside a complex (non-scalar) mapping key, until it ends.
    fn skip_key(&mut self, event: &Event) {
        match event {
            Event::MappingStart(..) | Event::SequenceStart(..) => self.skipping_key += 1,
            Event::MappingEnd | Event::SequenceEnd => self.skipping_key -= 1,
            _ => {}
        }
        if self.skipping_key == 0
            && let Some(Frame::Map { key, .. }) = self.stack.last_mut()
        {
            // its value follows, under a name no finding uses
            *key = Some("?".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_items_are_found_with_their_nearest_parent() {
        let text = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web   # a comment
spec:
  podSelector: {matchLabels: {app: web}}
  egress:
  - to:
    - namespaceSelector:
        matchLabels:
          name: kube-system
    ports: [{port: 53, protocol: UDP}]
";
        let p = Positions::of(text);
        let at = |path: &str| p.find(path).map(|p| (p.line, p.column));
        assert_eq!(at("metadata.name"), Some((4, 3)));
        assert_eq!(at("spec.egress"), Some((7, 3)));
        assert_eq!(at("spec.egress[0]"), Some((8, 5)));
        assert_eq!(
            at("spec.egress[0].to[0].namespaceSelector.matchLabels.name"),
            Some((11, 11))
        );
        assert_eq!(at("spec.egress[0].ports[0]"), Some((12, 14)));
        assert_eq!(at("spec.podSelector.matchLabels.app"), Some((6, 31)));
        // not in the file: the nearest parent that is
        assert_eq!(at("spec.egress[0].to[0].podSelector"), Some((9, 7)));
        assert_eq!(at("spec.ingress"), Some((5, 1)));
        assert_eq!(at("status"), None);
        // unparsable: nothing
        assert!(Positions::of("a: [").find("a").is_none());
    }

    #[test]
    fn keys_with_dots_anchors_and_complex_keys() {
        let text = "\
base: &labels
  kubernetes.io/metadata.name: kube-system
spec:
  selector: *labels
  ? [complex, key]
  : value
  after: 1
";
        let p = Positions::of(text);
        let at = |path: &str| p.find(path).map(|p| (p.line, p.column));
        assert_eq!(at("base.kubernetes.io/metadata.name"), Some((2, 3)));
        assert_eq!(at("spec.selector"), Some((4, 3)));
        assert_eq!(at("spec.after"), Some((7, 3)));
    }
}
