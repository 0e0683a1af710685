//! Logging. JSON lines on Lambda (CloudWatch adds the time), readable text
//! locally. `RUST_LOG` filters; the default is `info`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (tests, the local server) keeps the first subscriber.
    let _ = if on_lambda {
        builder.json().without_time().with_ansi(false).try_init()
    } else {
        // Colour only for a person at a terminal: a log file or a pipe
        // (CI, `make dev > log`) gets plain text.
        builder
            .compact()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .try_init()
    };
}
