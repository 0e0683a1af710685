//! The function refuses to start without its secrets, and says why without
//! echoing any secret. Every function starts through the same
//! `shared::AppState::for_lambda`, so this binary stands for all of them.

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
