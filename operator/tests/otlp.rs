//! Real OTLP export: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the operator posts protobuf trace
//! batches to `/v1/traces`, and they hold the reconcile span with the policy's attributes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // integration tests: a panic is a failure report

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

type Received = Arc<Mutex<Vec<(Option<String>, ExportTraceServiceRequest)>>>;

async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let request =
                    ExportTraceServiceRequest::decode(body).expect("a valid OTLP protobuf body");
                sink.lock().unwrap().push((content_type, request));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), received)
}

fn string_attr(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_spans_are_exported_over_otlp_http() {
    let (endpoint, received) = receiver().await;
    let c = cluster().await;
    c.policy("default", "traced", configmap_spec());
    let op = start_operator(
        &c,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "watchpool-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )
    .await;
    wait_for(
        "a reconcile span at the receiver",
        Duration::from_secs(20),
        || {
            received.lock().unwrap().iter().any(|(_, r)| {
                r.resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .flat_map(|ss| &ss.spans)
                    .any(|s| s.name == "reconcile")
            })
        },
    )
    .await;
    let (content_type, request) = received
        .lock()
        .unwrap()
        .iter()
        .find(|(_, r)| {
            r.resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .any(|s| s.name == "reconcile")
        })
        .cloned()
        .unwrap();
    assert_eq!(content_type.as_deref(), Some("application/x-protobuf"));
    let rs = &request.resource_spans[0];
    let service = string_attr(&rs.resource.as_ref().unwrap().attributes, "service.name");
    assert_eq!(service.as_deref(), Some("watchpool-test"));
    let span = rs
        .scope_spans
        .iter()
        .flat_map(|ss| &ss.spans)
        .find(|s| s.name == "reconcile")
        .unwrap();
    assert!(
        span.parent_span_id.is_empty(),
        "the reconcile is a root span"
    );
    assert_eq!(span.trace_id.len(), 16);
    assert_eq!(
        string_attr(&span.attributes, "policy").as_deref(),
        Some("traced")
    );
    assert_eq!(
        string_attr(&span.attributes, "policy_namespace").as_deref(),
        Some("default")
    );
    // The trace id in the log line of a reconcile is the one exported.
    wait_for("a logged reconcile", Duration::from_secs(10), || {
        op.has_log("policy applied")
    })
    .await;
    let logged: String = op
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "policy applied")
        .and_then(|v| v["span"]["trace_id"].as_str().map(str::to_owned))
        .expect("the log line carries the trace id");
    assert_eq!(logged.len(), 32);
    wait_for(
        "the logged trace at the receiver",
        Duration::from_secs(10),
        || {
            received.lock().unwrap().iter().any(|(_, r)| {
                r.resource_spans
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .flat_map(|ss| &ss.spans)
                    .any(|s| {
                        s.name == "reconcile"
                            && s.trace_id
                                .iter()
                                .map(|b| format!("{b:02x}"))
                                .collect::<String>()
                                == logged
                    })
            })
        },
    )
    .await;
}
