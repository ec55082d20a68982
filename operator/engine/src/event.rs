//! Decoding of watch event lines and list items, done once per event and without building a
//! JSON tree: the envelope `{"type":…, "object":…}` is parsed with the object kept raw, and only
//! the metadata fields the cache needs are extracted from it.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::cache::{CachedObject, ObjectFields};
use crate::request::ApiStatus;

/// The metadata the cache needs, borrowed from the line where possible.
#[derive(Debug, Deserialize)]
pub struct ObjectMeta<'a> {
    /// `metadata.name`.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// `metadata.namespace`.
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
    /// `metadata.uid`.
    #[serde(borrow, default)]
    pub uid: Option<Cow<'a, str>>,
    /// `metadata.resourceVersion`.
    #[serde(borrow, default, rename = "resourceVersion")]
    pub resource_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ObjectHead<'a> {
    #[serde(borrow)]
    metadata: &'a RawValue,
}

#[derive(Deserialize)]
struct EventEnvelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    object: &'a RawValue,
}

/// A decoded object: its metadata and the bytes to store.
#[derive(Debug)]
pub struct DecodedObject<'a> {
    /// The metadata.
    pub meta: ObjectMeta<'a>,
    /// The whole object, or its metadata only, as the cache stores it.
    pub stored: CachedObject,
}

/// Decodes one object (a list item or a watch event's object). `metadata_only` stores only the
/// `metadata` JSON.
pub fn decode_object<'a>(
    raw: &'a RawValue,
    metadata_only: bool,
) -> Result<DecodedObject<'a>, serde_json::Error> {
    let head: ObjectHead<'a> = serde_json::from_str(raw.get())?;
    let meta: ObjectMeta<'a> = serde_json::from_str(head.metadata.get())?;
    let stored_json = if metadata_only {
        head.metadata.get()
    } else {
        raw.get()
    };
    let fields = ObjectFields {
        namespace: meta.namespace.as_deref(),
        name: &meta.name,
        uid: meta.uid.as_deref().unwrap_or(""),
        resource_version: meta.resource_version.as_deref().unwrap_or(""),
    };
    let stored = CachedObject::new(stored_json, fields).map_err(serde::de::Error::custom)?;
    Ok(DecodedObject { meta, stored })
}

/// Decodes only the metadata of an object.
pub fn decode_meta(raw: &RawValue) -> Result<ObjectMeta<'_>, serde_json::Error> {
    let head: ObjectHead<'_> = serde_json::from_str(raw.get())?;
    serde_json::from_str(head.metadata.get())
}

/// What one watch line says.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    /// ADDED or MODIFIED.
    Upsert {
        /// True for ADDED.
        added: bool,
        /// The object.
        object: DecodedObject<'a>,
    },
    /// DELETED (only the metadata is decoded: nothing is stored).
    Deleted(ObjectMeta<'a>),
    /// BOOKMARK with its resourceVersion.
    Bookmark(Option<Cow<'a, str>>),
    /// ERROR with its Status.
    Error(ApiStatus),
    /// A well-formed event whose object could not be decoded (skipped and counted).
    BadObject,
    /// An unknown event type (ignored).
    Unknown,
}

/// The line is not a watch event at all.
#[derive(Debug, thiserror::Error)]
#[error("malformed watch event line")]
pub struct Malformed(#[source] pub serde_json::Error);

/// Decodes one watch line.
pub fn decode_event(line: &[u8], metadata_only: bool) -> Result<WatchEvent<'_>, Malformed> {
    let envelope: EventEnvelope<'_> = serde_json::from_slice(line).map_err(Malformed)?;
    let event = match &*envelope.kind {
        "ADDED" | "MODIFIED" => match decode_object(envelope.object, metadata_only) {
            Ok(object) => WatchEvent::Upsert {
                added: envelope.kind == "ADDED",
                object,
            },
            Err(_) => WatchEvent::BadObject,
        },
        "DELETED" => match decode_meta(envelope.object) {
            Ok(meta) => WatchEvent::Deleted(meta),
            Err(_) => WatchEvent::BadObject,
        },
        "BOOKMARK" => match serde_json::from_str::<ObjectHead<'_>>(envelope.object.get())
            .and_then(|head| serde_json::from_str::<BookmarkMeta<'_>>(head.metadata.get()))
        {
            Ok(meta) => WatchEvent::Bookmark(meta.resource_version),
            Err(_) => WatchEvent::BadObject,
        },
        "ERROR" => WatchEvent::Error(ApiStatus::parse(
            500,
            envelope.object.get().as_bytes(),
            None,
        )),
        _ => WatchEvent::Unknown,
    };
    Ok(event)
}

#[derive(Deserialize)]
struct BookmarkMeta<'a> {
    #[serde(borrow, default, rename = "resourceVersion")]
    resource_version: Option<Cow<'a, str>>,
}

/// One page of a list response.
#[derive(Debug, Deserialize)]
pub struct ListPage<'a> {
    /// The list's metadata.
    #[serde(borrow, default)]
    pub metadata: Option<ListMeta<'a>>,
    /// The items, raw.
    #[serde(borrow, default)]
    pub items: Option<Vec<&'a RawValue>>,
}

/// The metadata of a list page.
#[derive(Debug, Deserialize)]
pub struct ListMeta<'a> {
    /// The list's resourceVersion.
    #[serde(borrow, default, rename = "resourceVersion")]
    pub resource_version: Option<Cow<'a, str>>,
    /// The continue token of the next page, if any.
    #[serde(borrow, default, rename = "continue")]
    pub continue_token: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_event_keeps_whole_object_and_metadata_fields() {
        let line = br#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"ns","uid":"u1","resourceVersion":"7"},"data":{"k":"v"}}}"#;
        let Ok(WatchEvent::Upsert { added, object }) = decode_event(line, false) else {
            panic!("not an upsert");
        };
        assert!(added);
        assert_eq!(object.meta.name, "a");
        assert_eq!(object.meta.namespace.as_deref(), Some("ns"));
        assert_eq!(object.stored.uid(), "u1");
        assert_eq!(object.stored.resource_version(), "7");
        assert!(object.stored.raw().starts_with(br#"{"apiVersion""#));
    }

    #[test]
    fn metadata_only_stores_only_the_metadata() {
        let line = br#"{"type":"MODIFIED","object":{"kind":"PartialObjectMetadata","metadata":{"name":"a","uid":"u1","resourceVersion":"8"},"data":{"big":"xxxx"}}}"#;
        let Ok(WatchEvent::Upsert { object, .. }) = decode_event(line, true) else {
            panic!("not an upsert");
        };
        assert_eq!(
            object.stored.raw(),
            br#"{"name":"a","uid":"u1","resourceVersion":"8"}"#
        );
    }

    #[test]
    fn bookmark_error_bad_object_and_malformed_lines_are_told_apart() {
        let bookmark = br#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","metadata":{"resourceVersion":"12"}}}"#;
        assert!(
            matches!(decode_event(bookmark, false), Ok(WatchEvent::Bookmark(Some(rv))) if rv == "12")
        );
        let error = br#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}"#;
        assert!(matches!(decode_event(error, false), Ok(WatchEvent::Error(s)) if s.code == 410));
        let bad = br#"{"type":"ADDED","object":{"metadata":42}}"#;
        assert!(matches!(
            decode_event(bad, false),
            Ok(WatchEvent::BadObject)
        ));
        assert!(decode_event(b"{not json", false).is_err());
    }

    #[test]
    fn list_page_gives_items_and_continue() {
        let page = br#"{"kind":"ConfigMapList","metadata":{"resourceVersion":"5","continue":"abc"},"items":[{"metadata":{"name":"a","uid":"1","resourceVersion":"4"}}]}"#;
        let Ok(parsed) = serde_json::from_slice::<ListPage<'_>>(page) else {
            panic!("list did not parse");
        };
        let meta = parsed.metadata.unwrap_or(ListMeta {
            resource_version: None,
            continue_token: None,
        });
        assert_eq!(meta.resource_version.as_deref(), Some("5"));
        assert_eq!(meta.continue_token.as_deref(), Some("abc"));
        assert_eq!(parsed.items.map(|i| i.len()), Some(1));
    }

    mod prop {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Arbitrary bytes never panic the decoder, in either mode.
            #[test]
            fn arbitrary_lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..512), meta in any::<bool>()) {
                let _ = decode_event(&line, meta);
            }

            /// Well-formed events with arbitrary names and versions keep their metadata exactly.
            #[test]
            fn metadata_survives_decoding(name in "[a-z0-9.-]{1,40}", ns in "[a-z0-9-]{0,20}", uid in "[a-f0-9-]{1,36}", rv in "[0-9]{1,12}") {
                let line = format!(r#"{{"type":"MODIFIED","object":{{"metadata":{{"name":"{name}","namespace":"{ns}","uid":"{uid}","resourceVersion":"{rv}"}},"spec":{{"x":[1,2,{{"y":"z"}}]}}}}}}"#);
                let Ok(WatchEvent::Upsert { object, .. }) = decode_event(line.as_bytes(), false) else {
                    return Err(TestCaseError::fail("not an upsert"));
                };
                prop_assert_eq!(&*object.meta.name, name.as_str());
                prop_assert_eq!(object.meta.namespace.as_deref(), Some(ns.as_str()));
                prop_assert_eq!(object.stored.uid(), uid.as_str());
                prop_assert_eq!(object.stored.resource_version(), rv.as_str());
                prop_assert_eq!(object.stored.name(), name.as_str());
                prop_assert_eq!(object.stored.namespace(), ns.as_str());
            }

            /// Escaped strings are unescaped by the decoder, so the cache keeps a copy of them
            /// after the JSON and still answers with the decoded text.
            #[test]
            fn escaped_metadata_is_kept_decoded(name in "[a-z]{1,10}", rv in "[0-9]{1,6}") {
                let line = format!(r#"{{"type":"ADDED","object":{{"metadata":{{"name":"\u0061{name}","uid":"u\"1","resourceVersion":"{rv}"}}}}}}"#);
                let Ok(WatchEvent::Upsert { object, .. }) = decode_event(line.as_bytes(), true) else {
                    return Err(TestCaseError::fail("not an upsert"));
                };
                let expected = format!("a{name}");
                prop_assert_eq!(object.stored.name(), expected.as_str());
                prop_assert_eq!(object.stored.uid(), "u\"1");
                prop_assert_eq!(object.stored.namespace(), "");
                prop_assert_eq!(object.stored.resource_version(), rv.as_str());
                let starts_with_name = object.stored.raw().starts_with(br#"{"name""#);
                prop_assert!(starts_with_name);
            }
        }
    }
}
