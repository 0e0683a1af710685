//! The function refuses to start without its secrets, and says why without
//! echoing any secret. Every function starts through the same
//! `shared::AppState::for_lambda`, so this binary stands for all that
//! authenticate. Reading a parameter (present, or missing) from the emulator
//! is in tests/api/secrets.rs.

use std::process::Command;

fn start(env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_users"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("the function binary runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn refuses_to_start_without_its_pepper() {
    let (started, text) = start(&[("KOBATELA_TABLE", "t")]);
    assert!(!started);
    assert!(
        text.contains("KOBATELA_API_KEY_PEPPER is not set"),
        "{text}"
    );
    // Logged, and readable as plain text: output that is not a terminal
    // carries no colour codes.
    assert!(text.contains("refusing to start"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in piped logs: {text:?}"
    );
}

#[test]
fn logs_on_lambda_are_json_lines_with_level_message_and_function() {
    let (started, text) = start(&[
        ("KOBATELA_TABLE", "t"),
        ("AWS_LAMBDA_FUNCTION_NAME", "kobatela-users"),
    ]);
    assert!(!started);
    let line = text
        .lines()
        .find(|l| l.contains("refusing to start"))
        .unwrap_or_else(|| panic!("no log line: {text}"));
    let json: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
    assert_eq!(json["level"], "ERROR");
    assert_eq!(json["function"], "kobatela-users");
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{line}"
    );
}

#[test]
fn refuses_a_weak_pepper_without_echoing_it() {
    let (started, text) = start(&[
        ("KOBATELA_TABLE", "t"),
        ("KOBATELA_API_KEY_PEPPER", "hunter2-short"),
    ]);
    assert!(!started);
    assert!(
        text.contains("KOBATELA_API_KEY_PEPPER is too short"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

/// On Lambda the pepper is an SSM parameter: if it cannot be read, the
/// function refuses to start, naming the parameter (never a value).
#[test]
fn refuses_to_start_when_its_ssm_parameter_cannot_be_read() {
    let (started, text) = start(&[
        ("KOBATELA_TABLE", "t"),
        (
            "KOBATELA_API_KEY_PEPPER_PARAM",
            "/kobatela/test/api-key-pepper",
        ),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        // Nothing listens on port 1: SSM is unreachable.
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
    ]);
    assert!(!started, "{text}");
    assert!(
        text.contains(
            "cannot read the API key pepper from SSM parameter /kobatela/test/api-key-pepper \
             (KOBATELA_API_KEY_PEPPER_PARAM): SSM could not be reached"
        ),
        "{text}"
    );
}

/// With the value and the parameter both set, which one counts would be a
/// guess: refused, without echoing the value.
#[test]
fn refuses_a_pepper_given_twice() {
    let (started, text) = start(&[
        ("KOBATELA_TABLE", "t"),
        (
            "KOBATELA_API_KEY_PEPPER",
            "hunter2-0123456789abcdef0123456789",
        ),
        (
            "KOBATELA_API_KEY_PEPPER_PARAM",
            "/kobatela/test/api-key-pepper",
        ),
    ]);
    assert!(!started);
    assert!(text.contains("both KOBATELA_API_KEY_PEPPER and"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
