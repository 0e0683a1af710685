//! `kobatela-local psp-event --ref PSP-… [--type payment.settled] [--id EVT]`:
//! what the PSP would send, signed with the local webhook secret
//! (`KOBATELA_PSP_WEBHOOK_SECRET`, else `.local-state/psp-webhook-secret` as
//! `make dev` keeps it), to `POST /psp/webhook` of the local API
//! (`KOBATELA_LOCAL_ADDR`, default 127.0.0.1:3000). Prints the answer.

use kobatela_local::psp_signing::{local_webhook_secret, sign};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn send(args: &[&str]) -> Result<(), String> {
    let mut psp_ref = None;
    let mut kind = "payment.settled".to_string();
    let mut id = format!("evt_{}", uuid_like());
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .to_string();
        match *flag {
            "--ref" => psp_ref = Some(value),
            "--type" => kind = value,
            "--id" => id = value,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let psp_ref = psp_ref.ok_or("--ref PSP-… is required")?;
    let body = serde_json::json!({"id": id, "type": kind, "psp_ref": psp_ref}).to_string();
    let signed = sign(&local_webhook_secret()?, body.as_bytes());
    let (timestamp, signature) = (signed.timestamp, signed.signature);
    let addr = std::env::var("KOBATELA_LOCAL_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let request = format!(
        "POST /psp/webhook HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-PSP-Timestamp: {timestamp}\r\nX-PSP-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("cannot reach {addr}: {e} (is make dev running?)"))?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    println!("{body}");
    if status.contains(" 200 ") {
        Ok(())
    } else {
        Err(format!("the webhook answered {status}"))
    }
}

/// A fresh event id suffix (time + process, enough for hand-made events).
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}{:x}", std::process::id())
}
