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

#[tokio::test]
async fn the_binary_prints_its_urls_and_serves_until_terminated() {
    let mut emulator = Running(
        Command::new(BINARY)
            .args(["--key", "sk_other", "--not-found-share", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary starts"),
    );
    let mut line = String::new();
    BufReader::new(emulator.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let (clearbit, heap) = line.trim().split_once(' ').expect("two URLs");
    let clearbit = clearbit.strip_prefix("clearbit=http://127.0.0.1:").expect("a loopback Clearbit URL");
    let heap = heap.strip_prefix("heap=http://127.0.0.1:").expect("a loopback Heap URL");

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

#[test]
fn the_binary_refuses_non_loopback_addresses() {
    let output = Command::new(BINARY).args(["--clearbit-addr", "0.0.0.0:0"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
