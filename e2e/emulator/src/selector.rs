//! Label and field selectors (EMULATOR.md §4.6).

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector`: the AND of its requirements. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<LabelReq>,
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced parenthesis".into());
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced parenthesis".into());
    }
    out.push(&s[start..]);
    Ok(out)
}

fn parse_set(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesized set, found {rest:?}"))?;
    let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    for v in &vals {
        if !valid_value(v) {
            return Err(format!("invalid label value: {v:?}"));
        }
    }
    Ok(vals)
}

impl LabelSelector {
    /// Parses a selector such as `app=x,tier!=db,env in (a,b),!legacy`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let mut reqs = Vec::new();
        if s.is_empty() {
            return Ok(LabelSelector { reqs });
        }
        for part in split_top(s)? {
            let part = part.trim();
            if part.is_empty() {
                return Err("found empty requirement".into());
            }
            if let Some(k) = part.strip_prefix('!') {
                let k = k.trim();
                if !valid_key(k) {
                    return Err(format!("invalid label key {k:?}"));
                }
                reqs.push(LabelReq::NotExists(k.to_string()));
                continue;
            }
            if let Some(i) = part.find("!=") {
                let (k, v) = (part[..i].trim(), part[i + 2..].trim());
                if !valid_key(k) || !valid_value(v) {
                    return Err(format!("invalid requirement {part:?}"));
                }
                reqs.push(LabelReq::NotEq(k.into(), v.into()));
                continue;
            }
            if let Some(i) = part.find("==") {
                let (k, v) = (part[..i].trim(), part[i + 2..].trim());
                if !valid_key(k) || !valid_value(v) {
                    return Err(format!("invalid requirement {part:?}"));
                }
                reqs.push(LabelReq::Eq(k.into(), v.into()));
                continue;
            }
            if let Some(i) = part.find('=') {
                let (k, v) = (part[..i].trim(), part[i + 1..].trim());
                if !valid_key(k) || !valid_value(v) {
                    return Err(format!("invalid requirement {part:?}"));
                }
                reqs.push(LabelReq::Eq(k.into(), v.into()));
                continue;
            }
            let mut words = part.splitn(2, char::is_whitespace);
            let key = words.next().unwrap_or("").trim();
            let rest = words.next().unwrap_or("").trim();
            if rest.is_empty() {
                if !valid_key(key) {
                    return Err(format!("invalid label key {key:?}"));
                }
                reqs.push(LabelReq::Exists(key.into()));
                continue;
            }
            if !valid_key(key) {
                return Err(format!("invalid label key {key:?}"));
            }
            if let Some(set) = rest.strip_prefix("notin") {
                reqs.push(LabelReq::NotIn(key.into(), parse_set(set)?));
            } else if let Some(set) = rest.strip_prefix("in") {
                reqs.push(LabelReq::In(key.into(), parse_set(set)?));
            } else {
                return Err(format!("unable to parse requirement: {part:?}"));
            }
        }
        Ok(LabelSelector { reqs })
    }

    /// True when the selector has no requirement.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// True when the labels of `obj` (`metadata.labels`) satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        if self.reqs.is_empty() {
            return true;
        }
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed `fieldSelector`: `field=value`, `field==value`, `field!=value`, comma-separated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses a field selector; `allowed` tells whether a field may be selected on.
    pub fn parse(s: &str, allowed: impl Fn(&str) -> bool) -> Result<Self, String> {
        let mut reqs = Vec::new();
        let s = s.trim();
        if s.is_empty() {
            return Ok(FieldSelector { reqs });
        }
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, eq, value) = if let Some(i) = part.find("!=") {
                (&part[..i], false, &part[i + 2..])
            } else if let Some(i) = part.find("==") {
                (&part[..i], true, &part[i + 2..])
            } else if let Some(i) = part.find('=') {
                (&part[..i], true, &part[i + 1..])
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if !allowed(field) {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    /// True when no requirement was given.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// The value required for `metadata.name`, if any (lets lookups skip a scan).
    pub fn required_name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|(f, eq, _)| f == "metadata.name" && *eq)
            .map(|(_, _, v)| v.as_str())
    }

    /// True when `obj` satisfies every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(field, eq, value)| {
            let actual = field_value(obj, field);
            (actual == *value) == *eq
        })
    }
}

/// The string value of a dotted field path (`involvedObject.name`), `""` when absent.
pub fn field_value(obj: &Value, field: &str) -> String {
    // events.k8s.io Events carry `regarding` where core Events carry `involvedObject`.
    let field = match (
        field.strip_prefix("involvedObject."),
        field.strip_prefix("regarding."),
    ) {
        (Some(rest), _)
            if obj.get("involvedObject").is_none() && obj.get("regarding").is_some() =>
        {
            format!("regarding.{rest}")
        }
        (_, Some(rest))
            if obj.get("regarding").is_none() && obj.get("involvedObject").is_some() =>
        {
            format!("involvedObject.{rest}")
        }
        _ => field.to_string(),
    };
    let mut cur = obj;
    for seg in field.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    // The `source` label of core Events is `source.component`.
    if field == "source"
        && let Some(c) = cur.get("component")
    {
        cur = c;
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "labels": labels}})
    }

    #[test]
    fn label_selector_supports_every_operator() {
        let o = obj(json!({"app": "demo", "tier": "web"}));
        for (sel, want) in [
            ("", true),
            ("app=demo", true),
            ("app==demo", true),
            ("app!=demo", false),
            ("app in (demo,x)", true),
            ("app notin (demo,x)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=demo,tier=db", false),
            ("missing notin (a)", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn label_selector_rejects_bad_syntax() {
        for sel in ["app in demo", "a=(b", "=x", "app=de mo", ","] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel}");
        }
    }

    #[test]
    fn field_selector_rejects_unknown_fields_and_matches_known_ones() {
        let allowed = |f: &str| f == "metadata.name" || f == "involvedObject.kind";
        assert!(FieldSelector::parse("spec.x=1", allowed).is_err());
        let o = json!({"metadata": {"name": "a"}, "involvedObject": {"kind": "Pod"}});
        let s = FieldSelector::parse("metadata.name=a,involvedObject.kind!=Node", allowed).unwrap();
        assert!(s.matches(&o));
        assert_eq!(s.required_name(), Some("a"));
        let s = FieldSelector::parse("metadata.name==b", allowed).unwrap();
        assert!(!s.matches(&o));
    }
}
