//! infra/ kept in step with the binary: every `tickcast` command, flag, environment variable and
//! port the Kubernetes manifests and the Dockerfile use exists in `tickcast … --help`, and the
//! KEDA trigger watches the tick generators' real group and topic.

use std::collections::BTreeSet;

use serde_json::Value;

/// `tickcast ARGS --help`.
fn help(args: &[&str]) -> String {
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_tickcast")).args(args).arg("--help").output().unwrap();
    assert!(output.status.success(), "tickcast {args:?} --help: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Every command's help, for variables any role may read from a shared ConfigMap.
fn every_help() -> String {
    ["up", "edge", "gateway", "tick-generator", "archiver", "projector"].iter().map(|c| help(&[c])).collect()
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The YAML documents of `path`, as JSON (read by PyYAML in the tests' Python).
fn yaml_documents(path: &str) -> Vec<Value> {
    let script =
        "import json, sys, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))";
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let output = std::process::Command::new(crate::support::test_python())
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{path} does not parse: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Checks one container's command line against the binary; returns the ports it listens on.
fn check_command(context: &str, args: &[&str]) -> BTreeSet<u16> {
    let command = args[0];
    let text = help(&[command]);
    let mut ports = BTreeSet::new();
    for (i, arg) in args.iter().enumerate().skip(1) {
        if let Some(flag) = arg.strip_prefix("--") {
            let flag = flag.split('=').next().unwrap();
            assert!(text.contains(&format!("--{flag}")), "{context}: `tickcast {command}` has no --{flag}");
            if matches!(flag, "listen" | "admin-listen") {
                let port = args[i + 1].rsplit(':').next().unwrap().parse().unwrap();
                ports.insert(port);
            }
        }
    }
    ports
}

#[test]
fn the_kubernetes_manifests_use_only_what_the_binary_has() {
    let docs = yaml_documents("infra/k8s/tickcast.yaml");
    let all_help = every_help();
    let shared: Vec<String> = docs
        .iter()
        .filter(|d| d["kind"] == "ConfigMap")
        .flat_map(|d| d["data"].as_object().unwrap().keys().cloned().collect::<Vec<_>>())
        .collect();
    for name in &shared {
        assert!(
            all_help.contains(&format!("[env: {name}")),
            "the ConfigMap sets {name}, which no role reads"
        );
    }
    let deployments: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Deployment").collect();
    let mut commands = BTreeSet::new();
    for deployment in &deployments {
        let name = deployment["metadata"]["name"].as_str().unwrap();
        for container in deployment["spec"]["template"]["spec"]["containers"].as_array().unwrap() {
            let args: Vec<&str> =
                container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
            commands.insert(args[0].to_owned());
            let listening = check_command(name, &args);
            let text = help(&[args[0]]);
            for env in container["env"].as_array().into_iter().flatten() {
                let variable = env["name"].as_str().unwrap();
                assert!(
                    text.contains(&format!("[env: {variable}")),
                    "{name}: `tickcast {}` reads no {variable}",
                    args[0]
                );
            }
            let mut named = std::collections::HashMap::new();
            for port in container["ports"].as_array().unwrap() {
                let number = port["containerPort"].as_u64().unwrap() as u16;
                assert!(
                    listening.contains(&number),
                    "{name}: port {number} is not one it listens on ({listening:?})"
                );
                named.insert(port["name"].as_str().unwrap().to_owned(), number);
            }
            for probe in ["readinessProbe", "livenessProbe"] {
                let Some(get) = container[probe]["httpGet"].as_object() else { continue };
                let path = get["path"].as_str().unwrap();
                assert!(matches!(path, "/readyz" | "/healthz"), "{name}: {probe} on {path}");
                assert!(
                    named.contains_key(get["port"].as_str().unwrap()),
                    "{name}: {probe} on an undeclared port"
                );
            }
        }
    }
    for role in ["edge", "gateway", "tick-generator", "archiver", "projector"] {
        assert!(commands.contains(role), "no Deployment runs `tickcast {role}`");
    }
    let keda =
        docs.iter().find(|d| d["kind"] == "ScaledObject").expect("a ScaledObject for the tick generators");
    let trigger = &keda["spec"]["triggers"][0]["metadata"];
    assert_eq!(
        trigger["consumerGroup"],
        tickcast_processors::tick_generator::TickGeneratorConfig::default().group
    );
    assert_eq!(trigger["topic"], tickcast_schemas::topics::GAME_EVENTS);
    let target = keda["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
    assert!(
        deployments.iter().any(|d| d["metadata"]["name"] == target),
        "KEDA scales {target}, which is not here"
    );
}

#[test]
fn the_dockerfile_runs_the_binary_with_what_it_has() {
    let dockerfile = repo_file("infra/docker/Dockerfile");
    let up = help(&["up"]);
    // Instructions, with continued lines joined.
    let instructions: Vec<String> =
        dockerfile.replace("\\\n", " ").lines().map(str::trim).map(str::to_owned).collect();
    for instruction in &instructions {
        if let Some(assignments) = instruction.strip_prefix("ENV ") {
            for assignment in assignments.split_whitespace() {
                let variable = assignment.split('=').next().unwrap();
                assert!(
                    up.contains(&format!("[env: {variable}")),
                    "the image sets {variable}, which tickcast up does not read"
                );
            }
        }
        if let Some(command) = instruction.strip_prefix("CMD ") {
            let args: Vec<String> = serde_json::from_str(command).unwrap();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let ports = check_command("the image's CMD", &args);
            let exposed = instructions.iter().find_map(|i| i.strip_prefix("EXPOSE ")).expect("EXPOSE");
            for port in ports {
                assert!(
                    exposed.split_whitespace().any(|p| p == port.to_string()),
                    "the CMD's port {port} is not exposed"
                );
            }
        }
    }
    assert!(dockerfile.contains("ENTRYPOINT [\"tickcast\"]"));
    assert!(dockerfile.contains("cargo build --release --locked --bin tickcast"));
}
