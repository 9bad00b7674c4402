//! What can be checked of the container image and the Kubernetes manifests without a container engine:
//! the manifests parse, reference the Secret's keys and the port the image serves, run as non-root, and
//! their config passes `enrich validate`; the Dockerfile is multi-stage, non-root, runs `enrich run`
//! with metrics on the port it exposes. (The image itself is built where an engine is available.)

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_norway::Value;
use support::Run;

fn repository_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn manifest(name: &str) -> Value {
    serde_norway::from_str(&repository_file(&format!("deploy/kubernetes/{name}")))
        .unwrap_or_else(|error| panic!("deploy/kubernetes/{name} is not YAML: {error}"))
}

/// The value at a dotted path; indexes for sequences.
fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |value, step| match step.parse::<usize>() {
        Ok(index) => &value[index],
        Err(_) => &value[step],
    })
}

fn text<'a>(value: &'a Value, path: &str) -> &'a str {
    at(value, path).as_str().unwrap_or_else(|| panic!("no text at {path}"))
}

fn args(container: &Value) -> Vec<&str> {
    at(container, "args").as_sequence().unwrap().iter().map(|arg| arg.as_str().unwrap()).collect()
}

/// The port the Dockerfile exposes, and its default command.
fn dockerfile() -> (u16, Vec<String>) {
    let dockerfile = repository_file("Dockerfile");
    let instructions: Vec<&str> = dockerfile.lines().filter(|line| !line.starts_with('#')).collect();
    assert_eq!(instructions.iter().filter(|line| line.starts_with("FROM ")).count(), 2, "multi-stage");
    assert!(instructions.iter().any(|line| line.starts_with("COPY --from=build ")), "copies the binary only");
    let user = instructions.iter().find_map(|line| line.strip_prefix("USER ")).expect("a USER");
    assert!(!user.starts_with('0') && !user.starts_with("root"), "runs as non-root, not {user}");
    let json = |prefix: &str| -> Vec<String> {
        let line = instructions.iter().find_map(|line| line.strip_prefix(prefix)).expect(prefix);
        serde_json::from_str(line).unwrap()
    };
    assert_eq!(json("ENTRYPOINT "), ["/usr/local/bin/enrich"]);
    let port = instructions.iter().find_map(|line| line.strip_prefix("EXPOSE ")).expect("EXPOSE");
    (port.trim().parse().unwrap(), json("CMD "))
}

#[test]
fn the_image_runs_enrich_run_as_non_root_with_metrics_on_the_port_it_exposes() {
    let (port, command) = dockerfile();
    assert_eq!(command[0], "run");
    assert_eq!(command[1..3], ["--metrics".to_owned(), format!("0.0.0.0:{port}")]);
    assert!(command.contains(&"--metrics-public".to_owned()), "reachable from the kubelet's probes");

    let deployment = manifest("deployment.yaml");
    assert_eq!(at(&deployment, "spec.replicas").as_u64(), Some(2));
    let container = at(&deployment, "spec.template.spec.containers.0");
    assert_eq!(args(container), command, "the Deployment runs what the image does");
    assert_eq!(at(container, "ports.0.containerPort").as_u64(), Some(u64::from(port)));
    let port_name = text(container, "ports.0.name");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(text(container, &format!("{probe}.httpGet.path")), "/health");
        assert_eq!(text(container, &format!("{probe}.httpGet.port")), port_name);
    }
    let annotations = at(&deployment, "spec.template.metadata.annotations");
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some(port.to_string().as_str()));
}

#[test]
fn every_manifest_takes_its_secrets_from_the_secret_and_its_config_passes_validate() {
    let secret = manifest("secret.example.yaml");
    let secret_name = text(&secret, "metadata.name");
    let keys: BTreeSet<String> = at(&secret, "stringData")
        .as_mapping()
        .unwrap()
        .keys()
        .map(|key| key.as_str().unwrap().to_owned())
        .collect();
    let configmap = manifest("configmap.yaml");
    let config = at(&configmap, "data")["enrich.yaml"].as_str().expect("data holds enrich.yaml");
    let variables: BTreeSet<String> = config
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(name, _)| name.to_owned())
        .collect();
    assert_eq!(variables, keys, "the config's ${{VAR}}s are the Secret's keys");
    assert!(config.contains("type: postgres"), "the replicas share their state in PostgreSQL");

    let deployment = manifest("deployment.yaml");
    let cronjob = manifest("cronjob.yaml");
    let pods = [at(&deployment, "spec.template.spec"), at(&cronjob, "spec.jobTemplate.spec.template.spec")];
    for pod in pods {
        assert_eq!(at(pod, "securityContext.runAsNonRoot").as_bool(), Some(true));
        let container = at(pod, "containers.0");
        assert_eq!(text(container, "envFrom.0.secretRef.name"), secret_name);
        assert_eq!(text(container, "volumeMounts.0.mountPath"), "/etc/enrich", "where ENRICH_CONFIG points");
        assert_eq!(text(pod, "volumes.0.configMap.name"), text(&configmap, "metadata.name"));
    }
    let sync = args(at(pods[1], "containers.0"));
    assert_eq!(sync[0], "sync");
    assert!(config.contains(&format!("  {}:\n", sync[1])), "the CronJob syncs a connection of the config");

    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("enrich.yaml"), config).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_enrich"));
    command.arg("validate").current_dir(folder.path()).env_remove("ENRICH_CONFIG");
    for (key, value) in at(&secret, "stringData").as_mapping().unwrap() {
        command.env(key.as_str().unwrap(), value.as_str().unwrap());
    }
    let run = Run::from(command.output().unwrap());
    assert_eq!(run.code, Some(0), "the ConfigMap's enrich.yaml is valid:\n{run}");

    let kustomization = manifest("kustomization.yaml");
    let listed: Vec<&str> =
        at(&kustomization, "resources").as_sequence().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(listed, ["configmap.yaml", "deployment.yaml", "cronjob.yaml"]);
}
