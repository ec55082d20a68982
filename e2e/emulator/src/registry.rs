//! What the emulator serves: one `ResourceInfo` per (group, version, resource), built-in or
//! registered from a CRD. Discovery, OpenAPI, Table output and routing all read this.

use serde_json::Value;

/// A column of `kubectl get` output (a CRD's `additionalPrinterColumns` entry).
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// OpenAPI format hint (`int32`, `date-time`…), often empty.
    pub format: String,
    /// Human description of the column.
    pub description: String,
    /// 0 = shown by default; > 0 = only with `-o wide`.
    pub priority: i32,
    /// JSONPath into the object, e.g. `.status.conditions[?(@.type=="Ready")].status`.
    pub json_path: String,
}

/// One served resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceInfo {
    /// `""` for the core group.
    pub group: String,
    /// Version, e.g. `v1alpha1`.
    pub version: String,
    /// Kind, e.g. `WatchPolicy`.
    pub kind: String,
    /// `<Kind>List`.
    pub list_kind: String,
    /// The resource name in URLs, e.g. `watchpolicies`.
    pub plural: String,
    /// Lower-case singular name, e.g. `watchpolicy`.
    pub singular: String,
    /// True for namespaced kinds.
    pub namespaced: bool,
    /// Short names, e.g. `wp`.
    pub short_names: Vec<String>,
    /// Categories, e.g. `all`.
    pub categories: Vec<String>,
    /// Verbs served (discovery).
    pub verbs: Vec<String>,
    /// True when `/status` is a subresource.
    pub status_subresource: bool,
    /// Empty: the default `Name`, `Age` columns.
    pub printer_columns: Vec<PrinterColumn>,
    /// The version's `openAPIV3Schema` (CRDs); `None` for built-ins.
    pub schema: Option<Value>,
    /// True for kinds registered from a CRD.
    pub custom: bool,
}

impl ResourceInfo {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `watchpolicies.watchpool.dev`, or `configmaps` for the core group (as in error messages).
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}
