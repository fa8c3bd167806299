//! infra/ kept in step with the binary: every `tickcast` command, flag, environment variable and
//! port the Kubernetes manifests, the compose file and the Dockerfile use exists in
//! `tickcast … --help`, the KEDA trigger watches the tick generators' real group and topic, and
//! the Terraform makes what tickcast makes. The dashboard's series: `dashboards.rs`.

use std::collections::BTreeSet;

use serde_json::Value;

/// `tickcast ARGS --help`.
fn help(args: &[&str]) -> String {
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_tickcast")).args(args).arg("--help").output().unwrap();
    assert!(output.status.success(), "tickcast {args:?} --help: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// The environment variables a help text names (`[env: NAME=…]`), exactly: `TICKCAST_LOG` is
/// not `TICKCAST_LOG_FORMAT`.
fn env_names(help: &str) -> BTreeSet<String> {
    help.split("[env: ")
        .skip(1)
        .map(|rest| {
            rest.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect()
        })
        .collect()
}

/// The long flags a help text names (`--NAME`), exactly: `--log` is not `--log-format`.
fn flag_names(help: &str) -> BTreeSet<String> {
    help.split("--")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect::<String>()
        })
        .filter(|flag| !flag.is_empty())
        .collect()
}

#[test]
fn names_are_matched_exactly() {
    let help = "      --log <URL>  the log [env: TICKCAST_LOG=]\n      --log-format <F>  [env: TICKCAST_LOG_FORMAT=text]";
    assert_eq!(
        env_names(help),
        BTreeSet::from(["TICKCAST_LOG".to_owned(), "TICKCAST_LOG_FORMAT".to_owned()])
    );
    assert!(!env_names("[env: TICKCAST_LOG_FORMAT=]").contains("TICKCAST_LOG"));
    assert!(!flag_names("--log-format <F>").contains("log"));
    assert!(flag_names(help).contains("log") && flag_names(help).contains("log-format"));
}

/// Every command's help, for variables any role may read from a shared ConfigMap.
fn every_help() -> String {
    ["up", "edge", "gateway", "tick-generator", "archiver", "projector"].iter().map(|c| help(&[c])).collect()
}

pub(crate) fn repo_file(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The YAML documents of `path`, as JSON (read by PyYAML in the tests' Python).
pub(crate) fn yaml_documents(path: &str) -> Vec<Value> {
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
    // `topics create …`: the command is every word before the first flag.
    let words = args.iter().take_while(|a| !a.starts_with("--")).count();
    let command = args[..words].join(" ");
    let text = help(&args[..words]);
    let mut ports = BTreeSet::new();
    for (i, arg) in args.iter().enumerate().skip(words) {
        if let Some(flag) = arg.strip_prefix("--") {
            let flag = flag.split('=').next().unwrap();
            assert!(flag_names(&text).contains(flag), "{context}: `tickcast {command}` has no --{flag}");
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
        assert!(env_names(&all_help).contains(name), "the ConfigMap sets {name}, which no role reads");
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
                    env_names(&text).contains(variable),
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
                    env_names(&up).contains(variable),
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

/// The compose file's tickcast services: each command, flag and TICKCAST_ variable exists, the
/// published ports are ones the roles in the edge's network namespace listen on, and Prometheus
/// scrapes exactly the roles' admin listeners.
#[test]
fn the_compose_file_uses_only_what_the_binary_has() {
    let compose = yaml_documents("infra/compose.yaml").remove(0);
    let all_help = every_help();
    let services = compose["services"].as_object().unwrap();
    let mut commands = BTreeSet::new();
    let (mut namespace_ports, mut admin_ports) = (BTreeSet::new(), BTreeSet::new());
    for (name, service) in services {
        if service["image"] != "tickcast:latest" {
            continue;
        }
        let args: Vec<&str> =
            service["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        commands.insert(args[0].to_owned());
        let listening = check_command(name, &args);
        for (variable, _) in service["environment"].as_object().unwrap() {
            if variable.starts_with("TICKCAST_") {
                assert!(env_names(&all_help).contains(variable), "{name}: no role reads {variable}");
            }
        }
        let in_edge_namespace = name == "edge" || service["network_mode"] == "service:edge";
        if in_edge_namespace {
            namespace_ports.extend(listening);
            if let Some(i) = args.iter().position(|a| *a == "--admin-listen") {
                admin_ports.insert(args[i + 1].rsplit(':').next().unwrap().parse::<u16>().unwrap());
            }
        }
    }
    for role in ["edge", "gateway", "tick-generator", "archiver", "projector", "topics", "tables"] {
        assert!(commands.contains(role), "no service runs `tickcast {role}`");
    }
    for published in services["edge"]["ports"].as_array().unwrap() {
        let port: u16 = published.as_str().unwrap().rsplit(':').next().unwrap().parse().unwrap();
        assert!(namespace_ports.contains(&port), "the edge publishes {port}, on which no role listens");
    }
    let prometheus = yaml_documents("infra/prometheus/prometheus.yml").remove(0);
    let mut scraped = BTreeSet::new();
    for job in prometheus["scrape_configs"].as_array().unwrap() {
        for target in job["static_configs"][0]["targets"].as_array().unwrap() {
            let (host, port) = target.as_str().unwrap().split_once(':').unwrap();
            assert_eq!(host, "edge", "the roles are in the edge's network namespace");
            scraped.insert(port.parse::<u16>().unwrap());
        }
    }
    assert_eq!(scraped, admin_ports, "Prometheus scrapes every role's admin listener, and only those");
}

/// The Terraform (parsed by python-hcl2) declares exactly the streams and tables `tickcast
/// streams create` and `tickcast tables create` make (read back from moto's server with boto3):
/// names, shard count of the secrets stream, keys, attribute types, indexes, on-demand billing,
/// TTL; and a policy per role that allows what the role calls and creates nothing.
#[test]
fn the_terraform_makes_what_tickcast_makes() {
    let endpoint = std::env::var("TICKCAST_TEST_DYNAMODB").unwrap_or_else(|_| {
        panic!("set TICKCAST_TEST_DYNAMODB (an AWS endpoint, e.g. moto's server) or run ./scripts/test.sh, which provides it")
    });
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let prefix = format!("tf{}x{}", std::process::id(), nanos % 1_000_000);
    let game_regions = "us-east-1,eu-west-1";
    let tickcast = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast")).args(args).output().unwrap();
        assert!(output.status.success(), "tickcast {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    let log = format!("kinesis://{prefix}?region=us-east-1&endpoint={endpoint}");
    tickcast(&["streams", "create", "--log", &log, "--shards", "2", "--regions", game_regions]);
    let store = format!("dynamodb://{prefix}?region=us-east-1&endpoint={endpoint}");
    tickcast(&["tables", "create", "--store", &store]);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(crate::support::test_python())
        .arg(root.join("tests/it/terraform_matches.py"))
        .arg(root.join("infra/terraform"))
        .args([&prefix, &endpoint, game_regions])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "infra/terraform differs from what tickcast makes: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
