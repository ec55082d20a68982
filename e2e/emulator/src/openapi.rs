//! OpenAPI v3 documents (`/openapi/v3` and per group-version), as kubectl apply/explain and helm
//! need them (EMULATOR.md §1.3).
//!
//! kubectl decides that the server validates fields itself when the group-version document has
//! a `patch` operation carrying the kind's `x-kubernetes-group-version-kind` and a
//! `fieldValidation` parameter; `kubectl explain` walks `components.schemas`, found by the same
//! extension. CRD kinds get their `openAPIV3Schema` (with `apiVersion`, `kind` and `metadata`
//! added, `metadata` referring to `ObjectMeta`); built-in kinds get an open object schema.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::registry::ResourceInfo;

/// `GET /openapi/v3`: one entry per served group-version, each URL carrying a hash of its
/// document's content.
pub fn root(resources: &[ResourceInfo]) -> Value {
    let group_versions: BTreeSet<(&str, &str)> = resources
        .iter()
        .filter(|r| !r.plural.contains('/'))
        .map(|r| (r.group.as_str(), r.version.as_str()))
        .collect();
    let mut paths = Map::new();
    for (group, version) in group_versions {
        let Some(doc) = group_version_doc(group, version, resources) else {
            continue;
        };
        let key = group_version_key(group, version);
        let url = format!("/openapi/v3/{key}?hash={}", content_hash(&doc));
        paths.insert(key, json!({ "serverRelativeURL": url }));
    }
    json!({ "paths": paths })
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`; `None` when no resource of
/// that group-version is served.
pub fn group_version_doc(group: &str, version: &str, resources: &[ResourceInfo]) -> Option<Value> {
    let mut served: Vec<&ResourceInfo> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version && !r.plural.contains('/'))
        .collect();
    if served.is_empty() {
        return None;
    }
    served.sort_by(|a, b| a.plural.cmp(&b.plural));

    let mut paths = Map::new();
    let mut schemas = meta_schemas();
    for r in served {
        add_paths(r, &mut paths);
        schemas.insert(definition_name(r, &r.kind), kind_schema(r));
        schemas.insert(definition_name(r, &r.list_kind), list_schema(r));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `api/v1` or `apis/{group}/{version}`, the key of a group-version in the root document.
pub fn group_version_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A hex hash of `doc`'s content (64-bit FNV-1a over its JSON text): any change to the
/// document gives a new URL, so clients never reuse a stale cached copy.
pub fn content_hash(doc: &Value) -> String {
    let text = doc.to_string();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016X}")
}

/// The `components.schemas` key of `kind` in `r`'s group-version, as the apiserver names them:
/// `io.k8s.api.core.v1.ConfigMap`, `io.k8s.api.apps.v1.Deployment`, and for custom resources
/// the reversed group, `dev.watchpool.v1alpha1.WatchPolicy`.
pub fn definition_name(r: &ResourceInfo, kind: &str) -> String {
    let prefix = if r.custom {
        reversed(&r.group)
    } else if r.group.is_empty() {
        "io.k8s.api.core".to_string()
    } else if r.group == "apiextensions.k8s.io" {
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions".to_string()
    } else if r.group.ends_with(".k8s.io") || !r.group.contains('.') {
        let first = r.group.split('.').next().unwrap_or(&r.group);
        format!("io.k8s.api.{first}")
    } else {
        reversed(&r.group)
    };
    format!("{prefix}.{}.{kind}", r.version)
}

fn reversed(group: &str) -> String {
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

fn meta_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{META}.{name}") })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn gvk(r: &ResourceInfo, kind: &str) -> Value {
    json!({ "group": r.group, "version": r.version, "kind": kind })
}

fn query_param(name: &str, type_: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": type_, "uniqueItems": true},
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "description": description,
        "required": true,
        "schema": {"type": "string", "uniqueItems": true},
    })
}

fn dry_run() -> Value {
    query_param(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
    )
}

fn field_manager() -> Value {
    query_param(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes.",
    )
}

fn field_validation() -> Value {
    query_param(
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
    )
}

fn list_params() -> Vec<Value> {
    vec![
        query_param(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
        ),
        query_param(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server.",
        ),
        query_param(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields.",
        ),
        query_param(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels.",
        ),
        query_param(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call.",
        ),
        query_param(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query_param(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query_param(
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true`.",
        ),
        query_param(
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call.",
        ),
        query_param(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

fn json_content(schema: Value) -> Value {
    json!({
        "application/json": {"schema": schema.clone()},
        "application/yaml": {"schema": schema},
    })
}

fn response(code: &str, schema: Value) -> (String, Value) {
    let description = match code {
        "201" => "Created",
        "202" => "Accepted",
        _ => "OK",
    };
    (
        code.to_string(),
        json!({"description": description, "content": json_content(schema)}),
    )
}

fn responses(list: Vec<(String, Value)>) -> Value {
    let mut map: Map<String, Value> = list.into_iter().collect();
    map.insert("401".to_string(), json!({"description": "Unauthorized"}));
    Value::Object(map)
}

struct OpCtx<'a> {
    r: &'a ResourceInfo,
    kind_ref: Value,
    list_ref: Value,
    tag: String,
    /// Operation id suffix, e.g. `NamespacedWatchPolicy`.
    id_suffix: String,
}

impl OpCtx<'_> {
    fn op(&self, verb: &str, action: &str, description: String) -> Map<String, Value> {
        let mut op = Map::new();
        op.insert("tags".to_string(), json!([self.tag]));
        op.insert("description".to_string(), json!(description));
        op.insert(
            "operationId".to_string(),
            json!(format!("{verb}{}", self.id_suffix)),
        );
        op.insert("x-kubernetes-action".to_string(), json!(action));
        op.insert(
            "x-kubernetes-group-version-kind".to_string(),
            gvk(self.r, &self.r.kind),
        );
        op
    }

    fn get_item(&self, what: &str) -> Value {
        let mut op = self.op(
            "read",
            "get",
            format!("read {what} of the specified {}", self.r.kind),
        );
        op.insert(
            "responses".to_string(),
            responses(vec![response("200", self.kind_ref.clone())]),
        );
        Value::Object(op)
    }

    fn put_item(&self, what: &str) -> Value {
        let mut op = self.op(
            "replace",
            "put",
            format!("replace {what} of the specified {}", self.r.kind),
        );
        op.insert(
            "parameters".to_string(),
            json!([dry_run(), field_manager(), field_validation()]),
        );
        op.insert(
            "requestBody".to_string(),
            json!({"content": {"*/*": {"schema": self.kind_ref}}, "required": true}),
        );
        op.insert(
            "responses".to_string(),
            responses(vec![
                response("200", self.kind_ref.clone()),
                response("201", self.kind_ref.clone()),
            ]),
        );
        Value::Object(op)
    }

    fn patch_item(&self, what: &str) -> Value {
        let mut op = self.op(
            "patch",
            "patch",
            format!("partially update {what} of the specified {}", self.r.kind),
        );
        op.insert(
            "parameters".to_string(),
            json!([
                dry_run(),
                field_manager(),
                field_validation(),
                query_param(
                    "force",
                    "boolean",
                    "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.",
                ),
            ]),
        );
        // Custom resources take no strategic merge patch; for built-ins kubectl then computes
        // its strategic patches from its own types rather than from these open schemas.
        let patch = meta_ref("Patch");
        op.insert(
            "requestBody".to_string(),
            json!({
                "content": {
                    "application/apply-patch+yaml": {"schema": patch},
                    "application/json-patch+json": {"schema": patch},
                    "application/merge-patch+json": {"schema": patch},
                },
                "required": true,
            }),
        );
        op.insert(
            "responses".to_string(),
            responses(vec![
                response("200", self.kind_ref.clone()),
                response("201", self.kind_ref.clone()),
            ]),
        );
        Value::Object(op)
    }

    fn delete_item(&self) -> Value {
        let mut op = self.op("delete", "delete", format!("delete a {}", self.r.kind));
        op.insert(
            "parameters".to_string(),
            json!([
                dry_run(),
                query_param(
                    "gracePeriodSeconds",
                    "integer",
                    "The duration in seconds before the object should be deleted."
                ),
                query_param(
                    "propagationPolicy",
                    "string",
                    "Whether and how garbage collection will be performed."
                ),
            ]),
        );
        op.insert(
            "requestBody".to_string(),
            json!({"content": {"*/*": {"schema": meta_ref("DeleteOptions")}}}),
        );
        op.insert(
            "responses".to_string(),
            responses(vec![
                response("200", self.kind_ref.clone()),
                response("202", self.kind_ref.clone()),
            ]),
        );
        Value::Object(op)
    }

    fn list(&self, all_namespaces: bool) -> Value {
        let mut op = self.op(
            "list",
            "list",
            format!("list or watch objects of kind {}", self.r.kind),
        );
        if all_namespaces {
            op.insert(
                "operationId".to_string(),
                json!(format!("list{}ForAllNamespaces", self.r.kind)),
            );
        }
        op.insert("parameters".to_string(), json!(list_params()));
        op.insert(
            "responses".to_string(),
            responses(vec![response("200", self.list_ref.clone())]),
        );
        Value::Object(op)
    }

    fn create(&self) -> Value {
        let mut op = self.op("create", "post", format!("create a {}", self.r.kind));
        op.insert(
            "parameters".to_string(),
            json!([dry_run(), field_manager(), field_validation()]),
        );
        op.insert(
            "requestBody".to_string(),
            json!({"content": {"*/*": {"schema": self.kind_ref}}, "required": true}),
        );
        op.insert(
            "responses".to_string(),
            responses(vec![
                response("200", self.kind_ref.clone()),
                response("201", self.kind_ref.clone()),
                response("202", self.kind_ref.clone()),
            ]),
        );
        Value::Object(op)
    }

    fn delete_collection(&self) -> Value {
        let mut op = self.op(
            "deletecollection",
            "deletecollection",
            format!("delete collection of {}", self.r.kind),
        );
        let mut params = list_params();
        params.push(dry_run());
        op.insert("parameters".to_string(), json!(params));
        op.insert(
            "responses".to_string(),
            responses(vec![response("200", meta_ref("Status"))]),
        );
        Value::Object(op)
    }
}

fn add_paths(r: &ResourceInfo, paths: &mut Map<String, Value>) {
    let base = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let tag = if r.group.is_empty() {
        format!("core_{}", r.version)
    } else {
        format!("{}_{}", r.group, r.version)
    };
    let name_param = path_param("name", &format!("name of the {}", r.kind));
    let ns_param = path_param(
        "namespace",
        "object name and auth scope, such as for teams and projects",
    );
    let pretty = query_param(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    );
    let ctx = OpCtx {
        r,
        kind_ref: schema_ref(&definition_name(r, &r.kind)),
        list_ref: schema_ref(&definition_name(r, &r.list_kind)),
        tag,
        id_suffix: if r.namespaced {
            format!("Namespaced{}", r.kind)
        } else {
            r.kind.clone()
        },
    };

    let (collection, scope_params) = if r.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", r.plural),
            vec![ns_param, pretty.clone()],
        )
    } else {
        (format!("{base}/{}", r.plural), vec![pretty.clone()])
    };
    paths.insert(
        collection.clone(),
        json!({
            "get": ctx.list(false),
            "post": ctx.create(),
            "delete": ctx.delete_collection(),
            "parameters": scope_params,
        }),
    );
    let mut item_params = vec![name_param];
    item_params.extend(scope_params.iter().cloned());
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "get": ctx.get_item(""),
            "put": ctx.put_item(""),
            "patch": ctx.patch_item(""),
            "delete": ctx.delete_item(),
            "parameters": item_params,
        }),
    );
    if r.status_subresource {
        let status_ctx = OpCtx {
            id_suffix: format!("{}Status", ctx.id_suffix),
            ..ctx
        };
        paths.insert(
            format!("{collection}/{{name}}/status"),
            json!({
                "get": status_ctx.get_item("status"),
                "put": status_ctx.put_item("status"),
                "patch": status_ctx.patch_item("status"),
                "parameters": item_params,
            }),
        );
        if r.namespaced {
            paths.insert(
                format!("{base}/{}", r.plural),
                json!({"get": status_ctx.list(true), "parameters": [pretty]}),
            );
        }
    } else if r.namespaced {
        paths.insert(
            format!("{base}/{}", r.plural),
            json!({"get": ctx.list(true), "parameters": [pretty]}),
        );
    }
}

fn type_meta_properties() -> Map<String, Value> {
    let mut props = Map::new();
    props.insert(
        "apiVersion".to_string(),
        json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}),
    );
    props.insert(
        "kind".to_string(),
        json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}),
    );
    props
}

/// The schema of `r`'s kind: the CRD's `openAPIV3Schema` with the type and object metadata
/// fields added, or an open object for built-ins.
fn kind_schema(r: &ResourceInfo) -> Value {
    let mut schema = match &r.schema {
        Some(Value::Object(map)) => map.clone(),
        _ => {
            let mut open = match builtin_schema(r) {
                Some(Value::Object(known)) => known,
                _ => {
                    let mut open = Map::new();
                    open.insert(
                        "description".to_string(),
                        json!(format!(
                            "{} is served by the emulator without a detailed schema.",
                            r.kind
                        )),
                    );
                    open
                }
            };
            // Built-in schemas stay open: the emulator stores whatever a client sends.
            open.insert(
                "x-kubernetes-preserve-unknown-fields".to_string(),
                json!(true),
            );
            open
        }
    };
    schema.insert("type".to_string(), json!("object"));
    let mut props = match schema.remove("properties") {
        Some(Value::Object(p)) => p,
        _ => Map::new(),
    };
    for (k, v) in type_meta_properties() {
        props.insert(k, v);
    }
    props.insert(
        "metadata".to_string(),
        json!({
            "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            "allOf": [meta_ref("ObjectMeta")],
            "default": {},
        }),
    );
    schema.insert("properties".to_string(), Value::Object(props));
    schema.insert(
        "x-kubernetes-group-version-kind".to_string(),
        json!([gvk(r, &r.kind)]),
    );
    Value::Object(schema)
}

fn object_field(description: &str, properties: Value) -> Value {
    json!({"type": "object", "description": description, "properties": properties})
}

fn int_field(description: &str) -> Value {
    json!({"type": "integer", "format": "int32", "description": description})
}

fn bool_field(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

/// Descriptions and main fields of a few core kinds, so that `kubectl explain` has something to
/// say about them; `None` for the others.
fn builtin_schema(r: &ResourceInfo) -> Option<Value> {
    let schema = match (r.group.as_str(), r.kind.as_str()) {
        ("", "ConfigMap") => json!({
            "description": "ConfigMap holds configuration data for pods to consume.",
            "properties": {
                "data": string_map("Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field."),
                "binaryData": {"type": "object", "description": "BinaryData contains the binary data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values are base64-encoded.", "additionalProperties": {"type": "string", "format": "byte"}},
                "immutable": bool_field("Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated (only object metadata can be modified)."),
            },
        }),
        ("", "Secret") => json!({
            "description": "Secret holds secret data of a certain type. The total bytes of the values in the Data field must be less than MaxSecretSize bytes.",
            "properties": {
                "data": {"type": "object", "description": "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values are base64-encoded.", "additionalProperties": {"type": "string", "format": "byte"}},
                "stringData": string_map("stringData allows specifying non-binary secret data in string form. It is provided as a write-only input field for convenience: merged into the data field on write, never output when reading."),
                "type": string_field("Used to facilitate programmatic handling of secret data, e.g. `Opaque` or `kubernetes.io/tls`."),
                "immutable": bool_field("Immutable, if set to true, ensures that data stored in the Secret cannot be updated (only object metadata can be modified)."),
            },
        }),
        ("", "Namespace") => json!({
            "description": "Namespace provides a scope for Names. Use of multiple namespaces is optional.",
            "properties": {
                "spec": object_field("Spec defines the behavior of the Namespace.", json!({
                    "finalizers": {"type": "array", "description": "Finalizers is an opaque list of values that must be empty to permanently remove object from storage.", "items": {"type": "string", "default": ""}},
                })),
                "status": object_field("Status describes the current status of a Namespace.", json!({
                    "phase": string_field("Phase is the current lifecycle phase of the namespace: `Active` or `Terminating`."),
                })),
            },
        }),
        ("", "ServiceAccount") => json!({
            "description": "ServiceAccount binds together a name understood by users and perhaps by peripheral systems, for an identity, a principal that can be authenticated and authorized, and a set of secrets.",
            "properties": {
                "automountServiceAccountToken": bool_field("AutomountServiceAccountToken indicates whether pods running as this service account should have an API token automatically mounted."),
                "secrets": {"type": "array", "description": "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            },
        }),
        ("coordination.k8s.io", "Lease") => json!({
            "description": "Lease defines a lease concept.",
            "properties": {
                "spec": object_field("spec contains the specification of the Lease.", json!({
                    "holderIdentity": string_field("holderIdentity contains the identity of the holder of a current lease."),
                    "leaseDurationSeconds": int_field("leaseDurationSeconds is a duration that candidates for a lease need to wait to force acquire it, measured against the time of last observed renewTime."),
                    "acquireTime": {"type": "string", "format": "date-time", "description": "acquireTime is a time when the current lease was acquired."},
                    "renewTime": {"type": "string", "format": "date-time", "description": "renewTime is a time when the current holder of a lease has last updated the lease."},
                    "leaseTransitions": int_field("leaseTransitions is the number of transitions of a lease between holders."),
                })),
            },
        }),
        _ => return None,
    };
    Some(schema)
}

fn list_schema(r: &ResourceInfo) -> Value {
    let mut props = type_meta_properties();
    props.insert(
        "items".to_string(),
        json!({
            "type": "array",
            "description": format!("List of {}.", r.plural),
            "items": {"allOf": [schema_ref(&definition_name(r, &r.kind))], "default": {}},
        }),
    );
    props.insert(
        "metadata".to_string(),
        json!({
            "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            "allOf": [meta_ref("ListMeta")],
            "default": {},
        }),
    );
    json!({
        "type": "object",
        "description": format!("{} is a list of {}", r.list_kind, r.kind),
        "required": ["items"],
        "properties": props,
        "x-kubernetes-group-version-kind": [gvk(r, &r.list_kind)],
    })
}

fn string_field(description: &str) -> Value {
    json!({"type": "string", "default": "", "description": description})
}

fn string_map(description: &str) -> Value {
    json!({"type": "object", "description": description, "additionalProperties": {"type": "string", "default": ""}})
}

/// The `meta/v1` schemas every group-version document refers to.
fn meta_schemas() -> Map<String, Value> {
    let mut schemas = Map::new();
    schemas.insert(
        format!("{META}.ObjectMeta"),
        json!({
            "type": "object",
            "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
            "properties": {
                "annotations": string_map("Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata. They are not queryable and should be preserved when modifying objects. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/annotations"),
                "creationTimestamp": {"type": "string", "format": "date-time", "description": "CreationTimestamp is a timestamp representing the server time when this object was created. Populated by the system. Read-only."},
                "deletionGracePeriodSeconds": {"type": "integer", "format": "int64", "description": "Number of seconds allowed for this object to gracefully terminate before it will be removed from the system. Only set when deletionTimestamp is also set. Read-only."},
                "deletionTimestamp": {"type": "string", "format": "date-time", "description": "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted. It is set by the server when a graceful deletion is requested by the user. Read-only."},
                "finalizers": {"type": "array", "description": "Must be empty before the object is deleted from the registry. Each entry is an identifier for the responsible component that will remove the entry from the list.", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
                "generateName": string_field("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
                "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state. Populated by the system. Read-only."},
                "labels": string_map("Map of string keys and values that can be used to organize and categorize (scope and select) objects. May match selectors of replication controllers and services. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels"),
                "managedFields": {"type": "array", "description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "name": string_field("Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"),
                "namespace": string_field("Namespace defines the space within which each name must be unique. An empty namespace is equivalent to the \"default\" namespace. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces"),
                "ownerReferences": {"type": "array", "description": "List of objects depended by this object. If ALL objects in the list have been deleted, this object will be garbage collected.", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"},
                "resourceVersion": string_field("An opaque value that represents the internal version of this object that can be used by clients to determine when objects have changed. Populated by the system. Read-only."),
                "selfLink": string_field("Deprecated: selfLink is a legacy read-only field that is no longer populated by the system."),
                "uid": string_field("UID is the unique in time and space value for this object. It is typically generated by the server on successful creation of a resource and is not allowed to change on PUT operations. Populated by the system. Read-only."),
            },
        }),
    );
    schemas.insert(
        format!("{META}.ListMeta"),
        json!({
            "type": "object",
            "description": "ListMeta describes metadata that synthetic resources must have, including lists and various status objects.",
            "properties": {
                "continue": string_field("continue may be set if the user set a limit on the number of items returned, and indicates that the server has more data available."),
                "remainingItemCount": {"type": "integer", "format": "int64", "description": "remainingItemCount is the number of subsequent items in the list which are not included in this list response."},
                "resourceVersion": string_field("String that identifies the server's internal version of this object that can be used by clients to determine when objects have changed."),
                "selfLink": string_field("Deprecated: selfLink is a legacy read-only field that is no longer populated by the system."),
            },
        }),
    );
    schemas.insert(
        format!("{META}.Patch"),
        json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}),
    );
    schemas.insert(
        format!("{META}.DeleteOptions"),
        json!({
            "type": "object",
            "description": "DeleteOptions may be provided when deleting an API object.",
            "properties": {
                "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                "dryRun": {"type": "array", "description": "When present, indicates that modifications should not be persisted.", "items": {"type": "string", "default": ""}},
                "gracePeriodSeconds": {"type": "integer", "format": "int64", "description": "The duration in seconds before the object should be deleted."},
                "preconditions": {"type": "object", "description": "Must be fulfilled before a deletion is carried out.", "properties": {"resourceVersion": {"type": "string"}, "uid": {"type": "string"}}},
                "propagationPolicy": {"type": "string", "description": "Whether and how garbage collection will be performed: Orphan, Background or Foreground."},
            },
        }),
    );
    schemas.insert(
        format!("{META}.Status"),
        json!({
            "type": "object",
            "description": "Status is a return value for calls that don't return other objects.",
            "properties": {
                "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                "code": {"type": "integer", "format": "int32", "description": "Suggested HTTP return code for this status, 0 if not set."},
                "details": {"type": "object", "description": "Extended data associated with the reason.", "x-kubernetes-preserve-unknown-fields": true},
                "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                "message": {"type": "string", "description": "A human-readable description of the status of this operation."},
                "metadata": {"description": "Standard list metadata.", "allOf": [meta_ref("ListMeta")], "default": {}},
                "reason": {"type": "string", "description": "A machine-readable description of why this operation is in the \"Failure\" status."},
                "status": {"type": "string", "description": "Status of the operation. One of: \"Success\" or \"Failure\"."},
            },
            "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Status"}],
        }),
    );
    schemas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd_resource(schema: Value) -> ResourceInfo {
        ResourceInfo {
            group: "watchpool.dev".to_string(),
            version: "v1alpha1".to_string(),
            kind: "WatchPolicy".to_string(),
            list_kind: "WatchPolicyList".to_string(),
            plural: "watchpolicies".to_string(),
            singular: "watchpolicy".to_string(),
            namespaced: true,
            short_names: vec!["wp".to_string()],
            categories: vec![],
            verbs: vec![],
            status_subresource: true,
            printer_columns: vec![],
            schema: Some(schema),
            custom: true,
        }
    }

    fn builtin(group: &str, kind: &str, plural: &str, namespaced: bool) -> ResourceInfo {
        ResourceInfo {
            group: group.to_string(),
            version: "v1".to_string(),
            kind: kind.to_string(),
            list_kind: format!("{kind}List"),
            plural: plural.to_string(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: vec![],
            categories: vec![],
            verbs: vec![],
            status_subresource: kind == "Namespace",
            printer_columns: vec![],
            schema: None,
            custom: false,
        }
    }

    fn wp_schema() -> Value {
        json!({
            "type": "object",
            "description": "A policy.",
            "properties": {
                "spec": {"type": "object", "description": "Desired state.", "properties": {
                    "backoff": {"type": "object", "description": "Reconnect backoff.", "properties": {
                        "initialMs": {"type": "integer", "description": "First delay."}}}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        })
    }

    fn resources() -> Vec<ResourceInfo> {
        vec![
            crd_resource(wp_schema()),
            builtin("", "ConfigMap", "configmaps", true),
            builtin("", "Namespace", "namespaces", false),
            builtin("apps", "Deployment", "deployments", true),
            builtin("coordination.k8s.io", "Lease", "leases", true),
            builtin(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
            ),
        ]
    }

    #[test]
    fn root_lists_every_group_version_with_a_hashed_url() {
        let root = root(&resources());
        let paths = root["paths"].as_object().unwrap();
        let keys: Vec<&String> = paths.keys().collect();
        for key in [
            "api/v1",
            "apis/apps/v1",
            "apis/coordination.k8s.io/v1",
            "apis/apiextensions.k8s.io/v1",
            "apis/watchpool.dev/v1alpha1",
        ] {
            let url = paths[key]["serverRelativeURL"].as_str().unwrap();
            assert!(
                url.starts_with(&format!("/openapi/v3/{key}?hash=")),
                "{key}: {url} ({keys:?})"
            );
        }
        assert_eq!(paths.len(), 5);
    }

    #[test]
    fn hash_changes_with_the_document_content_only() {
        let before = root(&resources());
        let again = root(&resources());
        assert_eq!(before, again);
        let mut changed = resources();
        changed[0].schema =
            Some(json!({"type": "object", "properties": {"spec": {"type": "object"}}}));
        let after = root(&changed);
        let key = "apis/watchpool.dev/v1alpha1";
        assert_ne!(
            before["paths"][key]["serverRelativeURL"],
            after["paths"][key]["serverRelativeURL"]
        );
        assert_eq!(
            before["paths"]["api/v1"]["serverRelativeURL"],
            after["paths"]["api/v1"]["serverRelativeURL"]
        );
    }

    #[test]
    fn unknown_group_version_has_no_document() {
        assert!(group_version_doc("example.com", "v1", &resources()).is_none());
        assert!(group_version_doc("watchpool.dev", "v1", &resources()).is_none());
    }

    #[test]
    fn patch_operations_carry_gvk_and_field_validation() {
        let doc = group_version_doc("watchpool.dev", "v1alpha1", &resources()).unwrap();
        let item = &doc["paths"]["/apis/watchpool.dev/v1alpha1/namespaces/{namespace}/watchpolicies/{name}"];
        let patch = &item["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "watchpool.dev", "version": "v1alpha1", "kind": "WatchPolicy"})
        );
        assert_eq!(patch["x-kubernetes-action"], "patch");
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in ["fieldValidation", "fieldManager", "dryRun", "force"] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        assert_eq!(
            patch["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/dev.watchpool.v1alpha1.WatchPolicy"
        );
        assert!(
            patch["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_none()
        );
        for (verb, action) in [("get", "get"), ("put", "put"), ("delete", "delete")] {
            assert_eq!(item[verb]["x-kubernetes-action"], action);
        }
    }

    #[test]
    fn collection_status_and_all_namespace_paths_exist() {
        let doc = group_version_doc("watchpool.dev", "v1alpha1", &resources()).unwrap();
        let paths = &doc["paths"];
        let coll = &paths["/apis/watchpool.dev/v1alpha1/namespaces/{namespace}/watchpolicies"];
        assert_eq!(coll["get"]["x-kubernetes-action"], "list");
        assert_eq!(coll["post"]["x-kubernetes-action"], "post");
        assert_eq!(coll["delete"]["x-kubernetes-action"], "deletecollection");
        assert_eq!(
            coll["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/dev.watchpool.v1alpha1.WatchPolicyList"
        );
        let status = &paths["/apis/watchpool.dev/v1alpha1/namespaces/{namespace}/watchpolicies/{name}/status"];
        assert_eq!(status["patch"]["x-kubernetes-action"], "patch");
        assert_eq!(
            paths["/apis/watchpool.dev/v1alpha1/watchpolicies"]["get"]["x-kubernetes-action"],
            "list"
        );
    }

    #[test]
    fn cluster_scoped_kinds_have_no_namespace_segment() {
        let doc = group_version_doc("", "v1", &resources()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.contains_key("/api/v1/namespaces/{name}"));
        assert!(paths.contains_key("/api/v1/namespaces/{name}/status"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/configmaps/{name}"));
        assert!(paths.contains_key("/api/v1/configmaps"));
        assert_eq!(
            paths["/api/v1/namespaces/{name}"]["patch"]["x-kubernetes-group-version-kind"]["kind"],
            "Namespace"
        );
    }

    #[test]
    fn crd_schema_is_kept_with_type_meta_and_object_meta() {
        let doc = group_version_doc("watchpool.dev", "v1alpha1", &resources()).unwrap();
        let schema = &doc["components"]["schemas"]["dev.watchpool.v1alpha1.WatchPolicy"];
        assert_eq!(
            schema["properties"]["spec"]["properties"]["backoff"]["description"],
            "Reconnect backoff."
        );
        assert_eq!(schema["description"], "A policy.");
        assert_eq!(schema["properties"]["apiVersion"]["type"], "string");
        assert_eq!(schema["properties"]["kind"]["type"], "string");
        assert_eq!(
            schema["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert_eq!(
            schema["x-kubernetes-group-version-kind"],
            json!([{"group": "watchpool.dev", "version": "v1alpha1", "kind": "WatchPolicy"}])
        );
        let meta = &doc["components"]["schemas"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"];
        assert!(meta["properties"]["labels"]["description"].is_string());
        let list = &doc["components"]["schemas"]["dev.watchpool.v1alpha1.WatchPolicyList"];
        assert_eq!(
            list["x-kubernetes-group-version-kind"][0]["kind"],
            "WatchPolicyList"
        );
    }

    #[test]
    fn every_reference_resolves_within_the_document() {
        for (group, version) in [("", "v1"), ("watchpool.dev", "v1alpha1"), ("apps", "v1")] {
            let doc = group_version_doc(group, version, &resources()).unwrap();
            let mut refs = Vec::new();
            collect_refs(&doc, &mut refs);
            assert!(!refs.is_empty());
            for r in refs {
                let name = r.trim_start_matches("#/components/schemas/");
                assert!(
                    doc["components"]["schemas"].get(name).is_some(),
                    "{group}/{version}: dangling {r}"
                );
            }
        }
    }

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if k == "$ref" {
                        out.push(v.as_str().unwrap().to_string());
                    } else {
                        collect_refs(v, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn some_builtins_describe_their_main_fields() {
        let core = group_version_doc("", "v1", &resources()).unwrap();
        let cm = &core["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"];
        assert!(
            cm["description"]
                .as_str()
                .unwrap()
                .starts_with("ConfigMap holds")
        );
        assert_eq!(cm["properties"]["data"]["type"], "object");
        assert_eq!(
            cm["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        let ns = &core["components"]["schemas"]["io.k8s.api.core.v1.Namespace"];
        assert!(ns["properties"]["status"]["properties"]["phase"]["description"].is_string());
        let lease = group_version_doc("coordination.k8s.io", "v1", &resources()).unwrap();
        let spec = &lease["components"]["schemas"]["io.k8s.api.coordination.v1.Lease"]["properties"]
            ["spec"];
        assert_eq!(
            spec["properties"]["leaseDurationSeconds"]["type"],
            "integer"
        );
    }

    #[test]
    fn builtins_get_open_schemas_under_upstream_names() {
        let core = group_version_doc("", "v1", &resources()).unwrap();
        let cm = &core["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(cm["type"], "object");
        assert_eq!(cm["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(
            cm["x-kubernetes-group-version-kind"][0]["kind"],
            "ConfigMap"
        );
        let apps = group_version_doc("apps", "v1", &resources()).unwrap();
        assert!(
            apps["components"]["schemas"]
                .get("io.k8s.api.apps.v1.Deployment")
                .is_some()
        );
        let lease = group_version_doc("coordination.k8s.io", "v1", &resources()).unwrap();
        assert!(
            lease["components"]["schemas"]
                .get("io.k8s.api.coordination.v1.Lease")
                .is_some()
        );
        let crd = group_version_doc("apiextensions.k8s.io", "v1", &resources()).unwrap();
        assert!(crd["components"]["schemas"]
            .get("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition")
            .is_some());
    }
}
