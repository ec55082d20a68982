//! `emulator-bench`: how many concurrent watches the emulator holds and how many events per
//! second it fans out, with the delivery latency, memory and CPU it costs.
//!
//! The emulator runs in this process on its own tokio runtime (threads named `emu-server`); the
//! watch clients run on another runtime (`bench-client`), each watch on its own TCP connection,
//! as real clients do. A writer patches ConfigMaps at a fixed rate, stamping each write with its
//! send time; every watch client measures the delay until the event reaches it. Only writes sent
//! inside the measured window count, and their events are drained before the figures are taken,
//! so `delivered / expected` is 1 exactly when no event was lost. CPU is read per
//! thread from `/proc/self/task`, so the emulator's share is reported apart from the clients'.
//!
//! Each watch holds two descriptors in this process (client and server end): 5 000 watches need
//! `ulimit -n` above 10 000 (raise it in the shell before running; a process can only read it).
//!
//! ```text
//! cargo run -p kube-emulator --bin emulator-bench -- --watches 5000 --namespaces 5 --writes-per-sec 20 --out bench.md
//! ```

use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use kube_emulator::{Emulator, EmulatorConfig};

type BoxError = Box<dyn Error + Send + Sync>;

/// Command-line options.
#[derive(Parser, Debug, Clone)]
#[command(about = "Benchmark the emulator's watch fan-out")]
struct Args {
    /// Concurrent watches, one TCP connection each.
    #[arg(long, default_value_t = 5000)]
    watches: usize,
    /// Namespaces the watches and writes are spread over (each watch covers one namespace).
    #[arg(long, default_value_t = 10)]
    namespaces: usize,
    /// ConfigMaps per namespace that the writer patches in turn.
    #[arg(long, default_value_t = 10)]
    objects: usize,
    /// Writes per second, all namespaces together; each reaches `watches / namespaces` watches.
    #[arg(long, default_value_t = 50)]
    writes_per_sec: u64,
    /// Length of the measured window, after the warm-up.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Warm-up before the measured window starts.
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
    /// Connections the writer spreads its writes over (each sends one write at a time).
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Worker threads of the emulator's runtime.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Worker threads of the clients' runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Watches being opened at the same time.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Also write the result table as Markdown to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Nanoseconds since the benchmark's epoch (shared by writer and clients).
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Delivery latencies in 50 µs buckets up to 10 s (the last bucket holds everything slower).
struct Histogram {
    buckets: Vec<AtomicU64>,
}

const BUCKET_NS: u64 = 50_000;
const BUCKETS: usize = 200_000;

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn record(&self, ns: u64) {
        let idx = usize::try_from(ns / BUCKET_NS)
            .unwrap_or(BUCKETS - 1)
            .min(BUCKETS - 1);
        if let Some(b) = self.buckets.get(idx) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
    }

    /// The upper bound of the bucket holding quantile `q`, in milliseconds.
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let target = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Some(((i as u64 + 1) * BUCKET_NS) as f64 / 1e6);
            }
        }
        None
    }
}

/// Counters shared by all tasks.
struct Shared {
    delivered: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
    open_watches: AtomicU64,
    watch_ends: AtomicU64,
    /// Writes sent from this instant (ns since the epoch) on are measured…
    window_start: AtomicU64,
    /// …until this one (`u64::MAX` while the window is open).
    window_end: AtomicU64,
    /// Deliveries the measured writes should cause (sum of their namespaces' watches).
    expected: AtomicU64,
    /// When the last measured event arrived.
    last_delivery: AtomicU64,
    latency: Histogram,
    write_latency: Histogram,
}

impl Shared {
    fn in_window(&self, sent: u64) -> bool {
        sent >= self.window_start.load(Ordering::Relaxed)
            && sent < self.window_end.load(Ordering::Relaxed)
    }
}

/// Watches of namespace `n` when `watches` are spread round-robin over `namespaces`.
fn watchers_in(n: usize, watches: usize, namespaces: usize) -> u64 {
    (watches / namespaces + usize::from(n < watches % namespaces)) as u64
}

/// A keep-alive HTTP/1.1 connection to the emulator.
async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn request(
    sender: &mut SendRequest<Full<Bytes>>,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(StatusCode, Bytes), BoxError> {
    sender.ready().await?;
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "127.0.0.1")
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, "emulator-bench")
        .body(Full::new(Bytes::from(body)))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn ns_name(i: usize) -> String {
    format!("bench-{i}")
}

/// Creates the namespaces and ConfigMaps; returns the resourceVersion to watch from.
async fn setup(addr: SocketAddr, args: &Args) -> Result<String, BoxError> {
    let mut c = connect(addr).await?;
    for n in 0..args.namespaces {
        let ns = ns_name(n);
        let body = serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}
        }))?;
        let (status, text) = request(
            &mut c,
            Method::POST,
            "/api/v1/namespaces",
            "application/json",
            body,
        )
        .await?;
        if !status.is_success() && status != StatusCode::CONFLICT {
            return Err(format!("creating namespace {ns}: {status} {text:?}").into());
        }
        for o in 0..args.objects {
            let body = serde_json::to_vec(&serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{o}"), "namespace": ns},
                "data": {"sent": "0"}
            }))?;
            let (status, text) = request(
                &mut c,
                Method::POST,
                &format!("/api/v1/namespaces/{ns}/configmaps"),
                "application/json",
                body,
            )
            .await?;
            if !status.is_success() {
                return Err(format!("creating configmap: {status} {text:?}").into());
            }
        }
    }
    let (status, body) = request(
        &mut c,
        Method::GET,
        "/api/v1/configmaps?limit=1",
        "application/json",
        Vec::new(),
    )
    .await?;
    if !status.is_success() {
        return Err(format!("listing configmaps: {status}").into());
    }
    let list: serde_json::Value = serde_json::from_slice(&body)?;
    list.pointer("/metadata/resourceVersion")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| "list without resourceVersion".into())
}

/// Finds `"sent":"<digits>"` in an event line without parsing the JSON.
fn sent_stamp(line: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"sent\":\"";
    let start = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = line.get(start..)?;
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(digits.get(..end)?).ok()?.parse().ok()
}

/// Opens one watch; returns once the response headers arrived, leaving a task reading it.
async fn open_watch(
    addr: SocketAddr,
    ns: String,
    rv: String,
    shared: Arc<Shared>,
) -> Result<(), BoxError> {
    let mut sender = connect(addr).await?;
    sender.ready().await?;
    let req = Request::builder()
        .method(Method::GET)
        .uri(format!(
            "/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=3600"
        ))
        .header(http::header::HOST, "127.0.0.1")
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, "emulator-bench")
        .body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    if resp.status() != StatusCode::OK {
        return Err(format!("watch answered {}", resp.status()).into());
    }
    shared.open_watches.fetch_add(1, Ordering::Relaxed);
    let mut body = resp.into_body();
    tokio::spawn(async move {
        let _keep = sender;
        let mut buf = BytesMut::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line = buf.split_to(pos + 1);
                if let Some(sent) = sent_stamp(&line)
                    && shared.in_window(sent)
                {
                    let now = now_ns();
                    shared.delivered.fetch_add(1, Ordering::Relaxed);
                    shared.last_delivery.fetch_max(now, Ordering::Relaxed);
                    shared.latency.record(now.saturating_sub(sent));
                }
            }
        }
        shared.open_watches.fetch_sub(1, Ordering::Relaxed);
        shared.watch_ends.fetch_add(1, Ordering::Relaxed);
    });
    Ok(())
}

/// Patches ConfigMaps round-robin at `writes_per_sec` until `stop`, over a few connections.
async fn writer(addr: SocketAddr, args: Args, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let connections = args.writers.max(1);
    let period = Duration::from_nanos(1_000_000_000 / args.writes_per_sec.max(1));
    let mut handles = Vec::new();
    for w in 0..connections {
        let args = args.clone();
        let shared = shared.clone();
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let Ok(mut c) = connect(addr).await else {
                shared.write_errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let mut ticker =
                tokio::time::interval(period * u32::try_from(connections).unwrap_or(u32::MAX));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                ticker.tick().await;
                let ns_index = i % args.namespaces;
                let ns = ns_name(ns_index);
                let obj = (i / args.namespaces) % args.objects;
                i += connections;
                let body = format!(r#"{{"data":{{"sent":"{}"}}}}"#, now_ns()).into_bytes();
                let path = format!("/api/v1/namespaces/{ns}/configmaps/cm-{obj}");
                let sent = now_ns();
                let result = request(
                    &mut c,
                    Method::PATCH,
                    &path,
                    "application/merge-patch+json",
                    body,
                )
                .await;
                match result {
                    Ok((status, _)) if status.is_success() => {
                        if shared.in_window(sent) {
                            shared.written.fetch_add(1, Ordering::Relaxed);
                            shared.expected.fetch_add(
                                watchers_in(ns_index, args.watches, args.namespaces),
                                Ordering::Relaxed,
                            );
                            shared.write_latency.record(now_ns().saturating_sub(sent));
                        }
                    }
                    _ => {
                        shared.write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
}

/// CPU ticks (user + system) of this process's threads, grouped by thread-name prefix.
fn cpu_ticks_by_thread() -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        // Fields after the `(comm)`: state is the 3rd field; utime and stime are the 14th and
        // 15th fields of the whole line.
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
            .sum();
        let group = if comm.starts_with("emu-server") {
            "emulator"
        } else if comm.starts_with("bench-client") {
            "clients"
        } else {
            "other"
        };
        *out.entry(group.to_string()).or_default() += ticks;
    }
    out
}

/// Resident set size of this process, in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The 1-minute load average of the machine (`/proc/loadavg`), as a measure of competition.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

/// Linux reports thread CPU in clock ticks of 1/100 s on every mainstream architecture.
const TICKS_PER_SEC: f64 = 100.0;

fn fd_limit() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if args.namespaces == 0 || args.objects == 0 || args.watches == 0 {
        return Err("--watches, --namespaces and --objects must be positive".into());
    }
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads)
        .thread_name("emu-server")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .thread_name("bench-client")
        .enable_all()
        .build()?;

    let emulator = server_rt.block_on(Emulator::start(EmulatorConfig::default()))?;
    let url = emulator.url();
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()?;
    eprintln!(
        "emulator at {url}; fd limit {}; {} watches over {} namespaces",
        fd_limit(),
        args.watches,
        args.namespaces
    );

    let shared = Arc::new(Shared {
        delivered: AtomicU64::new(0),
        written: AtomicU64::new(0),
        write_errors: AtomicU64::new(0),
        open_watches: AtomicU64::new(0),
        watch_ends: AtomicU64::new(0),
        // Closed until the measured window opens.
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        expected: AtomicU64::new(0),
        last_delivery: AtomicU64::new(0),
        latency: Histogram::new(),
        write_latency: Histogram::new(),
    });

    let load_before = load_average();
    let result = client_rt.block_on(run(addr, &args, shared.clone()))?;
    let load_after = load_average();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let stats = client_rt.block_on(fetch_stats(addr)).unwrap_or_default();
    drop(emulator);

    let rows = vec![
        ("watches requested", format!("{}", args.watches)),
        ("watches held (clients)", format!("{}", result.held)),
        ("open watches (emulator stats)", stats),
        ("watches ended early", format!("{}", result.ended)),
        (
            "window of measured writes",
            format!("{:.1} s", result.window_secs),
        ),
        (
            "writes",
            format!(
                "{} ({:.0}/s)",
                result.written,
                result.written as f64 / result.window_secs
            ),
        ),
        ("write errors", format!("{}", result.write_errors)),
        ("events delivered", format!("{}", result.delivered)),
        (
            "events delivered/s (until the last arrived)",
            format!(
                "{:.0} ({:.1} s)",
                result.delivered as f64 / result.span_secs,
                result.span_secs
            ),
        ),
        (
            "delivered / expected",
            format!(
                "{:.4}",
                if result.expected == 0 {
                    0.0
                } else {
                    result.delivered as f64 / result.expected as f64
                }
            ),
        ),
        ("delivery latency p50", fmt_ms(result.p50)),
        ("delivery latency p99", fmt_ms(result.p99)),
        (
            "write latency p50 / p99",
            format!(
                "{} / {}",
                fmt_ms(result.write_p50),
                fmt_ms(result.write_p99)
            ),
        ),
        ("RSS (whole process)", format!("{:.0} MiB", result.rss_mib)),
        (
            "CPU emulator threads",
            format!("{:.0} %", result.cpu_emulator * 100.0),
        ),
        (
            "CPU client threads",
            format!("{:.0} %", result.cpu_clients * 100.0),
        ),
        (
            "events per emulator CPU-second",
            if result.cpu_emulator > 0.0 {
                format!(
                    "{:.0}",
                    result.delivered as f64 / result.cpu_secs / result.cpu_emulator
                )
            } else {
                "n/a".to_string()
            },
        ),
        (
            "CPU whole process",
            format!("{:.0} %", result.cpu_total * 100.0),
        ),
        (
            "machine: cores, load average before / after",
            format!("{cores}, {load_before} / {load_after}"),
        ),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &rows {
        println!("{k:<width$}  {v}");
    }
    if let Some(path) = &args.out {
        let mut md = String::from("| metric | value |\n|---|---|\n");
        for (k, v) in &rows {
            md.push_str(&format!("| {k} | {v} |\n"));
        }
        md.push_str(&format!(
            "\nCommand: `emulator-bench --watches {} --namespaces {} --objects {} --writes-per-sec {} --writers {} --seconds {} --server-threads {} --client-threads {}`; CPU is a share of one core (100 % = one core busy).\n",
            args.watches, args.namespaces, args.objects, args.writes_per_sec, args.writers, args.seconds, args.server_threads, args.client_threads
        ));
        std::fs::write(path, md)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |ms| format!("{ms:.2} ms"))
}

struct RunResult {
    held: u64,
    ended: u64,
    /// Length of the window writes were sent in.
    window_secs: f64,
    /// From the window's start to the last delivery of its writes.
    span_secs: f64,
    /// Length of the CPU measurement (window and drain).
    cpu_secs: f64,
    written: u64,
    write_errors: u64,
    delivered: u64,
    expected: u64,
    p50: Option<f64>,
    p99: Option<f64>,
    write_p50: Option<f64>,
    write_p99: Option<f64>,
    rss_mib: f64,
    cpu_emulator: f64,
    cpu_clients: f64,
    cpu_total: f64,
}

async fn fetch_stats(addr: SocketAddr) -> Result<String, BoxError> {
    let mut c = connect(addr).await?;
    let (status, body) = request(
        &mut c,
        Method::GET,
        "/emulator/stats",
        "application/json",
        Vec::new(),
    )
    .await?;
    if !status.is_success() {
        return Err(format!("stats: {status}").into());
    }
    let stats: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(stats
        .get("open_watches")
        .map(|v| v.to_string())
        .unwrap_or_else(|| "unknown".to_string()))
}

async fn run(addr: SocketAddr, args: &Args, shared: Arc<Shared>) -> Result<RunResult, BoxError> {
    let started = Instant::now();
    let rv = setup(addr, args).await?;
    eprintln!(
        "created {} namespaces × {} configmaps in {:.1} s",
        args.namespaces,
        args.objects,
        started.elapsed().as_secs_f64()
    );

    // Open the watches, a bounded number at a time.
    let opening = Instant::now();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(args.watches);
    for w in 0..args.watches {
        let permit = gate.clone().acquire_owned().await?;
        let ns = ns_name(w % args.namespaces);
        let rv = rv.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let r = open_watch(addr, ns, rv, shared).await;
            drop(permit);
            r
        }));
    }
    let mut failures = 0;
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failures += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                failures += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    eprintln!(
        "opened {} watches in {:.1} s ({} failed{})",
        args.watches - failures,
        opening.elapsed().as_secs_f64(),
        failures,
        first_error
            .map(|e| format!(", first: {e}"))
            .unwrap_or_default()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(writer(addr, args.clone(), shared.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(args.warmup_seconds)).await;

    // The measured window.
    shared.latency.reset();
    shared.write_latency.reset();
    let cpu_before = cpu_ticks_by_thread();
    let window_start = Instant::now();
    let start_ns = now_ns();
    shared.window_start.store(start_ns, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    shared.window_end.store(now_ns(), Ordering::Relaxed);
    let window_secs = window_start.elapsed().as_secs_f64();
    // Stop writing (writes in flight finish), then let the window's events drain: until every
    // expected delivery arrived, or nothing arrived for two seconds.
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    let expected = shared.expected.load(Ordering::Relaxed);
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    let mut last = shared.delivered.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    while last < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = shared.delivered.load(Ordering::Relaxed);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    let cpu_after = cpu_ticks_by_thread();
    let cpu_secs = window_start.elapsed().as_secs_f64();
    // Deliveries of the window's writes, over the time from the window's start to the last.
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let span_secs = (shared
        .last_delivery
        .load(Ordering::Relaxed)
        .saturating_sub(start_ns) as f64
        / 1e9)
        .max(window_secs);
    let cpu = |group: &str| {
        let d = cpu_after
            .get(group)
            .copied()
            .unwrap_or(0)
            .saturating_sub(cpu_before.get(group).copied().unwrap_or(0));
        d as f64 / TICKS_PER_SEC / cpu_secs
    };
    Ok(RunResult {
        held: shared.open_watches.load(Ordering::Relaxed),
        ended: shared.watch_ends.load(Ordering::Relaxed),
        window_secs,
        span_secs,
        cpu_secs,
        written: shared.written.load(Ordering::Relaxed),
        write_errors: shared.write_errors.load(Ordering::Relaxed),
        delivered,
        expected,
        p50: shared.latency.quantile_ms(0.50),
        p99: shared.latency.quantile_ms(0.99),
        write_p50: shared.write_latency.quantile_ms(0.50),
        write_p99: shared.write_latency.quantile_ms(0.99),
        rss_mib: rss_mib(),
        cpu_emulator: cpu("emulator"),
        cpu_clients: cpu("clients"),
        cpu_total: cpu("emulator") + cpu("clients") + cpu("other"),
    })
}
