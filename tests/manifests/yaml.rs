//! A small parser for the block-style YAML the manifests use (maps, lists,
//! scalars, comments, `---`); flow values such as `["sleep", "5"]` stay
//! scalars, which no check looks into. No YAML crate for a test's sake.

#[derive(Debug)]
pub enum Node {
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
    Scalar(String),
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Node::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn list(&self, key: &str) -> &[Node] {
        match self.get(key) {
            Some(Node::List(items)) => items,
            _ => &[],
        }
    }

    /// This node and every node under it.
    pub fn walk<'a>(&'a self, out: &mut Vec<&'a Node>) {
        out.push(self);
        match self {
            Node::Map(entries) => entries.iter().for_each(|(_, v)| v.walk(out)),
            Node::List(items) => items.iter().for_each(|v| v.walk(out)),
            Node::Scalar(_) => {}
        }
    }
}

struct Line {
    indent: usize,
    text: String,
    number: usize,
}

/// The text before a comment (`#` at the start or after a space, outside
/// quotes), without trailing spaces.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double, mut previous) = (false, false, ' ');
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => return line[..i].trim_end(),
            _ => {}
        }
        previous = c;
    }
    line.trim_end()
}

fn unquote(value: &str) -> String {
    let value = value.trim();
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        return value[1..value.len() - 1].replace("''", "'");
    }
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        return value[1..value.len() - 1].replace("\\\"", "\"");
    }
    value.to_owned()
}

/// `key: value` or `key:` (plain keys only).
fn split_key(text: &str) -> Option<(&str, &str)> {
    if text.starts_with(['"', '\'', '[', '{']) {
        return None;
    }
    if let Some(key) = text.strip_suffix(':') {
        return Some((key, ""));
    }
    let at = text.find(": ")?;
    Some((&text[..at], &text[at + 2..]))
}

struct Parser {
    lines: Vec<Line>,
    at: usize,
    file: String,
}

impl Parser {
    fn fail(&self, why: &str) -> ! {
        let number = self.lines.get(self.at).map_or(0, |l| l.number);
        panic!("{}:{number}: {why}", self.file)
    }

    fn is_item(text: &str) -> bool {
        text == "-" || text.starts_with("- ")
    }

    fn block(&mut self, indent: usize) -> Node {
        if Self::is_item(&self.lines[self.at].text) {
            self.list(indent)
        } else {
            self.map(indent)
        }
    }

    fn map(&mut self, indent: usize) -> Node {
        let mut entries = Vec::new();
        while let Some(line) = self.lines.get(self.at) {
            if line.indent < indent || (line.indent == indent && Self::is_item(&line.text)) {
                break;
            }
            if line.indent > indent {
                self.fail("unexpected indentation");
            }
            let Some((key, value)) = split_key(&line.text) else {
                self.fail("expected `key: value`");
            };
            let (key, value) = (unquote(key), value.to_owned());
            self.at += 1;
            let node = match self.lines.get(self.at) {
                _ if value.starts_with(['|', '>']) => self.fail("block scalars are not supported"),
                _ if !value.is_empty() => Node::Scalar(unquote(&value)),
                Some(next) if next.indent > indent => self.block(next.indent),
                Some(next) if next.indent == indent && Self::is_item(&next.text) => {
                    self.list(indent)
                }
                _ => Node::Scalar(String::new()),
            };
            entries.push((key, node));
        }
        Node::Map(entries)
    }

    fn list(&mut self, indent: usize) -> Node {
        let mut items = Vec::new();
        while let Some(line) = self.lines.get(self.at) {
            if line.indent != indent || !Self::is_item(&line.text) {
                if line.indent > indent {
                    self.fail("unexpected indentation");
                }
                break;
            }
            let rest = line.text[1..].trim_start().to_owned();
            let item_indent = indent + line.text.len() - rest.len();
            if rest.is_empty() {
                self.at += 1;
                match self.lines.get(self.at) {
                    Some(next) if next.indent > indent => {
                        let next = next.indent;
                        items.push(self.block(next));
                    }
                    _ => items.push(Node::Scalar(String::new())),
                }
            } else if split_key(&rest).is_some() || Self::is_item(&rest) {
                // `- key: value` opens a map (or `- - x` a list) whose
                // further lines are indented to the key.
                self.lines[self.at].indent = item_indent;
                self.lines[self.at].text = rest;
                items.push(self.block(item_indent));
            } else {
                items.push(Node::Scalar(unquote(&rest)));
                self.at += 1;
            }
        }
        Node::List(items)
    }
}

/// The documents of one YAML file.
pub fn parse(file: &str, text: &str) -> Vec<Node> {
    let mut documents = vec![Vec::new()];
    for (i, raw) in text.lines().enumerate() {
        let content = strip_comment(raw);
        if content == "---" {
            documents.push(Vec::new());
            continue;
        }
        if content.trim().is_empty() {
            continue;
        }
        assert!(!content.contains('\t'), "{file}:{}: tab", i + 1);
        let indent = content.len() - content.trim_start().len();
        let line = Line {
            indent,
            text: content.trim_start().to_owned(),
            number: i + 1,
        };
        documents
            .last_mut()
            .expect("one document at least")
            .push(line);
    }
    documents
        .into_iter()
        .filter(|lines| !lines.is_empty())
        .map(|lines| {
            let indent = lines[0].indent;
            let mut parser = Parser {
                lines,
                at: 0,
                file: file.to_owned(),
            };
            let node = parser.block(indent);
            if parser.at < parser.lines.len() {
                parser.fail("unexpected dedent");
            }
            node
        })
        .collect()
}
