//! The subset of JSONPath that CRD printer columns use (EMULATOR.md §5).
//!
//! Supported: an optional `{…}` wrapper and leading `$`, field steps `.a.b`, quoted fields
//! `['a.b']` / `["a"]`, indices `[0]` and `[-1]`, wildcards `[*]` / `.*`, and filters
//! `[?(@.type=="Ready")]` comparing a relative path with `==` or `!=` against a string, number,
//! boolean or `null` literal (or testing a path's existence with `[?(@.x)]`). Only the first
//! result is returned, as the apiserver does for printer columns.

use serde_json::Value;

/// Evaluates `expr` (e.g. `.status.conditions[?(@.type=="Ready")].status`) against `obj` and
/// returns the first result.
pub fn eval(expr: &str, obj: &Value) -> Option<Value> {
    let steps = parse(expr)?;
    let mut current: Vec<&Value> = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for value in current {
            apply(step, value, &mut next);
        }
        if next.is_empty() {
            return None;
        }
        current = next;
    }
    current.first().map(|v| (*v).clone())
}

/// One step of a parsed path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    /// `[start:end]`, either bound optional, negative counting from the end.
    Slice(Option<i64>, Option<i64>),
    Wildcard,
    Filter(Filter),
}

/// `[?(@.path op literal)]`, or `[?(@.path)]` (existence) when `op` is `None`.
#[derive(Clone, Debug, PartialEq)]
struct Filter {
    path: Vec<Step>,
    op: Option<(Op, Value)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
}

fn apply<'a>(step: &Step, value: &'a Value, out: &mut Vec<&'a Value>) {
    match step {
        Step::Field(name) => {
            if let Some(v) = value.as_object().and_then(|m| m.get(name)) {
                out.push(v);
            }
        }
        Step::Index(i) => {
            if let Some(items) = value.as_array() {
                let len = items.len() as i64;
                let idx = if *i < 0 { len + i } else { *i };
                if (0..len).contains(&idx)
                    && let Some(v) = items.get(idx as usize)
                {
                    out.push(v);
                }
            }
        }
        Step::Slice(start, end) => {
            if let Some(items) = value.as_array() {
                let len = items.len() as i64;
                let clamp = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
                let from = clamp(start.unwrap_or(0));
                let to = clamp(end.unwrap_or(len));
                if from < to {
                    out.extend(items[from as usize..to as usize].iter());
                }
            }
        }
        Step::Wildcard => match value {
            Value::Array(items) => out.extend(items.iter()),
            Value::Object(map) => out.extend(map.values()),
            _ => {}
        },
        Step::Filter(filter) => {
            let candidates: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                Value::Object(map) => map.values().collect(),
                _ => Vec::new(),
            };
            for candidate in candidates {
                if matches(filter, candidate) {
                    out.push(candidate);
                }
            }
        }
    }
}

fn matches(filter: &Filter, candidate: &Value) -> bool {
    let mut current = vec![candidate];
    for step in &filter.path {
        let mut next = Vec::new();
        for value in current {
            apply(step, value, &mut next);
        }
        current = next;
    }
    let found = current.first().copied();
    match (&filter.op, found) {
        (None, found) => found.is_some(),
        (Some((Op::Eq, lit)), Some(v)) => values_equal(v, lit),
        (Some((Op::Eq, _)), None) => false,
        (Some((Op::Ne, lit)), Some(v)) => !values_equal(v, lit),
        // client-go: a missing field never matches, whatever the operator.
        (Some((Op::Ne, _)), None) => false,
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        _ => a == b,
    }
}

/// Parses `expr` into steps; `None` for anything outside the supported subset.
fn parse(expr: &str) -> Option<Vec<Step>> {
    let mut s = expr.trim();
    if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        s = inner.trim();
    }
    if let Some(rest) = s.strip_prefix('$') {
        s = rest;
    }
    let chars: Vec<char> = s.chars().collect();
    let mut pos = 0;
    let steps = parse_steps(&chars, &mut pos, false)?;
    if pos != chars.len() {
        return None;
    }
    Some(steps)
}

/// Parses steps until the end of input (or, inside a filter, until a comparison operator or
/// the closing `)`).
fn parse_steps(chars: &[char], pos: &mut usize, in_filter: bool) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    while *pos < chars.len() {
        let c = chars[*pos];
        match c {
            '.' => {
                *pos += 1;
                if chars.get(*pos) == Some(&'.') {
                    // recursive descent is not supported
                    return None;
                }
                if chars.get(*pos) == Some(&'*') {
                    *pos += 1;
                    steps.push(Step::Wildcard);
                    continue;
                }
                let start = *pos;
                while *pos < chars.len() && is_name_char(chars[*pos]) {
                    *pos += 1;
                }
                if *pos == start {
                    // a bare `.` (the whole object) is allowed only at the very end
                    if *pos == chars.len() || (in_filter && !is_name_char(chars[*pos])) {
                        continue;
                    }
                    return None;
                }
                steps.push(Step::Field(chars[start..*pos].iter().collect()));
            }
            '[' => {
                *pos += 1;
                steps.push(parse_bracket(chars, pos)?);
            }
            _ if in_filter => break,
            _ => {
                // a leading name without a dot, e.g. `metadata.name`
                if steps.is_empty() && is_name_char(c) {
                    let start = *pos;
                    while *pos < chars.len() && is_name_char(chars[*pos]) {
                        *pos += 1;
                    }
                    steps.push(Step::Field(chars[start..*pos].iter().collect()));
                } else {
                    return None;
                }
            }
        }
    }
    Some(steps)
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '/'
}

/// Parses the inside of `[...]`; `pos` is just after the `[`.
fn parse_bracket(chars: &[char], pos: &mut usize) -> Option<Step> {
    skip_ws(chars, pos);
    let step = match chars.get(*pos)? {
        '*' => {
            *pos += 1;
            Step::Wildcard
        }
        '\'' | '"' => Step::Field(parse_string(chars, pos)?),
        '?' => {
            *pos += 1;
            skip_ws(chars, pos);
            expect(chars, pos, '(')?;
            skip_ws(chars, pos);
            expect(chars, pos, '@')?;
            let path = parse_steps(chars, pos, true)?;
            skip_ws(chars, pos);
            let op = match (chars.get(*pos), chars.get(*pos + 1)) {
                (Some('='), Some('=')) => Some(Op::Eq),
                (Some('!'), Some('=')) => Some(Op::Ne),
                (Some(')'), _) => None,
                _ => return None,
            };
            let op = match op {
                Some(op) => {
                    *pos += 2;
                    skip_ws(chars, pos);
                    let lit = parse_literal(chars, pos)?;
                    skip_ws(chars, pos);
                    Some((op, lit))
                }
                None => None,
            };
            expect(chars, pos, ')')?;
            Step::Filter(Filter { path, op })
        }
        _ => {
            let first = parse_int(chars, pos);
            skip_ws(chars, pos);
            if chars.get(*pos) == Some(&':') {
                *pos += 1;
                skip_ws(chars, pos);
                let second = parse_int(chars, pos);
                Step::Slice(first, second)
            } else {
                Step::Index(first?)
            }
        }
    };
    skip_ws(chars, pos);
    expect(chars, pos, ']')?;
    Some(step)
}

/// An optional signed integer; `None` (and nothing consumed) when there is none.
fn parse_int(chars: &[char], pos: &mut usize) -> Option<i64> {
    let start = *pos;
    if chars.get(*pos) == Some(&'-') {
        *pos += 1;
    }
    while *pos < chars.len() && chars[*pos].is_ascii_digit() {
        *pos += 1;
    }
    let text: String = chars[start..*pos].iter().collect();
    match text.parse() {
        Ok(n) => Some(n),
        Err(_) => {
            *pos = start;
            None
        }
    }
}

fn parse_literal(chars: &[char], pos: &mut usize) -> Option<Value> {
    match chars.get(*pos)? {
        '\'' | '"' => Some(Value::String(parse_string(chars, pos)?)),
        _ => {
            let start = *pos;
            while *pos < chars.len() && !matches!(chars[*pos], ')' | ' ') {
                *pos += 1;
            }
            let text: String = chars[start..*pos].iter().collect();
            match text.as_str() {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                "null" => Some(Value::Null),
                _ => serde_json::from_str::<serde_json::Number>(&text)
                    .ok()
                    .map(Value::Number),
            }
        }
    }
}

/// Parses a quoted string starting at the quote character.
fn parse_string(chars: &[char], pos: &mut usize) -> Option<String> {
    let quote = *chars.get(*pos)?;
    *pos += 1;
    let mut out = String::new();
    loop {
        let c = *chars.get(*pos)?;
        *pos += 1;
        if c == quote {
            return Some(out);
        }
        if c == '\\' {
            out.push(*chars.get(*pos)?);
            *pos += 1;
        } else {
            out.push(c);
        }
    }
}

fn skip_ws(chars: &[char], pos: &mut usize) {
    while chars.get(*pos).is_some_and(|c| c.is_whitespace()) {
        *pos += 1;
    }
}

fn expect(chars: &[char], pos: &mut usize, c: char) -> Option<()> {
    if chars.get(*pos) == Some(&c) {
        *pos += 1;
        Some(())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Value {
        json!({
            "metadata": {"name": "wp1", "labels": {"app.kubernetes.io/name": "demo"}},
            "spec": {"replicas": 3, "paused": false, "targets": [{"kind": "Pod"}, {"kind": "Secret"}]},
            "status": {
                "objects": 12,
                "cpu": 0.25,
                "conditions": [
                    {"type": "Watching", "status": "False"},
                    {"type": "Ready", "status": "True", "priority": 2, "active": true}
                ]
            }
        })
    }

    #[test]
    fn dotted_fields_reach_nested_values() {
        assert_eq!(eval(".metadata.name", &policy()), Some(json!("wp1")));
        assert_eq!(eval(".status.objects", &policy()), Some(json!(12)));
        assert_eq!(eval(".spec.paused", &policy()), Some(json!(false)));
    }

    #[test]
    fn wrapper_dollar_and_leading_name_are_accepted() {
        assert_eq!(eval("{.metadata.name}", &policy()), Some(json!("wp1")));
        assert_eq!(eval("$.metadata.name", &policy()), Some(json!("wp1")));
        assert_eq!(eval("metadata.name", &policy()), Some(json!("wp1")));
    }

    #[test]
    fn missing_fields_give_none() {
        assert_eq!(eval(".status.nothing", &policy()), None);
        assert_eq!(eval(".metadata.name.deeper", &policy()), None);
        assert_eq!(eval(".spec.targets[5].kind", &policy()), None);
    }

    #[test]
    fn quoted_field_names_may_contain_dots() {
        assert_eq!(
            eval(".metadata.labels['app.kubernetes.io/name']", &policy()),
            Some(json!("demo"))
        );
        assert_eq!(
            eval(r#".metadata.labels["app.kubernetes.io/name"]"#, &policy()),
            Some(json!("demo"))
        );
    }

    #[test]
    fn indices_select_array_items_including_negative() {
        assert_eq!(eval(".spec.targets[0].kind", &policy()), Some(json!("Pod")));
        assert_eq!(
            eval(".spec.targets[1].kind", &policy()),
            Some(json!("Secret"))
        );
        assert_eq!(
            eval(".spec.targets[-1].kind", &policy()),
            Some(json!("Secret"))
        );
    }

    #[test]
    fn slices_select_ranges_and_return_the_first() {
        assert_eq!(
            eval(".spec.targets[1:].kind", &policy()),
            Some(json!("Secret"))
        );
        assert_eq!(
            eval(".spec.targets[0:1].kind", &policy()),
            Some(json!("Pod"))
        );
        assert_eq!(
            eval(".spec.targets[-1:].kind", &policy()),
            Some(json!("Secret"))
        );
        assert_eq!(
            eval(".spec.targets[:1].kind", &policy()),
            Some(json!("Pod"))
        );
        assert_eq!(eval(".spec.targets[2:].kind", &policy()), None);
        assert_eq!(eval(".spec.targets[1:1]", &policy()), None);
        assert_eq!(eval(".spec.targets[]", &policy()), None);
    }

    #[test]
    fn wildcard_returns_the_first_result() {
        assert_eq!(eval(".spec.targets[*].kind", &policy()), Some(json!("Pod")));
        assert_eq!(eval(".spec.targets.*.kind", &policy()), Some(json!("Pod")));
    }

    #[test]
    fn filter_selects_condition_by_string_equality() {
        assert_eq!(
            eval(
                r#".status.conditions[?(@.type=="Ready")].status"#,
                &policy()
            ),
            Some(json!("True"))
        );
        assert_eq!(
            eval(
                ".status.conditions[?(@.type == 'Watching')].status",
                &policy()
            ),
            Some(json!("False"))
        );
        assert_eq!(
            eval(
                r#".status.conditions[?(@.type=="Absent")].status"#,
                &policy()
            ),
            None
        );
    }

    #[test]
    fn filter_inequality_skips_matching_items() {
        assert_eq!(
            eval(
                r#".status.conditions[?(@.type!="Watching")].type"#,
                &policy()
            ),
            Some(json!("Ready"))
        );
    }

    #[test]
    fn filter_compares_numbers_and_booleans() {
        assert_eq!(
            eval(".status.conditions[?(@.priority==2)].type", &policy()),
            Some(json!("Ready"))
        );
        assert_eq!(
            eval(".status.conditions[?(@.priority==2.0)].type", &policy()),
            Some(json!("Ready"))
        );
        assert_eq!(
            eval(".status.conditions[?(@.active==true)].type", &policy()),
            Some(json!("Ready"))
        );
        assert_eq!(
            eval(".status.conditions[?(@.active==false)].type", &policy()),
            None
        );
    }

    #[test]
    fn filter_existence_test_selects_items_with_the_field() {
        assert_eq!(
            eval(".status.conditions[?(@.priority)].type", &policy()),
            Some(json!("Ready"))
        );
    }

    #[test]
    fn whole_subtrees_are_returned() {
        assert_eq!(
            eval(".spec.targets[0]", &policy()),
            Some(json!({"kind": "Pod"}))
        );
    }

    #[test]
    fn unsupported_or_malformed_expressions_give_none() {
        assert_eq!(eval("..name", &policy()), None);
        assert_eq!(eval(".spec.targets[", &policy()), None);
        assert_eq!(eval(".spec.targets[?(@.kind=~'P')]", &policy()), None);
        assert_eq!(
            eval(".status.conditions[?(@.type==\"Ready)]", &policy()),
            None
        );
    }

    #[test]
    fn indexing_a_non_array_gives_none() {
        assert_eq!(eval(".metadata.name[0]", &policy()), None);
        assert_eq!(eval(".spec.replicas[*]", &policy()), None);
    }
}
