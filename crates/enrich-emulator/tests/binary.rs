//! The `enrich-emulator` binary: announces its URLs, serves, refuses to listen beyond loopback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_enrich-emulator");

/// Kills the emulator if the test fails before stopping it.
#[derive(Debug)]
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts the binary with `args`; returns it with the Clearbit and Heap ports it announced.
fn start(args: &[&str]) -> (Running, String, String) {
    let mut emulator =
        Running(Command::new(BINARY).args(args).stdout(Stdio::piped()).spawn().expect("the binary starts"));
    let mut line = String::new();
    BufReader::new(emulator.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let (clearbit, heap) = line.trim().split_once(' ').expect("two URLs");
    let clearbit = clearbit.strip_prefix("clearbit=http://127.0.0.1:").expect("a loopback Clearbit URL");
    let heap = heap.strip_prefix("heap=http://127.0.0.1:").expect("a loopback Heap URL");
    (emulator, clearbit.to_owned(), heap.to_owned())
}

#[tokio::test]
async fn the_binary_prints_its_urls_and_serves_until_terminated() {
    let (mut emulator, clearbit, heap) = start(&["--key", "sk_other", "--not-found-share", "0"]);

    let found = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{clearbit}/v2/combined/find?email=jane.doe%40acme.com"))
        .bearer_auth("sk_other")
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), 200);
    let log = reqwest::get(format!("http://127.0.0.1:{heap}/_emulator/requests")).await.unwrap();
    assert_eq!(log.text().await.unwrap(), "[]");

    #[cfg(unix)]
    {
        let terminated = Command::new("kill").args(["-TERM", &emulator.0.id().to_string()]).status().unwrap();
        assert!(terminated.success());
        assert!(emulator.0.wait().unwrap().success(), "SIGTERM is a clean stop");
    }
}

#[tokio::test]
async fn the_binary_injects_the_faults_it_is_given() {
    let (_emulator, clearbit, heap) = start(&[
        "--faults",
        "429=1",
        "--heap-faults",
        "5xx=1",
        "--seed",
        "9",
        "--latency-jitter-ms",
        "5",
        "--enforce-rate-limit",
        "--rate-limit-per-minute",
        "100",
        "--max-concurrent",
        "5",
    ]);
    let client = reqwest::Client::new();
    let limited = client
        .get(format!("http://127.0.0.1:{clearbit}/v2/combined/find?email=jane.doe%40acme.com"))
        .bearer_auth("sk_emulator_secret")
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["x-ratelimit-limit"], "100");
    let failed = client
        .post(format!("http://127.0.0.1:{heap}/api/add_user_properties"))
        .body(r#"{"app_id": "1234567890", "identity": "ada", "properties": {"a": 1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
}

#[test]
fn the_binary_refuses_impossible_faults_and_limits() {
    for (args, problem) in [
        (["--faults", "429=1.5"], "the 429 share 1.5 is not between 0 and 1"),
        (["--faults", "timeout=0.1"], "unknown fault \"timeout\""),
        (["--heap-faults", "drop=0.6,5xx=0.6"], "add up to 1.2, more than 1"),
        (["--heap-faults", "queued=0.1"], "queued is a Clearbit fault"),
        (["--max-concurrent", "0"], "--max-concurrent"),
    ] {
        let output = Command::new(BINARY).args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(problem), "{args:?}: {stderr}");
    }
}

#[test]
fn the_binary_refuses_non_loopback_addresses() {
    let output = Command::new(BINARY).args(["--clearbit-addr", "0.0.0.0:0"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

#[tokio::test]
async fn the_binary_pins_an_api_version_and_may_accept_unknown_app_ids() {
    let (_emulator, clearbit, heap) =
        start(&["--account-api-version", "2016-01-01", "--accept-unknown-app-ids", "--not-found-share", "0"]);
    let client = reqwest::Client::new();
    let found = client
        .get(format!("http://127.0.0.1:{clearbit}/v2/combined/find?email=jane.doe%40acme.com"))
        .bearer_auth("sk_emulator_secret")
        .send()
        .await
        .unwrap();
    assert_eq!(found.headers()["x-api-version"], "2016-01-01");
    assert!(found.headers().contains_key("x-api-warn"));
    let taken = client
        .post(format!("http://127.0.0.1:{heap}/api/add_user_properties"))
        .body(r#"{"app_id": "42", "users": [{"identity": "u", "properties": {"a": "b"}}]}"#)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 200);
}
