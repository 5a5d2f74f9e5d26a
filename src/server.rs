//! Process wiring: the pingora server with its services (the app listener, the admin
//! listener, the callback listener when `callbacks:` is set, and background work: token
//! refresh, SIGHUP reload, the callbacks' delivery workers, the outbox senders, drain), and
//! shutdown.
//!
//! Shutdown: SIGTERM and SIGINT both drain. Readiness turns false, listeners stop accepting,
//! calls in flight finish, and the process exits 0 as soon as none is left, or after
//! [`DRAIN_TIMEOUT`] at the latest (pingora's own default would wait 300 s whatever is in flight).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use tokio::signal::unix::{signal, SignalKind};

use crate::admin::AdminApp;
use crate::admin_server::AdminServer;
use crate::callback::delivery::Worker;
use crate::callback::listener::CallbackServer;
use crate::proxy::SidecarProxy;
use crate::state::Shared;

/// Longest time calls in flight get to finish after SIGTERM/SIGINT.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the drain watcher looks at the number of calls in flight.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Builds and runs the server; returns only when the process is exiting.
pub fn run(shared: Arc<Shared>) -> anyhow::Result<()> {
    let rt = shared.runtime.load_full();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let conf = ServerConf {
        threads,
        // Each thread runs its own runtime and keeps the connections it accepted, as nginx's
        // workers do: with two threads on two cores, tokio's work-stealing scheduler answered
        // about 12 % fewer calls a second (with one thread, the same; README "Performance"),
        // for balancing that a sidecar's few busy connections rarely need. The upstream pool
        // is kept per thread to match (`upstream::pool`).
        work_stealing: false,
        grace_period_seconds: Some(DRAIN_TIMEOUT.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: 256,
        pid_file: std::env::temp_dir()
            .join(format!("wecom-sidecar-{}.pid", std::process::id()))
            .display()
            .to_string(),
        upgrade_sock: std::env::temp_dir()
            .join(format!("wecom-sidecar-{}.sock", std::process::id()))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    // pingora retries a taken port for 30 s and then panics in a service thread, leaving a
    // process whose admin port answers but whose app port never opens. Find out first, and
    // exit with a clear error instead.
    let callback_listen = rt.config.callbacks.as_ref().map(|c| c.listen);
    let listeners: Vec<(&str, SocketAddr)> = [
        ("listen", rt.config.listen),
        ("admin_listen", rt.config.admin_listen),
    ]
    .into_iter()
    .chain(callback_listen.map(|a| ("callbacks.listen", a)))
    .collect();
    for &(key, addr) in &listeners {
        ensure_bindable(key, addr)?;
    }
    descriptor_limit(&shared, &rt.config.client);
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut proxy = Service::new(
        "wecom-sidecar".to_string(),
        SidecarProxy {
            shared: shared.clone(),
        },
    );
    // No L4 read buffer on the app-facing listener: pingora's default is 64 KiB per connection,
    // zero-filled on accept, which at 1,000 idle keep-alive connections from apps is 64 MB of
    // resident memory. It pays off for TLS (16 KiB records); the app side is plain HTTP on
    // loopback, where pingora's HTTP session reads headers into its own buffer anyway.
    proxy.add_listener(
        ListenerConfig::tcp(rt.config.listen.to_string())
            .l4_buffer(L4BufferSettings::new(0, DEFAULT_L4_WRITE_BUFFER_SIZE)),
    );

    let mut admin = Service::new(
        "admin".to_string(),
        AdminServer(AdminApp {
            shared: shared.clone(),
        }),
    );
    admin.add_tcp(&rt.config.admin_listen.to_string());
    admin.threads = Some(1);

    let mut background = background_service(
        "background",
        Background {
            shared: shared.clone(),
        },
    );
    background.threads = Some(1);

    let callbacks = match (&shared.callbacks, callback_listen) {
        (Some(cb), Some(addr)) => {
            let mut service = Service::new(
                "callbacks".to_string(),
                CallbackServer {
                    callbacks: cb.clone(),
                    metrics: shared.metrics.clone(),
                    process: shared.clone(),
                },
            );
            service.add_tcp(&addr.to_string());
            Some(service)
        }
        _ => None,
    };

    for &(name, addr) in &listeners {
        if !addr.ip().is_loopback() {
            tracing::warn!(key = name, %addr, "listening beyond loopback: anything that reaches this address can use the app credentials");
        }
    }
    tracing::info!(listen = %rt.config.listen, admin = %rt.config.admin_listen, apps = rt.apps.len(), "wecom-sidecar starting");

    server.add_service(proxy);
    server.add_service(admin);
    if let Some(callbacks) = callbacks {
        tracing::info!(listen = %callback_listen.map(|a| a.to_string()).unwrap_or_default(), apps = shared.callbacks.as_ref().map_or(0, |c| c.apps.len()), "callback listener starting");
        server.add_service(callbacks);
    }
    server.add_service(background);
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainOnSignal { shared }),
    });
    Ok(())
}

/// Raises the soft descriptor limit to the hard one and caps app connections to what it
/// leaves room for (`client.max_connections`, `descriptors`).
fn descriptor_limit(shared: &Shared, client: &crate::config::ClientConnections) {
    let limit = match crate::descriptors::raise_to_hard() {
        Ok(raised) => raised,
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the descriptor limit; client.max_connections is not bounded by it");
            return;
        }
    };
    let allowed = crate::descriptors::app_connections_allowed(limit.now);
    shared.capacity.set_allowed(allowed);
    if let Some(n) = client.max_connections.filter(|&n| n > allowed) {
        tracing::warn!(
            configured = n,
            allowed,
            descriptor_limit = limit.now,
            "client.max_connections is more than the descriptor limit leaves room for; using {allowed}: raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower client.max_connections"
        );
    }
    tracing::info!(
        descriptor_limit = limit.now,
        raised_from = limit.before,
        max_connections = shared.capacity.max_connections(client),
        "app connections bounded"
    );
}

/// Binds `addr` and lets it go again, so a port another process holds is reported at once.
/// (The standard library sets `SO_REUSEADDR`, as pingora does, so connections of an earlier
/// run still in TIME_WAIT do not count as taken.)
fn ensure_bindable(key: &str, addr: SocketAddr) -> anyhow::Result<()> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(anyhow::anyhow!(
            "{key} {addr}: the address is already in use by another process; stop it or choose another port"
        )),
        Err(e) => Err(anyhow::anyhow!("{key} {addr}: cannot listen: {e}")),
    }
}

/// Turns SIGTERM and SIGINT into a graceful drain (pingora treats SIGINT as a fast exit).
struct DrainOnSignal {
    shared: Arc<Shared>,
}

#[async_trait]
impl ShutdownSignalWatch for DrainOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            // Without signal handlers nothing can stop us gracefully; wait forever.
            std::future::pending::<()>().await;
            unreachable!();
        };
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = which,
            in_flight = self.shared.in_flight(),
            "draining: no new connections, finishing calls in flight"
        );
        self.shared.draining.store(true, Ordering::Release);
        ShutdownSignal::GracefulTerminate
    }
}

/// One delivery worker per callback app, all on one client (pingora's connector and pool).
fn start_delivery(shared: &Arc<Shared>, shutdown: &ShutdownWatch) {
    let (Some(cb), Some(cfg)) = (&shared.callbacks, &shared.runtime.load().config.callbacks) else {
        return;
    };
    let client = Arc::new(crate::callback::post::Client::default());
    // In fleet mode a queue may be another sidecar's: look again every half lease.
    let poll = shared
        .runtime
        .load()
        .config
        .fleet
        .is_some()
        .then_some(cfg.delivery.timeout);
    for app in &cb.apps {
        let worker = Worker {
            app: app.clone(),
            store: cb.store.clone(),
            metrics: shared.metrics.clone(),
            client: client.clone(),
            delivery: cfg.delivery,
            poll,
        };
        tokio::spawn(worker.run(shutdown.clone()));
    }
}

/// How often a sender looks at a queue another sidecar of the fleet may hold.
const OUTBOX_POLL: Duration = Duration::from_secs(5);

/// One outbox sender per app (and one for group robots when a `webhook/send` route has the
/// outbox), each replaying through the pipeline's forwarding; an app first queued for later
/// (a reload added its route) gets its sender then.
fn start_outbox(shared: &Arc<Shared>, shutdown: &ShutdownWatch) {
    let Some(outbox) = &shared.outbox else {
        return;
    };
    let config = shared.runtime.load().config.clone();
    let mut names: Vec<&str> = config.apps.iter().map(|a| a.name.as_str()).collect();
    if config.routes.iter().any(|r| {
        r.policy.outbox.is_some()
            && matches!(&r.path, crate::config::PathMatch::Exact(p) if p == "/cgi-bin/webhook/send")
    }) {
        names.push(crate::outbox::ROBOT);
    }
    let replay: Arc<dyn crate::outbox::sender::Replay> = Arc::new(crate::proxy::replay::Replayer {
        shared: shared.clone(),
    });
    let poll = config.fleet.is_some().then_some(OUTBOX_POLL);
    let (store, metrics, sd) = (
        outbox.store.clone(),
        shared.metrics.clone(),
        shutdown.clone(),
    );
    outbox.start_senders(
        &names,
        Box::new(move |app| {
            let sender = crate::outbox::sender::Sender {
                app,
                store: store.clone(),
                metrics: metrics.clone(),
                replay: replay.clone(),
                poll,
            };
            tokio::spawn(sender.run(sd.clone()));
        }),
    );
}

/// Token refresh, config reloads (SIGHUP, file replaced), probes, memory trimming, idle app
/// connections and the drain watcher.
struct Background {
    shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for Background {
    async fn start(&self, shutdown: ShutdownWatch) {
        // Each task gets the parts of the state it uses; the state lives as long as they do.
        tokio::spawn(crate::reload::watch(self.shared.clone(), shutdown.clone()));
        let (s, sd) = (self.shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            crate::upstream::probe::run(&s.resolver, &s.metrics, &s.runtime, sd).await;
        });
        let (s, sd) = (self.shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            crate::token::refresher::run(&s.tokens, &s.resolver, &s.runtime, sd).await;
        });
        let (s, sd) = (self.shared.clone(), shutdown.clone());
        tokio::spawn(async move { crate::memory::run(&s.capacity, sd).await });
        // Idle app connections: closed at `client.idle_timeout` (the bound in force), and all
        // of them once the sidecar stops.
        let (s, mut sd) = (self.shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            let idle_timeout = || s.runtime.load().config.client.idle_timeout;
            let stop = async move {
                let _ = sd.wait_for(|stop| *stop).await;
            };
            s.capacity.sweep(idle_timeout, stop).await;
        });
        start_delivery(&self.shared, &shutdown);
        start_outbox(&self.shared, &shutdown);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading config");
                let shared = shared.clone();
                // Reading and validating the file is blocking work.
                let _ = tokio::task::spawn_blocking(move || crate::reload::reload(&*shared)).await;
            }
        });
        let mut watch = shutdown.clone();
        while !*watch.borrow() {
            if watch.changed().await.is_err() {
                break;
            }
        }
        // Listeners have stopped accepting. Exit as soon as the last call in flight is done;
        // pingora ends the process after DRAIN_TIMEOUT otherwise.
        loop {
            if self.shared.in_flight() == 0 {
                tracing::info!("drained: exiting");
                // `exit` runs no destructor: the log lines still buffered go out first.
                crate::logging::flush(Duration::from_secs(2));
                std::process::exit(0);
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
}
