//! Decoding of the protobuf request bodies kubectl's typed commands and helm send (EMULATOR.md
//! §7): the `k8s\0` envelope (`runtime.Unknown`) around a core/v1 Secret, ConfigMap, Namespace
//! or ServiceAccount, or a meta/v1 DeleteOptions. Answers stay JSON.

use serde_json::{Map, Value, json};

/// The envelope's magic prefix.
const MAGIC: &[u8] = b"k8s\0";

/// True when a body starts with the protobuf envelope.
pub fn is_envelope(body: &[u8]) -> bool {
    body.starts_with(MAGIC)
}

#[derive(Debug)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or("truncated varint")?;
            self.buf = rest;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err("varint too long".into())
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        let f = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.skip(8)?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                if len > self.buf.len() {
                    return Err("truncated field".into());
                }
                let (b, rest) = self.buf.split_at(len);
                self.buf = rest;
                Field::Bytes(b)
            }
            5 => {
                self.skip(4)?;
                Field::Fixed
            }
            t => return Err(format!("unsupported wire type {t}")),
        };
        Ok(Some((field, f)))
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        if n > self.buf.len() {
            return Err("truncated field".into());
        }
        self.buf = &self.buf[n..];
        Ok(())
    }
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut r = Reader { buf };
    let mut out = Vec::new();
    while let Some(f) = r.next()? {
        out.push(f);
    }
    Ok(out)
}

fn string(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "a string field is not UTF-8".to_string())
}

/// Standard base64 with padding (Secret `data` values in JSON).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// A map entry `{key 1, value 2}`; `bytes_value` renders the value as base64.
fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), String> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(k)) => key = string(k)?,
            (2, Field::Bytes(v)) if bytes_value => value = Value::String(base64(v)),
            (2, Field::Bytes(v)) => value = Value::String(string(v)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn insert_entry(
    obj: &mut Map<String, Value>,
    field: &str,
    b: &[u8],
    bytes_value: bool,
) -> Result<(), String> {
    let (k, v) = map_entry(b, bytes_value)?;
    let m = obj
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(m) = m.as_object_mut() {
        m.insert(k, v);
    }
    Ok(())
}

fn push_string(obj: &mut Map<String, Value>, field: &str, b: &[u8]) -> Result<(), String> {
    let s = string(b)?;
    let a = obj.entry(field).or_insert_with(|| Value::Array(Vec::new()));
    if let Some(a) = a.as_array_mut() {
        a.push(Value::String(s));
    }
    Ok(())
}

fn set_nonempty(obj: &mut Map<String, Value>, field: &str, b: &[u8]) -> Result<(), String> {
    let s = string(b)?;
    if !s.is_empty() {
        obj.insert(field.into(), Value::String(s));
    }
    Ok(())
}

fn owner_reference(b: &[u8]) -> Result<Value, String> {
    let mut o = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => set_nonempty(&mut o, "kind", v)?,
            (3, Field::Bytes(v)) => set_nonempty(&mut o, "name", v)?,
            (4, Field::Bytes(v)) => set_nonempty(&mut o, "uid", v)?,
            (5, Field::Bytes(v)) => set_nonempty(&mut o, "apiVersion", v)?,
            (6, Field::Varint(v)) => {
                o.insert("controller".into(), json!(v != 0));
            }
            (7, Field::Varint(v)) => {
                o.insert("blockOwnerDeletion".into(), json!(v != 0));
            }
            _ => {}
        }
    }
    Ok(Value::Object(o))
}

fn object_meta(b: &[u8]) -> Result<Value, String> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(v)) => set_nonempty(&mut m, "name", v)?,
            (2, Field::Bytes(v)) => set_nonempty(&mut m, "generateName", v)?,
            (3, Field::Bytes(v)) => set_nonempty(&mut m, "namespace", v)?,
            (5, Field::Bytes(v)) => set_nonempty(&mut m, "uid", v)?,
            (6, Field::Bytes(v)) => set_nonempty(&mut m, "resourceVersion", v)?,
            (11, Field::Bytes(v)) => insert_entry(&mut m, "labels", v, false)?,
            (12, Field::Bytes(v)) => insert_entry(&mut m, "annotations", v, false)?,
            (13, Field::Bytes(v)) => {
                let r = owner_reference(v)?;
                let a = m
                    .entry("ownerReferences")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Some(a) = a.as_array_mut() {
                    a.push(r);
                }
            }
            (14, Field::Bytes(v)) => push_string(&mut m, "finalizers", v)?,
            // uid/timestamps/generation/managedFields are the server's: ignored.
            _ => {}
        }
    }
    Ok(Value::Object(m))
}

fn decode_kind(kind: &str, raw: &[u8]) -> Result<Map<String, Value>, String> {
    let mut o = Map::new();
    for (n, f) in fields(raw)? {
        match (kind, n, f) {
            (_, 1, Field::Bytes(v)) if kind != "DeleteOptions" => {
                o.insert("metadata".into(), object_meta(v)?);
            }
            ("Secret", 2, Field::Bytes(v)) => insert_entry(&mut o, "data", v, true)?,
            ("Secret", 3, Field::Bytes(v)) => set_nonempty(&mut o, "type", v)?,
            ("Secret", 4, Field::Bytes(v)) => insert_entry(&mut o, "stringData", v, false)?,
            ("Secret", 5, Field::Varint(v)) | ("ConfigMap", 4, Field::Varint(v)) => {
                o.insert("immutable".into(), json!(v != 0));
            }
            ("ConfigMap", 2, Field::Bytes(v)) => insert_entry(&mut o, "data", v, false)?,
            ("ConfigMap", 3, Field::Bytes(v)) => insert_entry(&mut o, "binaryData", v, true)?,
            ("Namespace", 2, Field::Bytes(v)) => {
                let mut spec = Map::new();
                for (sn, sf) in fields(v)? {
                    if let (1, Field::Bytes(s)) = (sn, sf) {
                        push_string(&mut spec, "finalizers", s)?;
                    }
                }
                o.insert("spec".into(), Value::Object(spec));
            }
            ("ServiceAccount", 3, Field::Bytes(v)) => {
                let mut r = Map::new();
                for (rn, rf) in fields(v)? {
                    if let (1, Field::Bytes(s)) = (rn, rf) {
                        set_nonempty(&mut r, "name", s)?;
                    }
                }
                let a = o
                    .entry("imagePullSecrets")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Some(a) = a.as_array_mut() {
                    a.push(Value::Object(r));
                }
            }
            ("ServiceAccount", 4, Field::Varint(v)) => {
                o.insert("automountServiceAccountToken".into(), json!(v != 0));
            }
            ("DeleteOptions", 1, Field::Varint(v)) => {
                o.insert("gracePeriodSeconds".into(), json!(v as i64));
            }
            ("DeleteOptions", 2, Field::Bytes(v)) => {
                let mut p = Map::new();
                for (pn, pf) in fields(v)? {
                    match (pn, pf) {
                        (1, Field::Bytes(s)) => set_nonempty(&mut p, "uid", s)?,
                        (2, Field::Bytes(s)) => set_nonempty(&mut p, "resourceVersion", s)?,
                        _ => {}
                    }
                }
                o.insert("preconditions".into(), Value::Object(p));
            }
            ("DeleteOptions", 3, Field::Varint(v)) => {
                o.insert("orphanDependents".into(), json!(v != 0));
            }
            ("DeleteOptions", 4, Field::Bytes(v)) => set_nonempty(&mut o, "propagationPolicy", v)?,
            ("DeleteOptions", 5, Field::Bytes(v)) => push_string(&mut o, "dryRun", v)?,
            _ => {}
        }
    }
    Ok(o)
}

/// Decodes an enveloped body into the JSON object it stands for. Kinds other than Secret,
/// ConfigMap, Namespace, ServiceAccount and DeleteOptions are refused.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let inner = body.strip_prefix(MAGIC).ok_or("not a protobuf envelope")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in fields(inner)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (tn, tf) in fields(tm)? {
                    match (tn, tf) {
                        (1, Field::Bytes(v)) => api_version = string(v)?,
                        (2, Field::Bytes(v)) => kind = string(v)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(v)) => raw = v,
            _ => {}
        }
    }
    if !matches!(
        kind.as_str(),
        "Secret" | "ConfigMap" | "Namespace" | "ServiceAccount" | "DeleteOptions"
    ) {
        return Err(format!(
            "protobuf bodies of kind {kind:?} are not supported"
        ));
    }
    let mut o = decode_kind(&kind, raw)?;
    o.insert("apiVersion".into(), Value::String(api_version));
    o.insert("kind".into(), Value::String(kind));
    Ok(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(field: u64, wt: u64) -> Vec<u8> {
        varint(field << 3 | wt)
    }

    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes(field: u64, b: &[u8]) -> Vec<u8> {
        let mut out = key(field, 2);
        out.extend(varint(b.len() as u64));
        out.extend_from_slice(b);
        out
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = bytes(1, k.as_bytes());
        e.extend(bytes(2, v));
        e
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = bytes(1, api_version.as_bytes());
        tm.extend(bytes(2, kind.as_bytes()));
        let mut out = MAGIC.to_vec();
        out.extend(bytes(1, &tm));
        out.extend(bytes(2, raw));
        out
    }

    #[test]
    fn secret_with_metadata_labels_and_bytes_decodes_to_json() {
        let mut meta = bytes(1, b"sh.helm.release.v1.demo.v1");
        meta.extend(bytes(3, b"default"));
        meta.extend(bytes(6, b""));
        meta.extend(bytes(11, &entry("owner", b"helm")));
        meta.extend(bytes(11, &entry("status", b"deployed")));
        let mut raw = bytes(1, &meta);
        raw.extend(bytes(2, &entry("release", b"hello")));
        raw.extend(bytes(3, b"helm.sh/release.v1"));
        let v = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                   "metadata": {"name": "sh.helm.release.v1.demo.v1", "namespace": "default",
                                "labels": {"owner": "helm", "status": "deployed"}},
                   "data": {"release": "aGVsbG8="}})
        );
    }

    #[test]
    fn delete_options_decode_propagation_and_preconditions() {
        let mut raw = key(1, 0);
        raw.extend(varint(0));
        raw.extend(bytes(2, &bytes(2, b"42")));
        raw.extend(bytes(4, b"Background"));
        let v = decode(&envelope("meta.k8s.io/v1", "DeleteOptions", &raw)).unwrap();
        assert_eq!(v["propagationPolicy"], "Background");
        assert_eq!(v["preconditions"]["resourceVersion"], "42");
    }

    #[test]
    fn truncated_or_unknown_bodies_are_errors_not_panics() {
        assert!(decode(b"k8s\0\x0a\xff").is_err());
        assert!(decode(&envelope("apps/v1", "Deployment", &[])).is_err());
        assert!(decode(b"{}").is_err());
        for cut in 0..40 {
            let full = envelope("v1", "ConfigMap", &bytes(2, &entry("a", b"b")));
            let _ = decode(&full[..cut.min(full.len())]);
        }
    }

    #[test]
    fn base64_pads_like_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}
