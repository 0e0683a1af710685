//! The payout dispatcher in `kobatela-local`: the same handler as the
//! `payout-dispatch` Lambda, fed by `stream::StreamSource` (the stand-in for
//! its DynamoDB Streams event source), asking the PSP at
//! `KOBATELA_PSP_BASE_URL` (default: the PSP sandbox beside the API). So the
//! README's session goes approve → PENDING → SENT → SETTLED by itself.
//! `KOBATELA_PAYOUT_DISPATCH=off` leaves payments PENDING (the integration
//! suite's shared server: its tests drive the webhook by hand, and the
//! dispatcher's own tests run it in-process).

use crate::stream::{StartAt, StreamSource};
use payout_dispatch::Dispatcher;
use shared::{
    config::Secret,
    psp::{HttpPsp, PspConfig},
    store::Store,
};
use std::{net::SocketAddr, sync::Arc, time::Duration};

pub const DISPATCH_VAR: &str = "KOBATELA_PAYOUT_DISPATCH";

/// How often an idle stream is read again.
const IDLE: Duration = Duration::from_millis(250);

/// The PSP the local dispatcher asks: `KOBATELA_PSP_BASE_URL`, else the
/// sandbox at `sandbox`; `KOBATELA_PSP_API_KEY`, else a key made for this run
/// (the sandbox takes any).
pub fn local_psp(sandbox: Option<SocketAddr>) -> Result<Option<HttpPsp>, String> {
    let base = match std::env::var(shared::psp::BASE_URL_VAR) {
        Ok(base) if !base.trim().is_empty() => base,
        _ => match sandbox {
            Some(addr) => format!("http://{addr}"),
            None => return Ok(None),
        },
    };
    let key = std::env::var("KOBATELA_PSP_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
        .unwrap_or_else(shared::auth::generate_secret);
    Ok(Some(HttpPsp::new(PspConfig::new(
        &base,
        Secret::new(key),
    )?)?))
}

/// Starts the dispatcher on the table's stream, from its oldest record (a
/// restart misses nothing; what was handled already is found moved on).
pub async fn start(store: Store, sandbox: Option<SocketAddr>) -> Result<(), String> {
    if std::env::var(DISPATCH_VAR).is_ok_and(|v| v.trim() == "off") {
        println!("payout dispatch off ({DISPATCH_VAR}=off): payments stay PENDING");
        return Ok(());
    }
    let Some(psp) = local_psp(sandbox)? else {
        eprintln!(
            "kobatela-local: payout dispatch not started: no PSP (set {} or run the sandbox)",
            shared::psp::BASE_URL_VAR
        );
        return Ok(());
    };
    println!(
        "payout dispatch: the table's stream → {}",
        psp.config().base_url
    );
    let config = shared::app::sdk_config().await;
    let stream =
        StreamSource::open(&config, store.client(), store.table(), StartAt::Oldest).await?;
    let dispatcher = Dispatcher::new(store, Arc::new(psp));
    tokio::spawn(stream.deliver_forever(IDLE, move |event| {
        let dispatcher = dispatcher.clone();
        async move { Ok(dispatcher.handle(event).await) }
    }));
    Ok(())
}
