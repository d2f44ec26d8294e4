//! The OTLP sink's settings: the collector, the headers sent with every export (credentials:
//! secrets) and the service name.
//!
//! Variables: `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS` (secret values),
//! `OTEL_SERVICE_NAME`, named as the OpenTelemetry specification names them.

use crate::vars::{ConfigError, Secret, Vars};

/// The collector's endpoint by default (OTLP/HTTP on this host).
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4318";

/// Where and as whom points are exported.
#[derive(Clone, PartialEq)]
pub struct OtlpConfig {
    /// The collector's base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`, an `http(s)://` URL;
    /// [`DEFAULT_ENDPOINT`]); `/v1/metrics` is appended.
    pub endpoint: String,
    /// Headers of every export (`OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs separated by
    /// commas, values percent-decoded). Values are credentials (`Authorization: Bearer …`).
    pub headers: Vec<(String, Secret)>,
    /// `service.name` of the resource (`OTEL_SERVICE_NAME`, `pipeline-run-metrics`).
    pub service_name: String,
}

/// Header values are credentials: only their names are shown.
impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.headers.iter().map(|(k, _)| format!("{k}: ***")).collect();
        f.debug_struct("Otlp")
            .field("endpoint", &self.endpoint)
            .field("headers", &names)
            .field("service_name", &self.service_name)
            .finish()
    }
}

impl OtlpConfig {
    /// The sink's variables. A header error names the pair by its position and says what is
    /// wrong, never what it holds.
    pub fn from_vars(vars: &Vars) -> Result<OtlpConfig, ConfigError> {
        let endpoint = vars.url("OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_ENDPOINT)?;
        let headers = match vars.pick(&["OTEL_EXPORTER_OTLP_HEADERS"]) {
            None => Vec::new(),
            Some((n, v)) => super::parse_headers(&v)
                .map_err(|_| {
                    ConfigError::new(
                        &n,
                        "(not shown)",
                        &format!("key=value pairs separated by commas ({})", header_problem(&v)),
                    )
                })?
                .into_iter()
                .map(|(k, v)| (k, Secret::from(v)))
                .collect(),
        };
        let service_name =
            vars.pick(&["OTEL_SERVICE_NAME"]).map(|(_, v)| v).unwrap_or_else(|| "pipeline-run-metrics".into());
        Ok(OtlpConfig { endpoint, headers, service_name })
    }

    /// The headers as the sink sends them (the one place their values are exposed).
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        self.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_string())).collect()
    }
}

/// What is wrong with an `OTEL_EXPORTER_OTLP_HEADERS` value, without any of its text: which
/// pair, and why.
fn header_problem(value: &str) -> String {
    for (i, pair) in value.split(',').filter(|p| !p.trim().is_empty()).enumerate() {
        match pair.split_once('=') {
            None => return format!("pair {} has no '='", i + 1),
            Some((_, v)) if percent_encoding::percent_decode_str(v.trim()).decode_utf8().is_err() => {
                return format!("the value of pair {} is not UTF-8 once percent-decoded", i + 1);
            }
            Some(_) => {}
        }
    }
    "not key=value pairs".into()
}
