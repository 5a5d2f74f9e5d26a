//! Criterion benchmarks of the pieces every call goes through: route match, app selection,
//! token lookup, quota decision, query rewrite and redaction, errcode parse, metrics record.
//!
//! `cargo bench --bench hot_path`. Each figure is the cost of one call of that piece.

use std::sync::Arc;
use std::time::Duration;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use wecom_sidecar::config::{self, AppName, Rate};
use wecom_sidecar::proxy::request;
use wecom_sidecar::quota::{Ask, Quotas};
use wecom_sidecar::redact::redact_uri;
use wecom_sidecar::state::Shared;
use wecom_sidecar::wecom::facts;
use wecom_sim::{SimConfig, Simulator};

fn config(upstream: &str) -> config::Config {
    let yaml = format!(
        r#"
upstreams:
  primary: {{ url: "{upstream}" }}
apps:
  - {{ name: hr-bot, corp_id: wwdev0000000000001, secret_env: HR, default: true }}
  - {{ name: ops-bot, corp_id: wwdev0000000000001, secret_env: OPS }}
routes:
  - path: /cgi-bin/message/send
    quota: ["20/s", "10000/min"]
  - path: /cgi-bin/user/*
  - path: /cgi-bin/department/*
"#
    );
    let env = |name: &str| match name {
        "HR" => Some("dev-secret-hr-bot".to_string()),
        "OPS" => Some("dev-secret-ops-bot".to_string()),
        _ => None,
    };
    config::parse_with_env(&yaml, None, &env).expect("bench config")
}

fn hot_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt
        .block_on(Simulator::start(
            "127.0.0.1:0".parse().unwrap(),
            SimConfig::dev(),
        ))
        .unwrap();
    let shared = Shared::new(config(&sim.url())).expect("no callbacks, no store to open");
    let runtime = shared.runtime.load_full();
    let app = runtime.app("hr-bot").unwrap().clone();
    rt.block_on(async {
        let src = runtime.token_source(&shared.resolver);
        shared
            .tokens
            .get(&app, &src)
            .await
            .expect("token from the simulator")
    });

    c.bench_function("route_match", |b| {
        b.iter(|| {
            runtime
                .routes
                .route(black_box("/cgi-bin/user/get"))
                .map(|c| c.label.len())
        })
    });
    c.bench_function("app_selection", |b| {
        b.iter(|| {
            request::choose_app(
                &runtime,
                None,
                black_box("access_token=ops-bot&userid=zhangsan"),
            )
            .map(|a| a.app.name.as_str().len())
        })
    });
    c.bench_function("token_lookup", |b| {
        b.iter(|| shared.tokens.peek(black_box(&app)).is_some())
    });

    let quotas = Quotas::default();
    let limits = [
        Rate {
            count: u32::MAX,
            per: Duration::from_secs(60),
        },
        Rate {
            count: u32::MAX,
            per: Duration::from_secs(3600),
        },
    ];
    let api: Arc<str> = Arc::from("user/get");
    let name = AppName(Arc::from("hr-bot"));
    c.bench_function("quota_decision", |b| {
        b.iter(|| {
            let ask = Ask {
                app: &name,
                api: &api,
                limits: &limits,
                recipients: &[],
                robot: None,
                share: 1,
            };
            quotas.take(black_box(&ask)).is_ok()
        })
    });
    let token = "x".repeat(64);
    c.bench_function("query_rewrite", |b| {
        b.iter(|| {
            request::upstream_query(
                black_box("access_token=ops-bot&userid=zhangsan&debug=1"),
                Some(&token),
                false,
            )
        })
    });
    c.bench_function("query_redaction", |b| {
        b.iter(|| {
            redact_uri(black_box(
                "/cgi-bin/user/get?access_token=abcdef0123456789&userid=zhangsan",
            ))
            .len()
        })
    });
    let body = br#"{"errcode":0,"errmsg":"ok","userid":"zhangsan","name":"Zhang San","department":[1,2],"position":"engineer","mobile":"13800000000","gender":"1","email":"z@example.com","status":1}"#;
    // What `classify` runs on every answer: errcode, and in the same parse the partial
    // success and 60020 facts.
    c.bench_function("errcode_parse", |b| {
        b.iter(|| facts::read(black_box(body)).errcode)
    });
    c.bench_function("metrics_record", |b| {
        b.iter(|| {
            shared
                .metrics
                .request_duration
                .with_label_values(&["user/get", "primary", "ok"])
                .observe(black_box(0.002))
        })
    });
    sim.shutdown();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = hot_path
}
criterion_main!(benches);
