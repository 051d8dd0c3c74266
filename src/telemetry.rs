//! Logging setup: tracing to stderr as pretty text or JSON, filtered by config or `RUST_LOG`;
//! with the `otel` cargo feature, spans are also exported to an OTLP/HTTP endpoint.

use crate::config::settings_types::{LogFormat, TraceSettings};
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Keeps the trace exporter running; dropping it sends the spans still buffered.
#[must_use = "dropping it stops exporting traces"]
#[derive(Default)]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber once; later calls are ignored (tests, the demo).
pub fn init(format: LogFormat, filter: Option<&str>) {
    drop(init_with_traces(format, filter, None));
}

/// [`init`], exporting spans to `traces` too when the build has the `otel` feature. Must be
/// called outside any async runtime (the exporter's HTTP client has its own).
pub fn init_with_traces(
    format: LogFormat,
    filter: Option<&str>,
    traces: Option<&TraceSettings>,
) -> Telemetry {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| filter.map(str::to_owned))
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => install(builder.json().flatten_event(true).finish(), traces),
        LogFormat::Pretty => install(builder.compact().finish(), traces),
    }
}

#[cfg(not(feature = "otel"))]
fn install<S>(subscriber: S, traces: Option<&TraceSettings>) -> Telemetry
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    let _ = subscriber.try_init();
    if traces.is_some() {
        tracing::warn!(
            "telemetry.otlp_endpoint is set, but this build has no OpenTelemetry support (cargo feature `otel`); no traces are exported"
        );
    }
    Telemetry::default()
}

#[cfg(feature = "otel")]
fn install<S>(subscriber: S, traces: Option<&TraceSettings>) -> Telemetry
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt as _;
    let exporter = traces.map(|t| (t, otel::pipeline::<S>(t)));
    let (layer, provider, failure) = match exporter {
        None => (None, None, None),
        Some((_, Ok((layer, provider)))) => (Some(layer), Some(provider), None),
        Some((t, Err(e))) => (None, None, Some((t.otlp_endpoint.to_string(), e))),
    };
    let _ = subscriber.with(layer).try_init();
    match (&failure, traces) {
        (Some((endpoint, e)), _) => tracing::error!(
            telemetry.otlp_endpoint = %endpoint,
            error.message = %e,
            "traces are off: the OTLP exporter could not be built"
        ),
        (None, Some(t)) => tracing::info!(
            telemetry.otlp_endpoint = %t.otlp_endpoint,
            telemetry.service_name = %t.service_name,
            "exporting traces"
        ),
        (None, None) => {}
    }
    Telemetry { provider }
}

#[cfg(feature = "otel")]
mod otel {
    use super::TraceSettings;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
    use tracing::Subscriber;
    use tracing_opentelemetry::OpenTelemetryLayer;
    use tracing_subscriber::registry::LookupSpan;

    /// An OTLP/HTTP span exporter in a batch processor (its own thread), and the tracing layer
    /// that feeds it.
    pub(super) fn pipeline<S>(
        traces: &TraceSettings,
    ) -> Result<(OpenTelemetryLayer<S, Tracer>, SdkTracerProvider), String>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(traces.otlp_endpoint.as_str())
            .build()
            .map_err(|e| e.to_string())?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(traces.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("clearance");
        Ok((tracing_opentelemetry::layer().with_tracer(tracer), provider))
    }
}
