//! A deterministic synthetic trace generator: a seeded, realistic microservice topology
//! (HTTP, RPC, database and messaging calls), 3–60 spans per trace, resource and span
//! attributes of every OTLP type, errors with exception events, links, and child spans that
//! always sit inside their parents in time. Tests and benchmarks use it, and
//! `tracefusion generate` writes its output as OTLP files or blocks.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status,
    span::{Event, Link, SpanKind},
    status::StatusCode,
};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub seed: u64,
    /// Start of the first trace, Unix nanoseconds.
    pub start_unix_nano: u64,
    /// Time between consecutive trace starts, on average.
    pub trace_interval_nanos: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            // 2026-01-01T00:00:00Z
            start_unix_nano: 1_767_225_600_000_000_000,
            trace_interval_nanos: 10_000_000,
        }
    }
}

struct Service {
    name: &'static str,
    language: &'static str,
    /// Routes this service serves.
    routes: &'static [&'static str],
    /// Services it calls.
    calls: &'static [usize],
    /// Whether it talks to the database.
    database: Option<&'static str>,
}

const FRONTEND: usize = 0;
const SERVICES: &[Service] = &[
    Service {
        name: "frontend",
        language: "nodejs",
        routes: &["/", "/product/{id}", "/cart", "/checkout"],
        calls: &[1, 2],
        database: None,
    },
    Service {
        name: "api-gateway",
        language: "go",
        routes: &[
            "/api/cart",
            "/api/products",
            "/api/checkout",
            "/api/recommendations",
        ],
        calls: &[3, 4, 5, 8, 2],
        database: None,
    },
    Service {
        name: "auth",
        language: "java",
        routes: &["/auth/verify", "/auth/token"],
        calls: &[],
        database: Some("postgresql"),
    },
    Service {
        name: "cart",
        language: "dotnet",
        routes: &["/cart/items", "/cart/total"],
        calls: &[6],
        database: Some("redis"),
    },
    Service {
        name: "checkout",
        language: "go",
        routes: &["/checkout/place-order"],
        calls: &[3, 7, 6, 9, 10],
        database: Some("postgresql"),
    },
    Service {
        name: "product-catalog",
        language: "go",
        routes: &["/products", "/products/{id}"],
        calls: &[],
        database: Some("postgresql"),
    },
    Service {
        name: "inventory",
        language: "rust",
        routes: &["/inventory/reserve", "/inventory/check"],
        calls: &[],
        database: Some("postgresql"),
    },
    Service {
        name: "payment",
        language: "java",
        routes: &["/payment/charge"],
        calls: &[2],
        database: None,
    },
    Service {
        name: "recommendation",
        language: "python",
        routes: &["/recommendations"],
        calls: &[5],
        database: Some("redis"),
    },
    Service {
        name: "shipping",
        language: "rust",
        routes: &["/shipping/quote", "/shipping/ship"],
        calls: &[],
        database: None,
    },
    Service {
        name: "email",
        language: "ruby",
        routes: &["/email/send"],
        calls: &[],
        database: None,
    },
];

const REGIONS: &[&str] = &["eu-west-1", "us-east-1", "ap-south-1"];
const METHODS: &[&str] = &["GET", "GET", "GET", "POST", "PUT", "DELETE"];
const ERRORS: &[(&str, &str)] = &[
    ("java.net.SocketTimeoutException", "Read timed out"),
    ("ConnectionResetError", "connection reset by peer"),
    ("InsufficientFunds", "card declined: insufficient funds"),
    ("sql.ErrNoRows", "no rows in result set"),
];

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

fn i(key: &str, value: i64) -> KeyValue {
    kv(key, Value::IntValue(value))
}

/// A span being built, with the service it belongs to.
struct Draft {
    service: usize,
    scope: usize,
    span: Span,
    depth: u32,
}

const SCOPES: &[(&str, &str)] = &[
    ("io.opentelemetry.http", "1.31.0"),
    ("io.opentelemetry.db", "1.31.0"),
    ("io.opentelemetry.messaging", "1.31.0"),
    ("app", ""),
];
const SCOPE_HTTP: usize = 0;
const SCOPE_DB: usize = 1;
const SCOPE_MESSAGING: usize = 2;
const SCOPE_APP: usize = 3;

/// Generates traces one at a time; the n-th trace depends only on the seed and n's
/// predecessors, so the same seed always gives the same data.
pub struct Generator {
    config: GeneratorConfig,
    rng: ChaCha8Rng,
    produced: u64,
    /// A span of an earlier trace, for links.
    last_span: Option<(Vec<u8>, Vec<u8>)>,
    /// One pod per service and region, fixed for the generator's life.
    pods: Vec<Vec<String>>,
}

impl Generator {
    pub fn new(config: GeneratorConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let pods = SERVICES
            .iter()
            .map(|svc| {
                REGIONS
                    .iter()
                    .map(|_| {
                        format!(
                            "{}-{:08x}-{:05x}",
                            svc.name,
                            rng.next_u32(),
                            rng.next_u32() & 0xfffff
                        )
                    })
                    .collect()
            })
            .collect();
        Self {
            config,
            rng,
            produced: 0,
            last_span: None,
            pods,
        }
    }

    fn id<const N: usize>(&mut self) -> Vec<u8> {
        let mut id = [0u8; N];
        self.rng.fill_bytes(&mut id);
        id[0] |= 1; // never all zeros
        id.to_vec()
    }

    /// The next trace, as OTLP resource-spans (one per service and region involved).
    pub fn next_trace(&mut self) -> Vec<ResourceSpans> {
        let index = self.produced;
        self.produced += 1;
        let jitter = self
            .rng
            .random_range(0..self.config.trace_interval_nanos.max(1));
        let start = self.config.start_unix_nano + index * self.config.trace_interval_nanos + jitter;
        let region = self.rng.random_range(0..REGIONS.len());
        // Mostly small traces, a long tail up to 60 spans.
        let target = 3 + (self.rng.random::<f64>().powi(3) * 57.0) as usize;
        let trace_id = self.id::<16>();
        let fails = self.rng.random_bool(0.06);

        let mut drafts: Vec<Draft> = Vec::with_capacity(target);
        let root_service = FRONTEND;
        let route = *pick(&mut self.rng, SERVICES[root_service].routes);
        let method = *pick(&mut self.rng, METHODS);
        let root_duration = self.rng.random_range(5_000_000..900_000_000u64);
        let mut root = self.span(
            &trace_id,
            None,
            format!("{method} {route}"),
            SpanKind::Server,
            start,
            root_duration,
        );
        root.attributes.extend([
            s("http.request.method", method),
            s("http.route", route),
            s(
                "url.path",
                route.replace("{id}", &self.rng.random_range(1..500).to_string()),
            ),
            s("server.address", "shop.example.com"),
            i("http.response.status_code", 200),
            s("user_agent.original", "Mozilla/5.0"),
        ]);
        drafts.push(Draft {
            service: root_service,
            scope: SCOPE_HTTP,
            span: root,
            depth: 0,
        });

        while drafts.len() < target {
            let parent_index = self.rng.random_range(0..drafts.len());
            let parent = &drafts[parent_index];
            if parent.depth >= 7 || parent.span.kind == SpanKind::Client as i32 {
                // Client spans only get the callee's server span, added with them.
                if drafts
                    .iter()
                    .all(|d| d.depth >= 7 || d.span.kind == SpanKind::Client as i32)
                {
                    break;
                }
                continue;
            }
            let service = &SERVICES[parent.service];
            let remaining = target - drafts.len();
            let choice = self.rng.random_range(0..10);
            if choice < 5 && !service.calls.is_empty() && remaining >= 2 {
                self.add_call(&mut drafts, parent_index, &trace_id);
            } else if choice < 7 && service.database.is_some() {
                self.add_database(&mut drafts, parent_index, &trace_id);
            } else if choice < 8 && parent.service == 4 && remaining >= 2 {
                self.add_message(&mut drafts, parent_index, &trace_id);
            } else {
                self.add_internal(&mut drafts, parent_index, &trace_id);
            }
        }

        if fails {
            self.fail(&mut drafts);
        }
        if self.rng.random_bool(0.1)
            && let Some((linked_trace, linked_span)) = self.last_span.clone()
        {
            let target = self.rng.random_range(0..drafts.len());
            drafts[target].span.links.push(Link {
                trace_id: linked_trace,
                span_id: linked_span,
                trace_state: "vendor=1".into(),
                attributes: vec![s("link.reason", "retry-of"), i("link.attempt", 2)],
                dropped_attributes_count: 0,
                flags: 1,
            });
        }
        let last = &drafts[drafts.len() - 1].span;
        self.last_span = Some((last.trace_id.clone(), last.span_id.clone()));
        self.group(drafts, region)
    }

    fn span(
        &mut self,
        trace_id: &[u8],
        parent: Option<&Span>,
        name: String,
        kind: SpanKind,
        start: u64,
        duration: u64,
    ) -> Span {
        Span {
            trace_id: trace_id.to_vec(),
            span_id: self.id::<8>(),
            parent_span_id: parent.map(|p| p.span_id.clone()).unwrap_or_default(),
            trace_state: String::new(),
            flags: 0x101,
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Some(Status {
                message: String::new(),
                code: StatusCode::Unset as i32,
            }),
        }
    }

    /// A window inside the parent: starts after the parent starts, ends before it ends.
    fn window(&mut self, parent: &Span) -> (u64, u64) {
        let parent_duration = parent.end_time_unix_nano - parent.start_time_unix_nano;
        let offset = self.rng.random_range(0..=parent_duration / 3);
        let max = (parent_duration - offset).max(2);
        let duration = self.rng.random_range(1..max);
        (parent.start_time_unix_nano + offset, duration)
    }

    fn add_call(&mut self, drafts: &mut Vec<Draft>, parent_index: usize, trace_id: &[u8]) {
        let parent = &drafts[parent_index];
        let caller = parent.service;
        let callee = *pick(&mut self.rng, SERVICES[caller].calls);
        let route = *pick(&mut self.rng, SERVICES[callee].routes);
        let method = *pick(&mut self.rng, METHODS);
        let depth = parent.depth + 1;
        let parent_span = parent.span.clone();
        let (start, duration) = self.window(&parent_span);
        let mut client = self.span(
            trace_id,
            Some(&parent_span),
            format!("{method} {route}"),
            SpanKind::Client,
            start,
            duration,
        );
        client.attributes.extend([
            s("http.request.method", method),
            s("server.address", SERVICES[callee].name),
            i("server.port", 8080),
            s(
                "url.full",
                format!("http://{}:8080{route}", SERVICES[callee].name),
            ),
            i("http.response.status_code", 200),
            s("peer.service", SERVICES[callee].name),
        ]);
        // The server span sits inside the client span, less the network latency.
        let latency = (duration / 10).max(1);
        let server_duration = duration.saturating_sub(2 * latency).max(1);
        let mut server = self.span(
            trace_id,
            Some(&client),
            format!("{method} {route}"),
            SpanKind::Server,
            start + latency,
            server_duration,
        );
        server.attributes.extend([
            s("http.request.method", method),
            s("http.route", route),
            s(
                "url.path",
                route.replace("{id}", &self.rng.random_range(1..500).to_string()),
            ),
            i("http.response.status_code", 200),
            kv("app.cache.hit", Value::BoolValue(self.rng.random_bool(0.3))),
            kv(
                "app.load.factor",
                Value::DoubleValue((self.rng.random::<f64>() * 1000.0).round() / 1000.0),
            ),
        ]);
        if self.rng.random_bool(0.15) {
            server.attributes.push(kv(
                "app.tags",
                Value::ArrayValue(ArrayValue {
                    values: ["beta", "mobile", "eu"]
                        .iter()
                        .take(self.rng.random_range(1..=3))
                        .map(|t| AnyValue {
                            value: Some(Value::StringValue((*t).into())),
                        })
                        .collect(),
                }),
            ));
        }
        if callee == 7 {
            server.attributes.push(kv(
                "app.payment.amount",
                Value::DoubleValue(self.rng.random_range(1.0..500.0f64).round()),
            ));
            server.attributes.push(kv(
                "app.payment.card",
                Value::KvlistValue(KeyValueList {
                    values: vec![s("brand", "visa"), kv("last4", Value::IntValue(4242))],
                }),
            ));
        }
        if callee == 2 && self.rng.random_bool(0.2) {
            server
                .attributes
                .push(kv("app.token.digest", Value::BytesValue(self.id::<8>())));
        }
        drafts.push(Draft {
            service: caller,
            scope: SCOPE_HTTP,
            span: client,
            depth,
        });
        drafts.push(Draft {
            service: callee,
            scope: SCOPE_HTTP,
            span: server,
            depth: depth + 1,
        });
    }

    fn add_database(&mut self, drafts: &mut Vec<Draft>, parent_index: usize, trace_id: &[u8]) {
        let parent = &drafts[parent_index];
        let service = parent.service;
        let depth = parent.depth + 1;
        let parent_span = parent.span.clone();
        let system = SERVICES[service].database.unwrap_or("postgresql");
        let (name, statement) = if system == "redis" {
            let op = *pick(&mut self.rng, &["GET", "SET", "HGETALL"]);
            (
                op.to_string(),
                format!("{op} session:{}", self.rng.random_range(0..10_000)),
            )
        } else {
            let table = *pick(&mut self.rng, &["orders", "products", "users", "stock"]);
            let op = *pick(&mut self.rng, &["SELECT", "SELECT", "INSERT", "UPDATE"]);
            (
                format!("{op} {table}"),
                format!("{op} * FROM {table} WHERE id = $1"),
            )
        };
        let (start, duration) = self.window(&parent_span);
        let mut span = self.span(
            trace_id,
            Some(&parent_span),
            name,
            SpanKind::Client,
            start,
            duration,
        );
        span.attributes.extend([
            s("db.system", system),
            s("db.query.text", statement),
            i("db.response.returned_rows", self.rng.random_range(0..200)),
        ]);
        if self.rng.random_bool(0.2) {
            span.events.push(Event {
                time_unix_nano: start + duration / 2,
                name: "cache.miss".into(),
                attributes: vec![s(
                    "cache.key",
                    format!("k{}", self.rng.random_range(0..100)),
                )],
                dropped_attributes_count: 0,
            });
        }
        drafts.push(Draft {
            service,
            scope: SCOPE_DB,
            span,
            depth,
        });
    }

    fn add_message(&mut self, drafts: &mut Vec<Draft>, parent_index: usize, trace_id: &[u8]) {
        let parent = &drafts[parent_index];
        let depth = parent.depth + 1;
        let parent_span = parent.span.clone();
        let (start, duration) = self.window(&parent_span);
        let mut producer = self.span(
            trace_id,
            Some(&parent_span),
            "orders publish".into(),
            SpanKind::Producer,
            start,
            duration.clamp(1, 2_000_000),
        );
        producer.attributes.extend([
            s("messaging.system", "kafka"),
            s("messaging.destination.name", "orders"),
        ]);
        // The consumer runs after the producer and may outlive the parent: asynchronous work.
        let consumer_start = producer.end_time_unix_nano + self.rng.random_range(1_000..5_000_000);
        let consumer_duration = self.rng.random_range(1_000_000..50_000_000);
        let mut consumer = self.span(
            trace_id,
            Some(&producer),
            "orders process".into(),
            SpanKind::Consumer,
            consumer_start,
            consumer_duration,
        );
        consumer.attributes.extend([
            s("messaging.system", "kafka"),
            s("messaging.destination.name", "orders"),
            i(
                "messaging.kafka.offset",
                self.rng.random_range(0..1_000_000),
            ),
        ]);
        drafts.push(Draft {
            service: 4,
            scope: SCOPE_MESSAGING,
            span: producer,
            depth,
        });
        drafts.push(Draft {
            service: 10,
            scope: SCOPE_MESSAGING,
            span: consumer,
            depth: depth + 1,
        });
    }

    fn add_internal(&mut self, drafts: &mut Vec<Draft>, parent_index: usize, trace_id: &[u8]) {
        let parent = &drafts[parent_index];
        let service = parent.service;
        let depth = parent.depth + 1;
        let parent_span = parent.span.clone();
        let name = *pick(
            &mut self.rng,
            &[
                "render",
                "validate",
                "serialize",
                "compute-price",
                "load-config",
            ],
        );
        let (start, duration) = self.window(&parent_span);
        let mut span = self.span(
            trace_id,
            Some(&parent_span),
            name.into(),
            SpanKind::Internal,
            start,
            duration,
        );
        span.attributes
            .push(i("app.items", self.rng.random_range(0..50)));
        drafts.push(Draft {
            service,
            scope: SCOPE_APP,
            span,
            depth,
        });
    }

    /// A leaf fails with an exception; the failure propagates to its ancestors as HTTP 500.
    fn fail(&mut self, drafts: &mut [Draft]) {
        let leaf = self.rng.random_range(0..drafts.len());
        let (kind, message) = *pick(&mut self.rng, ERRORS);
        let span = &mut drafts[leaf].span;
        span.status = Some(Status {
            message: message.into(),
            code: StatusCode::Error as i32,
        });
        span.events.push(Event {
            time_unix_nano: span.end_time_unix_nano,
            name: "exception".into(),
            attributes: vec![
                s("exception.type", kind),
                s("exception.message", message),
                s(
                    "exception.stacktrace",
                    format!("{kind}: {message}\n\tat handler (handler.go:42)"),
                ),
                kv("exception.escaped", Value::BoolValue(true)),
            ],
            dropped_attributes_count: 0,
        });
        let mut parent = span.parent_span_id.clone();
        while !parent.is_empty() {
            let Some(ancestor) = drafts.iter_mut().find(|d| d.span.span_id == parent) else {
                break;
            };
            ancestor.span.status = Some(Status {
                message: String::new(),
                code: StatusCode::Error as i32,
            });
            for attr in &mut ancestor.span.attributes {
                if attr.key == "http.response.status_code" {
                    attr.value = Some(AnyValue {
                        value: Some(Value::IntValue(500)),
                    });
                }
            }
            parent = ancestor.span.parent_span_id.clone();
        }
    }

    fn resource(&self, service: usize, region: usize) -> Resource {
        let svc = &SERVICES[service];
        Resource {
            attributes: vec![
                s("service.name", svc.name),
                s(
                    "service.version",
                    format!("1.{}.{}", service % 4, service * 7 % 10),
                ),
                s("deployment.environment.name", "production"),
                s("telemetry.sdk.language", svc.language),
                s("cloud.region", REGIONS[region]),
                s("k8s.cluster.name", format!("shop-{}", REGIONS[region])),
                s("k8s.namespace.name", "shop"),
                s("k8s.pod.name", self.pods[service][region].clone()),
                s("k8s.container.name", svc.name),
                i("process.pid", 1000 + service as i64 * 17),
                kv(
                    "host.cpu.ratio",
                    Value::DoubleValue(0.25 * (1 + service % 4) as f64),
                ),
                kv(
                    "service.canary",
                    Value::BoolValue(service.is_multiple_of(5)),
                ),
            ],
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        }
    }

    /// One resource-spans per service, one scope-spans per instrumentation scope, spans in
    /// creation order.
    fn group(&self, drafts: Vec<Draft>, region: usize) -> Vec<ResourceSpans> {
        let mut out: Vec<(usize, ResourceSpans)> = Vec::new();
        for draft in drafts {
            let position = match out.iter().position(|(svc, _)| *svc == draft.service) {
                Some(p) => p,
                None => {
                    out.push((
                        draft.service,
                        ResourceSpans {
                            resource: Some(self.resource(draft.service, region)),
                            scope_spans: Vec::new(),
                            schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                        },
                    ));
                    out.len() - 1
                }
            };
            let (name, version) = SCOPES[draft.scope];
            let rs = &mut out[position].1;
            let scope = match rs
                .scope_spans
                .iter()
                .position(|ss| ss.scope.as_ref().is_some_and(|sc| sc.name == name))
            {
                Some(p) => p,
                None => {
                    rs.scope_spans.push(ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: name.into(),
                            version: version.into(),
                            attributes: if draft.scope == SCOPE_APP {
                                vec![s("app.module", "core")]
                            } else {
                                Vec::new()
                            },
                            dropped_attributes_count: 0,
                        }),
                        spans: Vec::new(),
                        schema_url: String::new(),
                    });
                    rs.scope_spans.len() - 1
                }
            };
            rs.scope_spans[scope].spans.push(draft.span);
        }
        out.into_iter().map(|(_, rs)| rs).collect()
    }
}

impl Iterator for Generator {
    type Item = Vec<ResourceSpans>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_trace())
    }
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Writes `traces` generated traces into blocks of `traces_per_block`, calling `progress` with
/// each block's meta as it is committed.
pub async fn write_blocks(
    generator: &mut Generator,
    store: std::sync::Arc<dyn object_store::ObjectStore>,
    tenant: &str,
    options: &crate::storage::BlockOptions,
    traces: usize,
    traces_per_block: usize,
    mut progress: impl FnMut(&crate::storage::BlockMeta),
) -> Result<Vec<crate::storage::BlockMeta>, crate::storage::block::BlockError> {
    let mut metas = Vec::new();
    let mut remaining = traces;
    while remaining > 0 {
        let count = remaining.min(traces_per_block.max(1));
        remaining -= count;
        let batch: Vec<ResourceSpans> = generator.by_ref().take(count).flatten().collect();
        let (grouped, _) = crate::storage::split_by_trace(batch);
        let meta =
            crate::storage::write_block(store.clone(), tenant, options.clone(), grouped.iter())
                .await?;
        progress(&meta);
        metas.push(meta);
    }
    Ok(metas)
}
