//! `kobatela-local`: every function's router in one process, against the local
//! AWS stack (or any DynamoDB the environment points at), plus the expiry
//! schedule. Also the command that makes the first admin key of a deployment.
//!
//!   kobatela-local                     serve on KOBATELA_LOCAL_ADDR
//!   kobatela-local create-admin-key N  create an admin key named N, print it once
//!   kobatela-local ensure-table        create the table if missing (local stack only)
//!   kobatela-local psp-event --ref PSP-… [--type payment.settled] [--id EVT]
//!                                      send a correctly signed PSP webhook to the local API
//!   kobatela-local photo --lat L --lng G [--taken-at T] --out F
//!                                      write a JPEG with EXIF (taken now or at T, at L,G) to F
//!   kobatela-local psp-sandbox         only the PSP sandbox, on KOBATELA_PSP_SANDBOX_ADDR
//!   kobatela-local ledger-check        run a whole ledger check now (or finish the one
//!                                      running) and print the run as JSON
//!
//! Serving also publishes domain events from the table's stream to the
//! emulator's bus (`kobatela_local::domain_events`; KOBATELA_DOMAIN_EVENTS=off
//! to disable), and runs the payout dispatcher on the same stream against the
//! sandbox below or KOBATELA_PSP_BASE_URL (`kobatela_local::dispatch`;
//! KOBATELA_PAYOUT_DISPATCH=off to disable).
//!
//! Serving also starts the PSP sandbox (`kobatela_local::psp_sandbox`) on
//! KOBATELA_PSP_SANDBOX_ADDR (default 127.0.0.1:3100, `off` to disable). If
//! its port is taken (another kobatela-local), the API still starts: the
//! sandbox is a convenience, not part of the API.

mod admin;
mod photo;
mod psp_event;

use kobatela_local::{all_routes, psp_sandbox};

use shared::SharedState;
use std::{net::SocketAddr, process::ExitCode, time::Duration};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread: requests are short and mostly wait on the emulator, and the
// multi-threaded scheduler's cross-thread wake-ups cost more CPU than they save.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    shared::telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => serve().await,
        ["create-admin-key", name] => admin::create(name).await,
        ["ensure-table"] => admin::state_with_table().await.map(|_| ()),
        ["psp-event", rest @ ..] => psp_event::send(rest).await,
        ["photo", rest @ ..] => photo::write(rest),
        ["psp-sandbox"] => psp_sandbox_alone().await,
        ["ledger-check"] => ledger_check().await,
        _ => Err(
            "usage: kobatela-local [create-admin-key NAME | ensure-table | psp-event --ref PSP-… [--type T] [--id ID] | photo --lat L --lng G [--taken-at T] --out FILE | psp-sandbox | ledger-check]"
                .to_string(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("kobatela-local: {reason}");
            ExitCode::FAILURE
        }
    }
}

fn setting<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse()
            .map_err(|_| format!("{name}={text} is not valid")),
        _ => Ok(default),
    }
}

async fn serve() -> Result<(), String> {
    let addr: SocketAddr = setting(
        "KOBATELA_LOCAL_ADDR",
        SocketAddr::from(([127, 0, 0, 1], 3000)),
    )?;
    let sweep_every: u64 = setting("KOBATELA_SWEEP_SECONDS", 60)?;
    if sweep_every == 0 {
        return Err("KOBATELA_SWEEP_SECONDS must be at least 1".into());
    }
    let state = admin::state_with_table().await?;
    admin::ensure_admin_key(&state).await?;
    let queue = kobatela_local::psp::local_queue(&shared::app::sdk_config().await).await?;
    let webhook = kobatela_local::psp::local_webhook(state.store.clone(), queue.clone()).await?;
    let blob = kobatela_local::local_blob().await;
    let console = kobatela_local::console_routes(&blob).map_err(|e| format!("console: {e}"))?;

    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on {addr}: {e} (is another kobatela-local running?)")
    })?;
    tokio::spawn(expiry_schedule(
        state.clone(),
        Duration::from_secs(sweep_every),
    ));
    // The ledger check's schedule only where asked for (make dev): on the
    // tests' shared table, a check racing the tests would only add noise.
    if std::env::var("KOBATELA_LEDGER_CHECK_HOURS").is_ok() {
        let every = ledger_check::every_from_env().map_err(|e| e.to_string())?;
        tokio::spawn(ledger_schedule(
            state.clone(),
            every,
            Duration::from_secs(sweep_every),
        ));
    }
    // The stand-in for the Lambda DynamoDB event source of domain-events.
    let sdk = shared::app::sdk_config().await;
    if let Some(deliver) =
        kobatela_local::domain_events::start(&sdk, state.store.client(), state.store.table())
            .await?
    {
        tokio::spawn(deliver);
    }
    // The stand-in for the Lambda SQS event source of psp-events.
    tokio::spawn(kobatela_local::psp::consume_forever(
        queue,
        state.store.clone(),
    ));
    let sandbox = start_psp_sandbox().await?;
    kobatela_local::dispatch::start(state.store.clone(), sandbox).await?;
    println!("kobatela-local listening on http://{addr} (console: http://{addr}/console)");
    let app = all_routes(&state, &blob)
        .merge(psp_webhook::router(webhook))
        .merge(console);
    axum::serve(listener, shared::http::app(app))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server failed: {e}"))?;
    println!("kobatela-local stopped");
    Ok(())
}

/// The PSP sandbox beside the API, unless KOBATELA_PSP_SANDBOX_ADDR=off. A
/// bad setting stops the start; a taken port only skips the sandbox.
/// Answers where it listens, if it does.
async fn start_psp_sandbox() -> Result<Option<SocketAddr>, String> {
    let Some(addr) = psp_sandbox::addr_from_env()? else {
        return Ok(None);
    };
    let sandbox = psp_sandbox::Sandbox::new(psp_sandbox::SandboxConfig::from_env()?)?;
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            println!(
                "PSP sandbox listening on http://{addr} (POST /v1/payouts, GET /sandbox/payouts, \
                 GET /sandbox/settlements.csv)"
            );
            tokio::spawn(sandbox.serve(listener));
            Ok(Some(addr))
        }
        Err(e) => {
            eprintln!(
                "kobatela-local: PSP sandbox not started: cannot listen on {addr}: {e} (set {} to another HOST:PORT or off)",
                psp_sandbox::ADDR_VAR
            );
            Ok(None)
        }
    }
}

/// `kobatela-local psp-sandbox`: the sandbox alone, until Ctrl-C or SIGTERM.
async fn psp_sandbox_alone() -> Result<(), String> {
    let addr = psp_sandbox::addr_from_env()?
        .ok_or_else(|| format!("{}=off: nothing to run", psp_sandbox::ADDR_VAR))?;
    let config = psp_sandbox::SandboxConfig::from_env()?;
    let webhook = config.webhook_url.clone();
    let sandbox = psp_sandbox::Sandbox::new(config)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("PSP sandbox listening on http://{addr}, events to {webhook}");
    tokio::select! {
        () = sandbox.serve(listener) => {}
        () = shutdown_signal() => {}
    }
    println!("PSP sandbox stopped");
    Ok(())
}

/// The local stand-in for the EventBridge schedule: the same sweeps
/// (mandate expiry, escrow deadlines), every `every`. A failed run is logged and the next one tries again.
async fn expiry_schedule(state: SharedState, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match mandate_expiry::sweep(&state.store, shared::domain::time::Timestamp::now()).await {
            Ok(result)
                if result
                    .as_object()
                    .is_some_and(|r| r.values().all(|v| v == 0)) => {}
            Ok(result) => tracing::info!(%result, "scheduled sweep"),
            Err(e) => tracing::warn!(error = %e, "scheduled sweep failed"),
        }
    }
}

/// The local stand-in for the ledger check's schedule: a tick every
/// `tick` (the sweep's period), starting a run every `every`.
async fn ledger_schedule(state: SharedState, every: Duration, tick: Duration) {
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let budget = shared::ops::ledger::Budget::until(std::time::Instant::now() + tick / 2);
        match shared::ops::ledger::tick(&state.store, every, budget).await {
            Ok(None) => {}
            Ok(Some(run)) => tracing::info!(
                run = %run.id,
                status = ?run.status,
                counts = ?run.counts,
                "ledger check"
            ),
            Err(e) => tracing::warn!(error = %e, "ledger check failed"),
        }
    }
}

/// `kobatela-local ledger-check`: a run from start to end (or the end of
/// the one running), printed as JSON.
async fn ledger_check() -> Result<(), String> {
    use shared::ops::ledger::{self, Budget, DEFAULT_SEGMENTS};
    let state = admin::state_with_table().await?;
    let store = &state.store;
    let started = std::time::Instant::now();
    let run = match ledger::start(store, "kobatela-local".into(), DEFAULT_SEGMENTS)
        .await
        .map_err(|e| e.to_string())?
    {
        Ok(run) | Err(run) => run,
    };
    let budget = Budget::until(std::time::Instant::now() + Duration::from_secs(24 * 3600));
    let run = ledger::advance(store, run.id, budget)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the run vanished")?;
    let mut report = serde_json::to_value(&run).map_err(|e| e.to_string())?;
    report["seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
    println!("{report:#}");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler installs");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
