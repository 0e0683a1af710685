//! Logging. On Lambda: one JSON object per line with `level`, `message`,
//! `requestId` (from the runtime's span) and `function`, plus the event's own
//! fields; an EMF metric document (`metrics`) is lifted to the top of its line
//! so CloudWatch reads it. Locally: readable text, coloured only on a terminal.
//! `RUST_LOG` filters; the default is `info`.

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init() {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok();
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests, the local server) keeps the first subscriber.
    let _ = match function {
        Some(function) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(LambdaJson { function }),
            )
            .try_init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(std::io::stdout().is_terminal())
                    .compact(),
            )
            .try_init(),
    };
}

/// `RUST_LOG` as levels per target (`info`, `warn,shared=debug`): the
/// directives this service uses, without `EnvFilter`'s span and field
/// matching and the regex engine it links into every binary. Unset, empty or
/// unreadable: `info`.
pub fn filter(rust_log: Option<&str>) -> Targets {
    rust_log
        .map(str::trim)
        .filter(|directives| !directives.is_empty())
        .and_then(|directives| directives.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// One JSON object per event, fields of the enclosing spans (the runtime's
/// `requestId`) flattened in, so every line can be filtered by request.
pub struct LambdaJson {
    pub function: String,
}

impl<S, N> FormatEvent<S, N> for LambdaJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        line.insert("level".into(), event.metadata().level().as_str().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    merge_json(&mut line, &fields.fields);
                }
            }
        }
        let mut own = String::new();
        ctx.format_fields(Writer::new(&mut own), event)?;
        merge_json(&mut line, &own);
        if let Some(Value::String(doc)) = line.remove(crate::metrics::EMF_FIELD) {
            merge_json(&mut line, &doc);
        }
        line.insert("function".into(), self.function.clone().into());
        line.entry("message").or_insert_with(|| "".into());
        writeln!(writer, "{}", Value::Object(line))
    }
}

fn merge_json(line: &mut Map<String, Value>, text: &str) {
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) {
        line.extend(fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lambda_lines(emit: impl FnOnce()) -> Vec<Value> {
        let out = Captured::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(LambdaJson {
                function: "kob-spend".into(),
            })
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect()
    }

    #[test]
    fn lambda_lines_carry_level_message_request_id_and_function() {
        let lines = lambda_lines(|| {
            // The span lambda_runtime opens around each invocation.
            let span = tracing::info_span!("Lambda runtime invoke", requestId = "req-123");
            let _in = span.enter();
            tracing::warn!(code = "LIMIT_EXCEEDED", "purchase refused");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "purchase refused");
        assert_eq!(line["requestId"], "req-123");
        assert_eq!(line["function"], "kob-spend");
        assert_eq!(line["code"], "LIMIT_EXCEEDED");
    }

    #[test]
    fn a_metric_is_an_emf_document_at_the_top_of_its_line() {
        let lines = lambda_lines(|| {
            let span = tracing::info_span!("Lambda runtime invoke", requestId = "req-9");
            let _in = span.enter();
            crate::metrics::count(crate::metrics::PURCHASES, 1, &[]);
        });
        let line = &lines[0];
        assert_eq!(line["Purchases"], 1);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "Kobatela"
        );
        assert!(line["_aws"]["Timestamp"].is_i64());
        assert_eq!(line["requestId"], "req-9");
        assert!(line.get("emf").is_none());
    }

    #[test]
    fn rust_log_sets_levels_per_target_and_defaults_to_info() {
        use tracing::Level;
        let info = filter(None);
        assert!(info.would_enable("shared::store", &Level::INFO));
        assert!(!info.would_enable("shared::store", &Level::DEBUG));
        for unreadable in ["", "  ", "shared=loud"] {
            let f = filter(Some(unreadable));
            assert!(f.would_enable("any", &Level::INFO), "{unreadable:?}");
            assert!(!f.would_enable("any", &Level::DEBUG), "{unreadable:?}");
        }
        let f = filter(Some("warn,shared::store=debug"));
        assert!(!f.would_enable("axum", &Level::INFO));
        assert!(f.would_enable("axum", &Level::WARN));
        assert!(f.would_enable("shared::store::client", &Level::DEBUG));
        assert!(!f.would_enable("shared::auth", &Level::INFO));
    }
}
