//! `enrich run --metrics`: Prometheus metrics of the runs and a health check, on loopback unless told
//! otherwise; and `--log-format json`, which the test reads the metrics address from.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use enrich_emulator::EmulatorConfig;
use serde_json::Value;
use support::{Workspace, row};

/// `GET path` over plain HTTP/1.1: the status line and the body.
fn get(address: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn run_serves_the_metrics_of_its_runs_and_a_health_check() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(
        &(0..20).map(|i| row(&format!("u{i}"), &format!("p{i}@firm{}.io", i % 4), 0)).collect::<Vec<_>>(),
    );
    let mut runner = workspace
        .command(&["--log-format", "json", "run", "--metrics", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("enrich starts");
    // Every log line, as it comes; read to the end so that the pipe never fills.
    let (lines, logged) = mpsc::channel();
    let stderr = runner.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = lines.send(line.unwrap());
        }
    });
    let mut log = Vec::new();
    let url = loop {
        let line = logged.recv().expect("enrich run logs the metrics address before it ends");
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        log.push(event.clone());
        if event["message"] == "serving Prometheus metrics" {
            break event["url"].as_str().unwrap().to_owned();
        }
    };
    let address = url.strip_prefix("http://").and_then(|rest| rest.strip_suffix("/metrics")).unwrap();
    assert!(address.starts_with("127.0.0.1:") && !address.ends_with(":0"), "{url}");

    assert_eq!(get(address, "/health"), ("HTTP/1.1 200 OK".to_owned(), "ok".to_owned()));
    let metrics = loop {
        let (status, body) = get(address, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        if body.contains("enrich_runs_total{connection=\"main\"} 1\n") {
            break body;
        }
        assert!(runner.try_wait().unwrap().is_none(), "enrich run stopped before a run:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sample = |name: &str| -> f64 {
        let line = metrics.lines().find(|line| line.starts_with(&format!("{name} "))).unwrap_or_else(|| {
            panic!("no {name} in:\n{metrics}");
        });
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    };
    assert_eq!(sample("enrich_lookups_total{connection=\"main\"}"), 20.0);
    let found = sample("enrich_lookup_outcomes_total{connection=\"main\",outcome=\"found\"}");
    let not_found = sample("enrich_lookup_outcomes_total{connection=\"main\",outcome=\"not_found\"}");
    assert_eq!(found + not_found, 20.0, "{metrics}");
    assert_eq!(sample("enrich_lookup_outcomes_total{connection=\"main\",outcome=\"failed\"}"), 0.0);
    assert_eq!(sample("enrich_users_written_total{connection=\"main\"}"), 20.0);
    assert!(sample("enrich_last_run_duration_seconds{connection=\"main\"}") >= 0.0);
    assert_eq!(sample("enrich_connection_status{connection=\"main\",status=\"connected\"}"), 1.0);
    assert_eq!(sample("enrich_connection_status{connection=\"main\",status=\"waiting_for_data\"}"), 0.0);
    assert!(metrics.contains("# TYPE enrich_lookups_total counter\n"), "{metrics}");

    let status = Command::new("kill").args(["-TERM", &runner.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || runner.wait()).await.unwrap().unwrap();
    assert_eq!(exit.code(), Some(0), "a graceful stop exits 0");
    log.extend(
        logged.iter().map(|line| serde_json::from_str::<Value>(&line).expect("every log line is JSON")),
    );
    let finished = log.iter().find(|event| event["message"] == "sync finished").expect("the run is logged");
    assert_eq!((finished["level"].as_str(), finished["lookups"].as_u64()), (Some("INFO"), Some(20)));
    assert!(TcpStream::connect(address).is_err(), "the metrics server stops with enrich run");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_stay_on_this_machine_unless_made_public() {
    let workspace = Workspace::start(EmulatorConfig::default()).await;
    workspace.write_roster(&[]);
    let public = workspace.enrich(&["run", "--metrics", "0.0.0.0:9464"]).await;
    assert_eq!(public.code, Some(2), "a usage error: {public}");
    assert!(
        public.stderr.contains(
            "--metrics 0.0.0.0:9464 is not a loopback address; the metrics endpoint has no authentication, \
             so serving it to other machines takes --metrics-public"
        ),
        "{public}"
    );
    let alone = workspace.enrich(&["run", "--metrics-public"]).await;
    assert_eq!(alone.code, Some(2), "{alone}");
}
