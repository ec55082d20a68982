//! Syntax checks of label and field selectors, as the API server parses them
//! (`k8s.io/apimachinery/pkg/labels` and `.../fields`). Written by hand: no crate of the
//! workspace parses selector strings. The check is syntactic only; which fields a kind supports
//! in a field selector is known to the API server alone.

/// Checks a label selector: comma-separated requirements `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
/// `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`. Returns a lowercase reason on error.
pub(crate) fn check_label_selector(s: &str) -> Result<(), String> {
    let tokens = lex_label_selector(s)?;
    let mut p = Parser { tokens, pos: 0 };
    loop {
        p.requirement()?;
        match p.next() {
            None => return Ok(()),
            Some(Token::Comma) => {
                if p.peek().is_none() {
                    return Err("ends with ','".into());
                }
            }
            Some(t) => return Err(format!("expected ',' but found {}", t.describe())),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Comma,
    Open,
    Close,
    Eq,
    DoubleEq,
    NotEq,
    Not,
    Gt,
    Lt,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("'{s}'"),
            Token::Comma => "','".into(),
            Token::Open => "'('".into(),
            Token::Close => "')'".into(),
            Token::Eq => "'='".into(),
            Token::DoubleEq => "'=='".into(),
            Token::NotEq => "'!='".into(),
            Token::Not => "'!'".into(),
            Token::Gt => "'>'".into(),
            Token::Lt => "'<'".into(),
        }
    }
}

fn lex_label_selector(s: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let (token, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ',' => (Token::Comma, 1),
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            '>' => (Token::Gt, 1),
            '<' => (Token::Lt, 1),
            '=' if next == Some('=') => (Token::DoubleEq, 2),
            '=' => (Token::Eq, 1),
            '!' if next == Some('=') => (Token::NotEq, 2),
            '!' => (Token::Not, 1),
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], ',' | '(' | ')' | '>' | '<' | '=' | '!')
                {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
                continue;
            }
        };
        tokens.push(token);
        i += len;
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn key(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Ident(k)) => {
                check_label_key(&k)?;
                Ok(k)
            }
            Some(t) => Err(format!("expected a label key but found {}", t.describe())),
            None => Err("expected a label key but found the end".into()),
        }
    }

    fn requirement(&mut self) -> Result<(), String> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            self.key()?;
            return Ok(());
        }
        let key = self.key()?;
        match self.peek().cloned() {
            None | Some(Token::Comma) => Ok(()),
            Some(Token::Eq | Token::DoubleEq | Token::NotEq) => {
                self.pos += 1;
                match self.peek().cloned() {
                    // `k=` selects the empty value.
                    None | Some(Token::Comma) => Ok(()),
                    Some(Token::Ident(v)) => {
                        self.pos += 1;
                        check_label_value(&v)
                    }
                    Some(t) => Err(format!(
                        "expected a value after '{key}' and its operator but found {}",
                        t.describe()
                    )),
                }
            }
            Some(Token::Gt | Token::Lt) => {
                self.pos += 1;
                match self.next() {
                    Some(Token::Ident(v)) if v.parse::<i64>().is_ok() => Ok(()),
                    _ => Err(format!("'>' and '<' after '{key}' need an integer value")),
                }
            }
            Some(Token::Ident(op)) if op == "in" || op == "notin" => {
                self.pos += 1;
                if self.next() != Some(Token::Open) {
                    return Err(format!("expected '(' after '{key} {op}'"));
                }
                loop {
                    match self.next() {
                        Some(Token::Ident(v)) => check_label_value(&v)?,
                        Some(t) => {
                            return Err(format!(
                                "expected a value in '{key} {op} (...)' but found {}",
                                t.describe()
                            ));
                        }
                        None => return Err(format!("unclosed '(' after '{key} {op}'")),
                    }
                    match self.next() {
                        Some(Token::Comma) => continue,
                        Some(Token::Close) => return Ok(()),
                        Some(t) => {
                            return Err(format!(
                                "expected ',' or ')' in '{key} {op} (...)' but found {}",
                                t.describe()
                            ));
                        }
                        None => return Err(format!("unclosed '(' after '{key} {op}'")),
                    }
                }
            }
            Some(t) => Err(format!(
                "expected an operator (=, ==, !=, in, notin) after '{key}' but found {}",
                t.describe()
            )),
        }
    }
}

/// A label name or value body: alphanumerics at both ends, `-_.` inside, at most 63.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A DNS-1123 label: lowercase alphanumerics and `-`, alphanumeric at both ends, at most 63.
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A DNS-1035 label: a DNS-1123 label that starts with a letter.
pub(crate) fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// A DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253.
pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn check_label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix
        && !is_dns1123_subdomain(p)
    {
        return Err(format!(
            "label key '{k}': the prefix must be a DNS subdomain (lowercase, like example.com)"
        ));
    }
    if !is_qualified_name_part(name) {
        return Err(format!(
            "label key '{k}': the name must be at most 63 characters, alphanumeric at both ends, with '-', '_' or '.' inside"
        ));
    }
    Ok(())
}

fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_qualified_name_part(v) {
        Ok(())
    } else {
        Err(format!(
            "label value '{v}' must be at most 63 characters, alphanumeric at both ends, with '-', '_' or '.' inside"
        ))
    }
}

/// Checks a field selector: comma-separated `key=value`, `key==value` or `key!=value`, keys like
/// `metadata.name`, values with `\,`, `\=` and `\\` escapes. Returns a lowercase reason on error.
pub(crate) fn check_field_selector(s: &str) -> Result<(), String> {
    for term in split_unescaped(s, ',') {
        if term.is_empty() {
            return Err("has an empty term (two commas, or a comma at an end)".into());
        }
        let (key, value) = if let Some((k, v)) = term.split_once("!=") {
            (k, v)
        } else if let Some((k, v)) = term.split_once("==") {
            (k, v)
        } else if let Some((k, v)) = term.split_once('=') {
            (k, v)
        } else {
            return Err(format!(
                "term '{term}' needs an operator: key=value, key==value or key!=value"
            ));
        };
        let key_ok = key
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
            && key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'));
        if !key_ok {
            return Err(format!(
                "term '{term}': the key must be a field path like metadata.name"
            ));
        }
        let mut chars = value.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('\\' | ',' | '=') => {}
                    _ => {
                        return Err(format!(
                            "term '{term}': only \\\\, \\, and \\= may be escaped in a value"
                        ));
                    }
                },
                '=' => {
                    return Err(format!(
                        "term '{term}': '=' in a value must be escaped as \\="
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Splits on `sep` where it is not escaped with a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_label_selectors_are_accepted() {
        for s in [
            "app=web",
            "app==web",
            "app!=web",
            "app",
            "!canary",
            "tier in (web,api)",
            "tier in (web, api),!canary",
            "tier notin (db)",
            "app.kubernetes.io/name=watchpool",
            "example.com/team=a-b_c.d",
            "app=",
            "  app = web , env != prod ",
            "replicas>1",
            "replicas < 10",
            "A_b.C-9=X",
        ] {
            assert_eq!(check_label_selector(s), Ok(()), "{s:?}");
        }
    }

    #[test]
    fn malformed_label_selectors_are_refused_with_a_reason() {
        let cases = [
            ("app=web,", "ends with ','"),
            (",app", "expected a label key"),
            ("tier in web", "expected '('"),
            ("tier in (web", "unclosed"),
            ("tier in ()", "expected a value"),
            ("tier in (web api)", "expected ',' or ')'"),
            ("app web", "expected an operator"),
            ("app=web=x", "expected ','"),
            ("-app=web", "label key '-app'"),
            ("Example.com/app=web", "prefix must be a DNS subdomain"),
            ("app=-web", "label value '-web'"),
            ("!", "expected a label key"),
            ("replicas>x", "integer"),
            ("app=(web)", "expected a value"),
        ];
        for (s, want) in cases {
            let err = check_label_selector(s).expect_err(s);
            assert!(err.contains(want), "{s:?}: {err}");
        }
        let long = format!("app={}", "a".repeat(64));
        assert!(check_label_selector(&long).is_err());
    }

    #[test]
    fn kubernetes_field_selectors_are_accepted() {
        for s in [
            "metadata.name=web",
            "metadata.name==web",
            "status.phase!=Running",
            "metadata.namespace=shop,status.phase=Running",
            "spec.nodeName=",
            r"metadata.name=a\,b",
            r"metadata.name=a\=b",
        ] {
            assert_eq!(check_field_selector(s), Ok(()), "{s:?}");
        }
    }

    #[test]
    fn malformed_field_selectors_are_refused_with_a_reason() {
        let cases = [
            ("metadata.name", "needs an operator"),
            ("=web", "the key must be"),
            ("metadata.name=web,", "empty term"),
            ("a=b,,c=d", "empty term"),
            ("metadata name=web", "the key must be"),
            ("metadata.name=a=b", "must be escaped"),
            (r"metadata.name=a\b", "may be escaped"),
        ];
        for (s, want) in cases {
            let err = check_field_selector(s).expect_err(s);
            assert!(err.contains(want), "{s:?}: {err}");
        }
    }

    #[test]
    fn dns_names_follow_kubernetes_rules() {
        assert!(is_dns1123_label("shop"));
        assert!(is_dns1123_label("0team-a"));
        assert!(!is_dns1123_label("Team"));
        assert!(!is_dns1123_label("team-"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1035_label("v1beta2"));
        assert!(!is_dns1035_label("1v"));
        assert!(is_dns1123_subdomain("monitoring.example.com"));
        assert!(!is_dns1123_subdomain("example..com"));
    }
}
