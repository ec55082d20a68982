//! Helpers shared by the integration tests: an emulator with a kube-rs client, a test CRD,
//! and polling with a deadline.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a test failure

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, CustomResource, CustomResourceExt};
use kube_emulator::{Emulator, EmulatorConfig, RequestRecord};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The spec of the test custom resource.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "ex.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd"
)]
#[kube(printcolumn = r#"{"name":"Size","type":"integer","jsonPath":".spec.size"}"#)]
pub struct WidgetSpec {
    pub size: i64,
    #[serde(default)]
    pub color: String,
}

/// Its status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WidgetStatus {
    pub ready: bool,
    #[serde(default)]
    pub observed: i64,
}

/// A config with short intervals for tests.
pub fn test_config() -> EmulatorConfig {
    EmulatorConfig {
        bookmark_interval: Duration::from_millis(500),
        ..EmulatorConfig::default()
    }
}

/// A kube-rs client for an emulator.
pub async fn client_for(emu: &Emulator) -> Client {
    let kc = Kubeconfig::from_yaml(&emu.kubeconfig_yaml()).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// An emulator with the test config and a client.
pub async fn start() -> (Emulator, Client) {
    start_with(test_config()).await
}

/// An emulator with a config and a client.
pub async fn start_with(config: EmulatorConfig) -> (Emulator, Client) {
    let emu = Emulator::start(config).await.unwrap();
    let client = client_for(&emu).await;
    (emu, client)
}

/// Installs the Widget CRD and returns it.
pub async fn install_widget_crd(client: &Client) -> CustomResourceDefinition {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap()
}

/// Polls `f` every 20 ms until it is true; panics after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Requests of one verb on one resource.
pub fn requests_of(emu: &Emulator, verb: &str, resource: &str) -> Vec<RequestRecord> {
    emu.requests()
        .into_iter()
        .filter(|r| r.verb == verb && r.resource == resource)
        .collect()
}
