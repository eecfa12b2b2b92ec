//! The `ferrite` binary: flags, config file, logging, signals.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use ferrite::config::Config;
use ferrite::server::Server;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Redis-compatible, multi-tenant key-value server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// TOML configuration file (optional: embedded defaults otherwise).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Port to listen on (overrides the file).
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind (overrides the file).
    #[arg(long)]
    bind: Option<String>,
    /// Log every change and restore it at start-up: yes or no (overrides the file).
    #[arg(long, value_parser = ["yes", "no"])]
    appendonly: Option<String>,
    /// Data directory (overrides the file).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// always, everysec or no (overrides the file).
    #[arg(long, value_parser = ["always", "everysec", "no"])]
    appendfsync: Option<String>,
    /// Serve Prometheus metrics on ip:port, e.g. 127.0.0.1:9121 (overrides the file's [metrics] listen).
    #[arg(long, value_parser = parse_listen)]
    metrics_listen: Option<std::net::SocketAddr>,
}

fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|e| format!("{e} (want ip:port, such as 127.0.0.1:9121)"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = match &args.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    if let Some(p) = args.port {
        config.server.port = p;
    }
    if let Some(b) = args.bind {
        config.server.bind = b;
    }
    if let Some(a) = args.appendonly {
        config.persistence.appendonly = a == "yes";
    }
    if let Some(d) = args.dir {
        config.persistence.dir = d;
    }
    if let Some(m) = args.metrics_listen {
        config.metrics.listen = Some(m.to_string());
    }
    if let Some(f) = args.appendfsync {
        config.persistence.appendfsync = ferrite::persist::Fsync::from_name(&f).expect("clap allowed only the three names");
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        // Colour codes only on a terminal: a log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    // Multi-threaded even with one worker: a script that runs long hands
    // its worker to another thread (`worker::leave`), which a
    // current-thread runtime cannot do.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.server.worker_threads())
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let server = Server::bind(&config).await.with_context(|| format!("binding {}:{}", config.server.bind, config.server.port))?;
        let state = server.state();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::warn!("Received shutdown signal, scheduling shutdown...");
            state.request_shutdown();
        });
        server.run().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
