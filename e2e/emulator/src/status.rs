//! API errors rendered as `metav1.Status` with the reasons and codes of a real API server
//! (EMULATOR.md §3).

use serde_json::{Value, json};

use crate::registry::ResourceInfo;

/// An error answer of the API: HTTP code, `reason`, message and optional `details`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason`, e.g. `NotFound`.
    pub reason: String,
    /// Human-readable message, with the real API server's wording.
    pub message: String,
    /// `details` of the Status, when there is any.
    pub details: Option<Value>,
    /// Seconds for the `Retry-After` header and `details.retryAfterSeconds`.
    pub retry_after: Option<u64>,
    /// Send the body as plain text (the 429 of the max-in-flight filter) instead of JSON.
    pub plain_text: bool,
}

fn details(res: &ResourceInfo, name: &str) -> Value {
    json!({"name": name, "group": res.group, "kind": res.plural})
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
            retry_after: None,
            plain_text: false,
        }
    }

    /// Adds `details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404 for an unknown path or resource.
    pub fn not_found_path() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 404 `configmaps "x" not found`.
    pub fn not_found(res: &ResourceInfo, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", res.qualified_resource(), name),
        )
        .with_details(details(res, name))
    }

    /// 404 `namespaces "x" not found`.
    pub fn namespace_not_found(ns: &str) -> Self {
        ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
            .with_details(json!({"name": ns, "kind": "namespaces"}))
    }

    /// 409 AlreadyExists.
    pub fn already_exists(res: &ResourceInfo, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", res.qualified_resource(), name),
        )
        .with_details(details(res, name))
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(res: &ResourceInfo, name: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                res.qualified_resource(),
                name
            ),
        )
        .with_details(details(res, name))
    }

    /// 409 Conflict of a server-side apply: `(manager, field)` pairs.
    pub fn apply_conflicts(res: &ResourceInfo, name: &str, conflicts: &[(String, String)]) -> Self {
        let gv = res.api_version();
        let message = match conflicts {
            [(m, f)] => {
                format!("Apply failed with 1 conflict: conflict with \"{m}\" using {gv}: {f}")
            }
            _ => {
                let mut msg = format!("Apply failed with {} conflicts:", conflicts.len());
                for (m, f) in conflicts {
                    msg.push_str(&format!(" conflict with \"{m}\" using {gv}: {f};"));
                }
                msg.trim_end_matches(';').to_string()
            }
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\" using {gv}"), "field": f}))
            .collect();
        ApiError::new(409, "Conflict", message).with_details(
            json!({"name": name, "group": res.group, "kind": res.plural, "causes": causes}),
        )
    }

    /// 422 Invalid with one cause.
    pub fn invalid(
        res: &ResourceInfo,
        name: &str,
        field: &str,
        cause_reason: &str,
        msg: &str,
    ) -> Self {
        let kind_group = if res.group.is_empty() {
            res.kind.clone()
        } else {
            format!("{}.{}", res.kind, res.group)
        };
        ApiError::new(
            422,
            "Invalid",
            format!("{kind_group} \"{name}\" is invalid: {field}: {msg}"),
        )
        .with_details(json!({
            "name": name, "group": res.group, "kind": res.kind,
            "causes": [{"reason": cause_reason, "message": msg, "field": field}]
        }))
    }

    /// 422 Invalid with a free message (e.g. failed JSON patch).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        ApiError::new(422, "Invalid", message)
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// 403 Forbidden for a verb on a resource.
    pub fn forbidden(res: &ResourceInfo, name: &str, verb: &str, namespace: &str) -> Self {
        let scope = if namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{namespace}\"")
        };
        let target = if name.is_empty() {
            res.qualified_resource()
        } else {
            format!("{} \"{}\"", res.qualified_resource(), name)
        };
        ApiError::new(
            403,
            "Forbidden",
            format!(
                "{target} is forbidden: User \"system:anonymous\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
                res.plural, res.group
            ),
        )
        .with_details(details(res, name))
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    /// 410 Expired.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type() -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )
    }

    /// 504 Timeout with cause `ResourceVersionTooLarge`.
    pub fn rv_too_large(requested: u64, current: u64) -> Self {
        let mut e = ApiError::new(
            504,
            "Timeout",
            format!("Too large resource version: {requested}, current: {current}"),
        )
        .with_details(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1
        }));
        e.retry_after = Some(1);
        e
    }

    /// 500 InternalError.
    pub fn internal(message: &str) -> Self {
        ApiError::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
        .with_details(json!({"causes": [{"message": message}]}))
    }

    /// An error of the given code with the reason a real server uses for it.
    pub fn for_code(code: u16, message: Option<&str>) -> Self {
        let (reason, default_msg) = match code {
            400 => ("BadRequest", "the request was rejected"),
            401 => ("Unauthorized", "Unauthorized"),
            403 => ("Forbidden", "forbidden"),
            404 => (
                "NotFound",
                "the server could not find the requested resource",
            ),
            405 => (
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ),
            409 => (
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
            ),
            410 => ("Expired", "too old resource version"),
            413 => ("RequestEntityTooLarge", "request entity too large"),
            415 => ("UnsupportedMediaType", "unsupported media type"),
            422 => ("Invalid", "invalid"),
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            ),
            500 => ("InternalError", "Internal error occurred: injected fault"),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "the server was unable to return a response in the time allotted, but may still be processing the request",
            ),
            _ => ("Unknown", "injected error"),
        };
        ApiError::new(code, reason, message.unwrap_or(default_msg))
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = self.details.clone();
        if let Some(secs) = self.retry_after {
            let d = details.get_or_insert_with(|| json!({}));
            if let Some(m) = d.as_object_mut() {
                m.insert("retryAfterSeconds".into(), json!(secs));
            }
        }
        if let (Some(d), Some(m)) = (details, v.as_object_mut()) {
            m.insert("details".into(), d);
        }
        v
    }
}

/// The `Status` answered for a successful delete of an object without finalizers.
pub fn delete_success(res: &ResourceInfo, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": res.group, "kind": res.plural, "uid": uid}
    })
}
