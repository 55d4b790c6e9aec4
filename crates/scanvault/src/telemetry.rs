//! Structured logging with `tracing` (JSON by default, or console), and OpenTelemetry traces
//! of the same spans, exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. The exporter reads the standard `OTEL_*`
//! variables itself (headers, timeout, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`); spans leave in batches from a thread of their own.

use crate::config::LogFormat;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// What [`init`] started; [`Telemetry::shutdown`] sends the spans still buffered.
#[must_use = "call shutdown() before the process exits, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether traces are exported.
    pub fn traces_enabled(&self) -> bool {
        self.provider.is_some()
    }

    /// Export what is buffered and stop the exporter (waits up to its timeout).
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            if let Err(e) = p.shutdown() {
                eprintln!("warning: exporting the last traces failed: {e}");
            }
        }
    }
}

/// Initialise the global subscriber. `LOG_LEVEL` is a level (`info`) or a full filter
/// (`info,sqlx=warn`); it filters the log lines only; traces always get ScanVault's own
/// spans at `info`.
pub fn init(level: &str, format: LogFormat) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("LOG_LEVEL {level:?} is not a valid level or filter: {e}"))?;
    let ansi = colour(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let logs = match format {
        LogFormat::Json => fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Console => fmt::layer()
            .compact()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = tracer_provider()?;
    let traces = provider.as_ref().map(|p| {
        opentelemetry::global::set_tracer_provider(p.clone());
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("scanvault"))
            .with_filter(Targets::new().with_target("scanvault", LevelFilter::INFO))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|e| anyhow::anyhow!("initialising logging: {e}"))?;
    Ok(Telemetry { provider })
}

/// The span exporter the standard variables ask for, if any.
fn tracer_provider() -> anyhow::Result<Option<SdkTracerProvider>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return Ok(None);
    }
    if env("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
        && env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
    {
        return Ok(None);
    }
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(p) = env(var) {
            anyhow::ensure!(
                p == "http/protobuf",
                "{var}={p:?}: ScanVault exports traces over OTLP/HTTP with protobuf only (http/protobuf)"
            );
            break;
        }
    }
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| anyhow::anyhow!("building the OTLP client: {e}"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(OtlpClient(client))
        .build()
        .map_err(|e| anyhow::anyhow!("configuring the OTLP trace exporter: {e}"))?;
    // service.name: OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES when given, else scanvault.
    let mut resource = opentelemetry_sdk::Resource::builder().with_attribute(
        opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
    );
    if env("OTEL_SERVICE_NAME").is_none()
        && !env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="))
    {
        resource = resource.with_service_name("scanvault");
    }
    let resource = resource.build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build(),
    ))
}

/// OTLP/HTTP through reqwest's blocking client (rustls): the batch exporter calls it from
/// its own thread, outside the async runtime.
#[derive(Debug)]
struct OtlpClient(reqwest::blocking::Client);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let (parts, body) = request.into_parts();
        let response = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body.to_vec())
            .send()?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut out = opentelemetry_http::Response::builder()
            .status(status)
            .body(response.bytes()?)?;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

/// The trace a request belongs to, as W3C `traceparent` names it in `headers` (an invalid
/// or absent header gives none).
pub fn remote_context(headers: &axum::http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers))
}

/// The trace id of `span` when traces are exported, else the one `parent` carries, as 32
/// hex digits; `None` when neither has one.
pub fn trace_id(span: &tracing::Span, parent: &opentelemetry::Context) -> Option<String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    [span.context(), parent.clone()].into_iter().find_map(|cx| {
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| sc.trace_id().to_string())
    })
}

/// Colour only on a terminal, and not when `NO_COLOR` is set (no-color.org).
fn colour(terminal: bool) -> bool {
    terminal && !matches!(std::env::var_os("NO_COLOR"), Some(v) if !v.is_empty())
}

/// For tests: prints only when `TEST_LOG` is set; safe to call many times.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = fmt()
            .with_env_filter(EnvFilter::new("debug"))
            .with_test_writer()
            .try_init();
    }
}
