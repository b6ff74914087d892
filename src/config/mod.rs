//! Configuration: the YAML file a Tempo user already has, read with Tempo's key names.
//!
//! Known keys are honoured, unknown keys are collected so the caller can warn about them once,
//! and a value of the wrong shape stops start-up with the key, the value and what was expected.
//! Every key has a default, so `tracefusion serve` needs no file at all.

mod reference;
mod values;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

pub use reference::{
    INERT_KEYS, KEY_DOCS, KeyDoc, SECRET_KEYS, default_values, reference_markdown,
};
pub use values::{ByteSize, Duration, Endpoint};

/// Where the embedded defaults keep everything: WAL and blocks under one folder.
pub const DEFAULT_DATA_DIR: &str = "./tracefusion-data";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Which components this process runs. Only the all-in-one target exists today.
    pub target: Target,
    pub multitenancy_enabled: bool,
    pub server: ServerConfig,
    pub distributor: DistributorConfig,
    pub ingester: IngesterConfig,
    pub query_frontend: QueryFrontendConfig,
    pub querier: QuerierConfig,
    pub storage: StorageConfig,
    pub compactor: CompactorConfig,
    pub overrides: OverridesConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            target: Target::All,
            multitenancy_enabled: false,
            server: ServerConfig::default(),
            distributor: DistributorConfig::default(),
            ingester: IngesterConfig::default(),
            query_frontend: QueryFrontendConfig::default(),
            querier: QuerierConfig::default(),
            storage: StorageConfig::default(),
            compactor: CompactorConfig::default(),
            overrides: OverridesConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    All,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Empty means every interface, as in Tempo.
    pub http_listen_address: String,
    pub http_listen_port: u16,
    /// Path prefix of the query API (`/api/...`), as Tempo's `http_api_prefix`.
    pub http_api_prefix: String,
    pub grpc_listen_address: String,
    pub grpc_listen_port: u16,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub graceful_shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http_listen_address: String::new(),
            http_listen_port: 3200,
            http_api_prefix: String::new(),
            grpc_listen_address: String::new(),
            grpc_listen_port: 9095,
            log_level: LogLevel::Info,
            log_format: LogFormat::Logfmt,
            graceful_shutdown_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// `logfmt` is Tempo's name for the human-readable text format; `text` is accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[serde(alias = "text")]
    Logfmt,
    Json,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DistributorConfig {
    pub receivers: ReceiversConfig,
}

/// Receivers follow the OpenTelemetry Collector convention: a receiver or protocol is enabled
/// by naming it, even with an empty body (`grpc:`), and disabled by leaving it out. So the
/// defaults below apply only when the whole `receivers` block is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiversConfig {
    #[serde(
        default,
        deserialize_with = "present_means_enabled",
        skip_serializing_if = "Option::is_none"
    )]
    pub otlp: Option<OtlpReceiverConfig>,
}

impl Default for ReceiversConfig {
    fn default() -> Self {
        Self {
            otlp: Some(OtlpReceiverConfig::default()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtlpReceiverConfig {
    #[serde(default)]
    pub protocols: OtlpProtocols,
}

impl Default for OtlpReceiverConfig {
    fn default() -> Self {
        Self {
            protocols: OtlpProtocols {
                grpc: Some(ProtocolConfig::default_grpc()),
                http: Some(ProtocolConfig::default_http()),
            },
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OtlpProtocols {
    #[serde(
        default,
        deserialize_with = "grpc_protocol",
        skip_serializing_if = "Option::is_none"
    )]
    pub grpc: Option<ProtocolConfig>,
    #[serde(
        default,
        deserialize_with = "http_protocol",
        skip_serializing_if = "Option::is_none"
    )]
    pub http: Option<ProtocolConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolConfig {
    pub endpoint: Endpoint,
}

impl ProtocolConfig {
    pub fn default_grpc() -> Self {
        Self {
            endpoint: Endpoint::new("0.0.0.0", 4317),
        }
    }
    pub fn default_http() -> Self {
        Self {
            endpoint: Endpoint::new("0.0.0.0", 4318),
        }
    }
}

/// A protocol block as written: `endpoint` may be left out to take the protocol's default port.
#[derive(Deserialize)]
struct ProtocolConfigInput {
    endpoint: Option<Endpoint>,
}

fn protocol<'de, D: Deserializer<'de>>(
    deserializer: D,
    default: fn() -> ProtocolConfig,
) -> Result<Option<ProtocolConfig>, D::Error> {
    let input: Option<ProtocolConfigInput> = Option::deserialize(deserializer)?;
    Ok(Some(match input.and_then(|i| i.endpoint) {
        Some(endpoint) => ProtocolConfig { endpoint },
        None => default(),
    }))
}

fn grpc_protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ProtocolConfig>, D::Error> {
    protocol(d, ProtocolConfig::default_grpc)
}

fn http_protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ProtocolConfig>, D::Error> {
    protocol(d, ProtocolConfig::default_http)
}

/// `otlp:` with an empty body enables OTLP with both protocols on their default endpoints.
fn present_means_enabled<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<OtlpReceiverConfig>, D::Error> {
    let input: Option<OtlpReceiverConfig> = Option::deserialize(deserializer)?;
    Ok(Some(input.unwrap_or_default()))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IngesterConfig {
    /// A trace that received no span for this long is complete enough to move to the head block.
    pub trace_idle_period: Duration,
    /// The head block is cut after this long even if it is small.
    pub max_block_duration: Duration,
    /// The head block is cut once it holds this many bytes.
    pub max_block_bytes: ByteSize,
}

impl Default for IngesterConfig {
    fn default() -> Self {
        Self {
            trace_idle_period: Duration::from_secs(10),
            max_block_duration: Duration::from_secs(30 * 60),
            max_block_bytes: ByteSize(500 << 20),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueryFrontendConfig {
    /// Queries one tenant may have running at once; more are answered 429.
    pub max_outstanding_per_tenant: usize,
    pub search: FrontendSearchConfig,
}

impl Default for QueryFrontendConfig {
    fn default() -> Self {
        Self {
            max_outstanding_per_tenant: 16,
            search: FrontendSearchConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FrontendSearchConfig {
    /// A query still running after this long is stopped.
    pub query_timeout: Duration,
}

impl Default for FrontendSearchConfig {
    fn default() -> Self {
        Self {
            query_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuerierConfig {
    /// Memory all running queries together may hold in operators (sorts, aggregates, joins).
    pub memory_limit: ByteSize,
    /// Memory one query may hold.
    pub query_memory_limit: ByteSize,
}

impl Default for QuerierConfig {
    fn default() -> Self {
        Self {
            memory_limit: ByteSize(4 << 30),
            query_memory_limit: ByteSize(1 << 30),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    pub trace: TraceStorageConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TraceStorageConfig {
    pub backend: Backend,
    /// How often readers list the store for new and removed blocks.
    pub blocklist_poll: Duration,
    pub block: BlockConfig,
    pub local: LocalConfig,
    pub wal: WalConfig,
    pub s3: S3Config,
    pub gcs: GcsConfig,
    pub azure: AzureConfig,
}

impl Default for TraceStorageConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Local,
            blocklist_poll: Duration::from_secs(5 * 60),
            block: BlockConfig::default(),
            local: LocalConfig::default(),
            wal: WalConfig::default(),
            s3: S3Config::default(),
            gcs: GcsConfig::default(),
            azure: AzureConfig::default(),
        }
    }
}

/// How blocks are laid out in Parquet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlockConfig {
    /// A row group is closed at the first trace boundary after it holds this many bytes of
    /// traces (their OTLP protobuf size). Smaller row groups let a newest-first search stop
    /// sooner inside a big block; each costs some footer.
    pub parquet_row_group_size_bytes: ByteSize,
    /// Attributes stored in columns of their own (Tempo's key and entry shape).
    pub parquet_dedicated_columns: Vec<DedicatedColumn>,
}

impl Default for BlockConfig {
    fn default() -> Self {
        Self {
            parquet_row_group_size_bytes: ByteSize(4 << 20),
            parquet_dedicated_columns: DedicatedColumn::defaults(),
        }
    }
}

/// One attribute with a column of its own: `{scope: resource, name: k8s.pod.name, type: string}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedicatedColumn {
    #[serde(default)]
    pub scope: DedicatedScope,
    pub name: String,
    #[serde(default)]
    pub r#type: DedicatedType,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedicatedScope {
    Resource,
    #[default]
    Span,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedicatedType {
    #[default]
    String,
    Int,
}

impl DedicatedColumn {
    pub fn new(scope: DedicatedScope, name: &str, r#type: DedicatedType) -> Self {
        Self {
            scope,
            name: name.to_string(),
            r#type,
        }
    }

    /// The attributes OpenTelemetry's semantic conventions make the most frequent filters.
    pub fn defaults() -> Vec<DedicatedColumn> {
        use DedicatedScope::{Resource, Span};
        use DedicatedType::{Int, String};
        vec![
            Self::new(Resource, "k8s.cluster.name", String),
            Self::new(Resource, "k8s.namespace.name", String),
            Self::new(Resource, "k8s.pod.name", String),
            Self::new(Resource, "k8s.container.name", String),
            Self::new(Span, "http.request.method", String),
            Self::new(Span, "http.response.status_code", Int),
            Self::new(Span, "http.route", String),
            Self::new(Span, "url.path", String),
            Self::new(Span, "server.address", String),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Local,
    S3,
    Gcs,
    Azure,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LocalConfig {
    pub path: PathBuf,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            path: Path::new(DEFAULT_DATA_DIR).join("blocks"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WalConfig {
    pub path: PathBuf,
    /// Whether requests are fsynced before they are acknowledged.
    pub sync: WalSync,
    /// Span times further than this ahead of the clock count as now in a block's time range.
    pub ingestion_time_range_slack: Duration,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            path: Path::new(DEFAULT_DATA_DIR).join("wal"),
            sync: WalSync::Always,
            ingestion_time_range_slack: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WalSync {
    /// fsync before acknowledging (grouped across concurrent requests).
    Always,
    /// Leave it to the OS: survives a process crash, not a power loss.
    Never,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Config {
    pub bucket: String,
    /// Host (and port) of the S3 API, without scheme, as in Tempo: `s3.us-east-1.amazonaws.com`.
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    #[serde(skip_serializing)]
    pub secret_key: String,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Path-style (`endpoint/bucket/key`) instead of virtual-hosted-style addressing.
    pub forcepathstyle: bool,
    /// Optional prefix for every object written to the bucket.
    pub prefix: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GcsConfig {
    pub bucket_name: String,
    pub endpoint: String,
    pub insecure: bool,
    pub prefix: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AzureConfig {
    pub container_name: String,
    pub storage_account_name: String,
    #[serde(skip_serializing)]
    pub storage_account_key: String,
    pub endpoint_suffix: String,
    pub prefix: String,
}

/// Per-tenant limits, in Tempo's `overrides.defaults` layout; they apply to every tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OverridesConfig {
    pub defaults: TenantLimits,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantLimits {
    pub ingestion: IngestionLimits,
    pub global: GlobalLimits,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestionLimits {
    /// Sustained ingest per tenant, bytes of OTLP protobuf per second.
    pub rate_limit_bytes: ByteSize,
    /// Burst above the sustained rate.
    pub burst_size_bytes: ByteSize,
}

impl Default for IngestionLimits {
    fn default() -> Self {
        Self {
            rate_limit_bytes: ByteSize(15_000_000),
            burst_size_bytes: ByteSize(20_000_000),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GlobalLimits {
    /// Spans that would make a trace larger than this are refused; 0 means no limit.
    pub max_bytes_per_trace: ByteSize,
}

impl Default for GlobalLimits {
    fn default() -> Self {
        Self {
            max_bytes_per_trace: ByteSize(5_000_000),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompactorConfig {
    pub compaction: CompactionConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompactionConfig {
    /// Tempo's retention; accepted for compatibility, read by nothing yet (no compactor).
    pub block_retention: Duration,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            block_retention: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

/// What went wrong while reading the configuration. Each message names the file, key or
/// variable at fault and says what would be accepted instead.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "config file references environment variable `{var}`, which is not set \
         (set it, or write ${{{var}:-default}} to give a default)"
    )]
    MissingEnv { var: String },
    #[error("config is not valid YAML: {message}")]
    Syntax { message: String },
    #[error("invalid value for `{key}`: {message}")]
    InvalidValue { key: String, message: String },
}

/// A parsed configuration together with the keys it did not recognise.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// Dotted paths of keys that were ignored, in file order.
    pub unknown_keys: Vec<String>,
    /// Keys of [`INERT_KEYS`] the file sets: Tempo's, accepted but without effect here.
    pub inert_keys: Vec<String>,
}

impl LoadedConfig {
    /// The built-in defaults, as when no file is given.
    pub fn defaults() -> Self {
        Self {
            config: Config::default(),
            unknown_keys: Vec::new(),
            inert_keys: Vec::new(),
        }
    }
}

impl Config {
    /// Reads a config file. With `expand_env`, `${VAR}` and `${VAR:-default}` are replaced from
    /// the environment first, like Tempo's `-config.expand-env`.
    pub fn load(path: &Path, expand_env: bool) -> Result<LoadedConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let text = if expand_env {
            expand_env_vars(&text)?
        } else {
            text
        };
        Self::from_yaml(&text)
    }

    /// Parses YAML text (already expanded) into a validated configuration.
    pub fn from_yaml(text: &str) -> Result<LoadedConfig, ConfigError> {
        // An empty file (or one with only comments) is the all-defaults config.
        let document: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Syntax {
                message: e.to_string(),
            })?;
        if document.is_null() {
            return Ok(LoadedConfig::defaults());
        }
        if !document.is_mapping() {
            return Err(ConfigError::Syntax {
                message: "the top level must be a mapping of keys such as `server:` and `storage:`"
                    .into(),
            });
        }

        let mut unknown_keys = Vec::new();
        let yaml = serde_yaml_ng::Deserializer::from_str(text);
        let mut record_unknown = |path: serde_ignored::Path<'_>| {
            unknown_keys.push(path.to_string());
        };
        let tracked = serde_ignored::Deserializer::new(yaml, &mut record_unknown);
        let config: Config = serde_path_to_error::deserialize(tracked).map_err(|e| {
            let key = e.path().to_string();
            let message = e.into_inner().to_string();
            // The YAML error may already start with the key; say it once.
            let message = message
                .strip_prefix(&format!("{key}: "))
                .map(str::to_string)
                .unwrap_or(message);
            ConfigError::InvalidValue { key, message }
        })?;
        config.validate()?;
        let inert_keys = INERT_KEYS
            .iter()
            .filter(|key| {
                key.split('.')
                    .try_fold(&document, |node, name| node.get(name))
                    .is_some()
            })
            .map(|key| key.to_string())
            .collect();
        Ok(LoadedConfig {
            config,
            unknown_keys,
            inert_keys,
        })
    }

    /// Rules that span several keys, checked after every value parsed on its own.
    fn validate(&self) -> Result<(), ConfigError> {
        let trace = &self.storage.trace;
        let required = |key: &str, value: &str| {
            if value.is_empty() {
                Err(ConfigError::InvalidValue {
                    key: key.to_string(),
                    message: format!(
                        "a value is required when storage.trace.backend is {}",
                        serde_yaml_ng::to_string(&trace.backend)
                            .unwrap_or_default()
                            .trim()
                    ),
                })
            } else {
                Ok(())
            }
        };
        match trace.backend {
            Backend::Local => {
                if trace.local.path.as_os_str().is_empty() {
                    return Err(ConfigError::InvalidValue {
                        key: "storage.trace.local.path".into(),
                        message: "a directory path is required for the local backend".into(),
                    });
                }
            }
            Backend::S3 => {
                required("storage.trace.s3.bucket", &trace.s3.bucket)?;
                required("storage.trace.s3.endpoint", &trace.s3.endpoint)?;
            }
            Backend::Gcs => required("storage.trace.gcs.bucket_name", &trace.gcs.bucket_name)?,
            Backend::Azure => {
                required(
                    "storage.trace.azure.container_name",
                    &trace.azure.container_name,
                )?;
                required(
                    "storage.trace.azure.storage_account_name",
                    &trace.azure.storage_account_name,
                )?;
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, column) in trace.block.parquet_dedicated_columns.iter().enumerate() {
            let key = format!("storage.trace.block.parquet_dedicated_columns[{i}]");
            if column.name.is_empty() {
                return Err(ConfigError::InvalidValue {
                    key,
                    message: "`name` must not be empty".into(),
                });
            }
            if column.scope == DedicatedScope::Resource && column.name == "service.name" {
                return Err(ConfigError::InvalidValue {
                    key,
                    message: "resource `service.name` always has a column of its own".into(),
                });
            }
            if !seen.insert((column.scope, column.name.as_str())) {
                return Err(ConfigError::InvalidValue {
                    key,
                    message: format!("`{}` is listed twice for its scope", column.name),
                });
            }
        }
        if trace.block.parquet_row_group_size_bytes.0 < 1 << 20 {
            return Err(ConfigError::InvalidValue {
                key: "storage.trace.block.parquet_row_group_size_bytes".into(),
                message: "must be at least 1MiB".into(),
            });
        }
        if trace.blocklist_poll.0.is_zero() {
            return Err(ConfigError::InvalidValue {
                key: "storage.trace.blocklist_poll".into(),
                message: "must be longer than zero".into(),
            });
        }
        if trace.wal.path.as_os_str().is_empty() {
            return Err(ConfigError::InvalidValue {
                key: "storage.trace.wal.path".into(),
                message: "a directory path is required".into(),
            });
        }
        let ingester = &self.ingester;
        for (key, value) in [
            ("ingester.trace_idle_period", ingester.trace_idle_period),
            ("ingester.max_block_duration", ingester.max_block_duration),
        ] {
            if value.0.is_zero() {
                return Err(ConfigError::InvalidValue {
                    key: key.into(),
                    message: "must be longer than zero".into(),
                });
            }
        }
        let ingestion = &self.overrides.defaults.ingestion;
        if ingestion.rate_limit_bytes.0 == 0 || ingestion.burst_size_bytes.0 == 0 {
            return Err(ConfigError::InvalidValue {
                key: "overrides.defaults.ingestion".into(),
                message: "rate_limit_bytes and burst_size_bytes must be larger than zero".into(),
            });
        }
        if ingester.max_block_bytes.0 == 0 {
            return Err(ConfigError::InvalidValue {
                key: "ingester.max_block_bytes".into(),
                message: "must be larger than zero".into(),
            });
        }
        Ok(())
    }

    /// The effective configuration as YAML (secrets left out).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("the configuration always serializes")
    }
}

/// Replaces `$VAR`, `${VAR}` and `${VAR:-default}` with values from the environment.
pub fn expand_env_vars(text: &str) -> Result<String, ConfigError> {
    shellexpand::env(text)
        .map(|expanded| expanded.into_owned())
        .map_err(|e| ConfigError::MissingEnv { var: e.var_name })
}
