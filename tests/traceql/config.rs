//! Configuration: defaults, a Tempo-style file, unknown keys, bad values, env expansion, and
//! the reference table kept in step with the code.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration as StdDuration;

use tracefusion::config::{
    Backend, Config, ConfigError, Endpoint, KEY_DOCS, LogFormat, LogLevel, default_values,
    reference_markdown,
};

use crate::support::binary;

fn parse(yaml: &str) -> tracefusion::config::LoadedConfig {
    Config::from_yaml(yaml).unwrap_or_else(|e| panic!("config should parse: {e}\n{yaml}"))
}

fn parse_err(yaml: &str) -> ConfigError {
    match Config::from_yaml(yaml) {
        Ok(loaded) => panic!(
            "config should be rejected:\n{yaml}\nparsed as {:?}",
            loaded.config
        ),
        Err(e) => e,
    }
}

#[test]
fn defaults_need_no_file() {
    let c = Config::default();
    assert_eq!(c.server.http_listen_port, 3200);
    assert_eq!(c.server.log_level, LogLevel::Info);
    let otlp = c
        .distributor
        .receivers
        .otlp
        .as_ref()
        .expect("OTLP on by default");
    assert_eq!(
        otlp.protocols.grpc.as_ref().unwrap().endpoint,
        Endpoint::new("0.0.0.0", 4317)
    );
    assert_eq!(
        otlp.protocols.http.as_ref().unwrap().endpoint,
        Endpoint::new("0.0.0.0", 4318)
    );
    assert_eq!(c.storage.trace.backend, Backend::Local);
    assert_eq!(
        c.storage.trace.local.path,
        Path::new("./tracefusion-data/blocks")
    );
    assert_eq!(
        c.storage.trace.wal.path,
        Path::new("./tracefusion-data/wal")
    );
    assert_eq!(
        c.ingester.max_block_duration.0,
        StdDuration::from_secs(1800)
    );
    assert_eq!(c.ingester.max_block_bytes.0, 500 * 1024 * 1024);
    assert_eq!(
        c.compactor.compaction.block_retention.0,
        StdDuration::from_secs(336 * 3600)
    );
    assert!(!c.multitenancy_enabled);
}

#[test]
fn empty_and_comment_only_files_are_the_defaults() {
    for text in ["", "\n\n", "# nothing here\n# at all\n", "---\n"] {
        let loaded = parse(text);
        assert_eq!(loaded.config, Config::default(), "for {text:?}");
        assert!(loaded.unknown_keys.is_empty());
    }
}

/// A config file as a Tempo operator writes it, with keys tracefusion does not implement.
const TEMPO_STYLE: &str = r#"
stream_over_http_enabled: true
multitenancy_enabled: true
server:
  http_listen_port: 3201
  grpc_listen_port: 9096
  log_level: warn
  log_format: json
query_frontend:
  search:
    duration_slo: 5s
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: "0.0.0.0:14317"
        http:
          endpoint: "127.0.0.1:14318"
    jaeger:
      protocols:
        thrift_http:
ingester:
  trace_idle_period: 5s
  max_block_duration: 5m
  max_block_bytes: 1_000_000
compactor:
  compaction:
    block_retention: 48h
storage:
  trace:
    backend: s3
    s3:
      bucket: tempo-traces
      endpoint: s3.us-east-1.amazonaws.com
      region: us-east-1
      access_key: AKIAEXAMPLE
      secret_key: not-a-real-secret
      insecure: true
      forcepathstyle: true
    wal:
      path: /var/tempo/wal
    local:
      path: /var/tempo/blocks
metrics_generator:
  processor:
    service_graphs: {}
"#;

#[test]
fn tempo_style_file_is_honoured() {
    let loaded = parse(TEMPO_STYLE);
    let c = &loaded.config;
    assert!(c.multitenancy_enabled);
    assert_eq!(c.server.http_listen_port, 3201);
    assert_eq!(c.server.grpc_listen_port, 9096);
    assert_eq!(c.server.log_level, LogLevel::Warn);
    assert_eq!(c.server.log_format, LogFormat::Json);
    let protocols = &c.distributor.receivers.otlp.as_ref().unwrap().protocols;
    assert_eq!(
        protocols.grpc.as_ref().unwrap().endpoint,
        Endpoint::new("0.0.0.0", 14317)
    );
    assert_eq!(
        protocols.http.as_ref().unwrap().endpoint,
        Endpoint::new("127.0.0.1", 14318)
    );
    assert_eq!(c.ingester.trace_idle_period.0, StdDuration::from_secs(5));
    assert_eq!(c.ingester.max_block_duration.0, StdDuration::from_secs(300));
    assert_eq!(c.ingester.max_block_bytes.0, 1_000_000);
    assert_eq!(
        c.compactor.compaction.block_retention.0,
        StdDuration::from_secs(48 * 3600)
    );
    let s3 = &c.storage.trace.s3;
    assert_eq!(c.storage.trace.backend, Backend::S3);
    assert_eq!(
        (s3.bucket.as_str(), s3.endpoint.as_str(), s3.region.as_str()),
        ("tempo-traces", "s3.us-east-1.amazonaws.com", "us-east-1")
    );
    assert_eq!(
        (s3.access_key.as_str(), s3.secret_key.as_str()),
        ("AKIAEXAMPLE", "not-a-real-secret")
    );
    assert!(s3.insecure && s3.forcepathstyle);
    assert_eq!(c.storage.trace.wal.path, Path::new("/var/tempo/wal"));
    assert_eq!(c.storage.trace.local.path, Path::new("/var/tempo/blocks"));

    assert_eq!(
        loaded.unknown_keys,
        [
            "stream_over_http_enabled",
            "query_frontend.search.duration_slo",
            "distributor.receivers.jaeger",
            "metrics_generator"
        ]
    );
    assert!(
        !c.to_yaml().contains("not-a-real-secret"),
        "secrets are never printed"
    );
}

#[test]
fn unknown_keys_are_named_with_their_full_path() {
    let loaded = parse(
        "server:\n  http_listen_prot: 1\n  log_level: debug\nstorage:\n  trace:\n    blocklist_pol: 5m\n",
    );
    assert_eq!(
        loaded.unknown_keys,
        ["server.http_listen_prot", "storage.trace.blocklist_pol"]
    );
    assert_eq!(loaded.config.server.log_level, LogLevel::Debug);
}

/// Tempo keys that load but change nothing here are named, so nobody relies on them.
#[test]
fn keys_without_effect_are_reported() {
    let yaml =
        "server:\n  grpc_listen_port: 9096\ncompactor:\n  compaction:\n    block_retention: 48h\n";
    let loaded = parse(yaml);
    assert_eq!(
        loaded.inert_keys,
        [
            "server.grpc_listen_port",
            "compactor.compaction.block_retention"
        ]
    );
    assert!(loaded.unknown_keys.is_empty());
    assert!(
        parse("server:\n  http_listen_port: 1\n")
            .inert_keys
            .is_empty()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tempo.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(binary())
        .args(["config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has no effect") && stderr.contains("compactor.compaction.block_retention"),
        "{stderr}"
    );
}

#[test]
fn receivers_are_enabled_by_naming_them() {
    // Only gRPC named: HTTP is off.
    let c =
        parse("distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n").config;
    let protocols = &c.distributor.receivers.otlp.as_ref().unwrap().protocols;
    assert_eq!(
        protocols.grpc.as_ref().unwrap().endpoint,
        Endpoint::new("0.0.0.0", 4317)
    );
    assert!(protocols.http.is_none());

    // `otlp:` alone: both protocols on their default ports.
    let c = parse("distributor:\n  receivers:\n    otlp:\n").config;
    let protocols = &c.distributor.receivers.otlp.as_ref().unwrap().protocols;
    assert!(protocols.grpc.is_some() && protocols.http.is_some());

    // A receivers block without OTLP disables it.
    let c = parse("distributor:\n  receivers: {}\n").config;
    assert!(c.distributor.receivers.otlp.is_none());
}

#[test]
fn durations_and_sizes_take_tempo_spellings() {
    let c = parse("ingester:\n  max_block_duration: 1h30m\n  trace_idle_period: 500ms\n  max_block_bytes: 100MiB\n").config;
    assert_eq!(
        c.ingester.max_block_duration.0,
        StdDuration::from_secs(5400)
    );
    assert_eq!(
        c.ingester.trace_idle_period.0,
        StdDuration::from_millis(500)
    );
    assert_eq!(c.ingester.max_block_bytes.0, 100 << 20);
    // And they print back in the same spellings, so `tracefusion config` output re-parses.
    let again = parse(&c.to_yaml()).config;
    assert_eq!(again, c);
}

#[test]
fn bad_values_name_the_key_the_value_and_what_was_expected() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "server:\n  http_listen_port: abc\n",
            "server.http_listen_port",
            &["\"abc\"", "u16"],
        ),
        (
            "server:\n  http_listen_port: 70000\n",
            "server.http_listen_port",
            &["70000", "u16"],
        ),
        (
            "server:\n  log_level: loud\n",
            "server.log_level",
            &["loud", "debug", "error"],
        ),
        (
            "server:\n  log_format: xml\n",
            "server.log_format",
            &["xml", "logfmt", "json"],
        ),
        (
            "ingester:\n  max_block_duration: soon\n",
            "ingester.max_block_duration",
            &["\"soon\"", "duration"],
        ),
        (
            "ingester:\n  max_block_duration: 300\n",
            "ingester.max_block_duration",
            &["300", "duration"],
        ),
        (
            "ingester:\n  max_block_bytes: lots\n",
            "ingester.max_block_bytes",
            &["\"lots\"", "size in bytes"],
        ),
        (
            "ingester:\n  max_block_bytes: -1\n",
            "ingester.max_block_bytes",
            &["-1", "size in bytes"],
        ),
        (
            "ingester:\n  trace_idle_period: 0s\n",
            "ingester.trace_idle_period",
            &["longer than zero"],
        ),
        (
            "storage:\n  trace:\n    backend: s4\n",
            "storage.trace.backend",
            &["s4", "local", "s3", "gcs", "azure"],
        ),
        (
            "storage:\n  trace:\n    backend: s3\n",
            "storage.trace.s3.bucket",
            &["required", "s3"],
        ),
        (
            "storage:\n  trace:\n    backend: gcs\n",
            "storage.trace.gcs.bucket_name",
            &["required", "gcs"],
        ),
        (
            "multitenancy_enabled: maybe\n",
            "multitenancy_enabled",
            &["maybe", "bool"],
        ),
        ("target: querier\n", "target", &["querier", "all"]),
        (
            "distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          endpoint: nohost\n",
            "distributor.receivers.otlp.protocols.grpc.endpoint",
            &["nohost", "host:port"],
        ),
    ];
    for (yaml, key, fragments) in cases {
        match parse_err(yaml) {
            ConfigError::InvalidValue { key: got, .. } => assert_eq!(&got, key, "for {yaml:?}"),
            other => panic!("expected an invalid-value error for {yaml:?}, got {other}"),
        }
        let message = parse_err(yaml).to_string();
        assert!(
            message.contains(&format!("`{key}`")),
            "{message:?} should name {key}"
        );
        for fragment in *fragments {
            assert!(
                message.contains(fragment),
                "{message:?} should mention {fragment:?}"
            );
        }
    }
}

#[test]
fn broken_yaml_is_a_syntax_error_with_a_position() {
    let e = parse_err("server:\n  http_listen_port: [3200\n");
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
    assert!(e.to_string().contains("line"), "{e}");
    assert!(matches!(
        parse_err("- a\n- b\n"),
        ConfigError::Syntax { .. }
    ));
}

#[test]
fn env_expansion_is_opt_in_and_names_missing_variables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tempo.yaml");
    // SAFETY: the variable names are unique to this test.
    unsafe { std::env::set_var("TF_TEST_CFG_PORT", "3207") };
    std::fs::write(
        &path,
        "server:\n  http_listen_port: ${TF_TEST_CFG_PORT}\n  grpc_listen_port: ${TF_TEST_CFG_UNSET:-9123}\n",
    )
    .unwrap();
    let c = Config::load(&path, true).unwrap().config;
    assert_eq!(c.server.http_listen_port, 3207);
    assert_eq!(c.server.grpc_listen_port, 9123);

    // Without expansion the text is taken literally (and is not a port).
    let e = Config::load(&path, false).unwrap_err();
    assert!(e.to_string().contains("server.http_listen_port"), "{e}");

    std::fs::write(
        &path,
        "server:\n  http_listen_port: ${TF_TEST_CFG_MISSING}\n",
    )
    .unwrap();
    let e = Config::load(&path, true).unwrap_err();
    assert!(
        matches!(&e, ConfigError::MissingEnv { var } if var == "TF_TEST_CFG_MISSING"),
        "{e}"
    );
    assert!(e.to_string().contains("TF_TEST_CFG_MISSING"));
}

#[test]
fn missing_file_is_named() {
    let e = Config::load(Path::new("/nonexistent/tempo.yaml"), false).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/tempo.yaml"), "{e}");
}

#[test]
fn reference_lists_exactly_the_keys_of_the_config() {
    let documented: BTreeSet<&str> = KEY_DOCS.iter().map(|k| k.key).collect();
    let actual: BTreeSet<String> = default_values().into_iter().map(|(k, _)| k).collect();
    let actual: BTreeSet<&str> = actual.iter().map(String::as_str).collect();
    assert_eq!(documented, actual, "KEY_DOCS and Config have drifted apart");
}

#[test]
fn readme_embeds_the_current_reference() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&reference_markdown()),
        "README.md's configuration table is out of date: replace it with the output of \
         `tracefusion config --reference`"
    );
}

#[test]
fn config_command_prints_effective_config_and_rejects_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "server:\n  http_listen_port: 3333\nquery_scheduler: {}\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = parse(&String::from_utf8(out.stdout).unwrap()).config;
    assert_eq!(printed.server.http_listen_port, 3333);
    assert!(String::from_utf8_lossy(&out.stderr).contains("query_scheduler"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "ingester:\n  max_block_bytes: lots\n").unwrap();
    let out = Command::new(binary())
        .args(["config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ingester.max_block_bytes") && stderr.contains("lots"),
        "{stderr}"
    );
}
