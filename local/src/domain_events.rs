//! Domain events of the local stack: `domain_events::handle` on the table's
//! stream (the stand-in for its Lambda DynamoDB event source), publishing to
//! the emulator's bus `kobatela-local` (`local/bootstrap.py` creates it).
//!
//! Starts at the stream's latest record: what was written before this run
//! was published by the previous one, or is stale. `KOBATELA_DOMAIN_EVENTS=off`
//! leaves it out (the stream still records; nothing reads it).

use crate::stream::{StartAt, StreamSource};
use aws_lambda_events::dynamodb::Event;
use domain_events::Publisher;
use std::time::Duration;

/// Turns the reader off (`off`); anything else or unset: on.
pub const SWITCH_VAR: &str = "KOBATELA_DOMAIN_EVENTS";
/// The bus `local/bootstrap.py` creates, unless `KOBATELA_EVENT_BUS` names one.
pub const LOCAL_BUS: &str = "kobatela-local";
/// How often an idle stream is read again: events follow writes closely.
const IDLE: Duration = Duration::from_millis(500);

/// Whether the reader is on, from `KOBATELA_DOMAIN_EVENTS`.
pub fn enabled(value: Option<&str>) -> bool {
    !value.is_some_and(|v| v.trim().eq_ignore_ascii_case("off"))
}

/// The publisher of the local stack.
pub fn local_publisher(sdk: &aws_config::SdkConfig) -> Publisher {
    let bus = Publisher::bus_from_env().unwrap_or_else(|_| LOCAL_BUS.to_string());
    Publisher::new(Publisher::new_client(sdk), &bus)
}

/// Opens the stream now (so writes from here on are seen), and returns the
/// loop that delivers it forever; `None` when switched off.
pub async fn start(
    sdk: &aws_config::SdkConfig,
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Option<impl std::future::Future<Output = ()>>, String> {
    if !enabled(std::env::var(SWITCH_VAR).ok().as_deref()) {
        println!("domain events: off ({SWITCH_VAR}=off)");
        return Ok(None);
    }
    let publisher = local_publisher(sdk);
    let source = StreamSource::open(sdk, dynamodb, table, StartAt::Latest).await?;
    println!(
        "domain events: table {table}'s stream → bus {}",
        publisher.bus()
    );
    Ok(Some(source.deliver_forever(IDLE, move |event: Event| {
        let publisher = publisher.clone();
        async move { Ok::<_, String>(domain_events::handle(&publisher, event).await) }
    })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_off_turns_it_off() {
        assert!(super::enabled(None));
        assert!(super::enabled(Some("on")));
        assert!(super::enabled(Some("")));
        assert!(!super::enabled(Some("off")));
        assert!(!super::enabled(Some(" OFF ")));
    }
}
